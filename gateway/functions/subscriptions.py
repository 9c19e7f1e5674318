"""/api/subscriptions: a caller's subscriptions to Partner Center events (the connector's trigger).

Power Automate creates one when a flow with the trigger is saved (POST, with its callback URL),
and deletes it at the ``Location`` it was given when the flow or its trigger is removed.
"""

from __future__ import annotations

import azure.functions as func

from ..auth import Permission
from ..callbacks import callback_hosts, checked_callback_url
from ..http import Call, Reply, serve
from ..operation_docs import SERVE_ERRORS, OperationDoc, PathParameter, Visibility
from ..runtime import get_runtime
from ..schemas import EventNotification, SubscriptionList, SubscriptionOut, SubscriptionRequest
from ..storage import storage_clients
from ..subscriptions import Subscription, SubscriptionStore, owner_of

bp = func.Blueprint()

ROUTE = "subscriptions"
SUBSCRIPTION_ID = PathParameter(
    "subscriptionId", "Subscription id", "The id the subscription was created with (a GUID)."
)

CREATE = OperationDoc(
    operation_id="WhenPartnerCenterEventOccurs",
    summary="When a Partner Center event occurs",
    description="Starts the flow when Partner Center sends the chosen event, such as a customer "
    "accepting the reseller relationship.",
    permission=Permission.EVENTS_SUBSCRIBE,
    body=SubscriptionRequest,
    response=SubscriptionOut,
    status=201,
    notification=EventNotification,
    errors=SERVE_ERRORS,
    visibility=Visibility.IMPORTANT,
)
LIST = OperationDoc(
    operation_id="ListEventSubscriptions",
    summary="List your event subscriptions",
    description="The subscriptions to Partner Center events that you created, with their ids.",
    permission=Permission.EVENTS_SUBSCRIBE,
    response=SubscriptionList,
    errors=SERVE_ERRORS,
    visibility=Visibility.ADVANCED,
)
DELETE = OperationDoc(
    operation_id="DeleteEventSubscription",
    summary="Delete an event subscription",
    description="Stops sending events to the subscription's callback. Power Automate calls it "
    "when the flow's trigger is removed.",
    permission=Permission.EVENTS_SUBSCRIBE,
    path_parameters=(SUBSCRIPTION_ID,),
    response=None,
    response_description="The subscription is deleted.",
    status=204,
    errors=(*SERVE_ERRORS, 404),
    visibility=Visibility.INTERNAL,
)
OPERATIONS = (CREATE, LIST, DELETE)


@bp.function_name(CREATE.operation_id)
@bp.route(route=ROUTE, methods=["POST"])
def create_subscription(req: func.HttpRequest) -> func.HttpResponse:
    """Subscribe the caller's callback URL to a Partner Center event."""
    return serve(req, _create, permission=Permission.EVENTS_SUBSCRIBE)


@bp.function_name(LIST.operation_id)
@bp.route(route=ROUTE, methods=["GET"])
def list_subscriptions(req: func.HttpRequest) -> func.HttpResponse:
    """The caller's own subscriptions."""
    return serve(req, _list, permission=Permission.EVENTS_SUBSCRIBE)


@bp.function_name(DELETE.operation_id)
@bp.route(route=ROUTE + "/{subscriptionId}", methods=["DELETE"])
def delete_subscription(req: func.HttpRequest) -> func.HttpResponse:
    """Delete one of the caller's subscriptions."""
    return serve(req, _delete, permission=Permission.EVENTS_SUBSCRIBE)


def _create(call: Call) -> Reply:
    request = call.body(SubscriptionRequest)
    hosts = callback_hosts(get_runtime().settings.event_callback_hosts)
    callback_url = checked_callback_url(request.callback_url, hosts)
    created = _store().create(owner_of(call.caller), request.event_name.value, callback_url)
    return Reply(201, _out(created), {"Location": f"/api/{ROUTE}/{created.id}"})


def _list(call: Call) -> SubscriptionList:
    found = [_out(s) for s in _store().list_for(owner_of(call.caller))]
    return SubscriptionList(count=len(found), subscriptions=found)


def _delete(call: Call) -> Reply:
    _store().delete(owner_of(call.caller), call.route_guid(SUBSCRIPTION_ID.name))
    return Reply(204)


def _out(subscription: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=subscription.id, event_name=subscription.event_name, created_at=subscription.created_at
    )


def _store() -> SubscriptionStore:
    return SubscriptionStore(storage_clients())
