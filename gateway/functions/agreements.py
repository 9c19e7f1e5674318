"""GET /api/customers/{customerId}/agreements: a customer's agreement acceptances."""

from __future__ import annotations

import azure.functions as func

from ..auth import Permission
from ..http import Call, serve
from ..schemas import AgreementsQuery, AgreementsResponse

bp = func.Blueprint()


@bp.function_name("ListCustomerAgreements")
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
