"""Models of what Partner Center returns, tolerant of what Microsoft adds later."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ._errors import BadResponseError


class AgreementType(StrEnum):
    """The agreement types Partner Center filters on; ``ALL`` is Partner Center's ``*``."""

    MICROSOFT_CUSTOMER_AGREEMENT = "MicrosoftCustomerAgreement"
    MICROSOFT_CLOUD_AGREEMENT = "MicrosoftCloudAgreement"
    ALL = "*"


def _as_utc(value: datetime) -> datetime:
    # Partner Center sends dateAgreed without an offset; it is UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class PartnerCenterModel(BaseModel):
    """Base of the response models: camelCase on the wire, unknown fields ignored; built on
    first use (a process builds only the models its calls need)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        defer_build=True,
    )


class ResourceAttributes(PartnerCenterModel):
    """The ``attributes`` block of a Partner Center resource."""

    object_type: str | None = None


class RelationshipRequest(PartnerCenterModel):
    """The link a partner sends a customer to start a reseller relationship."""

    url: Annotated[str, Field(min_length=8, pattern=r"^https://")]
    attributes: ResourceAttributes | None = None


class PrimaryContact(PartnerCenterModel):
    """The customer's contact who accepted an agreement."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone_number: str | None = None


class Agreement(PartnerCenterModel):
    """One confirmation of a customer's acceptance of an agreement.

    ``type`` is a plain string: Microsoft adds agreement types without notice.
    """

    type: str
    date_agreed: UtcDatetime | None = None
    template_id: str | None = None
    agreement_link: str | None = None
    user_id: str | None = None
    primary_contact: PrimaryContact | None = None


class AgreementMetadata(PartnerCenterModel):
    """One agreement template Partner Center offers: what an attestation must name.

    The documentation names the type ``type`` in one place and ``agreementType`` in another, so
    both are read; ``versionRank`` ranks the template's versions (the highest is the current one).
    """

    template_id: str
    agreement_type: str | None = None
    type: str | None = None
    agreement_link: str | None = None
    version_rank: int | None = Field(
        default=None, validation_alias=AliasChoices("versionRank", "VersionRank")
    )

    @property
    def kind(self) -> str | None:
        """The agreement type, whichever field named it."""
        return self.agreement_type or self.type


class AgreementMetadataCollection(PartnerCenterModel):
    """Partner Center's agreement templates (``GET /v1/agreements``)."""

    total_count: int | None = Field(default=None, ge=0)
    items: list[AgreementMetadata]
    attributes: ResourceAttributes | None = None


class DirectSignedMcaStatus(PartnerCenterModel):
    """Whether a customer accepted the Microsoft Customer Agreement directly with Microsoft."""

    is_signed: bool
    attributes: ResourceAttributes | None = None


class AgreementCollection(PartnerCenterModel):
    """A customer's agreements, as one page of Partner Center's collection."""

    total_count: int = Field(ge=0)
    items: list[Agreement]
    links: dict[str, Any] | None = None
    attributes: ResourceAttributes | None = None


ModelT = TypeVar("ModelT", bound=PartnerCenterModel)


def parse_body(
    model: type[ModelT],
    body: bytes,
    *,
    status: int | None = None,
    request_id: str | None = None,
    correlation_id: str | None = None,
) -> ModelT:
    """Parse a success body into ``model``; anything else is a :class:`BadResponseError`."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        detail = "an empty body" if not body.strip() else "a body that is not JSON"
        raise BadResponseError(
            f"Partner Center answered {status} with {detail}.",
            status=status,
            request_id=request_id,
            correlation_id=correlation_id,
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        where = ".".join(str(part) for part in err.errors()[0]["loc"]) or "the body"
        raise BadResponseError(
            f"Partner Center answered {status} with a {model.__name__} we cannot read "
            f"({err.error_count()} problem(s), first at {where}).",
            status=status,
            request_id=request_id,
            correlation_id=correlation_id,
        ) from None
