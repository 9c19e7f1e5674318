"""Deterministic identities and Partner Center data served by the simulator.

Everything here is fixed or derived with ``uuid5`` so that tests, benchmarks and ``make run`` see
the same customers and agreements on every run and on every machine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any

# Namespace for every derived GUID, so generated ids never collide with the fixed ones below.
_NAMESPACE = uuid.UUID("5d1c3c9e-7a52-4bd4-9a56-1f0ad0b1e5c7")


def derived_guid(name: str) -> str:
    """Return a stable GUID for ``name`` (the same on every run)."""
    return str(uuid.uuid5(_NAMESPACE, name))


# --- identities -------------------------------------------------------------------------------

TENANT_ID = "9c2f0a51-3f5e-4d1b-8a57-0b3c4e6d7f81"
"""The partner's Entra ID tenant."""
PARTNER_ID = "3b33e682-00c3-41ee-9dd2-a548adf56438"
"""The partner id carried by the relationship request URL (the one of the seed document 000)."""
CLIENT_ID = "6f1a7c2e-58d4-4b0f-9e3a-2d7c81b4a960"
"""The gateway's app registration."""
CLIENT_SECRET = "sim~client-secret.0123456789abcdefABCDEF"
"""The client secret registered for ``CLIENT_ID``."""
MANAGED_IDENTITY_CLIENT_ID = "0e4d9b73-1c2a-4f86-b5e0-7a3f9c1d2b48"
"""A user-assigned managed identity trusted by ``CLIENT_ID`` through a federated credential."""
CALLER_APP_ID = "c0ffee00-4d3b-4a2e-9f1c-7b6a5e4d3c2b"
"""The app a caller of the gateway signs in with (``azp`` of tokens made by ``user_token``)."""
PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
"""Audience of Partner Center access tokens."""

# --- agreements -------------------------------------------------------------------------------

MICROSOFT_CLOUD_AGREEMENT = "MicrosoftCloudAgreement"
MICROSOFT_CUSTOMER_AGREEMENT = "MicrosoftCustomerAgreement"
UNKNOWN_AGREEMENT_TYPE = "MicrosoftPartnerAgreementV3"
"""An agreement type Partner Center may introduce at any time (clients must tolerate it)."""

_MCA_TEMPLATE = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
_CLOUD_TEMPLATE = "998b88de-aa99-4388-a42c-1b3517d49490"
MCA_TEMPLATE_ID = _MCA_TEMPLATE
"""The current Microsoft Customer Agreement template (``GET /v1/agreements`` lists it)."""
OLD_MCA_TEMPLATE_ID = "117a77b0-9360-443b-8795-c6dedc750cf9"
"""An MCA template of 2019, no longer accepted for new attestations."""
MCA_VERSION_RANK = 2
"""``versionRank`` of the current MCA template."""
_LINKS = {
    MICROSOFT_CUSTOMER_AGREEMENT: "https://aka.ms/customeragreement",
    MICROSOFT_CLOUD_AGREEMENT: "https://aka.ms/microsoftcloudagreement",
    UNKNOWN_AGREEMENT_TYPE: "https://aka.ms/partneragreementv3",
}
_TEMPLATES = {
    MICROSOFT_CUSTOMER_AGREEMENT: _MCA_TEMPLATE,
    MICROSOFT_CLOUD_AGREEMENT: _CLOUD_TEMPLATE,
    UNKNOWN_AGREEMENT_TYPE: "f5b0a3c1-8e2d-4b7a-9c6f-0d1e2f3a4b5c",
}


@dataclass(frozen=True)
class Contact:
    """The customer's ``primaryContact`` of an agreement."""

    first_name: str
    last_name: str
    email: str
    phone_number: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the contact as Partner Center serialises it."""
        body: dict[str, Any] = {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
        }
        if self.phone_number is not None:
            body["phoneNumber"] = self.phone_number
        return body


@dataclass(frozen=True)
class Agreement:
    """One confirmation of customer acceptance of an agreement."""

    type: str
    contact: Contact
    date_agreed: date
    user_id: str
    extra: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The template attested with; None for the current one of the agreement's type.
    template_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the agreement as Partner Center serialises it.

        ``dateAgreed`` carries no offset, exactly as Partner Center sends it (it is UTC).
        """
        if isinstance(self.date_agreed, datetime):
            agreed = self.date_agreed.strftime("%Y-%m-%dT%H:%M:%S")
        else:
            agreed = f"{self.date_agreed.isoformat()}T00:00:00"
        body: dict[str, Any] = {
            "primaryContact": self.contact.to_json(),
            "templateId": self.template_id or _TEMPLATES.get(self.type, _MCA_TEMPLATE),
            "dateAgreed": agreed,
            "type": self.type,
            "agreementLink": _LINKS.get(self.type, "https://aka.ms/agreements"),
            "userId": self.user_id,
            "attributes": {"objectType": "Agreement"},
        }
        body.update(self.extra)
        return body


_TANIA = Contact("Tania", "Carr", "SomeEmail@example.com", "1234567890")

CUSTOMER_MCA = "14876998-c0dc-46e6-9d0c-65a57a6c32ec"
"""The seed document's customer: two MCA confirmations (Tania Carr) and one cloud agreement."""
CUSTOMER_CLOUD_ONLY = "2a1f9e47-6b3c-4d8e-a0f2-5c7b9d1e3f60"
"""A customer with one MicrosoftCloudAgreement only."""
CUSTOMER_NO_AGREEMENTS = "3c8e2b15-9d4a-4f7c-b1e6-8a0d2c4f6e71"
"""A known customer without any agreement."""
CUSTOMER_NEW_TYPE = "4d7a1c86-2e5b-4a9d-8c3f-6b1e0d2a4c82"
"""A customer with one MCA plus an agreement of a type no client knows, with unknown fields."""
CUSTOMER_UNKNOWN = "5e6b0d97-3f4c-4b8e-9d20-7c2f1e3b5d93"
"""A valid GUID that is not a customer of the partner (Partner Center answers 404)."""
CUSTOMER_ATTESTED = CUSTOMER_MCA
"""MCA accepted through partner attestations only (the seed document's customer)."""
CUSTOMER_DIRECT_SIGNED = "6f7c1ea8-4a5d-4c6f-8e31-8d4a2f6c7e04"
"""Signed the MCA directly with Microsoft: no attestation, ``isSigned`` true."""
CUSTOMER_ATTESTED_AND_DIRECT_SIGNED = "7a8d2fb9-5b6e-4d70-9f42-9e5b3a7d8f15"
"""Both attested by the partner and signed directly with Microsoft."""
CUSTOMER_NEITHER = CUSTOMER_NO_AGREEMENTS
"""No MCA at all: neither attested nor signed directly."""
CUSTOMER_OLD_TEMPLATE = "8b9e3ac0-6c7f-4e81-a053-af6c4b8e9a26"
"""Attested in 2019 under a template no longer current (:data:`OLD_MCA_TEMPLATE_ID`)."""

_FIXED: dict[str, tuple[Agreement, ...]] = {
    CUSTOMER_MCA: (
        Agreement(
            MICROSOFT_CUSTOMER_AGREEMENT, _TANIA, date(2019, 8, 26), derived_guid("user-tania")
        ),
        Agreement(
            MICROSOFT_CUSTOMER_AGREEMENT, _TANIA, date(2019, 8, 27), derived_guid("user-tania")
        ),
        Agreement(
            MICROSOFT_CLOUD_AGREEMENT,
            Contact("Tania", "Carr", "SomeEmail@example.com"),
            date(2018, 3, 14),
            derived_guid("user-tania"),
        ),
    ),
    CUSTOMER_CLOUD_ONLY: (
        Agreement(
            MICROSOFT_CLOUD_AGREEMENT,
            Contact("Diego", "Siciliani", "diego@fabrikam.example", "+1 425 555 0100"),
            date(2017, 11, 2),
            derived_guid("user-diego"),
        ),
    ),
    CUSTOMER_NO_AGREEMENTS: (),
    CUSTOMER_DIRECT_SIGNED: (),
    CUSTOMER_ATTESTED_AND_DIRECT_SIGNED: (
        Agreement(
            MICROSOFT_CUSTOMER_AGREEMENT,
            Contact("Megan", "Bowen", "megan@contoso.example", "+1 206 555 0142"),
            date(2022, 4, 12),
            derived_guid("user-megan"),
        ),
    ),
    CUSTOMER_OLD_TEMPLATE: (
        Agreement(
            MICROSOFT_CUSTOMER_AGREEMENT,
            Contact("Isaiah", "Langer", "isaiah@northwind.example"),
            date(2019, 11, 4),
            derived_guid("user-isaiah"),
            template_id=OLD_MCA_TEMPLATE_ID,
        ),
    ),
    CUSTOMER_NEW_TYPE: (
        Agreement(
            MICROSOFT_CUSTOMER_AGREEMENT,
            Contact("Lidia", "Holloway", "lidia@tailspin.example", "+44 20 7946 0000"),
            date(2021, 2, 1),
            derived_guid("user-lidia"),
        ),
        Agreement(
            UNKNOWN_AGREEMENT_TYPE,
            Contact("Lidia", "Holloway", "lidia@tailspin.example"),
            date(2024, 6, 30),
            derived_guid("user-lidia"),
            MappingProxyType(
                {
                    "versionRank": 3,
                    "acceptanceChannel": "PartnerCenterPortal",
                    "signatory": {"role": "GlobalAdministrator", "verified": True},
                }
            ),
        ),
    ),
}

_FIRST = ("Adele", "Alex", "Grady", "Henrietta", "Isaiah", "Johanna", "Lee", "Megan", "Nestor")
_LAST = ("Vance", "Wilber", "Archie", "Mueller", "Langer", "Lundgren", "Gu", "Bowen", "Wilke")
_TYPES = (MICROSOFT_CUSTOMER_AGREEMENT, MICROSOFT_CLOUD_AGREEMENT)


def _generated(index: int) -> tuple[str, tuple[Agreement, ...]]:
    """Customer ``index`` of the load-test population: 0-3 agreements, cycling deterministically."""
    customer = derived_guid(f"customer-{index}")
    first, last = _FIRST[index % len(_FIRST)], _LAST[(index // 3) % len(_LAST)]
    contact = Contact(first, last, f"{first.lower()}.{last.lower()}@customer{index}.example")
    user = derived_guid(f"customer-{index}-user")
    agreements = tuple(
        Agreement(
            _TYPES[(index + n) % len(_TYPES)],
            contact,
            date(2019, 1, 1) + timedelta(days=index * 3 + n),
            user,
        )
        for n in range(index % 4)
    )
    return customer, agreements


_GENERATED = dict(_generated(i) for i in range(200))

CUSTOMERS: tuple[str, ...] = tuple(_GENERATED)
"""200 generated customers (``uuid5``), each with 0-3 agreements, for load tests."""

AGREEMENTS: MappingProxyType[str, tuple[Agreement, ...]] = MappingProxyType(
    {**_FIXED, **_GENERATED}
)
"""Every known customer id (lower case) and its agreements, in Partner Center's order."""

DIRECT_SIGNED: frozenset[str] = frozenset(
    {CUSTOMER_DIRECT_SIGNED, CUSTOMER_ATTESTED_AND_DIRECT_SIGNED}
)
"""Customers that signed the MCA directly with Microsoft (``isSigned`` true)."""


def agreement_metadata(mca_template_id: str = MCA_TEMPLATE_ID) -> tuple[dict[str, Any], ...]:
    """The items of ``GET /v1/agreements`` (MCA first), with ``mca_template_id`` as the MCA's."""
    return (
        {
            "templateId": mca_template_id,
            "agreementType": MICROSOFT_CUSTOMER_AGREEMENT,
            "agreementLink": _LINKS[MICROSOFT_CUSTOMER_AGREEMENT],
            "versionRank": MCA_VERSION_RANK,
            "attributes": {"objectType": "AgreementMetaData"},
        },
        {
            "templateId": _CLOUD_TEMPLATE,
            "agreementType": MICROSOFT_CLOUD_AGREEMENT,
            "agreementLink": _LINKS[MICROSOFT_CLOUD_AGREEMENT],
            "versionRank": 0,
            "attributes": {"objectType": "AgreementMetaData"},
        },
    )


SEED_EXAMPLE_BODY = """{
"totalCount": 2,
"items":
[
{
"primaryContact":
{
"firstName":"Tania",
"lastName":"Carr",
"email":"SomeEmail@example.com"
"phoneNumber":"1234567890"
},
"templateId":"aaaabbbb-0000-cccc-1111-dddd2222eeee",
"dateAgreed":"2019-08-26T00:00:00",
"type":"MicrosoftCustomerAgreement",
"agreementLink":"https://aka.ms/customeragreement"
},
{
"primaryContact":
{
"firstName":"Tania",
"lastName":"Carr",
"email":"SomeEmail@example.com"
"phoneNumber:"1234567890"
},
"templateId":"aaaabbbb-0000-cccc-1111-dddd2222eeee",
"dateAgreed":"2019-08-27T00:00:00",
"type":"MicrosoftCustomerAgreement",
"agreementLink":"https://aka.ms/customeragreement"
}
]
}"""
"""The response example of seed document 004, verbatim: it is NOT valid JSON (missing commas and
a misplaced quote), which is exactly what a ``body_kind="seed-example"`` fault sends."""
