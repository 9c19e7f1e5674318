"""POST /api/events/partner-center: Partner Center's webhook (anonymous, signed by it)."""

from __future__ import annotations

import time

import azure.functions as func

from ..event_receiver import receive_event
from ..http import correlation_id_of, json_response, log_request, problem_response
from ..logs import correlation_scope
from ..operation_docs import OperationDoc, Visibility
from ..problems import problem_for
from ..schemas import EventReceipt

bp = func.Blueprint()

OPERATION = OperationDoc(
    operation_id="ReceivePartnerCenterEvent",
    summary="Receive a Partner Center webhook event",
    description="Partner Center's webhook: a signed event is stored and queued for delivery to "
    "the subscribed flows before the answer. Called by Partner Center, never by flows.",
    response=EventReceipt,
    response_description="The event is stored and will be delivered.",
    errors=(400, 401, 502, 503),
    visibility=Visibility.INTERNAL,
)


@bp.function_name(OPERATION.operation_id)
@bp.route(route="events/partner-center", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def receive_partner_center_event(req: func.HttpRequest) -> func.HttpResponse:
    """Store a signed Partner Center event; 401 (nothing stored) when the signature fails."""
    correlation_id, _ = correlation_id_of(req)
    with correlation_scope(correlation_id):
        started = time.perf_counter()
        try:
            recorded = receive_event(req.headers, req.get_body())
            receipt = EventReceipt(event_id=recorded.event_id, duplicate=recorded.duplicate)
            response = json_response(receipt, correlation_id)
        except Exception as err:
            response = problem_response(problem_for(err, correlation_id))
        log_request(req, response.status_code, started)
        return response
