"""Parsing what Partner Center returns: tolerant of additions, strict about nonsense."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from partnercenter import AgreementCollection, BadResponseError, RelationshipRequest
from partnercenter._models import parse_body
from simulator.data import SEED_EXAMPLE_BODY

COLLECTION: dict[str, Any] = {
    "totalCount": 1,
    "items": [
        {
            "primaryContact": {"firstName": "Tania", "lastName": "Carr", "email": "a@example.com"},
            "templateId": "aaaabbbb-0000-cccc-1111-dddd2222eeee",
            "dateAgreed": "2019-08-26T00:00:00",
            "type": "MicrosoftCustomerAgreement",
            "agreementLink": "https://aka.ms/customeragreement",
        }
    ],
    "links": {"self": {"uri": "/customers/x/agreements", "method": "GET", "headers": []}},
    "attributes": {"objectType": "Collection"},
}


def test_agreements_parse_with_utc_dates() -> None:
    parsed = parse_body(AgreementCollection, json.dumps(COLLECTION).encode())
    item = parsed.items[0]
    assert item.date_agreed == datetime(2019, 8, 26, tzinfo=UTC)
    assert item.primary_contact is not None and item.primary_contact.phone_number is None
    assert parsed.total_count == 1


def test_offsets_are_converted_to_utc() -> None:
    body = dict(
        COLLECTION, items=[dict(COLLECTION["items"][0], dateAgreed="2019-08-26T02:00:00+02:00")]
    )
    parsed = parse_body(AgreementCollection, json.dumps(body).encode())
    assert parsed.items[0].date_agreed == datetime(2019, 8, 26, tzinfo=UTC)


def test_unknown_fields_and_new_types_are_tolerated() -> None:
    item = dict(COLLECTION["items"][0], type="MicrosoftPartnerAgreementV9", brandNewField={"x": 1})
    body = dict(COLLECTION, items=[item], somethingNew=True)
    parsed = parse_body(AgreementCollection, json.dumps(body).encode())
    assert parsed.items[0].type == "MicrosoftPartnerAgreementV9"


def test_byte_order_mark_is_tolerated() -> None:
    body = (
        b"\xef\xbb\xbf"
        + json.dumps(
            {
                "url": "https://portal.office.com/x",
                "attributes": {"objectType": "RelationshipRequest"},
            }
        ).encode()
    )
    assert parse_body(RelationshipRequest, body).url == "https://portal.office.com/x"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>Service Unavailable</body></html>",
        b'{"totalCount": 1, "items": [{"type": ',
        b'{"totalCount": "many", "items": []}',
        b'{"items": [{"dateAgreed": "yesterday", "type": "X"}], "totalCount": 1}',
        b"[]",
        b"\xff\xfe\x00",
    ],
)
def test_bodies_that_are_not_what_we_expect_are_bad_responses(body: bytes) -> None:
    with pytest.raises(BadResponseError) as caught:
        parse_body(AgreementCollection, body, status=200, request_id="r1")
    assert caught.value.request_id == "r1"
    assert str(caught.value).startswith("Request r1: ")


def test_the_seed_documents_own_example_is_not_json() -> None:
    # The agreements page's response example (seed 004) lacks commas: Partner Center's real answers
    # are JSON, so such a body must be refused, not half-read.
    with pytest.raises(BadResponseError):
        parse_body(AgreementCollection, SEED_EXAMPLE_BODY.encode())


def test_relationship_url_must_be_https() -> None:
    with pytest.raises(BadResponseError):
        parse_body(RelationshipRequest, b'{"url": "javascript:alert(1)"}')
