"""GET /api/openapi.json: this API's OpenAPI 2.0 definition. No token needed: it holds no secret."""

from __future__ import annotations

import functools

import azure.functions as func

from ..http import CORRELATION_HEADER, correlation_id_of
from ..operation_docs import OperationDoc, Visibility

bp = func.Blueprint()

OPERATION = OperationDoc(
    operation_id="GetApiDefinition",
    summary="Get the API definition",
    description="This API's OpenAPI 2.0 (Swagger) definition, the connector's "
    "apiDefinition.swagger.json.",
    response=None,
    response_description="The OpenAPI 2.0 definition.",
    visibility=Visibility.INTERNAL,
)


@bp.function_name(OPERATION.operation_id)
@bp.route(route="openapi.json", methods=["GET"])
def get_api_definition(req: func.HttpRequest) -> func.HttpResponse:
    """The definition, generated on the first call and kept for the life of the worker."""
    correlation_id, _ = correlation_id_of(req)
    return func.HttpResponse(
        served_definition(),
        status_code=200,
        headers={CORRELATION_HEADER: correlation_id, "Cache-Control": "no-cache"},
        mimetype="application/json",
        charset="utf-8",
    )


@functools.cache
def served_definition() -> str:
    """The rendered definition, built on first use: not at import, which would slow cold starts."""
    # The Functions worker has already listed function_app.app's functions, and azure-functions
    # refuses a second listing of one app (it sees every name as a duplicate), so this describes a
    # new app of the same blueprints; a test checks that it equals the definition of the app.
    from ..openapi import definition_of, render  # noqa: PLC0415 - not needed at the app's start
    from . import BLUEPRINTS  # noqa: PLC0415 - this module is one of them

    replica = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for blueprint in BLUEPRINTS:
        replica.register_functions(blueprint)
    return render(definition_of(replica))
