"""The queue-triggered delivery of Partner Center events to subscribed callbacks."""

from __future__ import annotations

import azure.functions as func

from ..storage import DELIVERY_QUEUE, STORAGE_SETTING

bp = func.Blueprint()


@bp.function_name("DeliverPartnerCenterEvents")
@bp.queue_trigger(arg_name="message", queue_name=DELIVERY_QUEUE, connection=STORAGE_SETTING)
def deliver_partner_center_events(message: func.QueueMessage) -> None:
    """Fan an event out to its subscriptions, or retry one delivery.

    Raising leaves the message on the queue: the host tries it again, and after
    ``maxDequeueCount`` attempts moves it to ``event-deliveries-poison``.
    """
    # Imported here: the delivery machinery (callbacks, event store, subscriptions) is not needed
    # by the app's start nor by its HTTP functions.
    from ..delivery import get_delivery  # noqa: PLC0415

    get_delivery().handle(message.get_body(), message_id=message.id)
