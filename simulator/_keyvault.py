"""The Key Vault secrets API part of the simulator (data plane, RBAC, challenge-based auth).

What ``azure-keyvault-secrets`` needs, with Key Vault's behaviour:

- an unauthenticated request gets 401 with ``WWW-Authenticate: Bearer authorization="<authority>",
  resource="https://vault.azure.net"`` (the SDK's first request of a client carries no token and
  no body: it learns the tenant and resource from this challenge, then sends the real request);
- ``PUT /secrets/{name}`` makes a new version; ``GET /secrets/{name}[/{version}]`` reads the latest
  or one version; ``GET /secrets/{name}/versions`` lists them (no values); all need ``api-version``;
- a token whose application has no role on the secret gets 403 ``ForbiddenByRbac``;
- faults with target ``keyvault`` (429 with ``Retry-After``, 503...) replace answers.

Versions, ``created``/``updated`` and ``exp`` follow the simulator's clock (``sim.clock``).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import jwt
from werkzeug.wrappers import Request, Response

from simulator._http import apply_fault, json_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from simulator._core import Simulator

#: The resource Key Vault tokens are for (the challenge names it; tokens carry it as ``aud``).
KEY_VAULT_RESOURCE = "https://vault.azure.net"
#: Roles on a secret: read its value, or also write new versions.
Role = Literal["Key Vault Secrets User", "Key Vault Secrets Officer"]
_READ_ROLES = frozenset({"Key Vault Secrets User", "Key Vault Secrets Officer"})
_WRITE_ROLES = frozenset({"Key Vault Secrets Officer"})
_API_VERSION = re.compile(r"^(7\.[0-6](-preview)?|20\d\d-\d\d-\d\d(-preview)?)$")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


@dataclass
class SecretVersion:
    """One version of a secret."""

    version: str
    value: str = field(repr=False)
    created: int
    expires: int | None
    not_before: int | None
    enabled: bool
    content_type: str | None
    tags: dict[str, str]


def kv_error(status: int, code: str, message: str, inner: str | None = None) -> Response:
    """An error in Key Vault's shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return json_response(status, {"error": error})


def _default_error(status: int) -> dict[str, Any]:
    """The body of a Key Vault fault that sets a status but no body."""
    if status == 429:
        code, message = (
            "Throttled",
            "Request was not processed because too many requests were received. Reason: "
            "VaultRequestTypeLimitReached",
        )
    else:
        code, message = "ServiceUnavailable", f"Simulated failure with HTTP status {status}."
    return {"error": {"code": code, "message": message}}


class KeyVault:
    """WSGI application of the vault, and its Python API for tests (``sim.keyvault``)."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._lock = threading.Lock()
        self._secrets: dict[str, list[SecretVersion]] = {}
        # (application id, secret name or "*") -> role
        self._roles: dict[tuple[str, str], Role] = {}
        self.requests: list[tuple[str, str, int]] = []
        """(method, path, status) of every request, oldest first."""

    # --- Python API for tests ------------------------------------------------------------------

    def grant(self, app_id: str, role: Role, scope: str = "*") -> None:
        """Give an application a role on one secret (``scope`` its name) or the whole vault."""
        with self._lock:
            self._roles[(app_id, scope)] = role

    def revoke(self, app_id: str, scope: str = "*") -> None:
        """Take an application's role on ``scope`` (a secret's name, or ``*``) away."""
        with self._lock:
            self._roles.pop((app_id, scope), None)

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        expires: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SecretVersion:
        """Store a new version directly, as an operator with ``az keyvault secret set`` would."""
        return self._add(name, value, expires=expires, tags=dict(tags or {}))

    def versions(self, name: str) -> list[SecretVersion]:
        """Every version of a secret, oldest first (a copy)."""
        with self._lock:
            return list(self._secrets.get(name, []))

    def latest(self, name: str) -> SecretVersion | None:
        """The newest enabled version of a secret."""
        with self._lock:
            enabled = [v for v in self._secrets.get(name, []) if v.enabled]
        return enabled[-1] if enabled else None

    def clear(self) -> None:
        """Forget every secret and request (roles stay)."""
        with self._lock:
            self._secrets.clear()
            self.requests.clear()

    # --- HTTP ----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        status = 0
        try:
            fault = self._sim.faults.take("keyvault", request.path, request.method)
            if fault is None:
                response = self._handle(request)
            else:
                response = apply_fault(
                    fault,
                    lambda: self._handle(request),
                    stop=self._sim.stopping,
                    default_body=_default_error,
                )
            response.headers["x-ms-request-id"] = str(uuid.uuid4())
            response.headers["x-ms-keyvault-service-version"] = "1.9.0.0"
            status = response.status_code
            return response(environ, start_response)
        finally:
            with self._lock:
                self.requests.append((request.method, request.path, status))

    def _handle(self, request: Request) -> Response:
        app_id = self._authenticate(request)
        if isinstance(app_id, Response):
            return app_id
        version = request.args.get("api-version")
        if version is None or not _API_VERSION.match(version):
            return kv_error(
                400, "BadParameter", "The request URI contains an invalid or missing api-version."
            )
        parts = request.path.strip("/").split("/")
        match parts:
            case ["secrets", name] if request.method == "PUT":
                response = self._put(request, app_id, name)
            case ["secrets", name, "versions"] if request.method == "GET":
                response = self._list_versions(app_id, name)
            case ["secrets", name] | ["secrets", name, ""] if request.method == "GET":
                response = self._get(app_id, name, None)
            case ["secrets", name, version_id] if request.method == "GET":
                response = self._get(app_id, name, version_id)
            case _:
                response = kv_error(
                    405 if parts[:1] == ["secrets"] else 404,
                    "BadParameter",
                    f"The operation {request.method} {request.path} is not supported here.",
                )
        return response

    def _authenticate(self, request: Request) -> str | Response:
        """The calling application's id, or the 401 challenge."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._challenge(
                "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
            )
        try:
            claims = self._sim.tokens.keys.verify(token.strip())
        except jwt.ExpiredSignatureError:
            return self._challenge("Unauthorized", "AKV10022: Invalid audience or token expired.")
        except jwt.InvalidTokenError:
            return self._challenge("Unauthorized", "AKV10032: Invalid issuer or signature.")
        if str(claims.get("aud", "")).rstrip("/") != KEY_VAULT_RESOURCE:
            return self._challenge(
                "Unauthorized",
                f"AKV10022: Invalid audience. Expected {KEY_VAULT_RESOURCE}, found: "
                f"{claims.get('aud')}.",
            )
        if claims.get("tid") != self._sim.tenant_id:
            return self._challenge("Unauthorized", "AKV10032: Invalid issuer (another tenant).")
        return str(claims.get("appid") or claims.get("azp") or "")

    def _challenge(self, code: str, message: str) -> Response:
        response = kv_error(401, code, message)
        authority = f"{self._sim.authority_host}/{self._sim.tenant_id}"
        response.headers["WWW-Authenticate"] = (
            f'Bearer authorization="{authority}", resource="{KEY_VAULT_RESOURCE}"'
        )
        return response

    def _allowed(self, app_id: str, name: str, roles: frozenset[str]) -> bool:
        with self._lock:
            held = [self._roles.get((app_id, name)), self._roles.get((app_id, "*"))]
        return any(role in roles for role in held if role is not None)

    def _forbidden(self, app_id: str, action: str, name: str) -> Response:
        return kv_error(
            403,
            "Forbidden",
            f"Caller is not authorized to perform action on resource. If role assignments were "
            f"recently changed, please wait several minutes for role assignments to become "
            f"effective. Caller: appid={app_id}; Action: "
            f"'Microsoft.KeyVault/vaults/secrets/{action}'; Resource: '/secrets/{name}'",
            inner="ForbiddenByRbac",
        )

    def _put(self, request: Request, app_id: str, name: str) -> Response:
        if not _SECRET_NAME.match(name):
            return kv_error(400, "BadParameter", f"The secret name '{name}' is not valid.")
        if not self._allowed(app_id, name, _WRITE_ROLES):
            return self._forbidden(app_id, "setSecret/action", name)
        try:
            value, attributes, tags, content_type = _secret_body(request.get_data())
        except ValueError as exc:
            return kv_error(400, "BadParameter", str(exc))
        added = self._add(
            name,
            value,
            expires=_int_or_none(attributes.get("exp")),
            not_before=_int_or_none(attributes.get("nbf")),
            enabled=bool(attributes.get("enabled", True)),
            content_type=content_type,
            tags=tags,
        )
        return json_response(200, self._bundle(name, added, with_value=True))

    def _get(self, app_id: str, name: str, version: str | None) -> Response:
        if not self._allowed(app_id, name, _READ_ROLES):
            return self._forbidden(app_id, "getSecret/action", name)
        with self._lock:
            versions = list(self._secrets.get(name, []))
        if version is None:
            enabled = [v for v in versions if v.enabled]
            found = enabled[-1] if enabled else None
        else:
            found = next((v for v in versions if v.version == version), None)
        if found is None:
            which = name if version is None else f"{name}/{version}"
            return kv_error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {which} was not found in this key vault. If you "
                "recently deleted this secret you may be able to recover it using the correct "
                "recovery command.",
            )
        if not found.enabled:
            return kv_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return json_response(200, self._bundle(name, found, with_value=True))

    def _list_versions(self, app_id: str, name: str) -> Response:
        if not self._allowed(app_id, name, _READ_ROLES):
            return self._forbidden(app_id, "readMetadata/action", name)
        with self._lock:
            versions = list(self._secrets.get(name, []))
        items = [self._bundle(name, v, with_value=False) for v in versions]
        return json_response(200, {"value": items, "nextLink": None})

    def _add(
        self,
        name: str,
        value: str,
        *,
        expires: int | None = None,
        not_before: int | None = None,
        enabled: bool = True,
        content_type: str | None = None,
        tags: dict[str, str],
    ) -> SecretVersion:
        added = SecretVersion(
            version=uuid.uuid4().hex,
            value=value,
            created=int(self._sim.clock.time()),
            expires=expires,
            not_before=not_before,
            enabled=enabled,
            content_type=content_type,
            tags=tags,
        )
        with self._lock:
            self._secrets.setdefault(name, []).append(added)
        return added

    def _bundle(self, name: str, secret: SecretVersion, *, with_value: bool) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "enabled": secret.enabled,
            "created": secret.created,
            "updated": secret.created,
            "recoveryLevel": "Recoverable",
            "recoverableDays": 90,
        }
        if secret.expires is not None:
            attributes["exp"] = secret.expires
        if secret.not_before is not None:
            attributes["nbf"] = secret.not_before
        bundle: dict[str, Any] = {
            "id": f"{self._sim.key_vault_url}/secrets/{name}/{secret.version}",
            "attributes": attributes,
            "tags": dict(secret.tags),
        }
        if secret.content_type is not None:
            bundle["contentType"] = secret.content_type
        if with_value:
            bundle["value"] = secret.value
        return bundle


def _secret_body(raw: bytes) -> tuple[str, dict[str, Any], dict[str, str], str | None]:
    """Value, attributes, tags and content type of a set-secret body; ValueError says why not."""
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise ValueError("The request body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise ValueError("Property 'value' is required and must be a string.")
    attributes = body.get("attributes") or {}
    tags = body.get("tags") or {}
    if not isinstance(attributes, dict) or not isinstance(tags, dict):
        raise ValueError("'attributes' and 'tags' must be objects.")
    if len(tags) > 15 or any(not isinstance(v, str) or len(v) > 256 for v in tags.values()):
        raise ValueError("At most 15 tags, each a string of up to 256 characters.")
    content_type = body.get("contentType")
    return (
        body["value"],
        attributes,
        {str(k): str(v) for k, v in tags.items()},
        content_type if isinstance(content_type, str) else None,
    )


def _int_or_none(value: Any) -> int | None:
    """A Unix time attribute (``exp``, ``nbf``); anything else is ignored, as Key Vault does."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None
