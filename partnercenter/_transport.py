"""HTTP transport: one pooled session, Partner Center headers, retries within one deadline."""

from __future__ import annotations

import contextvars
import email.utils
import json
import logging
import math
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.ssl_ import create_urllib3_context

from ._errors import (
    ApiError,
    BadRequestError,
    MfaClaimMissingError,
    NotFoundError,
    PermissionDeniedError,
    Service,
    ThrottledError,
    UnauthorizedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from ._ids import new_guid
from ._tracing import UpstreamCall, traced_call

logger = logging.getLogger("partnercenter")

Clock = Callable[[], float]
Sleep = Callable[[float], None]

#: Statuses worth another attempt. 501 and 505 will not change, so they are not here.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 506, 507, 508, 509, 510, 511})

CONNECT_TIMEOUT = 5.0
#: Longest wait for one answer; a shorter remaining deadline wins.
READ_TIMEOUT = 30.0


class Deadline:
    """The time budget of one logical call, shared by its token exchange and its retries."""

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.expires_at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - self._clock())

    def timeout(self, cap: float) -> float:
        """A socket timeout for the next wait: ``cap`` or what is left, whichever is less."""
        return max(0.001, min(cap, self.remaining()))


_current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "partnercenter_deadline", default=None
)


@contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` the one that network calls in this context (MSAL's too) respect."""
    token = _current_deadline.set(deadline)
    try:
        yield deadline
    finally:
        _current_deadline.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline of the call in progress in this context, if any."""
    return _current_deadline.get()


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried and how long to wait between attempts."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter exponential backoff before attempt ``attempt + 1`` (``attempt`` >= 1)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return float(ceiling * (0.5 + rng() / 2))

    @staticmethod
    def is_retryable(status: int) -> bool:
        """True for statuses that may succeed on another attempt."""
        return status in RETRYABLE_STATUSES


_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, min(seconds, 86400.0))


@dataclass(frozen=True)
class ErrorBody:
    """What an error answer says, whichever of Partner Center's shapes it came in."""

    code: str | None = None
    description: str | None = None
    retryable: bool | None = None
    retry_after: float | None = None


def parse_error_body(body: bytes) -> ErrorBody:
    """Read an error body: documented, newer and gateway shapes; anything else as text."""
    text = body.decode("utf-8-sig", errors="replace").strip()
    if not text:
        return ErrorBody()
    try:
        data: Any = json.loads(text)
    except ValueError:
        return ErrorBody(description=_plain_text(text))
    if not isinstance(data, dict):
        return ErrorBody(description=_plain_text(text))
    code = data.get("code", data.get("errorCode"))
    if code is None and "statusCode" in data:
        code = data["statusCode"]
    description = data.get("description") or data.get("message") or data.get("errorMessage")
    retryable = data.get("isRetryable")
    retry_after = None
    if isinstance(data.get("message"), str):
        match = _TRY_AGAIN.search(data["message"])
        if match:
            retry_after = float(match.group(1))
    return ErrorBody(
        code=str(code) if code is not None else None,
        description=str(description)[:500] if description is not None else None,
        retryable=retryable if isinstance(retryable, bool) else None,
        retry_after=retry_after,
    )


def _plain_text(text: str) -> str:
    # An HTML error page: keep its title or first words, not the markup.
    title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        text = title.group(1)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:200]


_STATUS_ERRORS: Mapping[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: PermissionDeniedError,
    404: NotFoundError,
}


def error_for_status(
    status: int,
    body: bytes,
    *,
    retry_after: float | None,
    request_id: str | None,
    correlation_id: str | None,
    service: Service = "partnercenter",
) -> ApiError:
    """The typed error for an HTTP error answer."""
    info = parse_error_body(body)
    who = "Partner Center" if service == "partnercenter" else "Entra ID"
    detail = f": {info.description}" if info.description else ""
    common: dict[str, Any] = {
        "code": info.code,
        "description": info.description,
        "request_id": request_id,
        "correlation_id": correlation_id,
        "service": service,
    }
    if status == 429:
        return ThrottledError(
            f"{who} throttled the call{detail}",
            retry_after=retry_after if retry_after is not None else info.retry_after,
            **common,
        )
    error_type = _STATUS_ERRORS.get(status, UpstreamError)
    if status == 401 and service == "partnercenter" and is_mfa_refusal(info.code, info.description):
        error_type = MfaClaimMissingError
    return error_type(f"{who} answered {status}{detail}", status=status, **common)


#: Partner Center's code for an App+User token without an MFA claim (enforced since April 2026).
MFA_REFUSAL_CODE = "900421"
_MFA_WORDS = re.compile(r"\bmfa\b|multi-?factor", re.IGNORECASE)


def is_mfa_refusal(code: str | None, description: str | None) -> bool:
    """Whether a Partner Center 401 says the token lacks MFA: code 900421, or a message naming
    MFA (reports show both)."""
    return code == MFA_REFUSAL_CODE or bool(description and _MFA_WORDS.search(description))


class SharedTrustAdapter(HTTPAdapter):
    """An adapter whose connections all verify with one TLS context, loaded once.

    requests gives every new connection a context of its own and loads the whole CA bundle into
    it (certifi's: about 120 certificates, 10 to 30 ms of CPU each time): a cold start's first
    request would pay it for Entra ID and again for Partner Center, and every connection a busy
    pool adds, once more. Here the bundle is loaded into one context at the first connection,
    which every connection, direct or through a proxy, then uses; verification (certificate
    chain and host name) is the context's, exactly as requests' own.
    """

    def __init__(self, bundle: str, **kwargs: Any) -> None:
        self.bundle = bundle
        """The CA bundle (a file, or a folder of hashed certificates) every connection trusts."""
        self._context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        self._loaded = False
        self._load_lock = threading.Lock()
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """The pool manager, its pools given the shared context."""
        super().init_poolmanager(
            connections, maxsize, block, ssl_context=self._context, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """A proxy's manager: tunnelled connections verify with the shared context too."""
        return super().proxy_manager_for(proxy, ssl_context=self._context, **proxy_kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        """The pool for ``request``, once the bundle is in the shared context."""
        if not self._loaded:
            with self._load_lock:
                if not self._loaded:
                    if os.path.isdir(self.bundle):
                        self._context.load_verify_locations(capath=self.bundle)
                    else:
                        self._context.load_verify_locations(cafile=self.bundle)
                    self._loaded = True
        return super().get_connection_with_tls_context(
            request, verify, dict(proxies) if proxies is not None else None, cert
        )

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        """As requests does, except that the bundle is not loaded again for each connection: the
        shared context already holds it (``verify`` stays on: the session's is ``True``)."""
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if verify is True:
            conn.ca_certs = None
            conn.ca_cert_dir = None


def build_session(pool_size: int, urls: Iterable[str] = ()) -> requests.Session:
    """A session whose pool keeps ``pool_size`` connections per host and never retries itself.

    The environment (``REQUESTS_CA_BUNDLE``, proxies for ``urls``) is read once, here: requests
    would otherwise rescan it and look for a .netrc file on every call, which costs a quarter of
    a millisecond with a Functions host's many app settings. The CA bundle (that variable's, or
    certifi's, as requests would use) is loaded once for all connections
    (:class:`SharedTrustAdapter`).
    """
    session = requests.Session()
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )
    adapter = SharedTrustAdapter(bundle, pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False
    session.verify = True
    for url in urls:
        parts = urlsplit(url)
        for scheme, proxy in requests.utils.get_environ_proxies(url).items():
            if scheme == parts.scheme:
                session.proxies[f"{parts.scheme}://{parts.hostname}"] = proxy
    return session


@dataclass(frozen=True)
class Sent:
    """A successful answer to one logical request."""

    response: requests.Response
    #: The ``MS-RequestId`` every attempt carried.
    request_id: str
    attempts: int
    #: An earlier attempt failed after the request may have reached Partner Center (a POST
    #: retried after a lost answer): what the answer says may be about that attempt.
    replayed: bool = False


def never_sent(err: BaseException) -> bool:
    """True when a failed attempt never reached the server: its connection could not be opened.

    Anything else (a read timeout, a connection reset or closed after the request was written)
    leaves it unknown whether the server acted on the request.
    """
    if isinstance(err, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    seen: set[int] = set()
    pending: list[object] = [err]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectTimeoutError):
            return True
        if isinstance(current, BaseException):
            pending += [current.__cause__, current.__context__, *current.args[:1]]
        pending.append(getattr(current, "reason", None))
    return False


class Transport:
    """Sends Partner Center requests with its headers, retrying within the call's deadline."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        locale: str,
        application_name: str,
        policy: RetryPolicy,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        # The session's own headers (User-Agent, Accept-Encoding...) are merged once, here:
        # requests are prepared apart from the session (see _send_with_retries).
        self._static_headers = {
            **{name: value for name, value in session.headers.items() if isinstance(value, str)},
            "Accept": "application/json",
            "MS-Contract-Version": "v1",
            "X-Locale": locale,
            "MS-PartnerCenter-Application": application_name,
        }
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, str],
        token: str,
        correlation_id: str,
        deadline: Deadline,
    ) -> tuple[requests.Response, str]:
        """GET ``path``; returns the success response and the request id it was sent with."""
        sent = self.send(
            "GET",
            path,
            params=params,
            token=token,
            correlation_id=correlation_id,
            deadline=deadline,
        )
        return sent.response, sent.request_id

    def post(
        self,
        path: str,
        *,
        body: Mapping[str, Any],
        token: str,
        correlation_id: str,
        deadline: Deadline,
        replay_safe: bool = False,
    ) -> Sent:
        """POST ``body`` as JSON to ``path``, retried only where that cannot do harm.

        A POST is retried when Partner Center cannot have acted on it: a 429, a 503 with
        ``Retry-After``, or a connection that could not be opened. After an ambiguous failure (a
        read timeout, a connection dropped once the request was sent, another 5xx) it is retried
        only if ``replay_safe``: the caller knows how to recognise its own earlier attempt (the
        same ``MS-RequestId`` goes with it), and :attr:`Sent.replayed` (or the error's
        ``replayed``) says that it may have to.
        """
        return self.send(
            "POST",
            path,
            params={},
            body=body,
            token=token,
            correlation_id=correlation_id,
            deadline=deadline,
            replay_safe=replay_safe,
        )

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        token: str,
        correlation_id: str,
        deadline: Deadline,
        body: Mapping[str, Any] | None = None,
        replay_safe: bool = True,
    ) -> Sent:
        """Send one logical request, retrying within ``deadline`` with one ``MS-RequestId``.

        ``replay_safe`` False (POST) limits retries to failures Partner Center cannot have acted
        on; GET is always replay-safe.
        """
        request_id = new_guid()  # kept across retries: Partner Center's idempotency key
        headers = {
            **self._static_headers,
            "Authorization": f"Bearer {token}",
            "MS-RequestId": request_id,
            "MS-CorrelationId": correlation_id,
        }
        url = self._base_url + path
        ids: dict[str, Any] = {"request_id": request_id, "correlation_id": correlation_id}
        with traced_call("partnercenter", method, url, **ids) as call:
            return self._send_with_retries(
                call,
                method,
                url,
                path,
                params=params,
                body=body,
                headers=headers,
                deadline=deadline,
                replay_safe=replay_safe,
                ids=ids,
            )

    def _send_with_retries(
        self,
        call: UpstreamCall,
        method: str,
        url: str,
        path: str,
        *,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        deadline: Deadline,
        replay_safe: bool,
        ids: dict[str, Any],
    ) -> Sent:
        request_id = ids["request_id"]
        correlation_id = ids["correlation_id"]
        replayed = False  # an earlier attempt may have been acted on
        attempt = 0
        while True:
            attempt += 1
            call.attempts = attempt
            if deadline.remaining() <= 0:
                call.attempts = attempt - 1
                timeout = UpstreamTimeoutError(
                    f"No answer from Partner Center within the deadline ({attempt - 1} attempts).",
                    **ids,
                )
                timeout.replayed = replayed
                raise timeout
            started = self._clock()
            unacted = False  # Partner Center certainly did not act on this attempt
            advice: float | None = None  # the server's Retry-After
            try:
                # Prepared apart from the session, then sent through its pool: no session
                # cookie travels from one caller's request to another's, and the per-call
                # merging of session state (a third of the gateway's own time per call) is gone.
                prepared = requests.Request(
                    method, url, headers=headers, params=params or None, json=body
                ).prepare()
                response = self._session.send(
                    prepared,
                    timeout=(deadline.timeout(CONNECT_TIMEOUT), deadline.timeout(READ_TIMEOUT)),
                    allow_redirects=False,
                )
            except requests.Timeout as err:
                failure: ApiError | UpstreamTimeoutError = UpstreamTimeoutError(
                    f"Partner Center did not answer in time ({type(err).__name__}).", **ids
                )
                status = None
                unacted = never_sent(err)
            except requests.RequestException as err:
                failure = UpstreamError(
                    f"Could not reach Partner Center ({type(err).__name__}).", **ids
                )
                status = None
                unacted = never_sent(err)
            else:
                status = call.status = response.status_code
                logger.info(
                    "partner center %s %s -> %s in %.0f ms (attempt %d)",
                    method,
                    path,
                    status,
                    (self._clock() - started) * 1000,
                    attempt,
                    extra={"ms_request_id": request_id, "ms_correlation_id": correlation_id},
                )
                if status < 400 and status not in (204, 301, 302, 303, 307, 308):
                    return Sent(response, request_id, attempt, replayed)
                advice = parse_retry_after(response.headers.get("Retry-After"))
                failure = error_for_status(status, response.content, retry_after=advice, **ids)
                failure.replayed = replayed
                if not self.policy.is_retryable(status):
                    raise failure
                unacted = status == 429 or (status == 503 and advice is not None)
            failure.replayed = replayed
            if not (replay_safe or unacted):
                raise failure
            delay = self._next_delay(failure, attempt, advice)
            # Out of attempts, or the wait would pass the deadline: fail now, with the advice.
            if attempt >= self.policy.max_attempts or delay >= deadline.remaining():
                raise failure
            replayed = replayed or not unacted
            logger.warning(
                "partner center %s %s failed (%s); retry %d in %.2f s",
                method,
                path,
                status if status is not None else type(failure).__name__,
                attempt,
                delay,
                extra={"ms_request_id": request_id, "ms_correlation_id": correlation_id},
            )
            self._sleep(delay)

    def _next_delay(self, failure: Exception, attempt: int, advice: float | None) -> float:
        # The server's Retry-After (header, or a 429 body's "try again in") wins over backoff.
        if isinstance(failure, ThrottledError) and failure.retry_after is not None:
            return failure.retry_after
        if advice is not None:
            return advice
        return self.policy.backoff(attempt, self._rng)
