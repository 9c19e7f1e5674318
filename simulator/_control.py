"""The ``/_sim/`` control plane: drive a simulator that runs in another process.

Unauthenticated on purpose (the simulator only ever listens locally); its requests are not
counted in the statistics and get neither latency nor faults.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from simulator._faults import Fault
from simulator._http import json_response

if TYPE_CHECKING:
    from simulator._core import Simulator

# Keyword arguments accepted from JSON for each token-minting endpoint.
_USER_TOKEN_ARGS = frozenset(
    {"oid", "tid", "name", "upn", "scopes", "audience", "issuer", "expires_in", "mfa"}
).union({"extra_claims"})
_APP_TOKEN_ARGS = frozenset({"roles", "audience", "issuer", "expires_in", "app_id"})
_REFRESH_TOKEN_ARGS = frozenset({"oid", "tid", "mfa", "expired"})
_LATENCY_ARGS = frozenset({"token", "api"})
_REGISTER_ARGS = frozenset({"url", "events", "ms_signature_header", "retry_delay"})
_FIRE_ARGS = frozenset(
    {
        "event_name",
        "resource_uri",
        "resource_name",
        "audit_uri",
        "changed_at",
        "duplicates",
        "delay",
        "forgery",
    }
)
_ACCEPT_ARGS = frozenset({"customer_id", "indirect"})


class ControlPlane:
    """Routes ``/_sim/*`` requests to the simulator's Python API."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._routes: dict[tuple[str, str], Callable[[Any], Any]] = {
            ("POST", "faults"): self._faults,
            ("GET", "stats"): lambda _: sim.stats.as_dict(),
            ("POST", "reset"): lambda _: sim.reset(),
            ("POST", "tokens/user"): lambda body: {
                "token": sim.user_token(**_kwargs(body, _USER_TOKEN_ARGS))
            },
            ("POST", "tokens/app"): lambda body: {
                "token": sim.app_token(**_kwargs(body, _APP_TOKEN_ARGS))
            },
            ("POST", "tokens/refresh"): lambda body: {
                "token": sim.refresh_token_for(**_kwargs(body, _REFRESH_TOKEN_ARGS))
            },
            ("POST", "tokens/federated"): lambda _: {"token": sim.federated_assertion()},
            ("POST", "latency"): lambda body: sim.set_latency(**_kwargs(body, _LATENCY_ARGS)),
            ("POST", "rotate-signing-key"): lambda _: sim.rotate_signing_key(),
            ("GET", "settings"): lambda _: sim.settings(),
            ("POST", "webhooks/registration"): self._register,
            ("POST", "webhooks/events"): lambda body: sim.webhooks.fire(
                **_kwargs(body, _FIRE_ARGS)
            ),
            ("GET", "webhooks/attempts"): lambda _: {
                "attempts": sim.webhooks.attempts(),
                "pending": sim.webhooks.pending(),
            },
            ("POST", "customers/accept-relationship"): lambda body: {
                "customerId": sim.accept_relationship(**_kwargs(body, _ACCEPT_ARGS))
            },
        }

    def handle(self, request: Request) -> Response:
        """Answer one control request with JSON (``{}`` when the action returns nothing)."""
        name = request.path.removeprefix("/_sim/").strip("/")
        route = self._routes.get((request.method, name))
        if route is None:
            return json_response(404, {"error": f"no control endpoint {request.method} {name}"})
        try:
            body = json.loads(request.get_data() or b"null")
            result = route(body)
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {} if result is None else result)

    def _faults(self, body: Any) -> dict[str, int]:
        if not isinstance(body, list):
            raise ValueError("POST /_sim/faults expects a JSON list of faults")
        faults = [Fault.from_dict(item) for item in body]
        self._sim.faults.add(*faults)
        return {"added": len(faults)}

    def _register(self, body: Any) -> dict[str, Any]:
        args = _kwargs(body, _REGISTER_ARGS)
        if "retry_delay" in args:
            self._sim.webhooks.retry_delay = float(args.pop("retry_delay"))
        return self._sim.webhooks.register(**args)


def _kwargs(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """``body`` as keyword arguments, refusing anything but a JSON object of known names."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown arguments: {sorted(unknown)}")
    return body
