"""The fault matrix: each injected upstream fault and what the gateway must make of it.

The rows are the parametrize data of ``test_fault_matrix.py``; ``python -m tests.faults.matrix``
prints them as a Markdown table (fault / expected response / what the simulator saw).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from simulator import (
    CUSTOMER_ATTESTED,
    CUSTOMER_NEITHER,
    Fault,
)

Count = int | tuple[int, int]
Grants = Mapping[str, Count]

#: Placeholders in ``Row.env`` that the test fills in at run time.
CLOSED_PORT_URL = "<https://localhost:closed-port>"
EXPIRED_REFRESH_TOKEN = "<expired refresh token>"
WRONG_SECRET = "<wrong client secret>"

OBO = "on_behalf_of"
REFRESH = "refresh_token"
USER_GRANTS: Grants = {OBO: 1, REFRESH: 0}
APP_GRANTS: Grants = {OBO: 0, REFRESH: 1}
NO_GRANTS: Grants = {OBO: 0, REFRESH: 0}

#: Every row runs with this deadline unless it sets its own: nothing can hang for 60 s.
DEFAULT_DEADLINE = "10"
PC = "/v1/customers/"


@dataclass(frozen=True)
class Row:
    """One injected fault and the expected outcome, at the caller and at the simulator."""

    id: str
    fault: str
    faults: tuple[Fault, ...]
    status: int
    problem: str | None = None
    #: Response headers that must have exactly these values.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Response headers that must contain these substrings.
    header_contains: Mapping[str, str] = field(default_factory=dict)
    #: Substrings of the problem's detail (case-insensitive): what happened, what to do.
    detail: tuple[str, ...] = ()
    #: Problem fields that must have these values (camelCase).
    fields: Mapping[str, object] = field(default_factory=dict)
    #: Partner Center requests the simulator saw: exactly n, or an inclusive range.
    attempts: Count = 1
    #: What the simulator answered to each attempt, in order (0: connection dropped).
    statuses: tuple[int, ...] | None = None
    grants: Grants = field(default_factory=lambda: USER_GRANTS)
    caller: Literal["user", "app"] = "user"
    #: What is called: ``attest`` POSTs an attestation for a customer without one and counts the
    #: POSTs; ``attest-repeat`` repeats Tania Carr's (Partner Center answers 600061);
    #: ``status-agreements`` / ``status-direct`` read the MCA status and count that one read.
    route: Literal[
        "agreements",
        "relationship",
        "attest",
        "attest-repeat",
        "status-agreements",
        "status-direct",
    ] = "agreements"
    #: Attestations Partner Center holds for the customer afterwards (``attest`` routes).
    stored: int | None = None
    #: The attestation answer's ``created``.
    created: bool | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: Lower the transport's per-attempt read timeout (seconds) for this row.
    read_timeout: float | None = None
    #: Serve one call before the fault is injected (keys and tokens cached).
    warm: bool = False
    #: After the answer: the request thread has returned and the next call is served at once.
    then_served: bool = False
    #: After the answer, this many more calls, each answered alike (in ``max_seconds`` each).
    repeat: int = 0
    #: Faults still queued at the end: those the gateway never asked for (e.g. no new fetch).
    faults_left: int | None = None
    body_contains: str | None = None
    min_seconds: float = 0.0
    max_seconds: float = 5.0
    note: str = ""

    def expected(self) -> str:
        """The expected response, for the Markdown table."""
        parts = [f"{self.status}" + (f" `{self.problem}`" if self.problem else "")]
        parts += [f"`{name}: {value}`" for name, value in self.headers.items()]
        parts += [f"`{name}` has `{value}`" for name, value in self.header_contains.items()]
        if self.detail:
            parts.append("detail: " + ", ".join(f"“{d}”" for d in self.detail))
        if self.max_seconds < 5 or self.min_seconds:
            span = f"≥ {self.min_seconds:g} s, " if self.min_seconds else ""
            parts.append(f"{span}≤ {self.max_seconds:g} s")
        if self.then_served:
            parts.append("request thread freed; next call served at once")
        if self.repeat:
            parts.append(f"the next {self.repeat} calls alike, at once")
        if self.created is not None:
            parts.append(f"`created: {str(self.created).lower()}`")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)

    def saw(self) -> str:
        """What the simulator must have seen, for the Markdown table."""
        _, high = bounds(self.attempts)
        text = f"{_count(self.attempts)} Partner Center attempt{'s' if high != 1 else ''}"
        if self.statuses:
            text += " (" + ", ".join("dropped" if s == 0 else str(s) for s in self.statuses) + ")"
        if high > 1:
            text += ", one MS-RequestId"
        if self.stored is not None:
            text += f"; {self.stored} attestation{'s' if self.stored != 1 else ''} stored"
        grants = ", ".join(
            f"{_count(n)} {g.replace('_', '-')}" for g, n in self.grants.items() if n
        )
        text += f"; token requests: {grants or 'none'}"
        if self.faults_left is not None:
            text += f"; {self.faults_left} injected fault(s) never reached (no new fetch)"
        return text


def bounds(count: Count) -> tuple[int, int]:
    """An exact count or an inclusive range, as a range."""
    return (count, count) if isinstance(count, int) else count


def _count(count: Count) -> str:
    low, high = bounds(count)
    return f"{low}" if low == high else f"{low} to {high}"


def _html(status: int, times: int = 1) -> Fault:
    return Fault(path=PC, status=status, body_kind="html", times=times)


def _aad(error: str, aadsts: int, description: str, status: int = 400) -> Fault:
    return Fault.aad_error(error, aadsts, description, status=status)


def _token(status: int, times: int = 1, **kwargs: object) -> Fault:
    return Fault(target="token", status=status, times=times, **kwargs)  # type: ignore[arg-type]


_THROTTLE_TEXT = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."}
#: Where the attestation rows' POSTs go, and the two reads of the status rows.
ATTEST_PATH = f"{PC}{CUSTOMER_NEITHER}/agreements"
REPEAT_PATH = f"{PC}{CUSTOMER_ATTESTED}/agreements"
STATUS_AGREEMENTS_PATH = f"{PC}{CUSTOMER_ATTESTED}/agreements"
STATUS_DIRECT_PATH = f"{PC}{CUSTOMER_ATTESTED}/directSignedMicrosoftCustomerAgreementStatus"
_FUTURE = "Date of agreement cannot be greater than the current date."
_MFA = "Due to a configuration change made by your administrator you must use multi-factor auth."

ROWS: tuple[Row, ...] = (
    # --- throttling ------------------------------------------------------------------------
    *(
        Row(
            id=f"429-1s-{shape}",
            fault=f"429 `Retry-After: 1` ({shape} body), once",
            faults=(Fault.throttled(1, shape=shape),),
            status=200,
            attempts=2,
            statuses=(429, 200),
            min_seconds=1.0,
            max_seconds=3.0,
            note="waited Retry-After, then retried",
        )
        for shape in ("gateway", "documented")
    ),
    *(
        Row(
            id=f"429-90s-{shape}",
            fault=f"429 `Retry-After: 90` ({shape} body), past the 10 s deadline",
            faults=(Fault.throttled(90, shape=shape),),
            status=429,
            problem="throttled",
            headers={"Retry-After": "90"},
            fields={"retryAfter": 90},
            detail=("throttled",),
            max_seconds=1.0,
            note="at once, no wait",
        )
        for shape in ("gateway", "documented")
    ),
    Row(
        id="429-message-only",
        fault="429, no header, body “Try again in 57 seconds”",
        faults=(Fault(path=PC, status=429, body=_THROTTLE_TEXT),),
        status=429,
        problem="throttled",
        headers={"Retry-After": "57"},
        fields={"retryAfter": 57},
        max_seconds=1.0,
    ),
    # --- 5xx ---------------------------------------------------------------------------------
    *(
        Row(
            id=f"{status}-json-burst",
            fault=f"{status} (JSON body) x2",
            faults=(Fault(path=PC, status=status, times=2),),
            status=200,
            attempts=3,
            statuses=(status, status, 200),
            max_seconds=3.0,
            note="retried with backoff",
        )
        for status in (500, 502, 503, 504)
    ),
    *(
        Row(
            id=f"{status}-html-once",
            fault=f"{status} (HTML error page) x1",
            faults=(_html(status),),
            status=200,
            attempts=2,
            statuses=(status, 200),
            max_seconds=2.0,
            note="retried with backoff",
        )
        for status in (500, 502, 503, 504)
    ),
    Row(
        id="503-persistent",
        fault="503 on every attempt (max attempts 3)",
        faults=(Fault(path=PC, status=503, times=10),),
        env={"PARTNER_CENTER_MAX_ATTEMPTS": "3"},
        status=502,
        problem="upstream-failure",
        detail=("503",),
        fields={"partnerCenterCode": "503"},
        attempts=3,
        statuses=(503, 503, 503),
        max_seconds=3.0,
    ),
    Row(
        id="500-html-until-deadline",
        fault="500 HTML on every attempt, deadline 1.5 s, max attempts 10",
        faults=(_html(500, times=20),),
        env={"PARTNER_CENTER_DEADLINE_SECONDS": "1.5", "PARTNER_CENTER_MAX_ATTEMPTS": "10"},
        status=502,
        problem="upstream-failure",
        detail=("500",),
        attempts=(2, 10),
        max_seconds=2.0,
        note="within the deadline",
    ),
    Row(
        id="501",
        fault="501 Not Implemented",
        faults=(Fault(path=PC, status=501, times=5),),
        status=502,
        problem="upstream-failure",
        detail=("501",),
        attempts=1,
        statuses=(501,),
        max_seconds=1.0,
        note="not retried",
    ),
    # --- connections -------------------------------------------------------------------------
    Row(
        id="drop-once",
        fault="connection dropped without an answer, once",
        faults=(Fault(path=PC, drop=True),),
        status=200,
        attempts=2,
        statuses=(0, 200),
        max_seconds=2.0,
        note="GET retried",
    ),
    Row(
        id="drop-persistent",
        fault="connection dropped on every attempt (max attempts 3)",
        faults=(Fault(path=PC, drop=True, times=10),),
        env={"PARTNER_CENTER_MAX_ATTEMPTS": "3"},
        status=502,
        problem="upstream-failure",
        detail=("could not reach partner center",),
        attempts=3,
        statuses=(0, 0, 0),
        max_seconds=3.0,
    ),
    Row(
        id="connection-refused",
        fault="connection refused (`PARTNER_CENTER_API_URL` on a closed port, max attempts 3)",
        faults=(),
        env={"PARTNER_CENTER_API_URL": CLOSED_PORT_URL, "PARTNER_CENTER_MAX_ATTEMPTS": "3"},
        status=502,
        problem="upstream-failure",
        detail=("could not reach partner center",),
        attempts=0,
        max_seconds=3.0,
        note="retried, then given up",
    ),
    Row(
        id="read-timeout-once",
        fault="no answer within the 1 s read timeout, once",
        faults=(Fault(path=PC, delay=2.0),),
        read_timeout=1.0,
        status=200,
        attempts=2,
        min_seconds=1.0,
        max_seconds=3.0,
        note="GET retried after the timeout",
    ),
    Row(
        id="read-timeout-persistent",
        fault="no answer within the 0.5 s read timeout, every attempt, deadline 2 s",
        faults=(Fault(path=PC, delay=1.0, times=10),),
        read_timeout=0.5,
        env={"PARTNER_CENTER_DEADLINE_SECONDS": "2"},
        status=504,
        problem="upstream-timeout",
        detail=("did not answer in time",),
        attempts=(2, 3),
        max_seconds=2.6,
    ),
    Row(
        id="silent-past-deadline",
        fault="upstream silent for 4 s, deadline 2 s",
        faults=(Fault(path=PC, delay=4.0),),
        env={"PARTNER_CENTER_DEADLINE_SECONDS": "2"},
        status=504,
        problem="upstream-timeout",
        attempts=(0, 1),
        min_seconds=1.8,
        max_seconds=2.6,
        then_served=True,
        note="(the one attempt is recorded when the simulator wakes)",
    ),
    # --- bodies ------------------------------------------------------------------------------
    *(
        Row(
            id=f"body-{kind}",
            fault=f"200 with {text}",
            faults=(Fault(path=PC, status=200, body_kind=kind),),  # type: ignore[arg-type]
            status=502,
            problem="bad-upstream-response",
            detail=(expect,),
            attempts=1,
            statuses=(200,),
            max_seconds=1.0,
            note="not retried",
        )
        for kind, text, expect in (
            ("seed-example", "the seed document's malformed JSON example", "not JSON"),
            ("html", "an HTML page", "not JSON"),
            ("empty", "an empty body", "empty body"),
            ("truncated", "a body cut in half", "not JSON"),
        )
    ),
    *(
        Row(
            id=f"body-{kind}-{route}",
            fault=f"{text} ({route})",
            faults=(Fault(path=PC, body_kind=kind),),  # type: ignore[arg-type]
            route=route,  # type: ignore[arg-type]
            status=200,
            attempts=1,
            statuses=(200,),
            body_contains=contains,
            max_seconds=1.0,
            note="served normally",
        )
        for kind, text, route, contains in (
            ("bom", "UTF-8 byte-order mark before the JSON", "agreements", None),
            ("bom", "UTF-8 byte-order mark before the JSON", "relationship", "partner-invitation"),
            ("extra-fields", "unknown fields in every object", "agreements", None),
            (
                "extra-fields",
                "unknown fields in every object",
                "relationship",
                "partner-invitation",
            ),
            (
                "new-enum",
                "an agreement of a never-seen type",
                "agreements",
                "MicrosoftQuantumAgreement",
            ),
        )
    ),
    # --- the token endpoint ------------------------------------------------------------------
    Row(
        id="obo-invalid-grant-700082",
        fault="token endpoint: `invalid_grant` AADSTS700082 on the on-behalf-of exchange",
        faults=(_aad("invalid_grant", 700082, "The refresh token has expired."),),
        status=401,
        problem="unauthenticated",
        header_contains={"WWW-Authenticate": 'error="invalid_token"'},
        fields={"entraCode": "AADSTS700082"},
        detail=("AADSTS700082", "sign in again"),
        attempts=0,
        max_seconds=1.0,
    ),
    Row(
        id="service-user-700082",
        fault="app caller; the service user's refresh token expired (AADSTS700082)",
        faults=(),
        caller="app",
        env={"PARTNER_CENTER_REFRESH_TOKEN": EXPIRED_REFRESH_TOKEN},
        status=503,
        problem="consent-needed",
        fields={"entraCode": "AADSTS700082"},
        detail=("AADSTS700082", "consent again", "PARTNER_CENTER_REFRESH_TOKEN"),
        attempts=0,
        grants=APP_GRANTS,
        max_seconds=1.0,
    ),
    *(
        Row(
            id=f"obo-mfa-{aadsts}",
            fault=f"token endpoint: `interaction_required` AADSTS{aadsts} (MFA)",
            faults=(_aad("interaction_required", aadsts, _MFA),),
            status=401,
            problem="mfa-required",
            header_contains={"WWW-Authenticate": 'error="insufficient_claims"'},
            fields={"entraCode": f"AADSTS{aadsts}"},
            detail=(f"AADSTS{aadsts}", "multi-factor"),
            attempts=0,
            max_seconds=1.0,
        )
        for aadsts in (50076, 50078)
    ),
    Row(
        id="service-user-mfa-50076",
        fault="app caller; the service user's redemption needs MFA (AADSTS50076)",
        faults=(_aad("interaction_required", 50076, _MFA),),
        caller="app",
        status=503,
        problem="consent-needed",
        fields={"entraCode": "AADSTS50076"},
        detail=("AADSTS50076", "consent again", "multi-factor", "PARTNER_CENTER_REFRESH_TOKEN"),
        attempts=0,
        grants=APP_GRANTS,
        max_seconds=1.0,
        note="the operator must act: never a 401 to an app caller that has no user",
    ),
    Row(
        id="invalid-client",
        fault="token endpoint: `invalid_client` (wrong `AZURE_CLIENT_SECRET`)",
        faults=(),
        env={"AZURE_CLIENT_SECRET": WRONG_SECRET},
        status=503,
        problem="not-configured",
        fields={"entraCode": "AADSTS7000215"},
        detail=("invalid client secret", "AZURE_CLIENT_SECRET"),
        attempts=0,
        max_seconds=1.0,
    ),
    Row(
        id="token-429-1s",
        fault="token endpoint: 429 `Retry-After: 1`, once",
        faults=(_token(429, headers={"Retry-After": "1"}),),
        status=200,
        attempts=1,
        grants={OBO: 2, REFRESH: 0},
        min_seconds=1.0,
        max_seconds=3.0,
        note="waited, retried",
    ),
    Row(
        id="token-429-120s",
        fault="token endpoint: 429 `Retry-After: 120`, past the deadline",
        faults=(_token(429, headers={"Retry-After": "120"}),),
        status=429,
        problem="throttled",
        headers={"Retry-After": "120"},
        fields={"retryAfter": 120},
        detail=("Entra ID throttled",),
        attempts=0,
        max_seconds=1.0,
        note="at once",
    ),
    Row(
        id="token-503-once",
        fault="token endpoint: 503, once",
        faults=(_token(503),),
        status=200,
        attempts=1,
        grants={OBO: 2, REFRESH: 0},
        max_seconds=2.0,
        note="retried",
    ),
    Row(
        id="token-503-persistent",
        fault="token endpoint: 503 on every attempt (max attempts 3)",
        faults=(_token(503, times=10),),
        env={"PARTNER_CENTER_MAX_ATTEMPTS": "3"},
        status=502,
        problem="upstream-failure",
        detail=("Entra ID answered 503",),
        attempts=0,
        grants={OBO: 3, REFRESH: 0},
        max_seconds=3.0,
    ),
    Row(
        id="token-503-until-deadline",
        fault="token endpoint: 503 on every attempt, deadline 1.5 s, max attempts 10",
        faults=(_token(503, times=20),),
        env={"PARTNER_CENTER_DEADLINE_SECONDS": "1.5", "PARTNER_CENTER_MAX_ATTEMPTS": "10"},
        status=502,
        problem="upstream-failure",
        detail=("Entra ID answered 503",),
        attempts=0,
        grants={OBO: (2, 10), REFRESH: 0},
        max_seconds=2.0,
        note="within the deadline",
    ),
    Row(
        id="token-silent",
        fault="token endpoint silent for 4 s, deadline 2 s",
        faults=(_token(200, delay=4.0),),
        env={"PARTNER_CENTER_DEADLINE_SECONDS": "2"},
        status=504,
        problem="upstream-timeout",
        detail=("Entra ID did not answer",),
        attempts=0,
        grants={OBO: 2, REFRESH: 0},
        min_seconds=1.8,
        max_seconds=2.6,
        then_served=True,
        note="(the next call's exchange is the second token request)",
    ),
    Row(
        id="jwks-503",
        fault="JWKS answers 503 (no keys cached yet)",
        faults=(Fault(target="jwks", status=503),),
        status=502,
        problem="upstream-failure",
        detail=("signing keys",),
        attempts=0,
        grants=NO_GRANTS,
        max_seconds=1.0,
    ),
    Row(
        id="jwks-dropped",
        fault="JWKS connection dropped (no keys cached yet)",
        faults=(Fault(target="jwks", drop=True),),
        status=502,
        problem="upstream-failure",
        detail=("signing keys",),
        attempts=0,
        grants=NO_GRANTS,
        max_seconds=1.0,
    ),
    Row(
        id="discovery-html",
        fault="OpenID discovery answers an HTML page (no keys cached yet)",
        faults=(Fault(target="discovery", status=200, body_kind="html"),),
        status=502,
        problem="upstream-failure",
        detail=("signing keys",),
        attempts=0,
        grants=NO_GRANTS,
        max_seconds=1.0,
    ),
    Row(
        id="jwks-failing-backoff",
        fault="JWKS keeps failing (503) while calls keep coming (no keys cached yet)",
        faults=(Fault(target="jwks", status=503), Fault(target="jwks", status=503)),
        status=502,
        problem="upstream-failure",
        detail=("signing keys",),
        attempts=0,
        grants=NO_GRANTS,
        max_seconds=1.0,
        repeat=10,
        faults_left=1,
        note="the failed fetch backs off: no fetch, no wait on the lock meanwhile",
    ),
    Row(
        id="jwks-503-keys-cached",
        fault="JWKS answers 503, keys cached by an earlier call",
        faults=(Fault(target="jwks", status=503, times=5),),
        warm=True,
        status=200,
        attempts=1,
        grants=NO_GRANTS,
        max_seconds=1.0,
        note="served from the cached keys and token",
    ),
)


MCA_ROWS: tuple[Row, ...] = (
    # --- attestation (POST): retried only when safe, or when a repeat is recognisable -----------
    Row(
        id="attest-429-1s",
        fault="attestation: 429 `Retry-After: 1`, once",
        faults=(Fault.throttled(1, path=ATTEST_PATH),),
        route="attest",
        status=201,
        attempts=2,
        statuses=(429, 201),
        stored=1,
        created=True,
        min_seconds=1.0,
        max_seconds=3.0,
        note="throttled before Partner Center acted: retried",
    ),
    Row(
        id="attest-429-90s",
        fault="attestation: 429 `Retry-After: 90`, past the deadline",
        faults=(Fault.throttled(90, path=ATTEST_PATH),),
        route="attest",
        status=429,
        problem="throttled",
        headers={"Retry-After": "90"},
        attempts=1,
        stored=0,
        max_seconds=1.0,
    ),
    Row(
        id="attest-503-retry-after",
        fault="attestation: 503 `Retry-After: 1`, once",
        faults=(Fault(path=ATTEST_PATH, status=503, headers={"Retry-After": "1"}),),
        route="attest",
        status=201,
        attempts=2,
        statuses=(503, 201),
        stored=1,
        created=True,
        min_seconds=1.0,
        max_seconds=3.0,
        note="refused before Partner Center acted: retried",
    ),
    Row(
        id="attest-500-before-commit",
        fault="attestation: 500 before Partner Center committed, once",
        faults=(Fault(path=ATTEST_PATH, status=500),),
        route="attest",
        status=201,
        attempts=2,
        statuses=(500, 201),
        stored=1,
        created=True,
        max_seconds=2.0,
        note="ambiguous: retried with the same MS-RequestId",
    ),
    Row(
        id="attest-500-after-commit",
        fault="attestation: 500 after Partner Center committed, once",
        faults=(Fault(path=ATTEST_PATH, status=500, commit_first=True),),
        route="attest",
        status=201,
        attempts=2,
        statuses=(500, 400),
        stored=1,
        created=True,
        max_seconds=2.0,
        note="the retry's 600061 is the lost attempt's success, read back",
    ),
    Row(
        id="attest-500-persistent",
        fault="attestation: 500 on every attempt (max attempts 3)",
        faults=(Fault(path=ATTEST_PATH, status=500, times=10),),
        env={"PARTNER_CENTER_MAX_ATTEMPTS": "3"},
        route="attest",
        status=502,
        problem="upstream-failure",
        detail=("500",),
        attempts=3,
        statuses=(500, 500, 500),
        stored=0,
        max_seconds=3.0,
    ),
    Row(
        id="attest-drop-before-commit",
        fault="attestation: connection dropped before Partner Center committed",
        faults=(Fault(path=ATTEST_PATH, drop=True),),
        route="attest",
        status=201,
        attempts=2,
        statuses=(0, 201),
        stored=1,
        created=True,
        max_seconds=2.0,
        note="retried with the same MS-RequestId",
    ),
    Row(
        id="attest-drop-after-commit",
        fault="attestation: connection dropped after Partner Center committed",
        faults=(Fault(path=ATTEST_PATH, drop=True, commit_first=True),),
        route="attest",
        status=201,
        attempts=2,
        statuses=(0, 400),
        stored=1,
        created=True,
        max_seconds=2.0,
        note="the retry's 600061 is the lost attempt's success, read back",
    ),
    Row(
        id="attest-read-timeout-after-commit",
        fault="attestation: committed, then no answer within the 1 s read timeout",
        faults=(Fault(path=ATTEST_PATH, delay=2.0, commit_first=True),),
        read_timeout=1.0,
        route="attest",
        status=201,
        attempts=2,
        stored=1,
        created=True,
        min_seconds=1.0,
        max_seconds=3.0,
        note="retried after the timeout; 600061 read back",
    ),
    Row(
        id="attest-600061",
        fault="attestation already recorded with the same contact (Partner Center's 600061)",
        faults=(),
        route="attest-repeat",
        status=200,
        attempts=1,
        statuses=(400,),
        stored=0,
        created=False,
        max_seconds=1.0,
        note="idempotent: the existing attestation, read back",
    ),
    Row(
        id="attest-600002",
        fault="attestation: Partner Center answers 600002 (date in the future by its clock)",
        faults=(Fault.partner_center_error(400, "600002", _FUTURE, path=ATTEST_PATH),),
        route="attest",
        status=400,
        problem="invalid-request",
        fields={"partnerCenterCode": "600002"},
        detail=("cannot be greater than the current date",),
        attempts=1,
        statuses=(400,),
        stored=0,
        max_seconds=1.0,
        note="not retried",
    ),
    # --- MCA status: two concurrent reads, either failure is the answer ------------------------
    Row(
        id="status-direct-503-persistent",
        fault="MCA status: the direct-signing read answers 503 every time (max attempts 3)",
        faults=(Fault(path=STATUS_DIRECT_PATH, status=503, times=10),),
        env={"PARTNER_CENTER_MAX_ATTEMPTS": "3"},
        route="status-direct",
        status=502,
        problem="upstream-failure",
        detail=("503",),
        attempts=3,
        statuses=(503, 503, 503),
        max_seconds=3.0,
        note="never a guess from the other read",
    ),
    Row(
        id="status-agreements-403",
        fault="MCA status: the agreements read answers 403",
        faults=(
            Fault.partner_center_error(
                403, "600012", "The user lacks a role.", path=STATUS_AGREEMENTS_PATH
            ),
        ),
        route="status-agreements",
        status=403,
        problem="partner-center-forbidden",
        fields={"partnerCenterCode": "600012"},
        attempts=1,
        statuses=(403,),
        max_seconds=1.0,
    ),
    Row(
        id="status-direct-drop-once",
        fault="MCA status: the direct-signing read's connection dropped once",
        faults=(Fault(path=STATUS_DIRECT_PATH, drop=True),),
        route="status-direct",
        status=200,
        attempts=2,
        statuses=(0, 200),
        max_seconds=2.0,
        note="GET retried",
    ),
    Row(
        id="status-direct-silent",
        fault="MCA status: the direct-signing read silent for 4 s, deadline 2 s",
        faults=(Fault(path=STATUS_DIRECT_PATH, delay=4.0),),
        env={"PARTNER_CENTER_DEADLINE_SECONDS": "2"},
        route="status-direct",
        status=504,
        problem="upstream-timeout",
        attempts=(0, 1),
        min_seconds=1.8,
        max_seconds=2.6,
        then_served=True,
        note="one deadline for both reads",
    ),
)

ROWS = (*ROWS, *MCA_ROWS)


def render(rows: tuple[Row, ...] = ROWS) -> str:
    """The matrix as a Markdown table."""
    lines = [
        "| # | Fault | Expected response | What the simulator saw |",
        "|---|---|---|---|",
    ]
    for number, row in enumerate(rows, 1):
        cells = (str(number), row.fault, row.expected(), row.saw())
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render() + "\n")
