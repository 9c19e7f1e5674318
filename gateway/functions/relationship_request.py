"""GET /api/relationship-request: the link that invites a customer into a reseller relationship."""

from __future__ import annotations

import azure.functions as func

from ..auth import Permission
from ..http import Call, serve
from ..schemas import RelationshipRequestQuery, RelationshipRequestResponse

bp = func.Blueprint()


@bp.function_name("GetRelationshipRequestUrl")
@bp.route(route="relationship-request", methods=["GET"])
def get_relationship_request(req: func.HttpRequest) -> func.HttpResponse:
    """The partner's relationship request URL, to send to a customer."""
    return serve(req, _relationship_request, permission=Permission.RELATIONSHIP_REQUEST_READ)


def _relationship_request(call: Call) -> RelationshipRequestResponse:
    query = call.query(RelationshipRequestQuery)
    link = call.client.get_relationship_request(
        call.principal,
        indirect_reseller_id=query.indirect_reseller_id,
        indirect_csp_id=query.indirect_cloud_solution_provider_id,
        correlation_id=call.correlation_id,
    )
    return RelationshipRequestResponse(url=link.url)
