"""The Partner Center webhook events the gateway turns into triggers, with their display names.

The events are those the gateway registers for (``partnercenter.GATEWAY_EVENTS``, from Partner
Center's list of webhook events: learn.microsoft.com, "Partner Center webhook events"), so a
subscription can only name an event that can arrive. The connector shows them as a dropdown.
"""

from __future__ import annotations

from partnercenter import GATEWAY_EVENTS

#: Names makers read better than the one derived from the event name.
_DISPLAY_NAMES = {
    "dap-admin-relationship-approved": "Delegated admin relationship approved",
    "dap-admin-relationship-terminated": "Delegated admin relationship terminated",
    "test-created": "Test event",
}

#: Event name -> the name makers see in Power Automate, in the order of ``GATEWAY_EVENTS``.
EVENT_NAMES: dict[str, str] = {
    name: _DISPLAY_NAMES.get(name, name.replace("-", " ").capitalize()) for name in GATEWAY_EVENTS
}
