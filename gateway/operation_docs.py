"""What the API definition says of each operation, declared next to its function.

Kept apart from the generator (:mod:`gateway.openapi`): the function modules need these words when
the app is imported, the generator only when the definition is asked for (``GET
/api/openapi.json``, ``make connector``), so the app's start does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel

from .auth import Permission
from .schemas import QueryModel


class Visibility(StrEnum):
    """Where Power Automate shows an operation, parameter or property (``x-ms-visibility``)."""

    IMPORTANT = "important"
    ADVANCED = "advanced"
    INTERNAL = "internal"


@dataclass(frozen=True)
class PathParameter:
    """A route parameter; every one of this API's is a GUID."""

    name: str
    title: str
    description: str


@dataclass(frozen=True)
class OperationDoc:
    """What the definition says of one HTTP function, declared next to it.

    ``operation_id`` is the function's name (``@bp.function_name``). ``response`` None means a JSON
    object the definition does not describe. ``advanced`` holds wire names of query parameters and
    body and response properties shown only under "advanced" in Power Automate; ``important``
    wire names of body properties Power Automate shows first. ``body`` is the JSON request body.
    ``created``, when set, describes a 201 answer with ``Location`` (a new resource); the 200 is
    then the one that already existed (``response_description``).
    """

    operation_id: str
    summary: str
    description: str
    response: type[BaseModel] | None
    response_description: str = ""
    permission: Permission | None = None
    query: type[QueryModel] | None = None
    path_parameters: tuple[PathParameter, ...] = ()
    errors: tuple[int, ...] = ()
    visibility: Visibility | None = None
    advanced: frozenset[str] = field(default_factory=frozenset)
    #: The JSON request body, if the operation takes one.
    body: type[BaseModel] | None = None
    body_description: str = ""
    important: frozenset[str] = field(default_factory=frozenset)
    created: str = ""
    #: The success status: 200, 201 (with a ``Location`` header) or 204 (no body).
    status: int = 200
    #: For a webhook trigger (``x-ms-trigger: single``): what each callback receives.
    notification: type[BaseModel] | None = None


#: Every status :func:`gateway.http.serve` answers for any operation (404 only where a thing is
#: looked up).
SERVE_ERRORS = (400, 401, 403, 429, 502, 503, 504)
