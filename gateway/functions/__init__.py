"""The HTTP functions, one blueprint per resource, each with the doc the OpenAPI definition uses."""

from . import agreements, health, mca_status, openapi, relationship_request
from .health import VERSION

BLUEPRINTS = (relationship_request.bp, agreements.bp, mca_status.bp, health.bp, openapi.bp)
OPERATIONS = (
    relationship_request.OPERATION,
    agreements.OPERATION,
    agreements.ATTEST_OPERATION,
    mca_status.OPERATION,
    health.OPERATION,
    openapi.OPERATION,
)

__all__ = ["BLUEPRINTS", "OPERATIONS", "VERSION"]
