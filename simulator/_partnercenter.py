"""The Partner Center REST API part of the simulator (and its ``/_sim/`` control plane)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import jwt
from werkzeug.wrappers import Request, Response

from simulator._control import ControlPlane
from simulator._http import apply_fault, guid, is_guid, json_response, pause
from simulator._stats import ApiRequest
from simulator._webhooks import CERTIFICATE_PREFIX
from simulator.data import (
    AGREEMENTS,
    MICROSOFT_CLOUD_AGREEMENT,
    MICROSOFT_CUSTOMER_AGREEMENT,
    PARTNER_CENTER_RESOURCE,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from simulator._core import Simulator

CONTROL_PREFIX = "/_sim/"
_RELATIONSHIP = re.compile(r"/v1/customers/relationshiprequests/?", re.IGNORECASE)
_AGREEMENTS = re.compile(r"/v1/customers/([^/]+)/agreements/?", re.IGNORECASE)
_AGREEMENT_TYPES = {
    t.lower(): t for t in (MICROSOFT_CLOUD_AGREEMENT, MICROSOFT_CUSTOMER_AGREEMENT, "*")
}
# Codes are plausible stand-ins in Partner Center's documented shape, not a published mapping.
_INVALID_INPUT = "600008"
_INVALID_REQUEST = "600001"
_CUSTOMER_NOT_FOUND = "600039"


def pc_error(status: int, code: str, description: str) -> Response:
    """An error in Partner Center's documented shape."""
    return json_response(
        status, {"code": code, "description": description, "data": [], "source": "PartnerFD"}
    )


def _default_error(status: int) -> dict[str, Any]:
    """The body of an API fault that sets a status but no body."""
    return {
        "code": str(status),
        "description": f"Simulated failure with HTTP status {status}.",
        "data": [],
        "source": "PartnerFD",
    }


class PartnerCenter:
    """WSGI application of the Partner Center server."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._control = ControlPlane(sim)
        self._server_id = f"{secrets.randbelow(10**9):09d}"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith(CONTROL_PREFIX):
            response = self._control.handle(request)
        elif request.path.startswith(CERTIFICATE_PREFIX):
            # Partner Center's certificate lives on a storage host, not behind its API.
            response = self._sim.webhooks.serve_certificate(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    def _api(self, request: Request) -> Response:
        sim = self._sim
        status = 0  # stays 0 when a fault drops the connection
        generation = sim.stats.generation
        try:
            pause(sim.stopping, sim.api_latency)
            fault = sim.faults.take("api", request.path)
            if fault is None:
                response = self._handle(request)
            else:
                response = apply_fault(
                    fault,
                    lambda: self._handle(request),
                    stop=sim.stopping,
                    default_body=_default_error,
                )
            response.headers["MS-RequestId"] = request.headers.get("MS-RequestId") or guid()
            response.headers["MS-CorrelationId"] = request.headers.get("MS-CorrelationId") or guid()
            response.headers["MS-CV"] = f"{secrets.token_urlsafe(12)}.0"
            response.headers["MS-ServerId"] = self._server_id
            status = response.status_code
            return response
        finally:
            sim.stats.record_api_request(_record(request, status), generation=generation)

    def _handle(self, request: Request) -> Response:
        if self._sim.webhooks.handles(request.path):
            # Webhook registration takes app-only tokens too.
            denied = self._authorize(request, app_only_allowed=True)
            return denied or self._sim.webhooks.handle(request)
        denied = self._authorize(request)
        if denied is not None:
            return denied
        if request.method not in ("GET", "HEAD"):
            return pc_error(405, "405", f"The method {request.method} is not allowed here.")
        if _RELATIONSHIP.fullmatch(request.path):
            return self._relationship_request(request)
        match = _AGREEMENTS.fullmatch(request.path)
        if match:
            return self._agreements(request, match.group(1))
        return pc_error(404, "404", f"The resource {request.path} was not found.")

    def _authorize(self, request: Request, *, app_only_allowed: bool = False) -> Response | None:
        """App+User (or, where allowed, app-only): a valid Partner Center token; a user's
        sign-in must have used MFA."""
        claims, problem = self._bearer_claims(request)
        if problem is not None:
            return self._unauthorized(problem)
        app_only = claims.get("idtyp") == "app" or "scp" not in claims
        if app_only and app_only_allowed:
            return None
        if app_only:
            return pc_error(
                403,
                "403",
                "This operation supports App+User authentication only; an application-only "
                "(App) token was presented.",
            )
        if "mfa" not in (claims.get("amr") or ()):
            return self._unauthorized(
                "Multi-factor authentication (MFA) is required: the access token's amr claim "
                "does not contain 'mfa'."
            )
        return None

    def _bearer_claims(self, request: Request) -> tuple[dict[str, Any], str | None]:
        """The claims of a valid Partner Center token, or why there are none."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return {}, "The Authorization header is missing or not a bearer token."
        try:
            claims = self._sim.tokens.keys.verify(token.strip())
        except jwt.ExpiredSignatureError:
            return {}, "The access token has expired."
        except jwt.InvalidTokenError as exc:
            return {}, f"The access token is not valid: {exc}."
        if claims.get("aud") != PARTNER_CENTER_RESOURCE:
            aud = claims.get("aud")
            return (
                claims,
                f"The access token's audience '{aud}' is not '{PARTNER_CENTER_RESOURCE}'.",
            )
        return claims, None

    def _unauthorized(self, description: str) -> Response:
        response = pc_error(401, "401", description)
        response.headers["WWW-Authenticate"] = f"OAuth realm=urn:cpsvc:cpid:{self._sim.partner_id}"
        return response

    def _relationship_request(self, request: Request) -> Response:
        url = (
            "https://portal.office.com/partner/partnersignup.aspx?type=ResellerRelationship"
            f"&id={self._sim.partner_id}&csp=1&msppid=0"
        )
        for name, url_name in (
            ("indirectCloudSolutionProviderId", "indirectCSPId"),
            ("indirectResellerId", "indirectResellerId"),
        ):
            value = request.args.get(name)
            if value is None:
                continue
            if not is_guid(value):
                return pc_error(400, _INVALID_INPUT, f"{name} '{value}' is not a valid GUID.")
            url += f"&{url_name}={value}"
        return json_response(200, {"url": url, "attributes": {"objectType": "RelationshipRequest"}})

    def _agreements(self, request: Request, customer_id: str) -> Response:
        if not is_guid(customer_id):
            return pc_error(
                400, _INVALID_INPUT, f"The customer tenant id '{customer_id}' is not a valid GUID."
            )
        requested = request.args.get("agreementType")
        # The documented backward-compatibility default: no type means MicrosoftCloudAgreement.
        agreement_type = (
            MICROSOFT_CLOUD_AGREEMENT
            if requested is None
            else _AGREEMENT_TYPES.get(requested.lower())
        )
        if agreement_type is None:
            return pc_error(
                400,
                _INVALID_REQUEST,
                f"The agreementType '{requested}' is not supported. Supported values: "
                "MicrosoftCloudAgreement, MicrosoftCustomerAgreement, *.",
            )
        agreements = AGREEMENTS.get(str(uuid.UUID(customer_id)))
        if agreements is None and str(uuid.UUID(customer_id)) in self._sim.webhooks.customers:
            agreements = ()  # accepted the relationship (simulator control call), no agreement yet
        if agreements is None:
            return pc_error(
                404,
                _CUSTOMER_NOT_FOUND,
                f"Customer '{customer_id}' was not found for this partner.",
            )
        items = [a.to_json() for a in agreements if agreement_type in ("*", a.type)]
        return json_response(
            200,
            {
                "totalCount": len(items),
                "items": items,
                "links": {
                    "self": {
                        "uri": f"/customers/{customer_id}/agreements"
                        f"?agreementType={agreement_type}",
                        "method": "GET",
                        "headers": [],
                    }
                },
                "attributes": {"objectType": "Collection"},
            },
        )


def _record(request: Request, status: int) -> ApiRequest:
    """What the statistics keep of a request: no bearer token, only who it was for."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    subject: tuple[str, str] | None = None
    scopes: str | None = None
    if "authorization" in headers:
        scheme, _, token = headers["authorization"].partition(" ")
        headers["authorization"] = f"{scheme} <redacted>" if token else "<redacted>"
        try:
            claims = jwt.decode(token.strip(), options={"verify_signature": False})
        except jwt.InvalidTokenError:
            claims = {}
        if "tid" in claims and "oid" in claims:
            subject = (str(claims["tid"]), str(claims["oid"]))
        scp = claims.get("scp")
        scopes = str(scp) if scp is not None else None
    return ApiRequest(
        method=request.method,
        path=request.path,
        query={key: request.args.getlist(key) for key in request.args},
        headers=headers,
        subject=subject,
        scopes=scopes,
        status=status,
    )
