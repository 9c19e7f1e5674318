"""The Partner Center client: the two operations the gateway serves."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msal
import requests

from ._config import Settings
from ._errors import (
    CallerMfaClaimMissingError,
    InvalidArgumentError,
    MfaClaimMissingError,
    ServiceUserMfaClaimMissingError,
)
from ._ids import is_guid, new_guid, require_guid
from ._models import (
    AgreementCollection,
    AgreementType,
    ModelT,
    RelationshipRequest,
    parse_body,
)
from ._refresh_token_store import (
    ConsentState,
    ConsentStatus,
    ServiceUserConsent,
    WallClock,
    refresh_token_store,
    utc_now,
)
from ._rotation import MIN_ROTATION_INTERVAL, RotationResult, rotate_refresh_token
from ._tokens import (
    IdentityHttpClient,
    MsalTokenProvider,
    OnBehalfOf,
    Principal,
    ServiceUser,
    TokenProvider,
)
from ._transport import (
    Clock,
    Deadline,
    RetryPolicy,
    Sleep,
    Transport,
    build_session,
    deadline_scope,
)

#: Relationship links kept at most (one per partner tenant and indirect-reseller pair).
MAX_CACHED_LINKS = 1024


@dataclass(frozen=True, slots=True)
class _CachedLink:
    value: RelationshipRequest
    expires_at: float


class PartnerCenterClient:
    """Partner Center operations on behalf of a user (or the configured service user).

    One instance per process: it owns the connection pool and the token cache. Thread-safe.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        token_provider: TokenProvider | None = None,
        client_assertion: Callable[[], str] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        rng: Callable[[], float] = random.random,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self.settings = settings
        self.consent = ServiceUserConsent(refresh_token_store(settings), wall_clock=wall_clock)
        """The service user's refresh-token store and the state of its consent."""
        self._session = session or build_session(settings.pool_size, settings.upstream_urls)
        self._clock = clock
        policy = RetryPolicy(max_attempts=settings.partner_center_max_attempts)
        self._transport = Transport(
            self._session,
            settings.partner_center_api_url,
            locale=settings.partner_center_locale,
            application_name=settings.partner_center_application_name,
            policy=policy,
            clock=clock,
            sleep=sleep,
            rng=rng,
        )
        self._msal = MsalTokenProvider(
            settings,
            IdentityHttpClient(
                self._session,
                policy=policy,
                default_deadline=settings.partner_center_deadline_seconds,
                clock=clock,
                sleep=sleep,
            ),
            session=self._session,
            clock=clock,
            client_assertion=client_assertion,
            consent=self.consent,
        )
        self.tokens: TokenProvider = token_provider or self._msal
        self._links: dict[tuple[str, str, str], _CachedLink] = {}
        self._links_lock = threading.Lock()

    @classmethod
    def from_environ(cls) -> PartnerCenterClient:
        """A client configured from the environment (see :class:`Settings`)."""
        return cls(Settings.from_environ())

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def consent_application(self) -> msal.ConfidentialClientApplication:
        """The MSAL client the service user's consent (authorization-code flow) runs with."""
        return self._msal.client_application("consent")

    def consent_status(self) -> ConsentStatus:
        """The service user's consent (``ok``, ``expiring``, ``expired``, ``no-mfa``,
        ``missing`` or ``unknown``) and when its stored token expires; quick, never raises."""
        return self.consent.status()

    def rotate_service_user_consent(
        self, *, min_interval: timedelta = MIN_ROTATION_INTERVAL
    ) -> RotationResult:
        """Redeem the stored refresh token and store the new one as a new Key Vault version
        (see :func:`rotate_refresh_token`); a no-op when the latest version is recent."""
        deadline = Deadline(self.settings.partner_center_deadline_seconds, self._clock)
        with deadline_scope(deadline):
            return rotate_refresh_token(
                self.consent,
                self._msal.redeem_for_rotation,
                timeout=deadline.remaining(),
                min_interval=min_interval,
            )

    def get_relationship_request(
        self,
        principal: Principal,
        *,
        indirect_reseller_id: str | None = None,
        indirect_csp_id: str | None = None,
        correlation_id: str | None = None,
    ) -> RelationshipRequest:
        """The link that asks a customer to accept a reseller relationship with this partner.

        The link is fixed per partner tenant, so it is cached for
        ``RELATIONSHIP_REQUEST_CACHE_SECONDS`` per partner tenant and indirect ids.
        """
        params: dict[str, str] = {}
        if indirect_reseller_id is not None:
            params["indirectResellerId"] = require_guid(indirect_reseller_id, "indirectResellerId")
        if indirect_csp_id is not None:
            params["indirectCloudSolutionProviderId"] = require_guid(
                indirect_csp_id, "indirectCloudSolutionProviderId"
            )
        key = (
            self._partner_tenant(principal),
            params.get("indirectResellerId", ""),
            params.get("indirectCloudSolutionProviderId", ""),
        )
        ttl = self.settings.relationship_request_cache_seconds
        if ttl > 0:
            cached = self._links.get(key)
            if cached is not None and self._clock() < cached.expires_at:
                return cached.value
        link = self._get(
            RelationshipRequest,
            "/v1/customers/relationshiprequests",
            params,
            principal,
            correlation_id,
        )
        if ttl > 0:
            with self._links_lock:
                if len(self._links) >= MAX_CACHED_LINKS:  # indirect ids come from callers
                    self._links.pop(next(iter(self._links)))
                self._links[key] = _CachedLink(link, self._clock() + ttl)
        return link

    def list_customer_agreements(
        self,
        principal: Principal,
        customer_id: str,
        agreement_type: AgreementType | str = AgreementType.ALL,
        *,
        correlation_id: str | None = None,
    ) -> AgreementCollection:
        """A customer's agreement confirmations of ``agreement_type`` (all types by default).

        The type is always sent: without it Partner Center returns only MicrosoftCloudAgreement.
        """
        customer = require_guid(customer_id, "customerId")
        try:
            kind = AgreementType(agreement_type)
        except ValueError:
            allowed = ", ".join(t.value for t in AgreementType)
            raise InvalidArgumentError(
                f"agreementType must be one of {allowed}.", argument="agreementType"
            ) from None
        return self._get(
            AgreementCollection,
            f"/v1/customers/{customer}/agreements",
            {"agreementType": kind.value},
            principal,
            correlation_id,
        )

    def _get(
        self,
        model: type[ModelT],
        path: str,
        params: dict[str, str],
        principal: Principal,
        correlation_id: str | None,
    ) -> ModelT:
        if correlation_id is None:
            correlation_id = new_guid()
        elif not is_guid(correlation_id):
            raise InvalidArgumentError("correlation_id must be a GUID.", argument="correlation_id")
        deadline = Deadline(self.settings.partner_center_deadline_seconds, self._clock)
        with deadline_scope(deadline):
            token = self.tokens.get_token(principal, deadline)
            try:
                response, request_id = self._transport.get(
                    path,
                    params=params,
                    token=token,
                    correlation_id=correlation_id,
                    deadline=deadline,
                )
            except MfaClaimMissingError as err:
                raise self._mfa_refusal(principal, err) from err
        return parse_body(
            model,
            response.content,
            status=response.status_code,
            request_id=request_id,
            correlation_id=correlation_id,
        )

    def _mfa_refusal(self, principal: Principal, err: MfaClaimMissingError) -> MfaClaimMissingError:
        """Say whose sign-in lacks MFA: the caller's, or the service user's consent."""
        fields: dict[str, Any] = {
            "status": err.status,
            "code": err.code,
            "description": err.description,
            "request_id": err.request_id,
            "correlation_id": err.correlation_id,
        }
        if isinstance(principal, ServiceUser):
            self.consent.record_refusal(ConsentState.NO_MFA)
            return ServiceUserMfaClaimMissingError(
                "Partner Center refused the service user's token: its consent was given without "
                "multi-factor authentication.",
                **fields,
            )
        return CallerMfaClaimMissingError(
            "Partner Center refused the caller's token: the caller did not sign in with "
            "multi-factor authentication.",
            **fields,
        )

    def _partner_tenant(self, principal: Principal) -> str:
        if isinstance(principal, OnBehalfOf):
            return principal.tenant_id.lower()
        assert isinstance(principal, ServiceUser)
        return self.settings.azure_tenant_id.lower()
