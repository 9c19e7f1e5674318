"""GET /api/health: is the service configured, and is the service user's consent alive?

No token needed and no Partner Center call made; the consent's state comes from Key Vault,
cached briefly and read with a short timeout, so health stays quick and never fails."""

from __future__ import annotations

import azure.functions as func

from partnercenter import ConfigurationError, Settings

from ..http import correlation_id_of, json_response
from ..operation_docs import OperationDoc, Visibility
from ..runtime import get_runtime
from ..schemas import HealthResponse

bp = func.Blueprint()

VERSION = "0.1.0"

OPERATION = OperationDoc(
    operation_id="GetHealth",
    summary="Check the gateway's configuration",
    description="Whether the gateway's configuration is complete and the service user's consent "
    "is alive, for monitoring. Needs no token and calls no Partner Center operation.",
    response=HealthResponse,
    visibility=Visibility.INTERNAL,
)


@bp.function_name(OPERATION.operation_id)
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
    unresolved = ", ".join(settings.unresolved_references)
    consent = get_runtime().client.consent_status()
    return HealthResponse(
        status="ok",
        configured=True,
        problem=f"Unresolved Key Vault reference: {unresolved}." if unresolved else None,
        credential=settings.credential_kind.value,
        service_user=settings.key_vault_url is not None
        or settings.partner_center_refresh_token is not None,
        consent=consent.state.value,
        consent_expires_on=consent.expires_on,
        any_client_app=not settings.allowed_client_app_ids,
        version=VERSION,
    )
