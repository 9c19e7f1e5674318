"""The session-wide secrets-in-logs hook (``tests/conftest.py``) really finds secrets.

Without these, a broken hook would pass every run while checking nothing.
"""

from __future__ import annotations

import logging
import uuid

from simulator import Simulator

from ..conftest import LOG_SCANNER, SELFTEST_ATTRIBUTE, SecretScanner

CLIENT_SECRET = "sim~client-secret.0123456789abcdefABCDEF"  # the simulator's


def _record(msg: str, *args: object, **attributes: object) -> logging.LogRecord:
    record = logging.LogRecord("planted", logging.INFO, __file__, 1, msg, args or None, None)
    record.__dict__.update(attributes)
    return record


def test_the_scanner_finds_each_kind_of_secret_and_never_prints_it(fresh_sim: Simulator) -> None:
    jwt = fresh_sim.user_token()
    refresh = fresh_sim.refresh_token_for()
    assertion = fresh_sim.federated_assertion()
    scanner = SecretScanner([CLIENT_SECRET])
    scanner.add_secret(refresh)
    try:
        raise RuntimeError(f"token endpoint said no to client_secret {CLIENT_SECRET}")
    except RuntimeError:
        import sys  # noqa: PLC0415

        failing = logging.LogRecord(
            "planted", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    planted = [
        _record("calling with %s", jwt),  # a JWT in the arguments
        _record(f"Authorization: Bearer {jwt[:40]}"),  # a bearer value, rendered
        _record("redeemed", refresh_token=refresh),  # an extra attribute
        _record("assertion %(a)s", a=assertion),  # a client assertion (a JWT)
        failing,  # a secret in the exception text
        _record("key: -----BEGIN PRIVATE KEY-----\nMIIE..."),
    ]
    for record in planted:
        findings = scanner.find(record)
        assert findings, record.getMessage()
        for finding in findings:
            text = finding.describe()
            for secret in (jwt, refresh, assertion, CLIENT_SECRET, jwt[:40]):
                assert secret not in text


def test_the_scanner_passes_redacted_and_ordinary_records() -> None:
    scanner = SecretScanner([CLIENT_SECRET])
    clean = [
        _record("GET /api/relationship-request -> 200 in 12.0 ms", status=200),
        _record("Authorization: Bearer [redacted]"),
        _record("token [redacted-jwt] refused"),
        _record("client_secret=[redacted]"),
        _record("partner center GET %s -> %s", "/v1/customers/relationshiprequests", 200),
        _record("ids", ms_request_id=str(uuid.uuid4())),
    ]
    for record in clean:
        assert scanner.find(record) == [], record.getMessage()


def test_the_live_hook_sees_loggers_that_do_not_propagate(fresh_sim: Simulator) -> None:
    """A record of a propagate-less logger with no handler still reaches the session's hook."""
    logger = logging.getLogger(f"tests.selftest.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    before = len(LOG_SCANNER.selftest)
    seen_before = LOG_SCANNER.records
    logger.debug(
        "planted",
        extra={SELFTEST_ATTRIBUTE: True, "planted_token": fresh_sim.user_token()},
    )
    assert LOG_SCANNER.records > seen_before, "the hook is not installed"
    new = LOG_SCANNER.selftest[before:]
    assert any("JWT" in finding.kind for finding in new)
    assert LOG_SCANNER.findings == [], [f.describe() for f in LOG_SCANNER.findings[:5]]


def test_refresh_tokens_issued_by_simulators_are_known(fresh_sim: Simulator) -> None:
    token = fresh_sim.refresh_token_for()
    assert token in LOG_SCANNER.secrets
    assert CLIENT_SECRET in LOG_SCANNER.secrets
