"""What every HTTP function does around its operation: correlation id, caller authentication,
parameter validation, the JSON or problem answer, and one log line."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from partnercenter import InvalidArgumentError, PartnerCenterClient, Principal, is_guid

from .auth import Caller, Permission
from .logs import correlation_scope
from .problems import PROBLEM_CONTENT_TYPE, ProblemResponse, problem_for
from .runtime import get_runtime
from .schemas import BodyModel, QueryModel
from .telemetry import request_span

logger = logging.getLogger("gateway")

CORRELATION_HEADER = "x-correlation-id"
#: Largest request body taken; the API's bodies are a few hundred bytes.
MAX_BODY_BYTES = 16 * 1024
QueryT = TypeVar("QueryT", bound=QueryModel)
BodyT = TypeVar("BodyT", bound=BodyModel)


@dataclass(frozen=True)
class Call:
    """One authenticated call: what an operation needs to do its work."""

    request: func.HttpRequest
    caller: Caller
    correlation_id: str
    client: PartnerCenterClient

    @property
    def principal(self) -> Principal:
        """Whom Partner Center is called for."""
        return self.caller.principal()

    def query(self, model: type[QueryT]) -> QueryT:
        """The query parameters, validated by ``model``."""
        return parse_query(model, self.request.params)

    def body(self, model: type[BodyT]) -> BodyT:
        """The JSON body, validated by ``model``."""
        return parse_json_body(model, self.request)

    def route_guid(self, name: str) -> str:
        """A route parameter that must be a GUID, lower-cased."""
        value = self.request.route_params.get(name)
        if not is_guid(value):
            raise InvalidArgumentError(f"{name} must be a GUID.", argument=name)
        return value.lower()


@dataclass(frozen=True)
class Reply:
    """An answer other than 200 with a JSON body: 201 with ``Location``, or 204 with no body."""

    status: int
    body: BaseModel | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


Operation = Callable[[Call], BaseModel | Reply]


def serve(
    req: func.HttpRequest, operation: Operation, *, permission: Permission
) -> func.HttpResponse:
    """Run ``operation`` for an authenticated caller holding ``permission``."""
    correlation_id, valid = correlation_id_of(req)
    with correlation_scope(correlation_id), request_span(req, correlation_id) as served:
        started = time.perf_counter()
        try:
            if not valid:
                raise InvalidArgumentError(
                    f"The {CORRELATION_HEADER} header must be a GUID.", argument=CORRELATION_HEADER
                )
            runtime = get_runtime()
            caller = runtime.authenticator.authenticate(req.headers.get("Authorization"))
            caller.require(permission)
            result = operation(Call(req, caller, correlation_id, runtime.client))
            response = reply_response(result, correlation_id)
        except Exception as err:
            response = problem_response(problem_for(err, correlation_id))
        served.status = response.status_code
        log_request(req, response.status_code, started)
        return response


def correlation_id_of(req: func.HttpRequest) -> tuple[str, bool]:
    """The caller's correlation id, or a new one; and whether the caller's was usable."""
    value = req.headers.get(CORRELATION_HEADER)
    if value is None or value == "":
        return new_correlation_id(), True
    if is_guid(value):
        return value.lower(), True
    return new_correlation_id(), False


def new_correlation_id() -> str:
    """A new correlation id."""
    return str(uuid.uuid4())


def parse_query(model: type[QueryT], params: Mapping[str, str]) -> QueryT:
    """Validate query parameters, refusing unknown ones, with a message naming the parameter."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "query"
        if first["type"] == "extra_forbidden":
            message = f"Unknown query parameter '{name[:64]}'."
        elif first["type"] == "string_pattern_mismatch":
            message = f"Query parameter '{name}' must be a GUID."
        else:
            message = f"Query parameter '{name}': {first['msg']}."
        raise InvalidArgumentError(message, argument=name[:64]) from None


def parse_json_body(model: type[BodyT], req: func.HttpRequest) -> BodyT:
    """Validate a JSON request body, with a message naming the field at fault (never echoing
    the value)."""
    media_type = (req.headers.get("Content-Type") or "application/json").split(";")[0].strip()
    if media_type.lower() != "application/json":
        raise InvalidArgumentError(
            "Send the body as JSON (Content-Type: application/json).", argument="Content-Type"
        )
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidArgumentError(
            f"The request body is larger than {MAX_BODY_BYTES} bytes.", argument="body"
        )
    try:
        data: Any = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidArgumentError("The request body is not valid JSON.", argument="body") from None
    if not isinstance(data, dict):
        raise InvalidArgumentError("The request body must be a JSON object.", argument="body")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        # An unknown field is usually a misspelt one: name it before what it left missing.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        name = ".".join(str(part) for part in first["loc"])[:100] or "body"
        kind = first["type"]
        if kind == "extra_forbidden":
            message = f"Unknown field '{name}'."
        elif kind == "missing":
            message = f"'{name}' is required."
        elif kind == "string_pattern_mismatch":
            message = f"'{name}' is not valid."
        elif kind == "string_too_long":
            message = f"'{name}' is longer than {first['ctx']['max_length']} characters."
        elif kind == "string_too_short":
            message = f"'{name}' is too short."
        else:
            message = f"'{name}': {first['msg']}."
        raise InvalidArgumentError(message, argument=name) from None


def reply_response(result: BaseModel | Reply, correlation_id: str) -> func.HttpResponse:
    """The answer for what an operation returned."""
    if not isinstance(result, Reply):
        return json_response(result, correlation_id)
    if result.body is None:
        return func.HttpResponse(
            status_code=result.status,
            headers={
                **result.headers,
                CORRELATION_HEADER: correlation_id,
                "Cache-Control": "no-store",
            },
        )
    return json_response(result.body, correlation_id, result.status, result.headers)


def json_response(
    body: BaseModel,
    correlation_id: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> func.HttpResponse:
    """A JSON answer of ``body`` (camelCase, nulls kept)."""
    return func.HttpResponse(
        body.model_dump_json(by_alias=True),
        status_code=status,
        headers={
            **(headers or {}),
            CORRELATION_HEADER: correlation_id,
            "Cache-Control": "no-store",
        },
        mimetype="application/json",
        charset="utf-8",
    )


def problem_response(problem: ProblemResponse) -> func.HttpResponse:
    """A problem answer."""
    return func.HttpResponse(
        problem.body.model_dump_json(by_alias=True, exclude_none=True),
        status_code=problem.status,
        headers={
            **problem.headers,
            CORRELATION_HEADER: problem.body.correlation_id,
            "Cache-Control": "no-store",
        },
        mimetype=PROBLEM_CONTENT_TYPE,
        charset="utf-8",
    )


def log_request(req: func.HttpRequest, status: int, started: float) -> None:
    """One line per request: method, route, status, duration (never the query or headers)."""
    logger.info(
        "%s %s -> %d in %.1f ms",
        req.method,
        _path(req.url),
        status,
        (time.perf_counter() - started) * 1000,
        extra={"status": status},
    )


def _path(url: str) -> str:
    path = url.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return path[:200]
