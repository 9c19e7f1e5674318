"""GUID validation: every id is checked before a URL is built from it."""

from __future__ import annotations

import re
import uuid
from typing import TypeGuard

from ._errors import InvalidArgumentError

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_guid(value: object) -> TypeGuard[str]:
    """True for a canonical, hyphenated GUID string (no braces, no URN, no whitespace)."""
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def require_guid(value: object, argument: str) -> str:
    """Return ``value`` lower-cased if it is a GUID, else raise :class:`InvalidArgumentError`."""
    if not is_guid(value):
        raise InvalidArgumentError(f"{argument} must be a GUID.", argument=argument)
    return value.lower()


def new_guid() -> str:
    """A new random GUID string."""
    return str(uuid.uuid4())
