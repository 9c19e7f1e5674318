"""The Partner Center client: the two operations the gateway serves."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from ._config import Settings
from ._errors import InvalidArgumentError
from ._ids import require_guid
from ._models import (
    AgreementCollection,
    AgreementType,
    ModelT,
    RelationshipRequest,
)
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
    RetryPolicy,
    Sleep,
    Transport,
    build_session,
)
from ._webhook_registration import WebhookRegistrationOperations

#: Relationship links kept at most (one per partner tenant and indirect-reseller pair).
MAX_CACHED_LINKS = 1024


@dataclass(frozen=True, slots=True)
class _CachedLink:
    value: RelationshipRequest
    expires_at: float


class PartnerCenterClient(WebhookRegistrationOperations):
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
    ) -> None:
        self.settings = settings
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
        self.tokens: TokenProvider = token_provider or MsalTokenProvider(
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
        )
        self._links: dict[tuple[str, str, str], _CachedLink] = {}
        self._links_lock = threading.Lock()

    @classmethod
    def from_environ(cls) -> PartnerCenterClient:
        """A client configured from the environment (see :class:`Settings`)."""
        return cls(Settings.from_environ())

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

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
        return self._call("GET", model, path, principal, correlation_id, params=params)

    def _partner_tenant(self, principal: Principal) -> str:
        if isinstance(principal, OnBehalfOf):
            return principal.tenant_id.lower()
        assert isinstance(principal, ServiceUser)
        return self.settings.azure_tenant_id.lower()
