"""Partner Center webhook deliveries: their signature checks and their payload.

Partner Center signs each event it POSTs to a registered webhook. A delivery is genuine when:

1. the headers ``Authorization: Signature <base64>`` (or ``x-ms-signature``),
   ``X-MS-Certificate-Url`` and ``X-MS-Signature-Algorithm: rsa-sha256`` are present;
2. the certificate URL is https on an allowed host (Partner Center documents
   ``3psostorageacct.blob.core.windows.net``);
3. the certificate, fetched with a timeout and a size limit, chains to a root the TLS trust store
   holds (``REQUESTS_CA_BUNDLE``, else the system's), and its subject organisation is
   ``Microsoft Corporation``;
4. the RSA-SHA256 (PKCS#1 v1.5) signature verifies over the raw body bytes.

Verified certificates are cached (per URL and trust store, never past their expiry), and so,
briefly, are refusals, so that a flood of forged deliveries cannot turn into a flood of fetches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ._errors import InvalidArgumentError, UpstreamError, WebhookSignatureError
from ._ids import is_guid

logger = logging.getLogger("partnercenter.webhooks")

#: The signature algorithm Partner Center names in ``X-MS-Signature-Algorithm``.
SIGNATURE_ALGORITHM = "rsa-sha256"
#: Where Partner Center serves its signing certificate (its webhooks documentation).
DEFAULT_CERTIFICATE_HOSTS: tuple[str, ...] = ("3psostorageacct.blob.core.windows.net",)
#: The subject organisation of Partner Center's signing certificate.
SIGNER_ORGANIZATION = "Microsoft Corporation"
#: A certificate (or a short chain of them) is a few kilobytes.
MAX_CERTIFICATE_BYTES = 64 * 1024
#: Partner Center's events are a few hundred bytes.
MAX_EVENT_BYTES = 32 * 1024
#: How long a verified certificate is trusted before it is fetched and verified again.
CERTIFICATE_CACHE_SECONDS = 3600.0
#: How long a refused certificate URL is refused without being fetched again.
REFUSAL_CACHE_SECONDS = 60.0
#: (connect, read) seconds for the certificate download.
FETCH_TIMEOUT = (3.05, 5.0)
#: Seconds a whole certificate download may take.
FETCH_TOTAL_SECONDS = 10.0
_CACHE_ENTRIES = 32
#: Certificates in a chain completed through Authority Information Access, the leaf included.
_MAX_AIA_CHAIN = 4
_MAX_FIELD_LENGTH = 2048
_EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HOST_ENTRY = re.compile(r"^[a-z0-9.-]{1,253}(:[0-9]{1,5})?$")


# --- the event ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerCenterEvent:
    """One Partner Center event, as delivered (``ResourceChangeUtcDate`` kept as given)."""

    event_name: str
    resource_uri: str
    resource_name: str
    audit_uri: str
    resource_change_utc_date: str

    @property
    def event_id(self) -> str:
        """SHA-256 hex of the canonical JSON of the payload: a redelivery has the same id."""
        canonical = json.dumps(
            {
                "AuditUri": self.audit_uri,
                "EventName": self.event_name,
                "ResourceChangeUtcDate": self.resource_change_utc_date,
                "ResourceName": self.resource_name,
                "ResourceUri": self.resource_uri,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def customer_id(self) -> str:
        """The customer tenant id of a ``/v1/customers/{id}`` resource, else ``""``."""
        return customer_id_of(self.resource_uri)

    @classmethod
    def from_json(cls, body: bytes) -> PartnerCenterEvent:
        """Parse a delivery's body; :class:`InvalidArgumentError` names what is wrong."""
        require_event_size(body)
        try:
            payload = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidArgumentError("The event is not JSON.", argument="body") from None
        if not isinstance(payload, dict):
            raise InvalidArgumentError("The event must be a JSON object.", argument="body")
        event_name = _text(payload, "EventName", required=True)
        if not _EVENT_NAME.match(event_name):
            raise InvalidArgumentError("EventName is not an event name.", argument="EventName")
        return cls(
            event_name=event_name,
            resource_uri=_text(payload, "ResourceUri", required=True),
            resource_name=_text(payload, "ResourceName", required=False),
            audit_uri=_text(payload, "AuditUri", required=False),
            resource_change_utc_date=_text(payload, "ResourceChangeUtcDate", required=True),
        )


def require_event_size(body: bytes) -> None:
    """Refuse a body larger than any Partner Center event (:class:`InvalidArgumentError`)."""
    if len(body) > MAX_EVENT_BYTES:
        raise InvalidArgumentError(
            f"The event is larger than {MAX_EVENT_BYTES} bytes.", argument="body"
        )


def _text(payload: Mapping[str, Any], name: str, *, required: bool) -> str:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise InvalidArgumentError(f"The event has no {name}.", argument=name)
        return ""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string.", argument=name)
    if len(value) > _MAX_FIELD_LENGTH:
        raise InvalidArgumentError(f"{name} is too long.", argument=name)
    return value


_CUSTOMER_PATH = re.compile(r"^/v1/customers/([^/]+)(?:/|$)", re.IGNORECASE)


def customer_id_of(resource_uri: str) -> str:
    """The customer id of ``/v1/customers/{id}`` (a path or a URL), lower-cased, else ``""``."""
    path = urlsplit(resource_uri).path if "://" in resource_uri else resource_uri
    found = _CUSTOMER_PATH.match(path)
    if found and is_guid(found.group(1)):
        return found.group(1).lower()
    return ""


# --- the trust store --------------------------------------------------------------------------


def trust_bundle_path() -> str:
    """The CA bundle TLS trust uses: ``REQUESTS_CA_BUNDLE``, else the system's, else certifi's."""
    configured = os.environ.get("REQUESTS_CA_BUNDLE", "").strip()
    if configured:
        return configured
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    import certifi  # noqa: PLC0415 - requests' own fallback, needed only without a system bundle

    return str(certifi.where())


class TrustStores:
    """Trusted roots loaded from CA bundles, re-read when a bundle file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[float, Store]] = {}

    def store(self, path: str) -> Store:
        """The roots of the bundle at ``path`` (a PEM file, or a directory of them)."""
        try:
            stamp = os.stat(path).st_mtime
        except OSError as err:
            raise WebhookSignatureError(
                "The CA bundle could not be read.", check="trust-store"
            ) from err
        with self._lock:
            cached = self._loaded.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        roots = _load_roots(Path(path))
        if not roots:
            raise WebhookSignatureError("The CA bundle holds no certificate.", check="trust-store")
        store = Store(roots)
        with self._lock:
            self._loaded[path] = (stamp, store)
        return store


def _load_roots(path: Path) -> list[x509.Certificate]:
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    roots: list[x509.Certificate] = []
    for file in files:
        try:
            data = file.read_bytes()
        except OSError:
            continue
        roots.extend(_pem_certificates(data))
    return roots


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    # One by one: a single certificate the library cannot read must not lose the whole bundle.
    found: list[x509.Certificate] = []
    for block in _PEM_BLOCK.findall(data):
        try:
            found.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            continue
    return found


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """The certificates of a ``.cer`` download: DER, or PEM (a leaf, then its intermediates)."""
    if b"-----BEGIN" in data[:1024]:
        return _pem_certificates(data)
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return []


# --- the verifier -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _CacheEntry:
    certificate: x509.Certificate | None
    refusal: WebhookSignatureError | None
    expires: float


@dataclass(frozen=True)
class SignatureHeaders:
    """The three signature headers of a delivery, checked for presence and form."""

    signature: bytes
    certificate_url: str
    algorithm: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> SignatureHeaders:
        """Read the headers (any case); :class:`WebhookSignatureError` if one is missing."""
        lowered = {name.lower(): value for name, value in headers.items()}
        raw = lowered.get("x-ms-signature", "").strip()
        if not raw:
            scheme, _, value = lowered.get("authorization", "").strip().partition(" ")
            if scheme.lower() != "signature" or not value.strip():
                raise WebhookSignatureError(
                    "The delivery has no 'Authorization: Signature' (or x-ms-signature) header.",
                    check="headers",
                )
            raw = value.strip()
        elif raw.lower().startswith("signature "):
            raw = raw[len("signature ") :].strip()
        try:
            signature = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSignatureError("The signature is not base64.", check="headers") from None
        url = lowered.get("x-ms-certificate-url", "").strip()
        algorithm = lowered.get("x-ms-signature-algorithm", "").strip()
        if not url or not algorithm:
            raise WebhookSignatureError(
                "The delivery lacks X-MS-Certificate-Url or X-MS-Signature-Algorithm.",
                check="headers",
            )
        if algorithm.lower() != SIGNATURE_ALGORITHM:
            raise WebhookSignatureError(
                f"X-MS-Signature-Algorithm must be {SIGNATURE_ALGORITHM}.", check="algorithm"
            )
        return cls(signature, url, algorithm)


class WebhookVerifier:
    """Checks that a webhook delivery was signed by Partner Center. Thread-safe; keep one."""

    def __init__(
        self,
        *,
        allowed_hosts: Collection[str] = DEFAULT_CERTIFICATE_HOSTS,
        session: requests.Session | None = None,
        trust_stores: TrustStores | None = None,
        bundle_path: Callable[[], str] = trust_bundle_path,
        max_certificate_bytes: int = MAX_CERTIFICATE_BYTES,
        cache_seconds: float = CERTIFICATE_CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.allowed_hosts = frozenset(normalise_host(h) for h in allowed_hosts)
        self._session = session or requests.Session()
        self._stores = trust_stores or TrustStores()
        self._bundle_path = bundle_path
        self._max_bytes = max_certificate_bytes
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], _CacheEntry] = OrderedDict()
        self._fetching: dict[tuple[str, str], threading.Lock] = {}

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return if ``body`` was signed by Partner Center; else raise
        :class:`WebhookSignatureError` (or :class:`UpstreamError` when the certificate could
        not be downloaded, which is worth a retry)."""
        found = SignatureHeaders.from_headers(headers)
        url = self.check_certificate_url(found.certificate_url)
        certificate = self.certificate(url)
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise WebhookSignatureError("The certificate's key is not RSA.", check="certificate")
        try:
            public_key.verify(found.signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise WebhookSignatureError(
                "The signature does not match the body.", check="signature"
            ) from None

    def check_certificate_url(self, url: str) -> str:
        """``url`` if it is https on an allowed host (and port), else a refusal."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise WebhookSignatureError(
                "X-MS-Certificate-Url is not a URL.", check="certificate-url"
            ) from None
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() != "https" or not host or parts.username or parts.password:
            raise WebhookSignatureError(
                "X-MS-Certificate-Url must be an https URL.", check="certificate-url"
            )
        entry = host if port in (None, 443) else f"{host}:{port}"
        if entry not in self.allowed_hosts:
            raise WebhookSignatureError(
                "X-MS-Certificate-Url is not on an allowed host (WEBHOOK_CERTIFICATE_HOSTS).",
                check="certificate-url",
            )
        return url

    def certificate(self, url: str) -> x509.Certificate:
        """The verified certificate at ``url``: from the cache, or fetched and verified now."""
        bundle = self._bundle_path()
        key = (url, bundle)
        entry = self._cached(key)
        if entry is None:
            with self._lock:
                single_flight = self._fetching.setdefault(key, threading.Lock())
            with single_flight:
                entry = self._cached(key)
                if entry is None:
                    entry = self._load(url, bundle)
                    with self._lock:
                        self._cache[key] = entry
                        self._cache.move_to_end(key)
                        while len(self._cache) > _CACHE_ENTRIES:
                            self._cache.popitem(last=False)
                        self._fetching.pop(key, None)
        if entry.refusal is not None:
            raise entry.refusal
        assert entry.certificate is not None
        return entry.certificate

    def _cached(self, key: tuple[str, str]) -> _CacheEntry | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.expires > self._clock():
                return entry
            return None

    def _load(self, url: str, bundle: str) -> _CacheEntry:
        now = self._clock()
        chain = parse_certificates(self._download(url))
        try:
            if not chain:
                raise WebhookSignatureError(
                    "The signing certificate could not be read.", check="certificate"
                )
            certificate = self._verify_chain(chain, self._stores.store(bundle), now)
        except WebhookSignatureError as refusal:
            logger.warning("webhook certificate refused (%s): %s", refusal.check, refusal.message)
            return _CacheEntry(None, refusal, now + REFUSAL_CACHE_SECONDS)
        expiry = certificate.not_valid_after_utc.timestamp()
        return _CacheEntry(certificate, None, min(now + self._cache_seconds, expiry))

    def _verify_chain(
        self, chain: list[x509.Certificate], store: Store, now: float
    ) -> x509.Certificate:
        # A .cer download is often the leaf alone; as TLS stacks do, the missing issuers are
        # fetched from each certificate's Authority Information Access (the chain is then
        # verified against the trusted roots, so where an issuer came from does not matter).
        while True:
            try:
                return verify_certificate(chain, store, now)
            except WebhookSignatureError as refusal:
                issuer_url = _ca_issuers_url(chain[-1])
                if refusal.check != "chain" or issuer_url is None or len(chain) >= _MAX_AIA_CHAIN:
                    raise
                try:
                    issuers = parse_certificates(self._download(issuer_url))
                except UpstreamError:
                    raise refusal from None
                if not issuers or any(issuers[0] == known for known in chain):
                    raise
                chain = [*chain, issuers[0]]

    def _download(self, url: str) -> bytes:
        try:
            with self._session.get(
                url, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise WebhookSignatureError(
                        f"The signing certificate could not be fetched (HTTP "
                        f"{response.status_code}).",
                        check="certificate",
                    )
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise WebhookSignatureError(
                        "The signing certificate is too large.", check="certificate"
                    )
                data = bytearray()
                # The read timeout bounds each read, not the whole: a server dripping bytes
                # must not hold the delivery (and Partner Center's attempt) for long.
                give_up = time.monotonic() + FETCH_TOTAL_SECONDS
                for chunk in response.iter_content(8192):
                    data += chunk
                    if len(data) > self._max_bytes:
                        raise WebhookSignatureError(
                            "The signing certificate is too large.", check="certificate"
                        )
                    if time.monotonic() > give_up:
                        raise requests.Timeout("the certificate download took too long")
                return bytes(data)
        except requests.RequestException as err:
            logger.warning("webhook certificate download failed: %s", type(err).__name__)
            raise UpstreamError(
                "The signing certificate could not be downloaded; try again."
            ) from err


def _ca_issuers_url(certificate: x509.Certificate) -> str | None:
    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return None
    for description in access.value:
        location = description.access_location
        if (
            description.access_method == AuthorityInformationAccessOID.CA_ISSUERS
            and isinstance(location, x509.UniformResourceIdentifier)
            and urlsplit(location.value).scheme in ("http", "https")
        ):
            return location.value
    return None


def verify_certificate(chain: list[x509.Certificate], store: Store, now: float) -> x509.Certificate:
    """The leaf of ``chain`` if it chains to a root of ``store`` and names Microsoft
    Corporation as its organisation; else :class:`WebhookSignatureError`."""
    leaf, intermediates = chain[0], chain[1:]
    organisations = [
        attribute.value
        for attribute in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ]
    if organisations != [SIGNER_ORGANIZATION]:
        raise WebhookSignatureError(
            f"The signing certificate's organisation is not {SIGNER_ORGANIZATION}.",
            check="organization",
        )
    # A signing certificate, not a TLS server's: no host name to match, and its key-usage
    # extensions are whatever Microsoft issued it with. The issuers are held to the Web PKI's
    # rules for CAs (basic constraints, key usage), the chain to the trusted roots.
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(datetime.fromtimestamp(now, UTC))
        .max_chain_depth(6)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as err:
        raise WebhookSignatureError(
            f"The signing certificate does not chain to a trusted root ({err}).",
            check="chain",
        ) from None
    return leaf


def normalise_host(entry: str) -> str:
    """An allowed-host entry (``host`` or ``host:port``), lower-cased; ``host:443`` is ``host``."""
    value = entry.strip().lower()
    if not _HOST_ENTRY.match(value):
        raise ValueError(f"not a host name (or host:port): {entry!r}")
    return value.removesuffix(":443")


__all__ = [
    "DEFAULT_CERTIFICATE_HOSTS",
    "MAX_EVENT_BYTES",
    "SIGNATURE_ALGORITHM",
    "SIGNER_ORGANIZATION",
    "PartnerCenterEvent",
    "SignatureHeaders",
    "TrustStores",
    "WebhookVerifier",
    "customer_id_of",
    "normalise_host",
    "parse_certificates",
    "require_event_size",
    "trust_bundle_path",
    "verify_certificate",
]
