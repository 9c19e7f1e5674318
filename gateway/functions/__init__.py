"""The app's functions, one blueprint per resource, each HTTP one with the doc the OpenAPI
definition uses."""

from . import agreements, deliveries, events, health, openapi, relationship_request, subscriptions
from .health import VERSION

BLUEPRINTS = (
    relationship_request.bp,
    agreements.bp,
    events.bp,
    subscriptions.bp,
    deliveries.bp,
    health.bp,
    openapi.bp,
)
OPERATIONS = (
    relationship_request.OPERATION,
    agreements.OPERATION,
    events.OPERATION,
    *subscriptions.OPERATIONS,
    health.OPERATION,
    openapi.OPERATION,
)

__all__ = ["BLUEPRINTS", "OPERATIONS", "VERSION"]
