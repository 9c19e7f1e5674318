"""/api/customers/{customerId}/agreements: a customer's agreement acceptances (GET), and the
partner's attestation that the customer accepted the Microsoft Customer Agreement (POST)."""

from __future__ import annotations

import azure.functions as func

from ..auth import Permission
from ..http import Call, Reply, serve
from ..operation_docs import SERVE_ERRORS, OperationDoc, PathParameter, Visibility
from ..schemas import (
    AgreementsQuery,
    AgreementsResponse,
    AttestationRequest,
    AttestationResponse,
)

bp = func.Blueprint()

_CUSTOMER = PathParameter("customerId", "Customer id", "The customer's tenant id (a GUID).")

OPERATION = OperationDoc(
    operation_id="ListCustomerAgreements",
    summary="List a customer's agreements",
    description="The Microsoft Customer Agreement and Microsoft Cloud Agreement acceptances of a "
    "customer of the partner, with who accepted them and when.",
    permission=Permission.AGREEMENTS_READ,
    path_parameters=(_CUSTOMER,),
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


ATTEST_OPERATION = OperationDoc(
    operation_id="AttestMcaAcceptance",
    summary="Attest MCA acceptance",
    description="Records that the customer accepted the Microsoft Customer Agreement, as Partner "
    "Center requires for new customers. Safe to repeat: an attestation that already exists is "
    "returned with Created false.",
    permission=Permission.AGREEMENTS_READ_WRITE,
    path_parameters=(_CUSTOMER,),
    body=AttestationRequest,
    response=AttestationResponse,
    response_description="The attestation already existed (same contact); nothing was changed.",
    created="The attestation was recorded; Location names the customer's agreements.",
    errors=(*SERVE_ERRORS, 404),
    visibility=Visibility.IMPORTANT,
    important=frozenset({"primaryContact", "firstName", "lastName", "email", "phoneNumber"}),
    advanced=frozenset({"dateAgreed", "templateId", "agreementLink"}),
)


@bp.function_name(ATTEST_OPERATION.operation_id)
@bp.route(route="customers/{customerId}/agreements", methods=["POST"])
def attest_mca_acceptance(req: func.HttpRequest) -> func.HttpResponse:
    """Attest the customer's acceptance of the MCA: 201 when new, 200 when it already existed."""
    return serve(req, _attest, permission=Permission.AGREEMENTS_READ_WRITE)


def _attest(call: Call) -> AttestationResponse | Reply:
    customer_id = call.route_guid("customerId")
    request = call.body(AttestationRequest)
    attestation = call.client.create_customer_agreement(
        call.principal,
        customer_id,
        request.primary_contact.to_partner_center(),
        date_agreed=request.date_agreed,
        correlation_id=call.correlation_id,
    )
    body = AttestationResponse.of(customer_id, attestation)
    if not attestation.created:
        return body
    return Reply(201, body, {"Location": f"/api/customers/{customer_id}/agreements"})
