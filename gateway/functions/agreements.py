"""GET /api/customers/{customerId}/agreements: a customer's agreement acceptances."""

from __future__ import annotations

import azure.functions as func

from ..auth import Permission
from ..http import Call, serve
from ..openapi import SERVE_ERRORS, OperationDoc, PathParameter, Visibility
from ..schemas import AgreementsQuery, AgreementsResponse

bp = func.Blueprint()

OPERATION = OperationDoc(
    operation_id="ListCustomerAgreements",
    summary="List a customer's agreements",
    description="The Microsoft Customer Agreement and Microsoft Cloud Agreement acceptances of a "
    "customer of the partner, with who accepted them and when.",
    permission=Permission.AGREEMENTS_READ,
    path_parameters=(
        PathParameter("customerId", "Customer id", "The customer's tenant id (a GUID)."),
    ),
    query=AgreementsQuery,
    response=AgreementsResponse,
    errors=(*SERVE_ERRORS, 404),
    visibility=Visibility.IMPORTANT,
    advanced=frozenset({"templateId", "agreementLink"}),
)


@bp.function_name(OPERATION.operation_id)
@bp.route(route="customers/{customerId}/agreements", methods=["GET"])
def list_customer_agreements(req: func.HttpRequest) -> func.HttpResponse:
    """The customer's agreement acceptances, of one type or all."""
    return serve(req, _agreements, permission=Permission.AGREEMENTS_READ)


def _agreements(call: Call) -> AgreementsResponse:
    customer_id = call.route_guid("customerId")
    query = call.query(AgreementsQuery)
    collection = call.client.list_customer_agreements(
        call.principal,
        customer_id,
        query.type.to_partner_center(),
        correlation_id=call.correlation_id,
    )
    return AgreementsResponse.of(customer_id, collection)
