"""Python client of the ``/_sim/`` control plane, for a simulator running in another process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from simulator._faults import Fault

_TIMEOUT = 30.0


class SimulatorClient:
    """Drives a simulator through its control plane at ``base_url`` (its Partner Center URL).

    Mirrors the :class:`~simulator.Simulator` methods of the same names.
    """

    def __init__(self, base_url: str, ca_bundle: str) -> None:
        self._base = base_url.rstrip("/") + "/_sim"
        self._session = requests.Session()
        # trust_env off: REQUESTS_CA_BUNDLE (set machine-wide here) would otherwise override
        # ``verify``, and a proxy from the environment must never see local traffic.
        self._session.trust_env = False
        self._session.verify = ca_bundle

    def _call(self, method: str, name: str, body: Any = None) -> Any:
        response = self._session.request(
            method, f"{self._base}/{name}", json=body, timeout=_TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    def faults_add(self, faults: Iterable[Fault]) -> None:
        """Queue ``faults`` (served FIFO among those matching a request)."""
        self._call("POST", "faults", [fault.to_dict() for fault in faults])

    def stats(self) -> dict[str, Any]:
        """The statistics as :meth:`simulator.Stats.as_dict` returns them."""
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def reset(self) -> None:
        """Forget pending faults and zero the statistics."""
        self._call("POST", "reset")

    def user_token(self, **kwargs: Any) -> str:
        """See :meth:`simulator.Simulator.user_token` (``scopes`` as a list)."""
        return str(self._call("POST", "tokens/user", kwargs)["token"])

    def app_token(self, **kwargs: Any) -> str:
        """See :meth:`simulator.Simulator.app_token` (``roles`` as a list)."""
        return str(self._call("POST", "tokens/app", kwargs)["token"])

    def refresh_token_for(self, **kwargs: Any) -> str:
        """See :meth:`simulator.Simulator.refresh_token_for`."""
        return str(self._call("POST", "tokens/refresh", kwargs)["token"])

    def federated_assertion(self) -> str:
        """See :meth:`simulator.Simulator.federated_assertion`."""
        return str(self._call("POST", "tokens/federated")["token"])

    def set_latency(self, *, token: float | None = None, api: float | None = None) -> None:
        """Change the seconds added to token and/or Partner Center requests."""
        self._call("POST", "latency", {"token": token, "api": api})

    def rotate_signing_key(self) -> None:
        """Sign tokens with a new key from now on."""
        self._call("POST", "rotate-signing-key")

    def settings(self) -> dict[str, str]:
        """The gateway's environment for talking to the simulator."""
        result: dict[str, str] = self._call("GET", "settings")
        return result

    def register_webhook(self, url: str, events: list[str], **kwargs: Any) -> dict[str, Any]:
        """See :meth:`simulator._webhooks.WebhookService.register` (also ``retry_delay``)."""
        result: dict[str, Any] = self._call(
            "POST", "webhooks/registration", {"url": url, "events": events, **kwargs}
        )
        return result

    def fire_event(self, event_name: str, **kwargs: Any) -> dict[str, Any]:
        """See :meth:`simulator._webhooks.WebhookService.fire`."""
        result: dict[str, Any] = self._call(
            "POST", "webhooks/events", {"event_name": event_name, **kwargs}
        )
        return result

    def webhook_attempts(self) -> list[dict[str, Any]]:
        """Every webhook delivery attempt so far."""
        return list(self._call("GET", "webhooks/attempts")["attempts"])

    def webhook_pending(self) -> int:
        """Deliveries waiting for their (next) attempt."""
        return int(self._call("GET", "webhooks/attempts")["pending"])

    def accept_relationship(self, customer_id: str | None = None, *, indirect: bool = False) -> str:
        """See :meth:`simulator.Simulator.accept_relationship`."""
        body: dict[str, Any] = {"indirect": indirect}
        if customer_id is not None:
            body["customer_id"] = customer_id
        return str(self._call("POST", "customers/accept-relationship", body)["customerId"])

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
