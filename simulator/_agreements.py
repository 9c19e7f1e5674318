"""The simulator's agreement state: the fixed data plus the attestations made since the last reset.

Partner Center's rules for ``POST /v1/customers/{id}/agreements`` as documented (and as partners
found them): the current MCA template only, a ``dateAgreed`` not in the future (600002), a repeat
whose contact has not changed refused with 600061, and no attestation by an indirect reseller.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from simulator.data import (
    AGREEMENTS,
    DIRECT_SIGNED,
    MCA_TEMPLATE_ID,
    MICROSOFT_CLOUD_AGREEMENT,
    MICROSOFT_CUSTOMER_AGREEMENT,
    Agreement,
    Contact,
    derived_guid,
)

# Codes in Partner Center's shape. 600061, 600002 and 600039 are Partner Center's; the indirect
# reseller's refusal and the rejected template have no published code, so these are stand-ins.
ALREADY_EXISTS = 600061
DATE_IN_FUTURE = "600002"
INVALID_INPUT = "600008"
INDIRECT_RESELLER_REFUSED = "600087"
CUSTOMER_NOT_FOUND = "600039"

Answer = tuple[int, dict[str, Any]]


def pc_error_body(code: str, description: str) -> dict[str, Any]:
    """An error body in Partner Center's documented shape."""
    return {"code": code, "description": description, "data": [], "source": "PartnerFD"}


class Refusal(Exception):  # noqa: N818 - an answer, not a failure of the simulator
    """Partner Center refuses the request with ``status`` and ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _invalid(description: str) -> Refusal:
    return Refusal(400, pc_error_body(INVALID_INPUT, description))


class AgreementBook:
    """Agreements per customer, the current MCA template and the partner's kind. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attested: dict[str, list[Agreement]] = {}
        #: Customers that became the partner's by accepting its relationship (a control call),
        #: with no agreement yet; they stay across resets, like the fixed ones.
        self._accepted: set[str] = set()
        self._template = MCA_TEMPLATE_ID
        self._indirect_reseller = False

    @property
    def mca_template_id(self) -> str:
        """The MCA template new attestations must name."""
        with self._lock:
            return self._template

    @property
    def indirect_reseller(self) -> bool:
        """Whether the partner is an indirect reseller (which may not attest)."""
        with self._lock:
            return self._indirect_reseller

    def set_partner(self, *, indirect_reseller: bool) -> None:
        """Make the partner an indirect reseller, or not."""
        with self._lock:
            self._indirect_reseller = indirect_reseller

    def rotate_mca_template(self) -> str:
        """Publish a new MCA template version; the previous one is refused from now on."""
        with self._lock:
            self._template = str(uuid.uuid4())
            return self._template

    def reset(self) -> None:
        """Forget every attestation made, restore the template and the partner's kind."""
        with self._lock:
            self._attested.clear()
            self._template = MCA_TEMPLATE_ID
            self._indirect_reseller = False

    def add_customer(self, customer_id: str) -> None:
        """A new customer of the partner, with no agreement yet."""
        with self._lock:
            self._accepted.add(str(uuid.UUID(customer_id)))

    def is_customer(self, customer_id: str) -> bool:
        """Whether the partner has this customer."""
        key = str(uuid.UUID(customer_id))
        with self._lock:
            return key in AGREEMENTS or key in self._accepted

    def agreements_of(self, customer_id: str) -> tuple[Agreement, ...] | None:
        """The customer's agreements, oldest first; None for an unknown customer."""
        key = str(uuid.UUID(customer_id))
        if not self.is_customer(key):
            return None
        fixed = AGREEMENTS.get(key, ())
        with self._lock:
            return (*fixed, *self._attested.get(key, ()))

    def attestations_made(self, customer_id: str) -> tuple[Agreement, ...]:
        """The attestations recorded for the customer since the last reset."""
        with self._lock:
            return tuple(self._attested.get(str(uuid.UUID(customer_id)), ()))

    @staticmethod
    def direct_signed(customer_id: str) -> bool:
        """Whether the customer signed the MCA directly with Microsoft."""
        return str(uuid.UUID(customer_id)) in DIRECT_SIGNED

    def attest(self, customer_id: str, body: Any, user_id: str | None) -> Answer:
        """Record an attestation as Partner Center does, or refuse it as Partner Center would."""
        try:
            agreement = self._attestation(customer_id, body, user_id)
        except Refusal as refusal:
            return refusal.status, refusal.body
        return 201, agreement.to_json()

    def _attestation(self, customer_id: str, body: Any, user_id: str | None) -> Agreement:
        key = str(uuid.UUID(customer_id))
        if not self.is_customer(key):
            raise Refusal(
                404,
                pc_error_body(
                    CUSTOMER_NOT_FOUND, f"Customer '{customer_id}' was not found for this partner."
                ),
            )
        if self.indirect_reseller:
            raise Refusal(
                403,
                pc_error_body(
                    INDIRECT_RESELLER_REFUSED,
                    "An indirect reseller cannot confirm a customer's acceptance of the Microsoft "
                    "Customer Agreement; the indirect provider must confirm it.",
                ),
            )
        contact, template_id, agreed = _parse(body)
        if template_id.lower() != self.mca_template_id.lower():
            raise _invalid(
                f"Microsoft Customer Agreement Template ID '{template_id}' is no longer supported."
            )
        if agreed > datetime.now(UTC):
            raise Refusal(
                400,
                pc_error_body(
                    DATE_IN_FUTURE, "Date of agreement cannot be greater than the current date."
                ),
            )
        agreement = Agreement(
            MICROSOFT_CUSTOMER_AGREEMENT,
            contact,
            agreed.replace(tzinfo=None),
            user_id or derived_guid("unknown-user"),
            template_id=template_id,
        )
        with self._lock:
            existing = [
                a
                for a in (*AGREEMENTS[key], *self._attested.get(key, ()))
                if a.type == MICROSOFT_CUSTOMER_AGREEMENT
            ]
            latest = max(existing, key=lambda a: _sortable(a.date_agreed), default=None)
            if latest is not None and _same_contact(latest.contact, contact):
                text = (
                    "A partner confirmed agreement already exists for this customer with the "
                    "same primary contact."
                )
                raise Refusal(
                    400,
                    {
                        "code": ALREADY_EXISTS,
                        "message": text,
                        "description": text,
                        "errorName": "PartnerConfirmedAgreementAlreadyExists",
                        "isRetryable": False,
                        "parameters": {},
                    },
                )
            self._attested.setdefault(key, []).append(agreement)
        return agreement


def _parse(body: Any) -> tuple[Contact, str, datetime]:
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    kind = body.get("type")
    if kind == MICROSOFT_CLOUD_AGREEMENT:
        raise _invalid("Microsoft Cloud Agreement is no longer supported for new attestations.")
    if kind != MICROSOFT_CUSTOMER_AGREEMENT:
        raise _invalid(f"The agreement type '{kind}' is not supported.")
    raw = body.get("primaryContact")
    names = ("firstName", "lastName", "email")
    if not isinstance(raw, dict) or not all(isinstance(raw.get(n), str) and raw[n] for n in names):
        raise _invalid("primaryContact needs firstName, lastName and email.")
    phone = raw.get("phoneNumber")
    contact = Contact(
        raw["firstName"], raw["lastName"], raw["email"], phone if isinstance(phone, str) else None
    )
    template_id = body.get("templateId")
    if not isinstance(template_id, str) or not template_id:
        raise _invalid("templateId is required.")
    try:
        agreed = datetime.fromisoformat(str(body.get("dateAgreed")).replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("dateAgreed is not a valid date.") from None
    agreed = agreed.replace(tzinfo=UTC) if agreed.tzinfo is None else agreed.astimezone(UTC)
    return contact, template_id, agreed


def _sortable(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def _same_contact(a: Contact, b: Contact) -> bool:
    return (
        a.first_name == b.first_name
        and a.last_name == b.last_name
        and a.email.lower() == b.email.lower()
        and (a.phone_number or "") == (b.phone_number or "")
    )
