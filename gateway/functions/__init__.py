"""The HTTP functions, one blueprint per resource, each with the doc the OpenAPI definition uses."""

from . import agreements, events, health, openapi, relationship_request
from .health import VERSION

BLUEPRINTS = (relationship_request.bp, agreements.bp, events.bp, health.bp, openapi.bp)
OPERATIONS = (
    relationship_request.OPERATION,
    agreements.OPERATION,
    events.OPERATION,
    health.OPERATION,
    openapi.OPERATION,
)

__all__ = ["BLUEPRINTS", "OPERATIONS", "VERSION"]
