"""The :class:`Simulator`: both servers, their shared state and the Python API to drive them."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from simulator import data
from simulator._crypto import ClientCertificate, KeyRing, TlsMaterial
from simulator._faults import FaultQueue
from simulator._identity import IdentityProvider
from simulator._partnercenter import CONTROL_PREFIX, PartnerCenter
from simulator._server import SimServer
from simulator._stats import Stats
from simulator._tokens import TokenIssuer, new_identity
from simulator._webhooks import WebhookService

DEFAULT_USER_SCOPES = ("RelationshipRequest.Read", "Agreements.Read", "Events.Subscribe")


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
        token_latency: float = 0.0,
        api_latency: float = 0.0,
        token_lifetime: int = 3600,
        state_dir: str | None = None,
    ) -> None:
        self._host = host
        self._ports = (identity_port, api_port)
        self.token_latency = token_latency
        """Seconds added to every token request."""
        self.api_latency = api_latency
        """Seconds added to every Partner Center request."""
        self.faults = FaultQueue()
        self.stats = Stats()
        self.stopping = threading.Event()
        """Set while stopped: interrupts latency and fault delays."""
        self.stopping.set()
        self._urls: tuple[str, str] | None = None
        self._servers: list[SimServer] = []
        self._tls = TlsMaterial()
        self.client_certificate = ClientCertificate.generate(self.client_id)
        self.webhooks = WebhookService(self, self._tls.ca)
        """Partner Center webhooks: the registration, signed deliveries, accepted customers."""
        self.tokens = TokenIssuer(
            KeyRing(),
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            authority_host=lambda: self.authority_host,
            lifetime=token_lifetime,
        )
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
        """Bind both endpoints and serve them from daemon threads."""
        if self._servers:
            raise RuntimeError("the simulator is already running")
        context = self._tls.server_context()
        identity = SimServer(
            "identity",
            self._host,
            self._ports[0],
            IdentityProvider(self),
            tls=context,
            stats=self.stats,
        )
        try:
            api = SimServer(
                "api",
                self._host,
                self._ports[1],
                PartnerCenter(self),
                tls=context,
                stats=self.stats,
                uncounted_prefix=CONTROL_PREFIX,
            )
        except BaseException:
            identity.server_close()
            raise
        self._urls = (f"https://localhost:{identity.port}", f"https://localhost:{api.port}")
        self._servers = [identity, api]
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

    def _started_urls(self) -> tuple[str, str]:
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
    ) -> str:
        """A user's access token for the gateway's own API (what a caller sends the gateway).

        RS256 with the current signing key; ``aud`` defaults to ``client_id``, ``iss`` to the
        v2.0 issuer of ``tid``; a negative ``expires_in`` gives an expired token; ``mfa`` sets
        ``amr`` to ``["pwd", "mfa"]`` rather than ``["pwd"]``. ``extra_claims`` override.
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
            azp=data.CALLER_APP_ID,
            issuer=issuer,
            expires_in=expires_in,
            extra_claims=extra_claims,
        )

    def app_token(
        self,
        *,
        roles: Sequence[str] = DEFAULT_USER_SCOPES,
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: int = 3600,
        app_id: str | None = None,
    ) -> str:
        """An application caller's token for the gateway's API: ``roles``, no ``scp``,
        ``idtyp`` app, ``oid`` = ``sub`` = the app's service principal id."""
        return self.tokens.app_access_token(
            app_id=app_id or data.CALLER_APP_ID,
            audience=audience or self.client_id,
            roles=roles,
            issuer=issuer,
            expires_in=expires_in,
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

    def reset(self) -> None:
        """Forget pending faults, zero the statistics and forget the webhook registration and
        deliveries (keys, refresh tokens and accepted customers stay)."""
        self.faults.clear()
        self.stats.reset()
        self.webhooks.reset()

    def accept_relationship(self, customer_id: str | None = None, *, indirect: bool = False) -> str:
        """A customer accepts the reseller relationship: it becomes a customer of the partner
        and the registered webhook gets ``reseller-relationship-accepted-by-customer``."""
        return self.webhooks.accept_relationship(customer_id, indirect=indirect)
