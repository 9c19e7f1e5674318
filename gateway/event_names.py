"""The Partner Center webhook events the gateway turns into triggers, with their display names.

From Partner Center's list of webhook events (learn.microsoft.com, "Partner Center webhooks" and
"Partner Center webhook events"). A subscription names one of them; the connector shows them as a
dropdown.
"""

from __future__ import annotations

#: Event name -> the name makers see in Power Automate.
EVENT_NAMES: dict[str, str] = {
    "reseller-relationship-accepted-by-customer": "Reseller relationship accepted by customer",
    "indirect-reseller-relationship-accepted-by-customer": (
        "Indirect reseller relationship accepted by customer"
    ),
    "granular-admin-relationship-approved": "Granular admin relationship approved",
    "granular-admin-relationship-activated": "Granular admin relationship activated",
    "granular-admin-relationship-expired": "Granular admin relationship expired",
    "granular-admin-relationship-terminated": "Granular admin relationship terminated",
    "granular-admin-access-assignment-created": "Granular admin access assignment created",
    "granular-admin-access-assignment-activated": "Granular admin access assignment activated",
    "granular-admin-access-assignment-updated": "Granular admin access assignment updated",
    "granular-admin-access-assignment-deleted": "Granular admin access assignment deleted",
    "dap-admin-relationship-approved": "Delegated admin relationship approved",
    "dap-admin-relationship-terminated": "Delegated admin relationship terminated",
    "subscription-updated": "Subscription updated",
    "invoice-ready": "Invoice ready",
    "azure-fraud-event-detected": "Azure fraud event detected",
    "test-created": "Test event",
}
