"""The HTTP functions, one blueprint per resource."""

from .agreements import bp as agreements
from .health import bp as health
from .relationship_request import bp as relationship_request

BLUEPRINTS = (relationship_request, agreements, health)

__all__ = ["BLUEPRINTS"]
