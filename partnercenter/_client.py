"""The Partner Center client: the operations the gateway serves."""

from __future__ import annotations

import contextvars
import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msal
import requests

from ._config import Settings
from ._errors import (
    ApiError,
    BadResponseError,
    CallerMfaClaimMissingError,
    IndirectResellerError,
    InvalidArgumentError,
    MfaClaimMissingError,
    ServiceUserMfaClaimMissingError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ._ids import is_guid, new_guid, require_guid
from ._mca import (
    MCA,
    AgreementAttestation,
    McaStatus,
    TemplateCache,
    attestation_body,
    current_template,
    is_already_exists,
    is_indirect_reseller_refusal,
    is_template_rejected,
    matching_attestation,
    mca_status_of,
    resolve_date_agreed,
    validated_contact,
)
from ._models import (
    Agreement,
    AgreementCollection,
    AgreementMetadataCollection,
    AgreementType,
    DirectSignedMcaStatus,
    ModelT,
    PrimaryContact,
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
    principal_key,
)
from ._transport import (
    Clock,
    Deadline,
    RetryPolicy,
    Sleep,
    Transport,
    build_session,
    deadline_scope,
    logger,
)
from ._webhook_registration import WebhookRegistrationOperations

#: Relationship links kept at most (one per caller token, or the service user, and indirect ids).
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
        wall_clock: WallClock = utc_now,
    ) -> None:
        self.settings = settings
        self._now = wall_clock
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
        self._links: dict[tuple[str, ...], _CachedLink] = {}
        self._links_lock = threading.Lock()
        self._templates = TemplateCache()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_environ(cls) -> PartnerCenterClient:
        """A client configured from the environment (see :class:`Settings`)."""
        return cls(Settings.from_environ())

    def close(self) -> None:
        """Close the pooled connections and stop the worker threads."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
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
        dual_role_indirect_relationship: bool | None = None,
        correlation_id: str | None = None,
    ) -> RelationshipRequest:
        """The link that asks a customer to accept a reseller relationship with this partner.

        ``dual_role_indirect_relationship`` is for partners that are both direct and indirect.
        It is cached for ``RELATIONSHIP_REQUEST_CACHE_SECONDS``, but only for the credentials it
        was fetched with (the caller's own token, or the service user) and the same
        parameters: Partner Center decides who may read it, so a link it gave one caller is never
        handed to another caller it might refuse.
        """
        params: dict[str, str] = {}
        if indirect_reseller_id is not None:
            params["indirectResellerId"] = require_guid(indirect_reseller_id, "indirectResellerId")
        if indirect_csp_id is not None:
            params["indirectCloudSolutionProviderId"] = require_guid(
                indirect_csp_id, "indirectCloudSolutionProviderId"
            )
        if dual_role_indirect_relationship is not None:
            params["dualRoleIndirectRelationship"] = str(dual_role_indirect_relationship).lower()
        key = (
            *principal_key(principal),
            params.get("indirectResellerId", ""),
            params.get("indirectCloudSolutionProviderId", ""),
            params.get("dualRoleIndirectRelationship", ""),
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
        kind = _agreement_type(agreement_type)
        return self._get(
            AgreementCollection,
            _agreements_path(customer),
            {"agreementType": kind.value},
            principal,
            correlation_id,
        )

    def list_agreement_metadata(
        self,
        principal: Principal,
        agreement_type: AgreementType | str = AgreementType.MICROSOFT_CUSTOMER_AGREEMENT,
        *,
        correlation_id: str | None = None,
    ) -> AgreementMetadataCollection:
        """The agreement templates Partner Center offers (``GET /v1/agreements``), of one type."""
        kind = _agreement_type(agreement_type)
        return self._get(
            AgreementMetadataCollection,
            "/v1/agreements",
            {"agreementType": kind.value},
            principal,
            correlation_id,
        )

    def get_direct_signed_mca_status(
        self, principal: Principal, customer_id: str, *, correlation_id: str | None = None
    ) -> DirectSignedMcaStatus:
        """Whether the customer signed the MCA directly with Microsoft (not in its agreements)."""
        customer = require_guid(customer_id, "customerId")
        return self._get(
            DirectSignedMcaStatus,
            _direct_signed_path(customer),
            {},
            principal,
            correlation_id,
        )

    def get_mca_status(
        self, principal: Principal, customer_id: str, *, correlation_id: str | None = None
    ) -> McaStatus:
        """Whether the customer accepted the MCA: attested by a partner or signed directly.

        The customer's MCA confirmations and its direct-signing status are read concurrently,
        within one deadline; if either read fails, that failure is raised (the agreements read's
        first, when both fail), never a partial answer.
        """
        customer = require_guid(customer_id, "customerId")
        correlation_id, deadline = self._begin(correlation_id)
        with self._authorized(principal, deadline) as token:
            direct: Future[DirectSignedMcaStatus] = self._executor().submit(
                contextvars.copy_context().run,
                functools.partial(
                    self._fetch,
                    DirectSignedMcaStatus,
                    _direct_signed_path(customer),
                    {},
                    token=token,
                    correlation_id=correlation_id,
                    deadline=deadline,
                ),
            )
            try:
                agreements = self._fetch(
                    AgreementCollection,
                    _agreements_path(customer),
                    {"agreementType": MCA},
                    token=token,
                    correlation_id=correlation_id,
                    deadline=deadline,
                )
                # The read itself gives up at the deadline; the margin only covers its return.
                signed = direct.result(timeout=deadline.remaining() + 1.0)
            except TimeoutError:
                raise UpstreamTimeoutError(
                    "Partner Center did not answer the direct-signing read within the deadline.",
                    correlation_id=correlation_id,
                ) from None
            finally:
                direct.cancel()
        return mca_status_of(customer, agreements.items, signed.is_signed)

    def create_customer_agreement(
        self,
        principal: Principal,
        customer_id: str,
        primary_contact: PrimaryContact,
        *,
        date_agreed: datetime | None = None,
        correlation_id: str | None = None,
    ) -> AgreementAttestation:
        """Attest that the customer accepted the MCA (``POST /v1/customers/{id}/agreements``).

        ``date_agreed`` defaults to now (UTC); an offset is converted to UTC; a date in the future
        (beyond a small clock skew) is refused before any call. The template id is looked up once
        per partner tenant and looked up again once if Partner Center rejects it.

        Idempotent: an attestation that already exists (Partner Center's 600061) is returned,
        read back from the customer's agreements, with ``created`` False. The POST is retried
        after a lost answer with the same ``MS-RequestId``; a 600061 then means the lost attempt
        (or an earlier call) recorded it, and ``created`` is True when the recorded attestation is
        this one (same contact and date).
        """
        customer = require_guid(customer_id, "customerId")
        contact = validated_contact(primary_contact)
        when = resolve_date_agreed(date_agreed, self._now())
        correlation_id, deadline = self._begin(correlation_id)
        tenant = self._partner_tenant(principal)
        with self._authorized(principal, deadline) as token:

            def load_template() -> str:
                return self._current_template(token, correlation_id, deadline)

            template = self._templates.get(tenant, load_template)
            attest = _Attestation(self, customer, contact, when, token, correlation_id, deadline)
            try:
                return attest.post(template)
            except ApiError as err:
                if not is_template_rejected(err, template):
                    raise
                fresh = self._templates.refresh(tenant, template, load_template)
                if fresh == template:
                    raise
                return attest.post(fresh)

    def _current_template(self, token: str, correlation_id: str, deadline: Deadline) -> str:
        metadata = self._fetch(
            AgreementMetadataCollection,
            "/v1/agreements",
            {"agreementType": MCA},
            token=token,
            correlation_id=correlation_id,
            deadline=deadline,
        )
        template = current_template(metadata.items)
        if template is None:
            raise BadResponseError(
                "Partner Center lists no Microsoft Customer Agreement template to attest with.",
                status=200,
                correlation_id=correlation_id,
            )
        return template.template_id

    def _executor(self) -> ThreadPoolExecutor:
        # As many workers as pooled connections: concurrent status calls never queue for a thread.
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.pool_size, thread_name_prefix="partnercenter"
                )
            return self._pool

    def _begin(self, correlation_id: str | None) -> tuple[str, Deadline]:
        """The call's correlation id (checked, or new) and its deadline."""
        if correlation_id is None:
            correlation_id = new_guid()
        elif not is_guid(correlation_id):
            raise InvalidArgumentError("correlation_id must be a GUID.", argument="correlation_id")
        return correlation_id, Deadline(self.settings.partner_center_deadline_seconds, self._clock)

    def _get(
        self,
        model: type[ModelT],
        path: str,
        params: dict[str, str],
        principal: Principal,
        correlation_id: str | None,
    ) -> ModelT:
        correlation_id, deadline = self._begin(correlation_id)
        with self._authorized(principal, deadline) as token:
            return self._fetch(
                model, path, params, token=token, correlation_id=correlation_id, deadline=deadline
            )

    def _fetch(
        self,
        model: type[ModelT],
        path: str,
        params: dict[str, str],
        *,
        token: str,
        correlation_id: str,
        deadline: Deadline,
    ) -> ModelT:
        response, request_id = self._transport.get(
            path,
            params=params,
            token=token,
            correlation_id=correlation_id,
            deadline=deadline,
        )
        return parse_body(
            model,
            response.content,
            status=response.status_code,
            request_id=request_id,
            correlation_id=correlation_id,
        )

    def _post(
        self, path: str, body: dict[str, Any], token: str, correlation_id: str, deadline: Deadline
    ) -> Agreement:
        """POST an attestation (retried after a lost answer: see :meth:`Transport.post`)."""
        sent = self._transport.post(
            path,
            body=body,
            token=token,
            correlation_id=correlation_id,
            deadline=deadline,
            replay_safe=True,
        )
        try:
            return parse_body(
                Agreement,
                sent.response.content,
                status=sent.response.status_code,
                request_id=sent.request_id,
                correlation_id=correlation_id,
            )
        except BadResponseError as err:
            # Partner Center recorded the attestation (2xx): an unreadable body must not turn
            # that into a failure. What it recorded is what was sent.
            logger.warning("%s; the attestation sent stands for it", err)
            return Agreement.model_validate(body)

    @contextmanager
    def _authorized(self, principal: Principal, deadline: Deadline) -> Iterator[str]:
        """``principal``'s token within ``deadline``; Partner Center's refusal of a token without
        MFA is raised as whose sign-in lacks it."""
        with deadline_scope(deadline):
            token = self.tokens.get_token(principal, deadline)
            try:
                yield token
            except MfaClaimMissingError as err:
                raise self._mfa_refusal(principal, err) from err

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


@dataclass(frozen=True)
class _Attestation:
    """One attestation call: its POST and, on 600061, the read-back of what exists."""

    client: PartnerCenterClient
    customer: str
    contact: PrimaryContact
    date_agreed: datetime
    token: str
    correlation_id: str
    deadline: Deadline

    def post(self, template_id: str) -> AgreementAttestation:
        path = _agreements_path(self.customer)
        body = attestation_body(self.contact, template_id, self.date_agreed)
        try:
            agreement = self.client._post(
                path, body, self.token, self.correlation_id, self.deadline
            )
        except ApiError as err:
            if is_indirect_reseller_refusal(err):
                raise IndirectResellerError(
                    f"Partner Center refused the attestation: {err.description or err.message}",
                    status=err.status,
                    code=err.code,
                    description=err.description,
                    request_id=err.request_id,
                    correlation_id=self.correlation_id,
                ) from err
            if not is_already_exists(err):
                raise
            return self._existing(err)
        return AgreementAttestation(agreement, created=True)

    def _existing(self, err: ApiError) -> AgreementAttestation:
        listed = self.client._fetch(
            AgreementCollection,
            _agreements_path(self.customer),
            {"agreementType": MCA},
            token=self.token,
            correlation_id=self.correlation_id,
            deadline=self.deadline,
        )
        found = matching_attestation(listed.items, self.contact)
        if found is None:
            raise UpstreamError(
                "Partner Center answered 600061 (this attestation already exists) but lists no "
                "MCA attestation for this contact; try again in a minute.",
                status=502,
                code=err.code,
                request_id=err.request_id,
                correlation_id=self.correlation_id,
            ) from err
        # After a lost answer, the attestation found may be the one the lost attempt recorded.
        created = err.replayed and found.date_agreed == self.date_agreed
        return AgreementAttestation(found, created=created)


def _agreement_type(value: AgreementType | str) -> AgreementType:
    try:
        return AgreementType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in AgreementType)
        raise InvalidArgumentError(
            f"agreementType must be one of {allowed}.", argument="agreementType"
        ) from None


def _agreements_path(customer: str) -> str:
    return f"/v1/customers/{customer}/agreements"


def _direct_signed_path(customer: str) -> str:
    return f"/v1/customers/{customer}/directSignedMicrosoftCustomerAgreementStatus"
