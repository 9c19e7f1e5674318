"""The gateway's own API: query parameters and responses, the contract callers code against.

The connector's OpenAPI definition is generated from these models, so they carry the
descriptions makers read.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from pydantic.alias_generators import to_camel

from partnercenter import (
    EMAIL_PATTERN,
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PHONE_LENGTH,
    NAME_PATTERN,
    PHONE_PATTERN,
    Agreement,
    AgreementAttestation,
    AgreementCollection,
    AgreementType,
    McaStatus,
    PrimaryContact,
)

from .event_names import EVENT_NAMES

GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Guid = Annotated[str, Field(pattern=GUID_PATTERN, max_length=36)]


class ApiModel(BaseModel):
    """camelCase on the wire, frozen.

    Built on first use, not at import (``defer_build``): a cold start builds only the models its
    first request touches.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, defer_build=True
    )


EventName = StrEnum("EventName", {name: name for name in EVENT_NAMES})  # type: ignore[misc]
EVENT_ENUM_VALUES: list[JsonValue] = [
    {"displayName": title, "value": name} for name, title in EVENT_NAMES.items()
]


class QueryModel(ApiModel):
    """Query parameters: unknown ones are refused, so a typo is an error, not a silent default."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        frozen=True,
        extra="forbid",
        defer_build=True,
    )


class BodyModel(ApiModel):
    """A request body: unknown fields are refused, text is trimmed."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        frozen=True,
        extra="forbid",
        str_strip_whitespace=True,
    )


class AgreementTypeParam(StrEnum):
    """Which agreements to list."""

    MICROSOFT_CUSTOMER_AGREEMENT = "MicrosoftCustomerAgreement"
    MICROSOFT_CLOUD_AGREEMENT = "MicrosoftCloudAgreement"
    ALL = "all"

    def to_partner_center(self) -> AgreementType:
        """The value Partner Center takes (``*`` for all)."""
        if self is AgreementTypeParam.ALL:
            return AgreementType.ALL
        return AgreementType(self.value)


class RelationshipRequestQuery(QueryModel):
    """Optional indirect-reseller ids of a relationship request."""

    indirect_reseller_id: Guid | None = Field(
        default=None,
        title="Indirect reseller id",
        description="Tenant id of an indirect reseller to include in the invitation.",
    )
    indirect_cloud_solution_provider_id: Guid | None = Field(
        default=None,
        title="Indirect provider id",
        description="Tenant id of the indirect provider (two-tier partner) for the invitation.",
    )
    dual_role_indirect_relationship: bool | None = Field(
        default=None,
        title="Dual-role partner",
        description="true when the partner is both a direct and an indirect provider and invites "
        "the customer as its indirect provider.",
    )


class AgreementsQuery(QueryModel):
    """Filter of the agreements listing."""

    type: AgreementTypeParam = Field(
        default=AgreementTypeParam.ALL,
        title="Agreement type",
        description="MicrosoftCustomerAgreement, MicrosoftCloudAgreement, or all (the default).",
    )


class RelationshipRequestResponse(ApiModel):
    """The invitation link to send to a customer."""

    url: str = Field(
        title="Invitation URL",
        description="Link the customer's admin opens to accept a reseller relationship.",
    )


class Contact(ApiModel):
    """The person who accepted an agreement for the customer."""

    first_name: str | None = Field(default=None, title="First name")
    last_name: str | None = Field(default=None, title="Last name")
    email: str | None = Field(default=None, title="Email")
    phone_number: str | None = Field(default=None, title="Phone number")


class AgreementOut(ApiModel):
    """One agreement acceptance."""

    type: str = Field(
        title="Agreement type",
        description="MicrosoftCustomerAgreement, MicrosoftCloudAgreement, or a newer type.",
    )
    date_agreed: datetime | None = Field(
        default=None, title="Date agreed", description="When the customer accepted (UTC)."
    )
    template_id: str | None = Field(
        default=None, title="Template id", description="Id of the agreement's template version."
    )
    agreement_link: str | None = Field(
        default=None, title="Agreement link", description="Link to the agreement's text."
    )
    primary_contact: Contact | None = Field(
        default=None, title="Primary contact", description="Who accepted the agreement."
    )

    @classmethod
    def of(cls, agreement: Agreement) -> AgreementOut:
        """The API's view of a Partner Center agreement."""
        contact = agreement.primary_contact
        return cls(
            type=agreement.type,
            date_agreed=agreement.date_agreed,
            template_id=agreement.template_id,
            agreement_link=agreement.agreement_link,
            primary_contact=Contact(**contact.model_dump()) if contact is not None else None,
        )


class AgreementsResponse(ApiModel):
    """A customer's agreement acceptances."""

    customer_id: str = Field(title="Customer id", description="The customer's tenant id.")
    count: int = Field(title="Count", description="How many agreements are listed.")
    agreements: list[AgreementOut] = Field(
        title="Agreements", description="The acceptances; empty when there are none."
    )

    @classmethod
    def of(cls, customer_id: str, collection: AgreementCollection) -> AgreementsResponse:
        """The API's view of a Partner Center agreement collection."""
        items = [AgreementOut.of(item) for item in collection.items]
        return cls(customer_id=customer_id, count=len(items), agreements=items)


def blank_as_absent(value: object) -> object:
    """An empty optional field as absent: Power Automate sends a cleared field as ``""``."""
    return None if isinstance(value, str) and not value.strip() else value


class ContactIn(BodyModel):
    """The customer's person who accepted the Microsoft Customer Agreement."""

    first_name: str = Field(
        title="First name",
        description="First name of the customer's person who accepted.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=NAME_PATTERN,
    )
    last_name: str = Field(
        title="Last name",
        description="Last name of the customer's person who accepted.",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=NAME_PATTERN,
    )
    email: str = Field(
        title="Email",
        description="Email address of the customer's person who accepted; Microsoft writes to it.",
        min_length=3,
        max_length=MAX_EMAIL_LENGTH,
        pattern=EMAIL_PATTERN,
    )
    phone_number: str | None = Field(
        default=None,
        title="Phone number",
        description="Phone number of the customer's person who accepted (optional).",
        min_length=4,
        max_length=MAX_PHONE_LENGTH,
        pattern=PHONE_PATTERN,
    )

    _blank_phone = field_validator("phone_number", mode="before")(blank_as_absent)

    def to_partner_center(self) -> PrimaryContact:
        """The contact as the client takes it."""
        return PrimaryContact(
            first_name=self.first_name,
            last_name=self.last_name,
            email=self.email,
            phone_number=self.phone_number,
        )


class AttestationRequest(BodyModel):
    """The customer's acceptance of the Microsoft Customer Agreement, to attest."""

    primary_contact: ContactIn = Field(
        title="Primary contact", description="Who accepted the agreement for the customer."
    )
    date_agreed: datetime | None = Field(
        default=None,
        title="Date agreed",
        description="When the customer accepted (ISO 8601). Default: now. An offset is converted "
        "to UTC, no offset means UTC; a date in the future is refused.",
    )

    _blank_date = field_validator("date_agreed", mode="before")(blank_as_absent)


class AttestationResponse(ApiModel):
    """The attestation Partner Center holds: new (201) or one that already existed (200)."""

    customer_id: str = Field(title="Customer id", description="The customer's tenant id.")
    created: bool = Field(
        title="Created",
        description="true when this call recorded the attestation; false when it already existed.",
    )
    type: str = Field(title="Agreement type", description="MicrosoftCustomerAgreement.")
    date_agreed: datetime | None = Field(
        default=None, title="Date agreed", description="When the customer accepted (UTC)."
    )
    template_id: str | None = Field(
        default=None, title="Template id", description="Id of the agreement's template version."
    )
    agreement_link: str | None = Field(
        default=None, title="Agreement link", description="Link to the agreement's text."
    )
    primary_contact: Contact | None = Field(
        default=None, title="Primary contact", description="Who accepted the agreement."
    )

    @classmethod
    def of(cls, customer_id: str, attestation: AgreementAttestation) -> AttestationResponse:
        """The API's view of an attestation."""
        agreement = AgreementOut.of(attestation.agreement)
        return cls(
            customer_id=customer_id,
            created=attestation.created,
            type=agreement.type,
            date_agreed=agreement.date_agreed,
            template_id=agreement.template_id,
            agreement_link=agreement.agreement_link,
            primary_contact=agreement.primary_contact,
        )


class McaStatusResponse(ApiModel):
    """Whether a customer has accepted the Microsoft Customer Agreement."""

    customer_id: str = Field(title="Customer id", description="The customer's tenant id.")
    accepted: bool = Field(
        title="Accepted",
        description="true when the customer has accepted the Microsoft Customer Agreement, "
        "attested by a partner or signed directly with Microsoft.",
    )
    accepted_via: Literal["partnerAttestation", "directSigned"] | None = Field(
        default=None,
        title="Accepted via",
        description="partnerAttestation or directSigned; null when not accepted.",
    )
    date_agreed: datetime | None = Field(
        default=None,
        title="Date agreed",
        description="When the customer accepted (UTC): the latest attestation's date; null for a "
        "direct signature.",
    )
    primary_contact: Contact | None = Field(
        default=None,
        title="Primary contact",
        description="Who accepted, from the latest attestation; null for a direct signature.",
    )
    template_id: str | None = Field(
        default=None, title="Template id", description="Template of the latest attestation."
    )

    @classmethod
    def of(cls, status: McaStatus) -> McaStatusResponse:
        """The API's view of a customer's MCA status."""
        agreement = AgreementOut.of(status.agreement) if status.agreement is not None else None
        return cls(
            customer_id=status.customer_id,
            accepted=status.accepted,
            accepted_via=status.accepted_via.value if status.accepted_via is not None else None,
            date_agreed=agreement.date_agreed if agreement is not None else None,
            primary_contact=agreement.primary_contact if agreement is not None else None,
            template_id=agreement.template_id if agreement is not None else None,
        )


class SubscriptionRequest(BodyModel):
    """A new subscription: which Partner Center event to send, and where."""

    event_name: EventName = Field(
        title="Event",
        description="The Partner Center event that starts the flow.",
        json_schema_extra={"x-ms-enum-values": EVENT_ENUM_VALUES},
    )
    callback_url: str = Field(
        title="Callback URL",
        description="Where each event is POSTed: the flow's trigger URL, filled in by Power "
        "Automate.",
        max_length=2048,
        json_schema_extra={"x-ms-notification-url": True, "x-ms-visibility": "internal"},
    )


class SubscriptionOut(ApiModel):
    """A subscription of the caller to a Partner Center event."""

    id: str = Field(title="Subscription id", description="Id to delete the subscription with.")
    event_name: str = Field(title="Event", description="The Partner Center event name.")
    created_at: datetime = Field(title="Created at", description="When it was made (UTC).")


class SubscriptionList(ApiModel):
    """The caller's own subscriptions."""

    count: int = Field(title="Count", description="How many subscriptions are listed.")
    subscriptions: list[SubscriptionOut] = Field(
        title="Subscriptions", description="The subscriptions; empty when there are none."
    )


class EventNotification(ApiModel):
    """A Partner Center event, as each subscribed callback receives it."""

    event_id: str = Field(
        title="Event id",
        description="The same for every delivery of one event: use it to ignore repeats.",
    )
    event_name: str = Field(title="Event", description="The Partner Center event name.")
    customer_id: str = Field(
        title="Customer id",
        description="The customer's tenant id, when the event is about a customer; else empty.",
    )
    resource_uri: str = Field(
        title="Resource URI", description="Partner Center URI of the resource that changed."
    )
    changed_at: str = Field(
        title="Changed at", description="When the resource changed (UTC), as Partner Center said."
    )
    received_at: str = Field(
        title="Received at", description="When the gateway received the event (UTC)."
    )


class HealthResponse(ApiModel):
    """Whether the service is configured; never what its secrets are."""

    status: Literal["ok", "misconfigured"] = Field(title="Status")
    configured: bool = Field(title="Configured", description="All required settings are valid.")
    problem: str | None = Field(
        default=None, title="Problem", description="What is wrong with the configuration."
    )
    credential: str | None = Field(
        default=None, title="Credential", description="secret, certificate or federated."
    )
    service_user: bool = Field(
        default=False,
        title="Service user",
        description="A service user (Secure Application Model) serves app callers.",
    )
    any_client_app: bool | None = Field(
        default=None,
        title="Any client app",
        description="True when any app of the tenant may call (ALLOWED_CLIENT_APP_IDS is "
        "empty); false when only the listed apps may.",
    )
    consent: Literal["ok", "expiring", "expired", "no-mfa", "missing", "unknown"] = Field(
        default="unknown",
        title="Service user consent",
        description="The service user's consent: ok, expiring (within 14 days), expired, no-mfa "
        "(given without multi-factor authentication), missing or unknown (Key Vault unreadable, "
        "or a plain setting whose expiry is not known). The fix for all but ok: make consent.",
    )
    consent_expires_on: datetime | None = Field(
        default=None,
        title="Consent expires on",
        description="When the stored refresh token of the service user expires (UTC).",
    )
    version: str = Field(title="Version")


class EventReceipt(ApiModel):
    """Partner Center's event, stored and queued for delivery to the subscribed flows."""

    event_id: str = Field(
        title="Event id",
        description="SHA-256 of the event's content: a redelivery has the same id.",
        pattern=r"^[0-9a-f]{64}$",
    )
    duplicate: bool = Field(
        title="Duplicate", description="The event had been received before (a redelivery)."
    )


class Problem(ApiModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(title="Type", description="URI naming the kind of problem.")
    title: str = Field(title="Title", description="Short summary of the kind of problem.")
    status: int = Field(title="Status", description="The HTTP status code.")
    detail: str = Field(title="Detail", description="What happened and what to do about it.")
    correlation_id: str = Field(
        title="Correlation id", description="Quote it when asking for help; also in the logs."
    )
    partner_center_code: str | None = Field(
        default=None, title="Partner Center code", description="Partner Center's error code."
    )
    partner_center_request_id: str | None = Field(
        default=None,
        title="Partner Center request id",
        description="MS-RequestId of the failed Partner Center call.",
    )
    entra_code: str | None = Field(
        default=None, title="Entra ID code", description="The AADSTS error code, if any."
    )
    retry_after: int | None = Field(
        default=None, title="Retry after", description="Seconds to wait before trying again."
    )
