"""The MCA rules that need no network: dates, templates, contacts, which confirmation counts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from partnercenter import (
    Agreement,
    AgreementMetadataCollection,
    BadRequestError,
    InvalidArgumentError,
    McaAcceptance,
    PermissionDeniedError,
    PrimaryContact,
)
from partnercenter._mca import (
    DATE_AGREED_SKEW,
    TemplateCache,
    attestation_body,
    current_template,
    is_already_exists,
    is_indirect_reseller_refusal,
    is_template_rejected,
    matching_attestation,
    mca_status_of,
    resolve_date_agreed,
    validated_contact,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
ADA = PrimaryContact(first_name="Ada", last_name="Lovelace", email="ada@contoso.example")


def agreement(day: str | None, email: str = "ada@contoso.example", **extra: Any) -> Agreement:
    return Agreement.model_validate(
        {
            "type": extra.pop("type", "MicrosoftCustomerAgreement"),
            "dateAgreed": day,
            "primaryContact": {"firstName": "Ada", "lastName": "Lovelace", "email": email},
            **extra,
        }
    )


# --- dateAgreed ------------------------------------------------------------------------------


def test_default_date_is_now_in_utc_to_the_second() -> None:
    assert resolve_date_agreed(None, NOW) == NOW.replace(microsecond=0)


def test_an_offset_is_converted_and_a_naive_date_is_utc() -> None:
    tokyo = datetime(2026, 3, 1, 20, 30, tzinfo=timezone(timedelta(hours=9)))
    assert resolve_date_agreed(tokyo, NOW) == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    assert resolve_date_agreed(datetime(2025, 1, 2, 3, 4, 5), NOW) == datetime(
        2025, 1, 2, 3, 4, 5, tzinfo=UTC
    )


def test_a_small_skew_becomes_now_and_more_is_refused() -> None:
    skewed = NOW + DATE_AGREED_SKEW - timedelta(seconds=1)
    assert resolve_date_agreed(skewed, NOW) == NOW.replace(microsecond=0)
    with pytest.raises(InvalidArgumentError) as caught:
        resolve_date_agreed(NOW + DATE_AGREED_SKEW + timedelta(seconds=2), NOW)
    assert caught.value.argument == "dateAgreed"
    # Local time ahead of UTC, given without its offset, is the PowerShell module's trap.
    with pytest.raises(InvalidArgumentError):
        resolve_date_agreed(NOW.astimezone(timezone(timedelta(hours=10))).replace(tzinfo=None), NOW)


def test_the_body_sent() -> None:
    body = attestation_body(ADA, "tpl", datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    assert body == {
        "primaryContact": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@contoso.example",
        },
        "templateId": "tpl",
        "dateAgreed": "2024-05-01T08:00:00Z",
        "type": "MicrosoftCustomerAgreement",
    }


# --- the template ----------------------------------------------------------------------------


def test_template_read_from_either_type_field_with_the_highest_rank() -> None:
    metadata = AgreementMetadataCollection.model_validate(
        {
            "items": [
                {"templateId": "old", "type": "MicrosoftCustomerAgreement", "versionRank": 1},
                {
                    "templateId": "new",
                    "agreementType": "MicrosoftCustomerAgreement",
                    "VersionRank": 3,
                },
                {
                    "templateId": "mca-cloud",
                    "agreementType": "MicrosoftCloudAgreement",
                    "versionRank": 9,
                },
                {"templateId": "x", "agreementType": "MicrosoftQuantumAgreement", "futureField": 1},
            ]
        }
    )
    chosen = current_template(metadata.items)
    assert chosen is not None and chosen.template_id == "new"
    assert [i.kind for i in metadata.items][:2] == ["MicrosoftCustomerAgreement"] * 2


def test_an_item_that_names_no_type_is_taken_and_none_is_none() -> None:
    untyped = AgreementMetadataCollection.model_validate({"items": [{"templateId": "t"}]})
    assert current_template(untyped.items) is not None
    assert current_template([]) is None


def test_template_cache_looks_up_once_for_concurrent_first_calls() -> None:
    cache = TemplateCache()
    loads: list[int] = []

    def load() -> str:
        loads.append(1)
        time.sleep(0.05)
        return "tpl-1"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("t", load))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["tpl-1"] * 8 and len(loads) == 1
    assert cache.get("other", lambda: "tpl-9") == "tpl-9"  # per partner tenant


def test_template_cache_refreshes_only_the_rejected_id() -> None:
    cache = TemplateCache()
    cache.get("t", lambda: "old")
    assert cache.refresh("t", "old", lambda: "new") == "new"
    # A second call that also held "old" finds it already replaced: no second lookup.
    assert cache.refresh("t", "old", lambda: pytest.fail("looked up twice")) == "new"
    assert cache.get("t", lambda: pytest.fail("not cached")) == "new"


# --- contacts --------------------------------------------------------------------------------


def test_contact_trimmed_and_required_fields_named() -> None:
    trimmed = validated_contact(
        PrimaryContact(
            first_name=" Ada ", last_name="Lovelace", email="ada@x.example", phone_number=" "
        )
    )
    assert trimmed.first_name == "Ada" and trimmed.phone_number is None
    with pytest.raises(InvalidArgumentError) as caught:
        validated_contact(PrimaryContact(first_name="Ada", last_name="Lovelace"))
    assert caught.value.argument == "primaryContact.email"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "A" * 101),
        ("last_name", "<script>"),
        ("email", "no-at-sign"),
        ("email", "a@b"),
        ("email", "a" * 250 + "@x.example"),
        ("phone_number", "call me maybe"),
        ("phone_number", "1" * 40),
    ],
)
def test_bad_contacts_are_refused(field: str, value: str) -> None:
    fields = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@x.example", field: value}
    with pytest.raises(InvalidArgumentError):
        validated_contact(PrimaryContact(**fields))


@pytest.mark.parametrize(
    "phone", ["+1 425 555 0100", "(425) 555-0100", "020.7946.0000", "1234", "+1 425 555 0100 x12"]
)
def test_usual_phone_numbers_pass(phone: str) -> None:
    contact = PrimaryContact(first_name="José", last_name="O'Brien-Núñez", email="j@x.example")
    assert validated_contact(contact.model_copy(update={"phone_number": phone})).phone_number


# --- which confirmation counts -----------------------------------------------------------------


def test_status_takes_the_latest_attestation_and_prefers_it_to_direct_signing() -> None:
    items = [agreement("2019-08-26T00:00:00"), agreement("2021-01-01T00:00:00"), agreement(None)]
    status = mca_status_of("c", items, direct_signed=True)
    assert status.accepted and status.accepted_via is McaAcceptance.PARTNER_ATTESTATION
    assert status.agreement is not None
    assert status.agreement.date_agreed == datetime(2021, 1, 1, tzinfo=UTC)


def test_status_direct_signed_or_nothing() -> None:
    assert mca_status_of("c", [], True).accepted_via is McaAcceptance.DIRECT_SIGNED
    cloud = agreement("2019-01-01T00:00:00", type="MicrosoftCloudAgreement")
    nothing = mca_status_of("c", [cloud], False)
    assert (nothing.accepted, nothing.accepted_via, nothing.agreement) == (False, None, None)


def test_matching_attestation_ignores_case_and_other_contacts() -> None:
    items = [
        agreement("2020-01-01T00:00:00", email="ADA@contoso.example"),
        agreement("2024-01-01T00:00:00", email="someone@else.example"),
    ]
    found = matching_attestation(items, ADA)
    assert found is not None and found.date_agreed == datetime(2020, 1, 1, tzinfo=UTC)
    assert matching_attestation(items[1:], ADA) is None


def test_answers_recognised() -> None:
    exists = BadRequestError("x", status=400, code="600061")
    assert is_already_exists(exists)
    assert not is_template_rejected(exists, "tpl")
    rejected = BadRequestError(
        "x", status=400, code="600008", description="Template ID 'tpl' is no longer supported."
    )
    assert is_template_rejected(rejected, "tpl")
    assert not is_template_rejected(BadRequestError("x", status=400, code="600002"), "tpl")
    refused = PermissionDeniedError(
        "x", status=403, code="1", description="The indirect provider must confirm it."
    )
    assert is_indirect_reseller_refusal(refused)
    assert not is_indirect_reseller_refusal(PermissionDeniedError("x", status=403, code="403"))
