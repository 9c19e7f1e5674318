"""The Entra ID (v2.0 endpoint) part of the simulator: discovery, JWKS and the token endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jwt
from werkzeug.wrappers import Request, Response

from simulator._faults import aad_error_body
from simulator._http import apply_fault, guid, is_guid, json_response, pause
from simulator._tokens import FEDERATION_AUDIENCE, UserIdentity

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from simulator._core import Simulator

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Entra ID's authorization codes live about 10 minutes.
AUTH_CODE_LIFETIME = 600.0
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


class TokenError(Exception):
    """An OAuth error answer of the token endpoint."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description


def grant_name(form: Mapping[str, str]) -> str:
    """The statistics key of a token request."""
    grant = form.get("grant_type") or "unknown"
    if grant == JWT_BEARER_GRANT and form.get("requested_token_use") == "on_behalf_of":
        return "on_behalf_of"
    return grant


def _default_error(status: int) -> dict[str, Any]:
    """The body of a token fault that sets a status but no body."""
    if status >= 500:
        return aad_error_body(
            "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."
        )
    return aad_error_body("invalid_request", 9002313, "Invalid request.")


def _resource_scopes(scope: str) -> tuple[str, list[str]]:
    """Split a v2.0 ``scope`` into the one resource it names and the permissions on it."""
    wanted = [s for s in scope.split() if s not in _OIDC_SCOPES]
    resources = {s.rsplit("/", 1)[0] for s in wanted if "/" in s}
    if not wanted or len(resources) != 1 or any("/" not in s for s in wanted):
        raise TokenError(
            400,
            "invalid_scope",
            70011,
            "The provided request must include a 'scope' input parameter naming exactly one "
            f"resource. The provided value for the input parameter 'scope' is not valid: {scope}.",
        )
    return resources.pop(), [s.rsplit("/", 1)[1] for s in wanted]


@dataclass
class _AuthCode:
    """An authorization code and what it was issued for."""

    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    nonce: str | None
    identity: UserIdentity
    issued: float
    used: bool = False


def _is_loopback_redirect(uri: str) -> bool:
    """Entra ID lets a localhost redirect URI take any port: ``http://localhost[:port][/path]``."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a code verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class IdentityProvider:
    """WSGI application of the identity server."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._codes: dict[str, _AuthCode] = {}
        self._codes_lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        match parts:
            case [tenant, "v2.0", ".well-known", "openid-configuration"]:
                return self._with_fault("discovery", request, lambda: self._discovery(tenant))
            case [tenant, "discovery", "v2.0", "keys"] | [tenant, "discovery", "keys"]:
                return self._with_fault("jwks", request, lambda: self._jwks(tenant))
            case [tenant, "oauth2", "v2.0", "authorize"]:
                return self._authorize(request, tenant)
            case [tenant, "oauth2", "v2.0", "token"]:
                if request.method != "POST":
                    return json_response(405, {"error": "invalid_request"})
                return self._token(request, tenant)
        return json_response(404, {"error": "not_found", "error_description": request.path})

    def _with_fault(self, target: str, request: Request, real: Callable[[], Response]) -> Response:
        fault = self._sim.faults.take(target, request.path)
        if fault is None:
            return real()
        return apply_fault(fault, real, stop=self._sim.stopping, default_body=_default_error)

    def _unknown_tenant(self, tenant: str) -> Response:
        return json_response(
            400,
            aad_error_body(
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            ),
        )

    def _discovery(self, tenant: str) -> Response:
        if not is_guid(tenant):
            return self._unknown_tenant(tenant)
        base = f"{self._sim.authority_host}/{tenant}"
        return json_response(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nbf",
                    "name",
                    "oid",
                    "tid",
                    "preferred_username",
                    "ver",
                ],
                "request_uri_parameter_supported": False,
                "tenant_region_scope": "EU",
                "cloud_instance_name": "localhost",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def _jwks(self, tenant: str) -> Response:
        if not is_guid(tenant):
            return self._unknown_tenant(tenant)
        return json_response(200, self._sim.tokens.keys.jwks())

    def _token(self, request: Request, tenant: str) -> Response:
        sim = self._sim
        sim.stats.count_token_request(grant_name(request.form))
        pause(sim.stopping, sim.token_latency)
        correlation_id = request.headers.get("client-request-id") or guid()
        response = self._with_fault(
            "token", request, lambda: self._token_real(request, tenant, correlation_id)
        )
        response.headers["Cache-Control"] = "no-store, no-cache"
        response.headers["Pragma"] = "no-cache"
        response.headers["x-ms-request-id"] = guid()
        response.headers["client-request-id"] = correlation_id
        return response

    def _token_real(self, request: Request, tenant: str, correlation_id: str) -> Response:
        try:
            if not is_guid(tenant):
                return self._unknown_tenant(tenant)
            self._authenticate(request, tenant)
            form = request.form
            grant = grant_name(form)
            if grant == "client_credentials":
                body = self._client_credentials(form, tenant)
            elif grant == "on_behalf_of":
                body = self._on_behalf_of(form)
            elif grant == "refresh_token":
                body = self._refresh(form)
            elif grant == "authorization_code":
                body = self._authorization_code(form)
            else:
                raise TokenError(
                    400,
                    "unsupported_grant_type",
                    70003,
                    f"The app requested an unsupported grant type '{form.get('grant_type')}'.",
                )
        except TokenError as exc:
            return json_response(
                exc.status, aad_error_body(exc.error, exc.aadsts, exc.description, correlation_id)
            )
        return json_response(200, body)

    def _authenticate(self, request: Request, tenant: str) -> None:
        """Check the client credential: secret, certificate assertion or federated assertion."""
        sim = self._sim
        form = request.form
        basic = request.authorization if request.authorization else None
        client_id = form.get("client_id") or (basic.username if basic else None)
        if client_id != sim.client_id:
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'.",
            )
        secret = form.get("client_secret") or (basic.password if basic else None)
        assertion = form.get("client_assertion")
        if secret is not None:
            if not hmac.compare_digest(secret.encode(), sim.client_secret.encode()):
                raise TokenError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{sim.client_id}'.",
                )
        elif assertion:
            if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
                raise TokenError(
                    401,
                    "invalid_client",
                    7000216,
                    "'client_assertion_type' must be "
                    f"'{JWT_BEARER_ASSERTION}' when a 'client_assertion' is sent.",
                )
            self._check_assertion(assertion, tenant)
        else:
            raise TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )

    def _check_assertion(self, assertion: str, tenant: str) -> None:
        sim = self._sim
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            if unverified.get("aud") == FEDERATION_AUDIENCE:
                claims = sim.tokens.keys.verify(assertion)
                if claims.get("iss") != sim.tokens.issuer(sim.tenant_id):
                    raise jwt.InvalidIssuerError("unexpected issuer")
                if claims.get("sub") != sim.managed_identity_client_id:
                    raise TokenError(
                        401,
                        "invalid_client",
                        700213,
                        "No matching federated identity record found for presented assertion "
                        f"subject '{claims.get('sub')}'.",
                    )
            else:
                endpoint = f"{sim.authority_host}/{tenant}/oauth2"
                sim.client_certificate.verify_assertion(
                    assertion,
                    audience=[f"{endpoint}/v2.0/token", f"{endpoint}/token"],
                    client_id=sim.client_id,
                )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation. [Reason - {exc}]",
            ) from exc

    def _client_credentials(self, form: Mapping[str, str], tenant: str) -> dict[str, Any]:
        scope = form.get("scope", "")
        resource, permissions = _resource_scopes(scope)
        if permissions != [".default"]:
            raise TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        token = self._sim.tokens.app_access_token(
            app_id=self._sim.client_id, audience=resource, tid=tenant
        )
        lifetime = self._sim.tokens.lifetime
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    def _on_behalf_of(self, form: Mapping[str, str]) -> dict[str, Any]:
        sim = self._sim
        assertion = form.get("assertion")
        if not assertion:
            raise TokenError(
                400,
                "invalid_request",
                90014,
                "The required field 'assertion' is missing from the credential.",
            )
        try:
            claims = sim.tokens.keys.verify(assertion)
        except jwt.ExpiredSignatureError as exc:
            raise TokenError(
                400,
                "invalid_grant",
                500133,
                "Assertion is not within its valid time range. Ensure that the access token is "
                "not expired before using it for user assertion, or request a new token.",
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(
                400,
                "invalid_grant",
                50013,
                f"Assertion failed signature validation. [Reason - {exc}]",
            ) from exc
        expected = (sim.client_id, f"api://{sim.client_id}")
        if claims.get("aud") not in expected:
            raise TokenError(
                400,
                "invalid_grant",
                50013,
                "Assertion audience does not match the Client app presenting the assertion. The "
                f"audience in the assertion was '{claims.get('aud')}' and the expected audience "
                f"is '{sim.client_id}' or one of the Application Uris of this application.",
            )
        if claims.get("idtyp") == "app" or "scp" not in claims or "oid" not in claims:
            raise TokenError(
                400,
                "invalid_grant",
                50013,
                "Assertion is not a delegated user token: on-behalf-of needs the user's token.",
            )
        identity = UserIdentity.from_claims(claims)
        if sim.require_mfa and "mfa" not in identity.amr:
            resource, _ = _resource_scopes(form.get("scope", ""))
            raise TokenError(
                400,
                "invalid_grant",
                50076,
                "Due to a configuration change made by your administrator, or because you moved "
                "to a new location, you must use multi-factor authentication to access "
                f"'{resource}'.",
            )
        return self._user_response(form, identity)

    def _refresh(self, form: Mapping[str, str]) -> dict[str, Any]:
        tokens = self._sim.tokens
        token = form.get("refresh_token", "")
        identity = tokens.redeem(token)
        if identity is None:
            issued = tokens.refresh_token_issued_at(token) or tokens.clock.time() - 91 * 86400
            when = datetime.fromtimestamp(issued, UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
            raise TokenError(
                400,
                "invalid_grant",
                700082,
                f"The refresh token has expired due to inactivity. The token was issued on {when} "
                "and was inactive for 90.00:00:00.",
            )
        return self._user_response(form, identity)

    # --- authorization-code flow with PKCE (the consent of the service user) -------------------

    def _authorize(self, request: Request, tenant: str) -> Response:
        """The sign-in page: the simulator's browser user is signed in already, so it redirects
        straight back with a code (or an OAuth error), as Entra ID does after a sign-in."""
        sim = self._sim
        args = request.args
        if request.method != "GET":
            return json_response(405, {"error": "invalid_request"})
        if not is_guid(tenant):
            return self._unknown_tenant(tenant)
        if args.get("client_id") != sim.client_id:
            return json_response(
                400,
                aad_error_body(
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{args.get('client_id')}' was not found in the "
                    f"directory '{tenant}'.",
                ),
            )
        redirect_uri = args.get("redirect_uri", "")
        if not _is_loopback_redirect(redirect_uri):
            # Never redirect to an unregistered URI: the error is shown on the sign-in page.
            return json_response(
                400,
                aad_error_body(
                    "invalid_request",
                    50011,
                    f"The redirect URI '{redirect_uri}' specified in the request does not match "
                    f"the redirect URIs configured for the application '{sim.client_id}'.",
                ),
            )
        state = args.get("state")
        error: tuple[str, str] | None = None
        scope = args.get("scope", "")
        try:
            _resource_scopes(scope)
        except TokenError as exc:
            error = ("invalid_scope", f"AADSTS{exc.aadsts}: {exc.description}")
        if args.get("response_type") != "code":
            error = ("unsupported_response_type", "AADSTS700054: response_type must be 'code'.")
        elif not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
            error = (
                "invalid_request",
                "AADSTS9002325: Proof Key for Code Exchange is required: send code_challenge "
                "with code_challenge_method S256.",
            )
        params: dict[str, str] = {}
        if error is not None:
            params = {"error": error[0], "error_description": error[1]}
        else:
            code = secrets.token_urlsafe(48)
            with self._codes_lock:
                self._codes[code] = _AuthCode(
                    client_id=sim.client_id,
                    redirect_uri=redirect_uri,
                    scope=scope,
                    code_challenge=args["code_challenge"],
                    nonce=args.get("nonce"),
                    identity=sim.browser_user,
                    issued=time.monotonic(),
                )
            params = {"code": code, "session_state": guid()}
        if state is not None:
            params["state"] = state
        if args.get("response_mode") == "form_post":
            # As Entra ID does: a page whose form the browser posts to the redirect URI at once.
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
                for k, v in params.items()
            )
            page = (
                "<html><head><title>Working...</title></head><body onload="
                '"document.forms[0].submit()"><form method="POST" name="hiddenform" action="'
                f'{html.escape(redirect_uri)}">{fields}<noscript><input type="submit" '
                'value="Continue"/></noscript></form></body></html>'
            )
            return Response(page, status=200, content_type="text/html; charset=utf-8")
        separator = "&" if "?" in redirect_uri else "?"
        response = Response(status=302)
        response.headers["Location"] = f"{redirect_uri}{separator}{urlencode(params)}"
        return response

    def _authorization_code(self, form: Mapping[str, str]) -> dict[str, Any]:
        with self._codes_lock:
            grant = self._codes.get(form.get("code", ""))
            first_use = grant is not None and not grant.used
            if grant is not None:
                grant.used = True
        if grant is None:
            raise TokenError(
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid: the authorization code is not "
                "valid.",
            )
        if not first_use:
            raise TokenError(
                400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
            )
        if time.monotonic() - grant.issued > AUTH_CODE_LIFETIME:
            raise TokenError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity.",
            )
        if form.get("redirect_uri") != grant.redirect_uri:
            raise TokenError(
                400,
                "invalid_grant",
                50148,
                "The redirect URI of the token request does not match the one of the "
                "authorization request.",
            )
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(s256(verifier), grant.code_challenge):
            raise TokenError(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the "
                "authorization request.",
            )
        return self._user_response(form, grant.identity, nonce=grant.nonce)

    def _user_response(
        self, form: Mapping[str, str], identity: UserIdentity, *, nonce: str | None = None
    ) -> dict[str, Any]:
        """A delegated token response; like Entra ID, the ID token needs ``openid`` and
        ``client_info`` needs ``client_info=1`` (MSAL always asks for both)."""
        sim = self._sim
        scope = form.get("scope", "")
        resource, permissions = _resource_scopes(scope)
        # .default means "what was consented": for these APIs that is user_impersonation.
        granted = ["user_impersonation" if p == ".default" else p for p in permissions]
        lifetime = sim.tokens.lifetime
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(f"{resource}/{p}" for p in granted),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": sim.tokens.user_access_token(
                identity, audience=resource, scp=" ".join(granted), azp=sim.client_id
            ),
            "refresh_token": sim.tokens.new_refresh_token(identity),
        }
        if "openid" in scope.split():
            body["id_token"] = sim.tokens.id_token(identity, nonce=nonce)
        if form.get("client_info") == "1":
            info = json.dumps({"uid": identity.oid, "utid": identity.tid}).encode()
            body["client_info"] = base64.urlsafe_b64encode(info).rstrip(b"=").decode("ascii")
        return body
