"""The Microsoft Customer Agreement (MCA): whether a customer accepted it, and attesting it.

The rules that need no network: which template to attest with, what a valid attestation says,
which of a customer's confirmations is the one that counts, and which answer is "already there".
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from ._errors import ApiError, BadRequestError, InvalidArgumentError, PermissionDeniedError
from ._models import Agreement, AgreementMetadata, AgreementType, PrimaryContact

MCA = AgreementType.MICROSOFT_CUSTOMER_AGREEMENT.value

#: A ``dateAgreed`` this far ahead of our clock is taken for clock skew and sent as "now"; further
#: ahead it is refused before Partner Center is called (which would answer 600002).
DATE_AGREED_SKEW = timedelta(minutes=5)
#: Partner Center's answer to a repeated attestation whose contact has not changed.
ALREADY_EXISTS = "600061"
#: Partner Center's answer to a ``dateAgreed`` in the future.
DATE_IN_FUTURE = "600002"
#: The code the simulator answers an indirect reseller's attestation with. Partner Center documents
#: no code for this refusal, so this is a stand-in; the refusal is also recognised by its text.
INDIRECT_RESELLER_REFUSED = "600087"

MAX_NAME_LENGTH = 100
#: RFC 5321's limit of a forward path.
MAX_EMAIL_LENGTH = 254
MAX_PHONE_LENGTH = 32
#: Printable text without control characters, markup brackets or leading/trailing spaces.
NAME_PATTERN = r"^[^\s<>\x00-\x1f\x7f](?:[^<>\x00-\x1f\x7f]*[^\s<>\x00-\x1f\x7f])?$"
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"  # noqa: E501
#: Digits with the usual separators, an optional leading + and an optional extension (x123).
PHONE_PATTERN = r"^\+?[0-9(][0-9 ().-]{2,30}[0-9](?: ?(?:x|ext\.?) ?[0-9]{1,6})?$"


class McaAcceptance(StrEnum):
    """How a customer's acceptance of the MCA is known."""

    PARTNER_ATTESTATION = "partnerAttestation"
    DIRECT_SIGNED = "directSigned"


@dataclass(frozen=True)
class McaStatus:
    """Whether a customer has accepted the MCA, and how.

    ``agreement`` is the latest partner attestation (by ``dateAgreed``) when there is one; a
    direct signature with Microsoft carries no date or contact.
    """

    customer_id: str
    accepted: bool
    accepted_via: McaAcceptance | None
    agreement: Agreement | None
    direct_signed: bool


@dataclass(frozen=True)
class AgreementAttestation:
    """The attestation Partner Center holds after ``create_customer_agreement``.

    ``created`` is False when it already existed (Partner Center answered 600061).
    """

    agreement: Agreement
    created: bool


def mca_status_of(
    customer_id: str, agreements: Iterable[Agreement], direct_signed: bool
) -> McaStatus:
    """The MCA status from a customer's MCA confirmations and its direct-signing status.

    A partner attestation wins over a direct signature when both exist: it says who and when.
    """
    attestations = [a for a in agreements if a.type.lower() == MCA.lower()]
    latest = latest_agreement(attestations)
    if latest is not None:
        via: McaAcceptance | None = McaAcceptance.PARTNER_ATTESTATION
    elif direct_signed:
        via = McaAcceptance.DIRECT_SIGNED
    else:
        via = None
    return McaStatus(customer_id, via is not None, via, latest, direct_signed)


def latest_agreement(agreements: Iterable[Agreement]) -> Agreement | None:
    """The confirmation with the latest ``dateAgreed`` (undated ones count as oldest); on a tie,
    the one Partner Center lists last."""
    oldest = datetime.min.replace(tzinfo=UTC)
    latest: Agreement | None = None
    for agreement in agreements:
        if latest is None or (agreement.date_agreed or oldest) >= (latest.date_agreed or oldest):
            latest = agreement
    return latest


def current_template(items: Iterable[AgreementMetadata]) -> AgreementMetadata | None:
    """The MCA template to attest with: the highest ``versionRank`` among the MCA items.

    Items that name no type are taken as MCA (the query asked for MCA only); items of another
    type are ignored. On equal ranks the first listed wins.
    """
    best: AgreementMetadata | None = None
    for item in items:
        if item.kind is not None and item.kind.lower() != MCA.lower():
            continue
        if not item.template_id.strip():
            continue
        if best is None or (item.version_rank or 0) > (best.version_rank or 0):
            best = item
    return best


def validated_contact(contact: PrimaryContact) -> PrimaryContact:
    """``contact`` with its text trimmed, or :class:`InvalidArgumentError` naming the field."""
    fields: dict[str, str | None] = {}
    rules = (
        ("firstName", contact.first_name, NAME_PATTERN, MAX_NAME_LENGTH, True),
        ("lastName", contact.last_name, NAME_PATTERN, MAX_NAME_LENGTH, True),
        ("email", contact.email, EMAIL_PATTERN, MAX_EMAIL_LENGTH, True),
        ("phoneNumber", contact.phone_number, PHONE_PATTERN, MAX_PHONE_LENGTH, False),
    )
    for name, raw, pattern, limit, required in rules:
        value = raw.strip() if isinstance(raw, str) else None
        argument = f"primaryContact.{name}"
        if not value:
            if required:
                raise InvalidArgumentError(f"{argument} is required.", argument=argument)
            fields[name] = None
            continue
        if len(value) > limit:
            raise InvalidArgumentError(
                f"{argument} is longer than {limit} characters.", argument=argument
            )
        if not re.fullmatch(pattern, value):
            raise InvalidArgumentError(f"{argument} is not valid.", argument=argument)
        fields[name] = value
    return PrimaryContact.model_validate(fields)


def resolve_date_agreed(value: datetime | None, now: datetime) -> datetime:
    """The ``dateAgreed`` to send, in UTC to the second.

    None is ``now``; a naive value is taken as UTC (Partner Center's convention); an offset is
    converted. Up to :data:`DATE_AGREED_SKEW` ahead is clock skew and becomes ``now``; further
    ahead is refused (Partner Center would answer 600002, the PowerShell module's local-time trap).
    """
    now = now.astimezone(UTC).replace(microsecond=0)
    if value is None:
        return now
    when = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    when = when.replace(microsecond=0)
    if when > now + DATE_AGREED_SKEW:
        raise InvalidArgumentError(
            f"dateAgreed {when.isoformat().replace('+00:00', 'Z')} is in the future (now is "
            f"{now.isoformat().replace('+00:00', 'Z')} UTC): give the date the customer accepted, "
            "with its UTC offset.",
            argument="dateAgreed",
        )
    return min(when, now)


def attestation_body(
    contact: PrimaryContact, template_id: str, date_agreed: datetime
) -> dict[str, Any]:
    """The body of ``POST /v1/customers/{id}/agreements``."""
    return {
        "primaryContact": contact.model_dump(by_alias=True, exclude_none=True),
        "templateId": template_id,
        "dateAgreed": date_agreed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "type": MCA,
    }


def is_already_exists(error: ApiError) -> bool:
    """Partner Center's 600061: the same attestation (same contact) is already recorded."""
    return error.code == ALREADY_EXISTS or "PartnerConfirmedAgreementAlreadyExists" in (
        error.description or ""
    )


def is_template_rejected(error: ApiError, template_id: str) -> bool:
    """A 400 refusing the template id we sent (retired, or not the current version).

    Partner Center documents no code for it; its message names the template ("Template ID '...'
    is no longer supported"), so the refusal is recognised by naming our id or the word template.
    """
    if not isinstance(error, BadRequestError) or is_already_exists(error):
        return False
    text = (error.description or "").lower()
    return template_id.lower() in text or "template" in text


def is_indirect_reseller_refusal(error: ApiError) -> bool:
    """403 to an indirect reseller's attestation (stand-in code, or a message saying so)."""
    if not isinstance(error, PermissionDeniedError):
        return False
    text = (error.description or "").lower()
    return error.code == INDIRECT_RESELLER_REFUSED or "indirect" in text


def matching_attestation(
    agreements: Iterable[Agreement], contact: PrimaryContact
) -> Agreement | None:
    """The latest MCA confirmation whose contact is ``contact`` (names and email, ignoring case)."""

    def same(agreement: Agreement) -> bool:
        other = agreement.primary_contact
        if other is None or agreement.type.lower() != MCA.lower():
            return False
        pairs = (
            (other.first_name, contact.first_name),
            (other.last_name, contact.last_name),
            (other.email, contact.email),
        )
        return all((a or "").strip().lower() == (b or "").strip().lower() for a, b in pairs)

    return latest_agreement(a for a in agreements if same(a))


class TemplateCache:
    """The MCA template id per partner tenant, looked up once and refreshed only when rejected.

    Concurrent first calls of one tenant make one lookup (the others wait for it).
    """

    def __init__(self, max_tenants: int = 1024) -> None:
        self._max = max_tenants
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, load: Callable[[], str]) -> str:
        """The cached id of ``tenant``, or the one ``load`` finds (then cached)."""
        with self._lock:
            cached = self._ids.get(tenant)
            if cached is not None:
                return cached
            tenant_lock = self._locks.setdefault(tenant, threading.Lock())
        with tenant_lock:
            with self._lock:
                cached = self._ids.get(tenant)
            if cached is not None:
                return cached
            return self._store(tenant, load())

    def refresh(self, tenant: str, rejected: str, load: Callable[[], str]) -> str:
        """The id to use after Partner Center rejected ``rejected``: looked up again, unless
        another call already replaced it."""
        with self._lock:
            tenant_lock = self._locks.setdefault(tenant, threading.Lock())
        with tenant_lock:
            with self._lock:
                cached = self._ids.get(tenant)
            if cached is not None and cached != rejected:
                return cached
            return self._store(tenant, load())

    def _store(self, tenant: str, template_id: str) -> str:
        with self._lock:
            self._ids[tenant] = template_id
            self._ids.move_to_end(tenant)
            while len(self._ids) > self._max:
                evicted, _ = self._ids.popitem(last=False)
                self._locks.pop(evicted, None)
        return template_id
