"""The app's functions, one blueprint per resource, each HTTP one with the doc the OpenAPI
definition uses."""

from . import (
    agreements,
    consent_rotation,
    deliveries,
    events,
    health,
    mca_status,
    openapi,
    relationship_request,
    subscriptions,
)
from .health import VERSION

BLUEPRINTS = (
    relationship_request.bp,
    agreements.bp,
    mca_status.bp,
    events.bp,
    subscriptions.bp,
    health.bp,
    openapi.bp,
    consent_rotation.bp,
    deliveries.bp,
)
OPERATIONS = (
    relationship_request.OPERATION,
    agreements.OPERATION,
    agreements.ATTEST_OPERATION,
    mca_status.OPERATION,
    events.OPERATION,
    *subscriptions.OPERATIONS,
    health.OPERATION,
    openapi.OPERATION,
)

__all__ = ["BLUEPRINTS", "OPERATIONS", "VERSION"]
