"""``POST /admin/functions/{name}``: run a non-HTTP function at once, as the Functions host does.

Core Tools and the host take a JSON body ``{"input": "..."}`` (the queue message for a queue
function; ignored by a timer), start the function and answer 202 at once. An unknown function is
a 404 and a bad body a 400, both ``application/problem+json`` like every other error here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import azure.functions as func
from werkzeug.wrappers import Request, Response

from .background import BackgroundFunction, BackgroundRunner
from .http import correlation_id_of, problem_response
from .problems import INVALID_REQUEST, METHOD_NOT_ALLOWED, NOT_FOUND, Kind, problem

ADMIN_PREFIX = "/admin/"
_FUNCTIONS_PREFIX = "/admin/functions/"
#: A queue message is at most 64 KiB; the body holds it JSON-encoded, with room to spare.
MAX_BODY = 256 * 1024


class AdminFunctions:
    """The admin endpoint of the local host for the app's timer and queue functions."""

    def __init__(self, functions: Mapping[str, BackgroundFunction], runner: BackgroundRunner):
        # The host matches function names case-insensitively.
        self._functions = {name.lower(): function for name, function in functions.items()}
        self.runner = runner

    def dispatch(self, request: Request) -> Response:
        """Answer one request under ``/admin/``."""
        correlation_id, _ = correlation_id_of(
            func.HttpRequest(request.method, request.url, headers=dict(request.headers), body=b"")
        )
        name = (
            request.path[len(_FUNCTIONS_PREFIX) :]
            if request.path.startswith(_FUNCTIONS_PREFIX)
            else ""
        )
        function = self._functions.get(name.lower()) if name and "/" not in name else None
        if function is None:
            return _problem(NOT_FOUND, "No such function.", correlation_id)
        if request.method != "POST":
            answer = _problem(METHOD_NOT_ALLOWED, "Functions are run with POST.", correlation_id)
            answer.headers["Allow"] = "POST"
            return answer
        input_text = _input_of(request)
        if input_text is None:
            return _problem(
                INVALID_REQUEST,
                'The body must be a JSON object {"input": "<text>"} (the queue message for a '
                "queue function; anything for a timer).",
                correlation_id,
            )
        self.runner.start(
            function,
            input_text,
            reason="This function was programmatically called via the host APIs.",
        )
        return Response(status=202)


def _input_of(request: Request) -> str | None:
    """The body's ``input``, or None when the body is not ``{"input": "<text>"}``."""
    if (request.content_length or 0) > MAX_BODY:
        return None
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, OSError):
        return None
    if not isinstance(body, dict):
        return None
    value = body.get("input", "")
    return value if isinstance(value, str) else None


def _problem(kind: Kind, detail: str, correlation_id: str) -> Response:
    answer = problem_response(problem(kind, detail, correlation_id))
    return Response(
        answer.get_body(),
        status=answer.status_code,
        headers=list(answer.headers.items()),
        mimetype=answer.mimetype,
    )
