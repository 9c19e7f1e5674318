"""Partner Center's webhook registration API: register a URL for events, show or update the
registration, and send the test event (``/webhooks/v1/registration``).

These calls take App+User tokens (and app-only ones, which this client does not request);
``PartnerCenterClient`` gains them from :class:`WebhookRegistrationOperations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_pascal

from ._errors import InvalidArgumentError
from ._ids import is_guid
from ._models import ModelT, PartnerCenterModel, parse_body

if TYPE_CHECKING:
    from ._tokens import Principal
    from ._transport import Deadline, Transport

REGISTRATION_PATH = "/webhooks/v1/registration"

#: The events the gateway turns into flow triggers (and Partner Center's test event).
GATEWAY_EVENTS: tuple[str, ...] = (
    "reseller-relationship-accepted-by-customer",
    "indirect-reseller-relationship-accepted-by-customer",
    "granular-admin-relationship-approved",
    "granular-admin-relationship-activated",
    "granular-admin-relationship-expired",
    "granular-admin-relationship-terminated",
    "granular-admin-access-assignment-created",
    "granular-admin-access-assignment-activated",
    "granular-admin-access-assignment-updated",
    "granular-admin-access-assignment-deleted",
    "dap-admin-relationship-approved",
    "dap-admin-relationship-terminated",
    "subscription-updated",
    "invoice-ready",
    "azure-fraud-event-detected",
    "test-created",
)


class WebhookRegistration(PartnerCenterModel):
    """The partner's webhook registration."""

    # The registration speaks PascalCase, unlike the rest of Partner Center.
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )

    subscriber_id: str | None = None
    webhook_url: str = Field(min_length=1)
    webhook_events: list[str] = Field(default_factory=list)


class _ValidationEventCreated(PartnerCenterModel):
    correlation_id: str = Field(min_length=1)


class ValidationEventResult(PartnerCenterModel):
    """One delivery attempt of a test event, as Partner Center saw it."""

    response_code: str | None = None
    response_message: str | None = None
    system_error: bool | None = None
    date_time_utc: str | None = None


class ValidationEvent(PartnerCenterModel):
    """A test event and the results of its delivery attempts."""

    event_name: str | None = None
    status: str | None = None
    resource_uri: str | None = None
    results: list[ValidationEventResult] = Field(default_factory=list)


class ValidationStatus(PartnerCenterModel):
    """How Partner Center's delivery of a test event went
    (``GET .../registration/validationEvents/{correlationId}``)."""

    correlation_id: str
    status: str | None = None
    events: list[ValidationEvent] = Field(default_factory=list)


def _registration_body(webhook_url: str, events: Iterable[str]) -> dict[str, Any]:
    parts = urlsplit(webhook_url)
    # Partner Center requires https; plain http is let through only to a local host (the
    # simulator and `make run`).
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        raise InvalidArgumentError("The webhook URL must be an https URL.", argument="webhookUrl")
    names = list(dict.fromkeys(events))
    if not names or not all(isinstance(name, str) and name for name in names):
        raise InvalidArgumentError("Name at least one webhook event.", argument="webhookEvents")
    return {"WebhookUrl": webhook_url, "WebhookEvents": names}


class WebhookRegistrationOperations:
    """The webhook registration calls of :class:`partnercenter.PartnerCenterClient`, made as
    its other calls are (its deadline, its token handling, its transport)."""

    _transport: Transport

    if TYPE_CHECKING:

        def _begin(self, correlation_id: str | None) -> tuple[str, Deadline]: ...

        def _authorized(
            self, principal: Principal, deadline: Deadline
        ) -> AbstractContextManager[str]: ...

    def get_webhook_registration(
        self, principal: Principal, *, correlation_id: str | None = None
    ) -> WebhookRegistration:
        """The partner's registration; :class:`NotFoundError` when there is none."""
        return self._call("GET", WebhookRegistration, REGISTRATION_PATH, principal, correlation_id)

    def create_webhook_registration(
        self,
        principal: Principal,
        webhook_url: str,
        events: Iterable[str] = GATEWAY_EVENTS,
        *,
        correlation_id: str | None = None,
    ) -> WebhookRegistration:
        """Register ``webhook_url`` (https) for ``events``. Not retried after an ambiguous
        failure: a registration that was in fact made shows on the next
        :meth:`get_webhook_registration`."""
        return self._call(
            "POST",
            WebhookRegistration,
            REGISTRATION_PATH,
            principal,
            correlation_id,
            body=_registration_body(webhook_url, events),
            replay_safe=False,
        )

    def update_webhook_registration(
        self,
        principal: Principal,
        webhook_url: str,
        events: Iterable[str] = GATEWAY_EVENTS,
        *,
        correlation_id: str | None = None,
    ) -> WebhookRegistration:
        """Replace the registration's URL and events (a PUT: safe to retry)."""
        return self._call(
            "PUT",
            WebhookRegistration,
            REGISTRATION_PATH,
            principal,
            correlation_id,
            body=_registration_body(webhook_url, events),
        )

    def send_webhook_test_event(
        self, principal: Principal, *, correlation_id: str | None = None
    ) -> str:
        """Ask Partner Center to deliver a ``test-created`` event to the registered URL; returns
        the correlation id of its status (kept 7 days). Partner Center allows two a minute."""
        created = self._call(
            "POST",
            _ValidationEventCreated,
            f"{REGISTRATION_PATH}/validationEvents",
            principal,
            correlation_id,
            body={},
            replay_safe=False,
        )
        return created.correlation_id

    def get_webhook_test_event_status(
        self, principal: Principal, event_correlation_id: str, *, correlation_id: str | None = None
    ) -> ValidationStatus:
        """How the delivery of the test event ``event_correlation_id`` went."""
        if not is_guid(event_correlation_id):
            raise InvalidArgumentError(
                "The test event's correlation id must be a GUID.", argument="correlationId"
            )
        return self._call(
            "GET",
            ValidationStatus,
            f"{REGISTRATION_PATH}/validationEvents/{event_correlation_id}",
            principal,
            correlation_id,
        )

    def _call(
        self,
        method: str,
        model: type[ModelT],
        path: str,
        principal: Principal,
        correlation_id: str | None,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        replay_safe: bool = True,
    ) -> ModelT:
        """One Partner Center call for ``principal`` within the call's deadline, parsed."""
        correlation_id, deadline = self._begin(correlation_id)
        with self._authorized(principal, deadline) as token:
            sent = self._transport.send(
                method,
                path,
                params=params or {},
                token=token,
                correlation_id=correlation_id,
                deadline=deadline,
                body=body,
                replay_safe=replay_safe,
            )
        return parse_body(
            model,
            sent.response.content,
            status=sent.response.status_code,
            request_id=sent.request_id,
            correlation_id=correlation_id,
        )
