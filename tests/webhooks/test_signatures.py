"""partnercenter._webhooks: the signature checks one by one, against the simulator's
certificates served over TLS (no mocks), and the event's parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from partnercenter import (
    InvalidArgumentError,
    PartnerCenterEvent,
    UpstreamError,
    WebhookSignatureError,
    WebhookVerifier,
    customer_id_of,
)
from partnercenter._webhooks import SignatureHeaders, parse_certificates
from simulator import Simulator

from .conftest import signed_headers

BODY = json.dumps(
    {
        "EventName": "reseller-relationship-accepted-by-customer",
        "ResourceUri": "/v1/customers/6e7a1b1c-0d2e-4f3a-9b8c-7d6e5f4a3b2c",
        "ResourceName": "Customer",
        "AuditUri": None,
        "ResourceChangeUtcDate": "2026-05-04T03:02:01.0000000Z",
    }
).encode()


class CountingSession(requests.Session):
    """A real session that counts its GETs."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        self.gets += 1
        return super().get(url, **kwargs)


@pytest.fixture
def verifier(fresh_sim: Simulator) -> WebhookVerifier:
    host = fresh_sim.settings()["WEBHOOK_CERTIFICATE_HOSTS"]
    return WebhookVerifier(allowed_hosts=[host], session=CountingSession())


def test_a_genuine_delivery_verifies_and_its_certificate_is_cached(
    fresh_sim: Simulator, verifier: WebhookVerifier
) -> None:
    headers = signed_headers(fresh_sim, BODY)
    verifier.verify(headers, BODY)
    verifier.verify({k.lower(): v for k, v in headers.items()}, BODY)
    session = verifier._session
    assert isinstance(session, CountingSession)
    # The leaf, then its issuer through the AIA extension; the second delivery fetches nothing.
    assert session.gets == 2


def test_a_refused_certificate_is_not_fetched_again_at_once(
    fresh_sim: Simulator, verifier: WebhookVerifier
) -> None:
    headers = signed_headers(fresh_sim, BODY)
    headers["X-MS-Certificate-Url"] = fresh_sim.webhooks.certificate_url("wrong-organization.cer")
    for _ in range(3):
        with pytest.raises(WebhookSignatureError) as caught:
            verifier.verify(headers, BODY)
        assert caught.value.check == "organization"
    session = verifier._session
    assert isinstance(session, CountingSession)
    assert session.gets == 1


def test_the_certificate_size_is_limited(fresh_sim: Simulator) -> None:
    host = fresh_sim.settings()["WEBHOOK_CERTIFICATE_HOSTS"]
    small = WebhookVerifier(allowed_hosts=[host], max_certificate_bytes=100)
    with pytest.raises(WebhookSignatureError, match="too large"):
        small.verify(signed_headers(fresh_sim, BODY), BODY)


def test_a_missing_certificate_is_refused(fresh_sim: Simulator, verifier: WebhookVerifier) -> None:
    headers = signed_headers(fresh_sim, BODY)
    headers["X-MS-Certificate-Url"] = fresh_sim.webhooks.certificate_url("nothing-here.cer")
    with pytest.raises(WebhookSignatureError, match="HTTP 404"):
        verifier.verify(headers, BODY)


def test_an_unreachable_certificate_host_is_worth_a_retry(fresh_sim: Simulator) -> None:
    verifier = WebhookVerifier(allowed_hosts=["127.0.0.1:9"])
    headers = signed_headers(fresh_sim, BODY)
    headers["X-MS-Certificate-Url"] = "https://127.0.0.1:9/cert/x.cer"
    with pytest.raises(UpstreamError):
        verifier.verify(headers, BODY)


def test_pem_with_intermediates_and_der_both_parse(fresh_sim: Simulator) -> None:
    der = fresh_sim.webhooks.signer.certificate_der
    leaf = x509.load_der_x509_certificate(der)
    pem = leaf.public_bytes(serialization.Encoding.PEM) * 2
    assert parse_certificates(der) == [leaf]
    assert parse_certificates(pem) == [leaf, leaf]
    assert parse_certificates(b"garbage") == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://3psostorageacct.blob.core.windows.net/cert/pc.cer", True),
        ("https://3PSOSTORAGEACCT.blob.core.windows.net:443/cert/pc.cer", True),
        ("http://3psostorageacct.blob.core.windows.net/cert/pc.cer", False),
        ("https://3psostorageacct.blob.core.windows.net:8443/cert/pc.cer", False),
        ("https://evil.example/cert/pc.cer", False),
        ("https://3psostorageacct.blob.core.windows.net.evil.example/x.cer", False),
        ("https://user@3psostorageacct.blob.core.windows.net/x.cer", False),
        ("https://[::1/x.cer", False),
        ("ftp://3psostorageacct.blob.core.windows.net/x.cer", False),
    ],
)
def test_certificate_url_rules(url: str, allowed: bool) -> None:
    verifier = WebhookVerifier()
    if allowed:
        assert verifier.check_certificate_url(url) == url
    else:
        with pytest.raises(WebhookSignatureError) as caught:
            verifier.check_certificate_url(url)
        assert caught.value.check == "certificate-url"


@pytest.mark.parametrize(
    ("headers", "check"),
    [
        ({}, "headers"),
        ({"Authorization": "Bearer abc"}, "headers"),
        ({"Authorization": "Signature !!!"}, "headers"),
        ({"Authorization": "Signature AAAA"}, "headers"),
        (
            {"Authorization": "Signature AAAA", "X-MS-Certificate-Url": "https://h/c"},
            "headers",
        ),
        (
            {
                "Authorization": "Signature AAAA",
                "X-MS-Certificate-Url": "https://h/c",
                "X-MS-Signature-Algorithm": "rsa-sha1",
            },
            "algorithm",
        ),
    ],
)
def test_header_rules(headers: dict[str, str], check: str) -> None:
    with pytest.raises(WebhookSignatureError) as caught:
        SignatureHeaders.from_headers(headers)
    assert caught.value.check == check


def test_both_signature_header_forms() -> None:
    rest = {"X-MS-Certificate-Url": "https://h/c", "X-MS-Signature-Algorithm": "RSA-SHA256"}
    assert SignatureHeaders.from_headers({"x-ms-signature": "AAAA", **rest}).signature == b"\0\0\0"
    found = SignatureHeaders.from_headers({"authorization": "signature AAAA", **rest})
    assert found.signature == b"\0\0\0"


def test_the_event_id_depends_on_content_only() -> None:
    event = PartnerCenterEvent.from_json(BODY)
    reordered = json.dumps(dict(reversed(list(json.loads(BODY).items()))), indent=2).encode()
    assert PartnerCenterEvent.from_json(reordered).event_id == event.event_id
    assert PartnerCenterEvent.from_json(b"\xef\xbb\xbf" + BODY).event_id == event.event_id
    changed = BODY.replace(b"2026-05-04", b"2026-05-05")
    assert PartnerCenterEvent.from_json(changed).event_id != event.event_id
    assert event.customer_id == "6e7a1b1c-0d2e-4f3a-9b8c-7d6e5f4a3b2c"


@pytest.mark.parametrize(
    ("uri", "customer"),
    [
        (
            "/v1/customers/6E7A1B1C-0D2E-4F3A-9B8C-7D6E5F4A3B2C",
            "6e7a1b1c-0d2e-4f3a-9b8c-7d6e5f4a3b2c",
        ),
        (
            "https://api.partnercenter.microsoft.com/v1/customers/6e7a1b1c-0d2e-4f3a-9b8c-7d6e5f4a3b2c/subscriptions/1",
            "6e7a1b1c-0d2e-4f3a-9b8c-7d6e5f4a3b2c",
        ),
        ("/v1/customers/not-a-guid", ""),
        ("/webhooks/v1/registration/validationEvents/x", ""),
        ("", ""),
    ],
)
def test_customer_id_of(uri: str, customer: str) -> None:
    assert customer_id_of(uri) == customer


def test_unknown_fields_are_tolerated_and_nulls_are_empty() -> None:
    body = json.loads(BODY)
    body["SomethingNew"] = {"x": 1}
    event = PartnerCenterEvent.from_json(json.dumps(body).encode())
    assert event.audit_uri == ""
    with pytest.raises(InvalidArgumentError):
        PartnerCenterEvent.from_json(b"x" * 40_000)
