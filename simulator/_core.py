"""The :class:`Simulator`: both servers, their shared state and the Python API to drive them."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from simulator import data
from simulator._agreements import AgreementBook
from simulator._clock import SimClock
from simulator._crypto import ClientCertificate, KeyRing, TlsMaterial
from simulator._faults import FaultQueue
from simulator._identity import IdentityProvider
from simulator._keyvault import KeyVault
from simulator._partnercenter import CONTROL_PREFIX, PartnerCenter
from simulator._server import SimServer
from simulator._stats import Stats
from simulator._tokens import (
    REFRESH_TOKEN_LIFETIME,
    TokenIssuer,
    UserIdentity,
    amr,
    new_identity,
)
from simulator._webhooks import WebhookService

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

DEFAULT_USER_SCOPES = ("RelationshipRequest.Read", "Agreements.Read", "Events.Subscribe")
#: The Key Vault secret the gateway keeps the service user's refresh token in (its default name).
REFRESH_TOKEN_SECRET = "partner-center-refresh-token"


class Simulator:
    """A local Entra ID and Partner Center over TLS, for tests, benchmarks and ``make run``.

    Keys, certificates and the state files (``ca_bundle``, ``client_certificate_path``) are made
    when the object is built; :meth:`start` binds and serves both endpoints. Usable as a context
    manager. The real ``msal.ConfidentialClientApplication`` works against it with
    ``authority=f"{sim.authority_host}/{sim.tenant_id}"`` and ``instance_discovery=False``.
    """

    tenant_id: str = data.TENANT_ID
    partner_id: str = data.PARTNER_ID
    client_id: str = data.CLIENT_ID
    client_secret: str = data.CLIENT_SECRET
    managed_identity_client_id: str = data.MANAGED_IDENTITY_CLIENT_ID

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        identity_port: int = 0,
        api_port: int = 0,
        keyvault_port: int = 0,
        token_latency: float = 0.0,
        api_latency: float = 0.0,
        token_lifetime: int = 3600,
        state_dir: str | None = None,
    ) -> None:
        self._host = host
        self._ports = (identity_port, api_port, keyvault_port)
        self.token_latency = token_latency
        """Seconds added to every token request."""
        self.api_latency = api_latency
        """Seconds added to every Partner Center request."""
        self.require_mfa = False
        """A Conditional Access policy: when True, on-behalf-of exchanges of a caller token
        whose sign-in had no MFA (``amr`` without ``mfa``) fail with AADSTS50076."""
        self.faults = FaultQueue()
        self.stats = Stats()
        self.agreements = AgreementBook()
        """Agreements, attestations made, the current MCA template and the partner's kind."""
        self.stopping = threading.Event()
        """Set while stopped: interrupts latency and fault delays."""
        self.stopping.set()
        self._urls: tuple[str, str, str] | None = None
        self._servers: list[SimServer] = []
        self._tls = TlsMaterial()
        self.client_certificate = ClientCertificate.generate(self.client_id)
        self.clock = SimClock()
        """The clock refresh tokens and Key Vault secrets age on: ``sim.clock.advance(days=91)``."""
        self.webhooks = WebhookService(self, self._tls.ca)
        """Partner Center webhooks: the registration, signed deliveries, accepted customers."""
        self.tokens = TokenIssuer(
            KeyRing(),
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            authority_host=lambda: self.authority_host,
            lifetime=token_lifetime,
            clock=self.clock,
        )
        self.keyvault = KeyVault(self)
        """The Key Vault (secrets API); the gateway's app may read and write the refresh-token
        secret, as the Bicep grants its identity."""
        self.keyvault.grant(self.client_id, "Key Vault Secrets Officer", REFRESH_TOKEN_SECRET)
        self.browser_user: UserIdentity = new_identity(
            oid=None,
            tid=self.tenant_id,
            name="Partner Admin",
            upn=None,
            mfa=True,
            sub_for=self.client_id,
        )
        """Who is signed in to the simulated browser: the authorize endpoint issues codes for
        this user (see :meth:`sign_in`)."""
        if state_dir is None:
            directory = Path(tempfile.mkdtemp(prefix="pc-simulator-"))
            # Removed when the simulator is garbage-collected or the interpreter exits; not at
            # stop(), since a stopped simulator may be started again.
            weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        else:
            directory = Path(state_dir)
            directory.mkdir(parents=True, exist_ok=True)
        self.ca_bundle = str(directory / "ca.pem")
        """Path of the CA certificate (PEM) that clients must trust."""
        self.client_certificate_path = str(directory / "client-certificate.pem")
        """PEM with the private key and the certificate registered for ``client_id``."""
        Path(self.ca_bundle).write_bytes(self._tls.ca_pem)
        fd = os.open(self.client_certificate_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as pem:
            pem.write(self.client_certificate.pem())

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind the three endpoints (Entra ID, Partner Center, Key Vault) and serve them from daemon
        threads."""
        if self._servers:
            raise RuntimeError("the simulator is already running")
        context = self._tls.server_context()
        apps: tuple[tuple[str, WSGIApplication, str | None], ...] = (
            ("identity", IdentityProvider(self), None),
            ("api", PartnerCenter(self), CONTROL_PREFIX),
            ("keyvault", self.keyvault, None),
        )
        servers: list[SimServer] = []
        try:
            for (name, app, uncounted), port in zip(apps, self._ports, strict=True):
                servers.append(
                    SimServer(
                        name,
                        self._host,
                        port,
                        app,
                        tls=context,
                        stats=self.stats,
                        uncounted_prefix=uncounted,
                    )
                )
        except BaseException:
            for server in servers:
                server.server_close()
            raise
        identity, api, vault = servers
        self._urls = (
            f"https://localhost:{identity.port}",
            f"https://localhost:{api.port}",
            f"https://localhost:{vault.port}",
        )
        self._servers = [identity, api, vault]
        self.stopping.clear()
        for server in self._servers:
            server.start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and release both ports. Idempotent."""
        self.stopping.set()
        self.webhooks.stop()
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- where it listens ----------------------------------------------------------------------

    def _started_urls(self) -> tuple[str, str, str]:
        if self._urls is None:
            raise RuntimeError("start the simulator first: its ports are not known yet")
        return self._urls

    @property
    def authority_host(self) -> str:
        """``https://localhost:{identity_port}``; the authority is ``{authority_host}/{tenant}``."""
        return self._started_urls()[0]

    @property
    def partner_center_url(self) -> str:
        """``https://localhost:{api_port}``, the Partner Center base URL."""
        return self._started_urls()[1]

    @property
    def key_vault_url(self) -> str:
        """``https://localhost:{keyvault_port}``, the vault URL (``KEY_VAULT_URL``)."""
        return self._started_urls()[2]

    @property
    def client_certificate_thumbprint(self) -> str:
        """Lower-case hex SHA-1 thumbprint of the client certificate."""
        return self.client_certificate.sha1_thumbprint

    def settings(self) -> dict[str, str]:
        """The gateway's environment for talking to this simulator."""
        return {
            "PARTNER_CENTER_API_URL": self.partner_center_url,
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self.client_secret,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            # The simulator serves its webhook signing certificate itself.
            "WEBHOOK_CERTIFICATE_HOSTS": urlsplit(self.partner_center_url).netloc,
        }

    # --- tokens --------------------------------------------------------------------------------

    def user_token(
        self,
        *,
        oid: str | None = None,
        tid: str | None = None,
        name: str = "Adele Vance",
        upn: str | None = None,
        scopes: Sequence[str] = DEFAULT_USER_SCOPES,
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: int = 3600,
        mfa: bool = True,
        extra_claims: Mapping[str, Any] | None = None,
        roles: Sequence[str] = (),
        client_app_id: str | None = None,
    ) -> str:
        """A user's access token for the gateway's own API (what a caller sends the gateway).

        RS256 with the current signing key; ``aud`` defaults to ``client_id``, ``iss`` to the
        v2.0 issuer of ``tid``; a negative ``expires_in`` gives an expired token; ``mfa`` sets
        ``amr`` to ``["pwd", "mfa"]`` rather than ``["pwd"]`` (a password-only sign-in).
        ``roles`` are app roles assigned to the user (Entra puts them in the user's tokens);
        ``client_app_id`` is the app the user signed in with (``azp``/``appid``, default
        ``CALLER_APP_ID``); empty ``scopes`` leave ``scp`` out. ``extra_claims`` override.
        """
        identity = new_identity(
            oid=oid,
            tid=tid or self.tenant_id,
            name=name,
            upn=upn,
            mfa=mfa,
            sub_for=self.client_id,
        )
        return self.tokens.user_access_token(
            identity,
            audience=audience or self.client_id,
            scp=" ".join(scopes),
            azp=client_app_id or data.CALLER_APP_ID,
            issuer=issuer,
            expires_in=expires_in,
            extra_claims={**({"roles": list(roles)} if roles else {}), **(extra_claims or {})},
        )

    def id_token(
        self,
        *,
        oid: str | None = None,
        tid: str | None = None,
        name: str = "Adele Vance",
        roles: Sequence[str] = (),
        nonce: str | None = None,
        mfa: bool = True,
        audience: str | None = None,
    ) -> str:
        """An OpenID Connect ID token of a user's sign-in to ``audience`` (default: the
        gateway's ``client_id``), signed like access tokens: no ``scp``, no ``azp``, with
        ``roles`` and ``nonce`` when given. Not an access token: the gateway must refuse it."""
        identity = new_identity(
            oid=oid, tid=tid or self.tenant_id, name=name, upn=None, mfa=mfa, sub_for=self.client_id
        )
        return self.tokens.id_token(identity, roles=roles, nonce=nonce, audience=audience)

    def app_token(
        self,
        *,
        roles: Sequence[str] = DEFAULT_USER_SCOPES,
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: int = 3600,
        app_id: str | None = None,
        idtyp: bool = True,
    ) -> str:
        """An application caller's token for the gateway's API: ``roles``, no ``scp``,
        ``idtyp`` app (left out with ``idtyp=False``, as when the app registration does not ask
        for that optional claim), ``oid`` = ``sub`` = the app's service principal id."""
        return self.tokens.app_access_token(
            app_id=app_id or data.CALLER_APP_ID,
            audience=audience or self.client_id,
            roles=roles,
            issuer=issuer,
            expires_in=expires_in,
            idtyp=idtyp,
        )

    def refresh_token_for(
        self,
        *,
        oid: str | None = None,
        tid: str | None = None,
        mfa: bool = True,
        expired: bool = False,
    ) -> str:
        """A consented service user's refresh token (Secure Application Model) that the token
        endpoint redeems for ``client_id``; ``expired=True`` gives one refused with AADSTS700082."""
        identity = new_identity(
            oid=oid,
            tid=tid or self.tenant_id,
            name="Partner Admin",
            upn=None,
            mfa=mfa,
            sub_for=self.client_id,
        )
        return self.tokens.new_refresh_token(identity, expired=expired)

    def seed_consent(self, *, mfa: bool = True, secret: str = REFRESH_TOKEN_SECRET) -> str:
        """Store a consented service user's refresh token in the Key Vault, as ``make consent``
        would (``expires`` 90 days out, who consented and when in tags), unless the secret has
        a version already; the latest version's value is returned."""
        latest = self.keyvault.latest(secret)
        if latest is not None:
            return latest.value
        user = dataclasses.replace(self.browser_user, amr=amr(mfa))
        token = self.tokens.new_refresh_token(user)
        now = self.clock.now()
        self.keyvault.set_secret(
            secret,
            token,
            expires=int(self.clock.time()) + REFRESH_TOKEN_LIFETIME,
            tags={
                "consentedBy": user.oid,
                "consentedByUpn": user.upn,
                "consentedOn": now.isoformat(timespec="seconds"),
                "mfa": "true" if mfa else "false",
                "source": "consent",
            },
        )
        return token

    def sign_in(
        self,
        *,
        name: str = "Partner Admin",
        upn: str | None = None,
        oid: str | None = None,
        mfa: bool = True,
    ) -> UserIdentity:
        """Sign a user in to the simulated browser (``mfa=False``: a password-only sign-in);
        the next authorization request is answered for them."""
        self.browser_user = new_identity(
            oid=oid, tid=self.tenant_id, name=name, upn=upn, mfa=mfa, sub_for=self.client_id
        )
        return self.browser_user

    def federated_assertion(self) -> str:
        """What ``msal.ManagedIdentityClient`` returns for ``api://AzureADTokenExchange``: the
        token endpoint accepts it as ``client_assertion`` for ``client_id``."""
        return self.tokens.federated_assertion(self.managed_identity_client_id)

    def rotate_signing_key(self) -> None:
        """Sign with a new key (new ``kid``); the JWKS publishes the new and the previous key."""
        self.tokens.keys.rotate()

    # --- behaviour -----------------------------------------------------------------------------

    def set_latency(self, *, token: float | None = None, api: float | None = None) -> None:
        """Change the seconds added to token and/or Partner Center requests (None: unchanged)."""
        if token is not None:
            self.token_latency = token
        if api is not None:
            self.api_latency = api

    def rotate_mca_template(self) -> str:
        """Publish a new MCA template version: attestations naming the old one are refused."""
        return self.agreements.rotate_mca_template()

    def set_partner(self, *, indirect_reseller: bool) -> None:
        """Make the partner an indirect reseller (whose attestations are refused), or not."""
        self.agreements.set_partner(indirect_reseller=indirect_reseller)

    def reset(self) -> None:
        """Forget pending faults, zero the statistics, forget attestations made, the rotated
        template and the partner's kind, lift ``require_mfa``, and forget the webhook registration
        and deliveries (keys, refresh tokens and accepted customers stay)."""
        self.faults.clear()
        self.stats.reset()
        self.agreements.reset()
        self.require_mfa = False
        self.webhooks.reset()

    def accept_relationship(self, customer_id: str | None = None, *, indirect: bool = False) -> str:
        """A customer accepts the reseller relationship: it becomes a customer of the partner
        and the registered webhook gets ``reseller-relationship-accepted-by-customer``."""
        return self.webhooks.accept_relationship(customer_id, indirect=indirect)
