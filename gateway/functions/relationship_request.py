"""GET /api/relationship-request: the link that invites a customer into a reseller relationship."""

from __future__ import annotations

import azure.functions as func

from ..auth import Permission
from ..http import Call, serve
from ..operation_docs import SERVE_ERRORS, OperationDoc, Visibility
from ..schemas import RelationshipRequestQuery, RelationshipRequestResponse

bp = func.Blueprint()

OPERATION = OperationDoc(
    operation_id="GetRelationshipRequestUrl",
    summary="Get the reseller relationship invitation link",
    description="The link to send to a customer's global admin, who opens it to accept the "
    "partner as a reseller; indirect providers may name the indirect reseller it is for.",
    permission=Permission.RELATIONSHIP_REQUEST_READ,
    query=RelationshipRequestQuery,
    response=RelationshipRequestResponse,
    errors=SERVE_ERRORS,
    visibility=Visibility.IMPORTANT,
    advanced=frozenset(
        {"indirectResellerId", "indirectCloudSolutionProviderId", "dualRoleIndirectRelationship"}
    ),
)


@bp.function_name(OPERATION.operation_id)
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
        dual_role_indirect_relationship=query.dual_role_indirect_relationship,
        correlation_id=call.correlation_id,
    )
    return RelationshipRequestResponse(url=link.url)
