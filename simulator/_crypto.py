"""Keys and certificates: the TLS CA, token-signing keys and the client certificate."""

from __future__ import annotations

import base64
import hashlib
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# How many signing keys the JWKS publishes: the current one and the one before it, as Entra ID
# does during a key roll-over. Tokens signed with older keys no longer validate.
_PUBLISHED_KEYS = 2


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TlsMaterial:
    """A throwaway CA and a server certificate for ``localhost`` and ``127.0.0.1``."""

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="Partner Center simulator")
        self._leaf = self._ca.issue_cert("localhost", "127.0.0.1", "::1")

    @property
    def ca(self) -> trustme.CA:
        """The CA itself (the webhook delivery certificates are issued under it)."""
        return self._ca

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate clients must trust."""
        pem: bytes = self._ca.cert_pem.bytes()
        return pem

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the leaf certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._leaf.configure_cert(context)
        return context


@dataclass(frozen=True)
class SigningKey:
    """An RSA token-signing key with its certificate; ``kid`` is the certificate's x5t."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key with a self-signed certificate."""
        key = _new_rsa_key()
        return cls(key, _self_signed(key, "accounts.simulator.localhost"))

    @property
    def kid(self) -> str:
        """Key id: base64url SHA-1 thumbprint of the certificate, like Entra ID's."""
        return b64url(self.certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWKS entry."""
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [base64.b64encode(der).decode("ascii")],
        }


class KeyRing:
    """The simulator's token-signing keys: one current key plus the previous one. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = [SigningKey.generate()]

    def rotate(self) -> None:
        """Sign with a new key from now on; keep publishing the previous one."""
        key = SigningKey.generate()
        with self._lock:
            self._keys = [key, *self._keys][:_PUBLISHED_KEYS]

    def sign(self, claims: dict[str, Any]) -> str:
        """An RS256 JWT of ``claims`` signed with the current key (header ``kid`` and ``x5t``)."""
        with self._lock:
            key = self._keys[0]
        return jwt.encode(
            claims,
            key.private_key,
            algorithm="RS256",
            headers={"kid": key.kid, "x5t": key.kid, "typ": "JWT"},
        )

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set published at the ``jwks_uri``."""
        with self._lock:
            return {"keys": [key.jwk() for key in self._keys]}

    def verify(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """The claims of ``token`` if a published key signed it (and, by default, it is not
        expired). Raises ``jwt.InvalidTokenError`` otherwise; audience is the caller's check."""
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            key = next((k for k in self._keys if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidSignatureError(f"no published signing key has kid {kid!r}")
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            options={"verify_aud": False, "verify_exp": verify_exp, "require": ["exp"]},
            leeway=0,
        )
        return claims


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate credential registered for the gateway's app registration."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls, client_id: str) -> ClientCertificate:
        """A fresh self-signed certificate for ``client_id``."""
        key = _new_rsa_key()
        return cls(key, _self_signed(key, f"{client_id}.simulator.localhost"))

    @property
    def sha1_thumbprint(self) -> str:
        """Lower-case hex SHA-1 thumbprint (what MSAL's ``thumbprint`` expects)."""
        return self.certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - thumbprint

    def pem(self) -> bytes:
        """Private key (unencrypted PKCS#8) followed by the certificate."""
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key + self.certificate.public_bytes(serialization.Encoding.PEM)

    def verify_assertion(
        self, assertion: str, *, audience: Sequence[str], client_id: str
    ) -> dict[str, Any]:
        """Claims of a client assertion signed with this certificate's key.

        MSAL signs RS256 with ``x5t`` (SHA-1) when given a thumbprint, and PS256 with
        ``x5t#S256`` when given the public certificate; both are accepted, but a thumbprint in
        the header must name this certificate. Raises ``jwt.InvalidTokenError`` otherwise.
        """
        header = jwt.get_unverified_header(assertion)
        sha1 = b64url(self.certificate.fingerprint(hashes.SHA1()))  # noqa: S303
        sha256 = b64url(self.certificate.fingerprint(hashes.SHA256()))
        # MSAL pads its thumbprints with "=" (plain JOSE does not): accept both.
        x5t = str(header.get("x5t", sha1)).rstrip("=")
        x5t_s256 = str(header.get("x5t#S256", sha256)).rstrip("=")
        if x5t != sha1 or x5t_s256 != sha256:
            raise jwt.InvalidSignatureError("the assertion names a certificate not registered")
        claims: dict[str, Any] = jwt.decode(
            assertion,
            self.private_key.public_key(),
            algorithms=["RS256", "PS256"],
            audience=audience,
            issuer=client_id,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
        if claims["sub"] != client_id:
            raise jwt.InvalidTokenError("the assertion's sub is not the client id")
        return claims


def pairwise_subject(oid: str, client_id: str) -> str:
    """A stable ``sub`` for user ``oid`` as seen by ``client_id`` (Entra's sub is per app)."""
    return b64url(hashlib.sha256(f"{oid}|{client_id}".encode()).digest())
