"""GET /api/customers/{customerId}/mca-status: has the customer accepted the MCA?"""

from __future__ import annotations

import azure.functions as func

from ..auth import Permission
from ..http import Call, serve
from ..operation_docs import SERVE_ERRORS, OperationDoc, PathParameter, Visibility
from ..schemas import McaStatusResponse

bp = func.Blueprint()

OPERATION = OperationDoc(
    operation_id="GetMcaStatus",
    summary="Get MCA acceptance status",
    description="Whether a customer has accepted the Microsoft Customer Agreement, attested by "
    "the partner or signed directly with Microsoft. Use Accepted in a condition before ordering.",
    permission=Permission.AGREEMENTS_READ,
    path_parameters=(
        PathParameter("customerId", "Customer id", "The customer's tenant id (a GUID)."),
    ),
    response=McaStatusResponse,
    errors=(*SERVE_ERRORS, 404),
    visibility=Visibility.IMPORTANT,
    advanced=frozenset({"templateId"}),
)


@bp.function_name(OPERATION.operation_id)
@bp.route(route="customers/{customerId}/mca-status", methods=["GET"])
def get_mca_status(req: func.HttpRequest) -> func.HttpResponse:
    """Whether the customer accepted the MCA, and how."""
    return serve(req, _mca_status, permission=Permission.AGREEMENTS_READ)


def _mca_status(call: Call) -> McaStatusResponse:
    customer_id = call.route_guid("customerId")
    status = call.client.get_mca_status(
        call.principal, customer_id, correlation_id=call.correlation_id
    )
    return McaStatusResponse.of(status)
