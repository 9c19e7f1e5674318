"""The connector's definition, and the HTTP host of the end-to-end tests to check it against."""

from __future__ import annotations

from typing import Any

import pytest

from function_app import app
from gateway.openapi import definition_of

# The end-to-end fixtures (the app served over HTTP against the simulator), shared, not copied.
from ..e2e.conftest import api, base_url, service_env

__all__ = ["api", "base_url", "definition", "service_env"]


@pytest.fixture(scope="session")
def definition() -> dict[str, Any]:
    """The definition generated from the app now."""
    return definition_of(app)
