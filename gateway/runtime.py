"""The process-wide objects: settings, the Partner Center client and the caller authenticator.

Built on the first request, not at import (import must stay fast and do no network I/O), and
then shared by every request: one connection pool, one token cache.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from partnercenter import PartnerCenterClient, Settings, WallClock, build_session, utc_now

from .auth import CallerAuthenticator
from .logs import register_secret


@dataclass(frozen=True)
class Runtime:
    """What every request needs."""

    settings: Settings
    client: PartnerCenterClient
    authenticator: CallerAuthenticator

    @classmethod
    def from_settings(cls, settings: Settings, *, wall_clock: WallClock = utc_now) -> Runtime:
        """Build the shared objects for ``settings`` (``wall_clock``: what the consent's age and
        expiry are measured against; tests pass a simulated one)."""
        for secret in (settings.azure_client_secret, settings.partner_center_refresh_token):
            if secret is not None:
                register_secret(secret.get_secret_value())
        session = build_session(settings.pool_size, settings.upstream_urls)
        return cls(
            settings=settings,
            client=PartnerCenterClient(settings, session=session, wall_clock=wall_clock),
            authenticator=CallerAuthenticator.for_settings(settings, session),
        )

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The shared runtime, built from the environment on first use.

    Raises :class:`partnercenter.ConfigurationError` (naming the setting) while the
    configuration is incomplete; a later call reads the environment again.
    """
    global _runtime  # noqa: PLW0603 - the one process-wide instance
    runtime = _runtime
    if runtime is not None:
        return runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime.from_settings(Settings.from_environ())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Replace the shared runtime (the local host and tests use this); closes the old one."""
    global _runtime
    with _lock:
        old, _runtime = _runtime, runtime
    if old is not None and old is not runtime:
        old.close()
