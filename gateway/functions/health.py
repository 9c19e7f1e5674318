"""GET /api/health: is the service configured? No token needed, no upstream call made."""

from __future__ import annotations

import azure.functions as func

from partnercenter import ConfigurationError, Settings

from ..http import correlation_id_of, json_response
from ..schemas import HealthResponse

bp = func.Blueprint()

VERSION = "0.1.0"


@bp.function_name("GetHealth")
@bp.route(route="health", methods=["GET"])
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    """Whether the configuration is complete; never what the secrets are."""
    correlation_id, _ = correlation_id_of(req)
    return json_response(health_report(), correlation_id)


def health_report() -> HealthResponse:
    """The configuration's state, read from the environment now."""
    try:
        settings = Settings.from_environ()
    except ConfigurationError as err:
        return HealthResponse(
            status="misconfigured", configured=False, problem=str(err), version=VERSION
        )
    return HealthResponse(
        status="ok",
        configured=True,
        credential=settings.credential_kind.value,
        service_user=settings.partner_center_refresh_token is not None,
        version=VERSION,
    )
