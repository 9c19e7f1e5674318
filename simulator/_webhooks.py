"""Partner Center webhooks in the simulator: the registration API and signed event delivery.

- ``POST``/``GET``/``PUT /webhooks/v1/registration``, ``GET .../registration/events``,
  ``POST .../registration/validationEvents`` (sends a ``test-created`` event) and
  ``GET .../registration/validationEvents/{correlationId}`` (how its delivery went);
- deliveries signed RSA-SHA256 with the key of a certificate whose subject organisation is
  ``Microsoft Corporation``, issued by an intermediate CA under the simulator's CA and served at
  ``/cert/pcnotifications-dispatch.microsoft.com.cer`` (DER, leaf only: its issuer is found through
  the certificate's Authority Information Access, as with Partner Center's real certificate);
- retries like Partner Center's (10 attempts, then the event is dropped), and deliveries that are
  duplicated, delayed or forged (wrong key, wrong organisation, untrusted CA, tampered body, a
  certificate on another host, missing headers, another algorithm).
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from werkzeug.wrappers import Request, Response

from simulator._http import json_response

if TYPE_CHECKING:
    from simulator._core import Simulator

_log = logging.getLogger("simulator.webhooks")

CERTIFICATE_PREFIX = "/cert/"
DELIVERY_CERTIFICATE = "pcnotifications-dispatch.microsoft.com.cer"
INTERMEDIATE_CERTIFICATE = "simulator-issuing-ca.cer"
WRONG_ORGANIZATION_CERTIFICATE = "wrong-organization.cer"
UNTRUSTED_CERTIFICATE = "untrusted-ca.cer"
#: Partner Center makes 10 delivery attempts, then drops the event into an offline queue.
MAX_ATTEMPTS = 10
#: Partner Center sends at most two test events a minute.
TEST_EVENTS_PER_WINDOW = 2
TEST_EVENT_WINDOW = 60.0

#: The events a registration may name (Partner Center's current list, abridged).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "test-created",
    "reseller-relationship-accepted-by-customer",
    "indirect-reseller-relationship-accepted-by-customer",
    "granular-admin-relationship-activated",
    "granular-admin-relationship-approved",
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
)
FORGERIES = frozenset(
    {
        "wrong-key",
        "wrong-organization",
        "untrusted-ca",
        "tampered-body",
        "other-host",
        "missing-headers",
        "wrong-algorithm",
    }
)
_REGISTRATION = re.compile(r"^/webhooks/v1/registration(/.*)?$", re.IGNORECASE)
_VALIDATION_STATUS = re.compile(r"^/validationEvents/([^/]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class _Signer:
    key: rsa.RSAPrivateKey
    certificate_der: bytes


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _leaf(
    issuer_cert: x509.Certificate,
    issuer_key: Any,
    organization: str,
    *,
    aia_url: str | None,
) -> _Signer:
    key = _rsa_key()
    now = datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, "pcnotifications-dispatch.microsoft.com"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("pcnotifications-dispatch.microsoft.com")]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if aia_url is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(aia_url),
                    )
                ]
            ),
            critical=False,
        )
    certificate = builder.sign(issuer_key, hashes.SHA256())
    return _Signer(key, certificate.public_bytes(serialization.Encoding.DER))


def _load_ca(ca: trustme.CA) -> tuple[x509.Certificate, Any]:
    certificate = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    return certificate, key


@dataclass(order=True)
class _Delivery:
    due: float
    sequence: int
    body: bytes = field(compare=False)
    headers: dict[str, str] = field(compare=False)
    url: str = field(compare=False)
    event_name: str = field(compare=False)
    correlation_id: str = field(compare=False)
    attempt: int = field(default=1, compare=False)


class WebhookService:
    """Registration state, certificates and the delivery worker of the simulated Partner Center."""

    def __init__(self, sim: Simulator, ca: trustme.CA) -> None:
        self._sim = sim
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.registration: dict[str, Any] | None = None
        self.customers: set[str] = set()
        #: Seconds before the n-th retry is ``retry_delay * 2 ** (n - 1)`` (capped at 1 hour).
        self.retry_delay = 1.0
        self._queue: list[_Delivery] = []
        self._sequence = itertools.count()
        self._attempts: list[dict[str, Any]] = []
        self._validations: dict[str, dict[str, Any]] = {}
        self._test_events: list[float] = []
        self._worker: threading.Thread | None = None
        self._session = requests.Session()
        self._session.trust_env = False
        intermediate = ca.create_child_ca(key_type=trustme.KeyType.RSA)
        self._intermediate_der = x509.load_pem_x509_certificate(
            intermediate.cert_pem.bytes()
        ).public_bytes(serialization.Encoding.DER)
        issuer_cert, issuer_key = _load_ca(intermediate)
        self._issuer = (issuer_cert, issuer_key)
        # Made at start(): its AIA names the issuer's URL, which needs the port.
        self._genuine: _Signer | None = None
        self._wrong_organization = _leaf(issuer_cert, issuer_key, "Contoso Ltd", aia_url=None)
        stranger_cert, stranger_key = _load_ca(trustme.CA(organization_name="Not trusted"))
        self._untrusted = _leaf(stranger_cert, stranger_key, "Microsoft Corporation", aia_url=None)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery worker (the simulator's port is known by now)."""
        base = self._sim.partner_center_url
        issuer_cert, issuer_key = self._issuer
        self._genuine = _leaf(
            issuer_cert,
            issuer_key,
            "Microsoft Corporation",
            aia_url=f"{base}{CERTIFICATE_PREFIX}{INTERMEDIATE_CERTIFICATE}",
        )
        self._worker = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop delivering (pending deliveries are dropped)."""
        with self._wake:
            worker, self._worker = self._worker, None
            self._queue.clear()
            self._wake.notify_all()
        if worker is not None:
            worker.join(5)

    def reset(self) -> None:
        """Forget the registration, pending deliveries and recorded attempts."""
        with self._lock:
            self.registration = None
            self._queue.clear()
            self._attempts.clear()
            self._validations.clear()
            self._test_events = []
            self.retry_delay = 1.0

    # --- certificates --------------------------------------------------------------------------

    @property
    def signer(self) -> _Signer:
        """The genuine delivery certificate and key."""
        if self._genuine is None:
            raise RuntimeError("start the simulator first")
        return self._genuine

    def certificate_url(self, name: str = DELIVERY_CERTIFICATE, *, host: str | None = None) -> str:
        """The https URL the simulator serves certificate ``name`` at."""
        base = self._sim.partner_center_url
        if host is not None:
            base = f"https://{host}:{urlsplit(base).port}"
        return f"{base}{CERTIFICATE_PREFIX}{name}"

    def serve_certificate(self, request: Request) -> Response:
        """``GET /cert/{name}``: a certificate as Partner Center's storage serves it (DER)."""
        served = {
            DELIVERY_CERTIFICATE: self.signer.certificate_der,
            INTERMEDIATE_CERTIFICATE: self._intermediate_der,
            WRONG_ORGANIZATION_CERTIFICATE: self._wrong_organization.certificate_der,
            UNTRUSTED_CERTIFICATE: self._untrusted.certificate_der,
        }
        name = request.path.removeprefix(CERTIFICATE_PREFIX)
        if request.method != "GET" or name not in served:
            return Response(b"", status=404)
        return Response(served[name], status=200, content_type="application/pkix-cert")

    # --- the registration API ------------------------------------------------------------------

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is the webhook registration API."""
        return _REGISTRATION.match(path) is not None

    def handle(self, request: Request) -> Response:  # noqa: PLR0911 - a router: one per route
        """One registration API request (already authenticated, app-only or App+User)."""
        found = _REGISTRATION.match(request.path)
        assert found is not None
        rest = (found.group(1) or "").rstrip("/")
        method = request.method
        if rest == "" and method == "GET":
            with self._lock:
                registration = self.registration
            if registration is None:
                return _error(404, "2100", "No webhook registration exists for this partner.")
            return json_response(200, registration)
        if rest == "" and method in ("POST", "PUT"):
            return self._register(request, create=method == "POST")
        if rest == "" and method == "DELETE":
            with self._lock:
                self.registration = None
            return Response(b"", status=204)
        if rest.lower() == "/events" and method == "GET":
            return json_response(200, list(WEBHOOK_EVENTS))
        if rest.lower() == "/validationevents" and method == "POST":
            return self._validation_event()
        status = _VALIDATION_STATUS.match(rest)
        if status is not None and method == "GET":
            with self._lock:
                found_status = self._validations.get(status.group(1).lower())
            if found_status is None:
                return _error(404, "2101", "No validation event has this correlation id.")
            return json_response(200, found_status)
        return _error(404, "404", f"The resource {request.path} was not found.")

    def _register(self, request: Request, *, create: bool) -> Response:
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            body = None
        refused = _invalid_registration(body)
        if refused is not None:
            return refused
        url, events = body["WebhookUrl"], body["WebhookEvents"]
        with self._lock:
            exists = self.registration is not None
        if create and exists:
            return _error(409, "2004", "A webhook registration already exists; update it.")
        if not create and not exists:
            return _error(404, "2100", "No webhook registration exists for this partner.")
        registration = self.register(
            url, events, ms_signature_header=bool(body.get("SignatureTokenToMsSignatureHeader"))
        )
        return json_response(200, registration)

    def _validation_event(self) -> Response:
        with self._lock:
            registration = self.registration
            now_s = time.monotonic()
            recent = [t for t in self._test_events if now_s - t < TEST_EVENT_WINDOW]
            if registration is not None and len(recent) >= TEST_EVENTS_PER_WINDOW:
                wait = max(1, math.ceil(TEST_EVENT_WINDOW - (now_s - recent[0])))
                response = _error(429, "429", "Rate limit is exceeded: two test events a minute.")
                response.headers["Retry-After"] = str(wait)
                return response
            self._test_events = [*recent, now_s]
        if registration is None:
            return _error(404, "2100", "No webhook registration exists for this partner.")
        correlation_id = str(uuid.uuid4())
        now = _utc_now()
        resource = (
            f"{self._sim.partner_center_url}/webhooks/v1/registration/validationEvents/"
            f"{correlation_id}"
        )
        with self._lock:
            self._validations[correlation_id] = {
                "correlationId": correlation_id,
                "partnerId": self._sim.partner_id,
                "status": "queued",
                "events": [
                    {
                        "correlationId": correlation_id,
                        "eventName": "test-created",
                        "partnerId": self._sim.partner_id,
                        "status": "queued",
                        "resourceUri": resource,
                        "createdTimestamp": now,
                        "lastUpdatedTimestamp": now,
                        "results": [],
                    }
                ],
            }
        self.fire(
            "test-created",
            resource_uri=resource,
            resource_name="test",
            correlation_id=correlation_id,
            registered_only=False,
        )
        return json_response(200, {"correlationId": correlation_id})

    def register(
        self, url: str, events: list[str], *, ms_signature_header: bool = False
    ) -> dict[str, Any]:
        """Register ``url`` for ``events`` directly (what ``POST .../registration`` does)."""
        refused = _invalid_registration({"WebhookUrl": url, "WebhookEvents": events})
        if refused is not None:
            raise ValueError(refused.get_data(as_text=True))
        with self._lock:
            subscriber = (self.registration or {}).get("SubscriberId") or str(uuid.uuid4())
            self.registration = {
                "SubscriberId": subscriber,
                "WebhookUrl": url,
                "WebhookEvents": list(dict.fromkeys(events)),
                "SignatureTokenToMsSignatureHeader": ms_signature_header,
            }
            return dict(self.registration)

    # --- events --------------------------------------------------------------------------------

    def accept_relationship(self, customer_id: str | None = None, *, indirect: bool = False) -> str:
        """A customer accepts the partner's reseller relationship: the customer now exists and
        ``(indirect-)reseller-relationship-accepted-by-customer`` is fired."""
        customer = (customer_id or str(uuid.uuid4())).lower()
        with self._lock:
            self.customers.add(customer)
        name = (
            "indirect-reseller-relationship-accepted-by-customer"
            if indirect
            else "reseller-relationship-accepted-by-customer"
        )
        self.fire(name, resource_uri=f"/v1/customers/{customer}", resource_name="Customer")
        return customer

    def fire(
        self,
        event_name: str,
        *,
        resource_uri: str | None = None,
        resource_name: str = "",
        audit_uri: str | None = None,
        changed_at: str | None = None,
        duplicates: int = 1,
        delay: float = 0.0,
        forgery: str | None = None,
        correlation_id: str | None = None,
        registered_only: bool = True,
    ) -> dict[str, Any]:
        """Deliver an event to the registered webhook, signed (or forged), ``duplicates`` times,
        after ``delay`` seconds. Returns the body sent, or why nothing was sent."""
        if forgery is not None and forgery not in FORGERIES:
            raise ValueError(f"unknown forgery {forgery!r}; known: {sorted(FORGERIES)}")
        with self._lock:
            registration = self.registration
        if registration is None:
            return {"delivered": False, "reason": "no webhook registration"}
        if registered_only and event_name not in registration["WebhookEvents"]:
            return {"delivered": False, "reason": f"{event_name} is not registered"}
        payload = {
            "EventName": event_name,
            "ResourceUri": resource_uri or f"/v1/events/{uuid.uuid4()}",
            "ResourceName": resource_name,
            "AuditUri": audit_uri,
            "ResourceChangeUtcDate": changed_at or _utc_now(),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers, body = self._signed(body, forgery, registration)
        due = time.monotonic() + max(0.0, delay)
        with self._wake:
            for _ in range(max(1, duplicates)):
                heapq.heappush(
                    self._queue,
                    _Delivery(
                        due,
                        next(self._sequence),
                        body,
                        headers,
                        registration["WebhookUrl"],
                        event_name,
                        correlation_id or "",
                    ),
                )
            self._wake.notify_all()
        return {"delivered": True, "payload": payload, "body": body.decode()}

    def _signed(
        self, body: bytes, forgery: str | None, registration: dict[str, Any]
    ) -> tuple[dict[str, str], bytes]:
        signer = self.signer
        url = self.certificate_url()
        key = signer.key
        if forgery == "wrong-key":
            key = _rsa_key()
        elif forgery == "wrong-organization":
            key, url = (
                self._wrong_organization.key,
                self.certificate_url(WRONG_ORGANIZATION_CERTIFICATE),
            )
        elif forgery == "untrusted-ca":
            key, url = self._untrusted.key, self.certificate_url(UNTRUSTED_CERTIFICATE)
        elif forgery == "other-host":
            url = self.certificate_url(host="127.0.0.1")
        signature = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
        if forgery == "tampered-body":
            body = body.replace(b'"ResourceName":"', b'"ResourceName":"x', 1)
        headers = {"Content-Type": "application/json"}
        if forgery == "missing-headers":
            return headers, body
        if registration.get("SignatureTokenToMsSignatureHeader"):
            headers["x-ms-signature"] = signature
        else:
            headers["Authorization"] = f"Signature {signature}"
        headers["X-MS-Certificate-Url"] = url
        headers["X-MS-Signature-Algorithm"] = (
            "rsa-sha1" if forgery == "wrong-algorithm" else "rsa-sha256"
        )
        return headers, body

    def attempts(self) -> list[dict[str, Any]]:
        """Every delivery attempt so far: event, attempt number, status (0: no answer)."""
        with self._lock:
            return [dict(a) for a in self._attempts]

    def pending(self) -> int:
        """Deliveries waiting for their (next) attempt."""
        with self._lock:
            return len(self._queue)

    # --- the delivery worker -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._worker is not None and (
                    not self._queue or self._queue[0].due > time.monotonic()
                ):
                    timeout = self._queue[0].due - time.monotonic() if self._queue else None
                    self._wake.wait(timeout)
                if self._worker is None:
                    return
                delivery = heapq.heappop(self._queue)
            # One thread per attempt: a slow webhook must not hold up the others, as with
            # Partner Center's own dispatchers.
            threading.Thread(target=self._attempt, args=(delivery,), daemon=True).start()

    def _attempt(self, delivery: _Delivery) -> None:
        status, error = 0, ""
        try:
            response = self._session.post(
                delivery.url, data=delivery.body, headers=delivery.headers, timeout=(5, 30)
            )
            status = response.status_code
            response.close()
        except requests.RequestException as err:
            error = type(err).__name__
        succeeded = 200 <= status < 300
        record = {
            "eventName": delivery.event_name,
            "correlationId": delivery.correlation_id,
            "attempt": delivery.attempt,
            "status": status,
            "error": error,
            "at": _utc_now(),
        }
        _log.info(
            "webhook delivery %s attempt %d -> %s", delivery.event_name, delivery.attempt, status
        )
        with self._wake:
            self._attempts.append(record)
            self._record_validation(delivery, status, succeeded)
            if not succeeded and delivery.attempt < MAX_ATTEMPTS and self._worker is not None:
                delay = min(3600.0, self.retry_delay * 2 ** (delivery.attempt - 1))
                delivery.attempt += 1
                delivery.due = time.monotonic() + delay
                delivery.sequence = next(self._sequence)
                heapq.heappush(self._queue, delivery)
                self._wake.notify_all()

    def _record_validation(self, delivery: _Delivery, status: int, succeeded: bool) -> None:
        found = self._validations.get(delivery.correlation_id)
        if found is None:
            return
        event = found["events"][0]
        event["results"].append(
            {
                "responseCode": str(status) if status else "NoResponse",
                "responseMessage": "" if succeeded else "The webhook did not accept the event.",
                "systemError": status == 0,
                "dateTimeUtc": _utc_now(),
            }
        )
        if succeeded:
            state = "completed"
        elif delivery.attempt >= MAX_ATTEMPTS:
            state = "failed"
        else:
            state = "retrying"
        event["status"] = found["status"] = state
        event["lastUpdatedTimestamp"] = _utc_now()


def _invalid_registration(body: Any) -> Response | None:
    if not isinstance(body, dict):
        return _error(400, "2000", "The request body must be a JSON object.")
    url = body.get("WebhookUrl")
    events = body.get("WebhookEvents")
    if not isinstance(url, str) or not _acceptable_url(url):
        return _error(400, "2001", "WebhookUrl must be an absolute https URL.")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        return _error(400, "2002", "WebhookEvents must be a non-empty list of event names.")
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown:
        return _error(400, "2003", f"Unknown webhook events: {', '.join(unknown)}.")
    return None


def _acceptable_url(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    # Partner Center requires https; the simulator also takes http to a local gateway.
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    return parts.scheme == "https" or (parts.scheme == "http" and local)


def _error(status: int, code: str, description: str) -> Response:
    return json_response(
        status, {"code": code, "description": description, "data": [], "source": "PartnerFD"}
    )


def _utc_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
