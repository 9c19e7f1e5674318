"""Shared fixtures: the local simulator of Entra ID and Partner Center, over TLS."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.storage import STORAGE_SETTING, ensure_storage, set_storage_clients, storage_clients
from partnercenter import PartnerCenterClient, Settings
from simulator import Simulator
from simulator.azurite import Azurite


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One simulator for the session; tests reset its faults and counters."""
    state = tmp_path_factory.mktemp("sim")
    simulator = Simulator(state_dir=str(state)).start()
    # requests lets REQUESTS_CA_BUNDLE override a session's verify: trust the simulator's CA.
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = simulator.ca_bundle
    try:
        yield simulator
    finally:
        simulator.stop()
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture
def fresh_sim(sim: Simulator) -> Simulator:
    """The simulator with no faults, zero counters and no latency."""
    sim.reset()
    sim.set_latency(token=0.0, api=0.0)
    return sim


def sim_environ(sim: Simulator, **overrides: str) -> dict[str, str]:
    """The service's environment for the simulator, with overrides (empty string = unset)."""
    env = dict(sim.settings())
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


@pytest.fixture
def make_client(fresh_sim: Simulator) -> Iterator[Callable[..., PartnerCenterClient]]:
    """Build clients against the simulator; all are closed after the test."""
    made: list[PartnerCenterClient] = []

    def build(**overrides: str) -> PartnerCenterClient:
        client = PartnerCenterClient(Settings.from_environ(sim_environ(fresh_sim, **overrides)))
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def repo_root() -> Path:
    """The repository's top folder."""
    return Path(__file__).resolve().parents[1]


# --- secrets in logs: every log record of the whole run is scanned ----------------------------
#
# ``logging.Logger.handle`` is wrapped for the session: every record that any logger creates and
# handles passes through it, whatever its handlers, filters or ``propagate`` (loggers that do
# not propagate never reach a root handler, so a root handler alone would miss them). It runs
# after the record factory, so it sees what the log handlers see: after the gateway's redaction.
# At the end of the session any record that still carries a token or secret fails the run.

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}")
_WHOLE_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+(?![\[<]redacted)[A-Za-z0-9._~+/=-]{8,}")
_REFRESH_TOKEN = re.compile(r"\b0\.A[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{16,}")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_SECRET_SHAPES = (
    ("JWT", _JWT),
    ("bearer value", _BEARER),
    ("refresh token", _REFRESH_TOKEN),
    ("private key", _PRIVATE_KEY),
)
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
#: Records carrying this attribute are the hook's own self-test: kept apart, never a failure.
SELFTEST_ATTRIBUTE = "secret_scan_selftest"
#: Loggers set to DEBUG for the run: they log the most about HTTP and tokens.
_CHATTY_LOGGERS = ("msal", "urllib3", "werkzeug", "requests", "simulator")


@dataclass(frozen=True)
class LeakFinding:
    """A record that carries a secret; never holds the secret itself."""

    logger: str
    level: str
    where: str
    kind: str
    excerpt: str

    def describe(self) -> str:
        return f"{self.logger} [{self.level}] {self.where}: {self.kind} in {self.excerpt!r}"


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<SECRET>")
    for shape in (_WHOLE_JWT, *(shape for _, shape in _SECRET_SHAPES)):
        text = shape.sub("<SECRET>", text)
    return text[:160]


class SecretScanner:
    """Finds tokens and secrets in log records: by shape (JWTs, bearer values, refresh tokens,
    private keys) and by value (the client secret and every refresh token the simulators
    issue)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self.secrets: set[str] = {s for s in secrets if len(s) >= 8}
        self.findings: list[LeakFinding] = []
        self.selftest: list[LeakFinding] = []
        self.records = 0

    def add_secret(self, value: str) -> None:
        if len(value) >= 8:
            with self._lock:
                self.secrets.add(value)

    def find(self, record: logging.LogRecord) -> list[LeakFinding]:
        """What ``record`` leaks, if anything."""
        with self._lock:
            secrets = list(self.secrets)
        found: list[LeakFinding] = []
        for where, text in _record_texts(record):
            kinds = [name for name, shape in _SECRET_SHAPES if shape.search(text)]
            kinds += ["known secret value" for secret in secrets if secret in text][:1]
            if kinds:
                found.append(
                    LeakFinding(
                        record.name,
                        record.levelname,
                        where,
                        ", ".join(kinds),
                        _mask(text, secrets),
                    )
                )
        return found

    def scan(self, record: logging.LogRecord) -> None:
        found = self.find(record)
        with self._lock:
            self.records += 1
            if getattr(record, SELFTEST_ATTRIBUTE, False):
                self.selftest.extend(found)
            else:
                self.findings.extend(found)


def _record_texts(record: logging.LogRecord) -> Iterator[tuple[str, str]]:
    """Every text a handler could write for ``record``: message, args, exception, extras."""
    try:
        yield "message", record.getMessage()
    except Exception:  # a broken format string still has its parts scanned below
        yield "message", str(record.msg)
    args = record.args
    values = args.values() if isinstance(args, Mapping) else (args or ())
    for index, value in enumerate(values):
        yield f"args[{index}]", repr(value) + " " + str(value)
    if record.exc_text:
        yield "exception", record.exc_text
    elif record.exc_info and record.exc_info[1] is not None:
        yield "exception", "".join(traceback.format_exception(*record.exc_info))
    if record.stack_info:
        yield "stack", record.stack_info
    for name, value in vars(record).items():
        if name not in _STANDARD_ATTRIBUTES and name != SELFTEST_ATTRIBUTE:
            yield f"extra {name}", str(value)


LOG_SCANNER = SecretScanner()
_saved_logging: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Scan every log record from here on; chatty HTTP and token loggers at DEBUG."""
    from simulator import _tokens as simulator_tokens  # noqa: PLC0415
    from simulator import data as simulator_data  # noqa: PLC0415

    LOG_SCANNER.add_secret(simulator_data.CLIENT_SECRET)
    issue = simulator_tokens.TokenIssuer.new_refresh_token

    def issued(self: Any, *args: Any, **kwargs: Any) -> str:
        token = issue(self, *args, **kwargs)
        LOG_SCANNER.add_secret(token)
        return token

    handle = logging.Logger.handle

    def scanned(self: logging.Logger, record: logging.LogRecord) -> Any:
        LOG_SCANNER.scan(record)
        return handle(self, record)

    root = logging.getLogger()
    _saved_logging.update(
        handle=handle,
        issue=issue,
        levels={name: logging.getLogger(name).level for name in ("", *_CHATTY_LOGGERS)},
    )
    simulator_tokens.TokenIssuer.new_refresh_token = issued  # type: ignore[method-assign]
    logging.Logger.handle = scanned  # type: ignore[method-assign]
    root.setLevel(logging.DEBUG)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any record carried a secret (naming the record, never the secret)."""
    if "handle" not in _saved_logging:
        return
    from simulator import _tokens as simulator_tokens  # noqa: PLC0415

    logging.Logger.handle = _saved_logging["handle"]  # type: ignore[method-assign]
    simulator_tokens.TokenIssuer.new_refresh_token = _saved_logging["issue"]  # type: ignore[method-assign]
    for name, level in _saved_logging["levels"].items():
        logging.getLogger(name).setLevel(level)
    _saved_logging.clear()
    findings = LOG_SCANNER.findings
    if not findings:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"SECRETS IN LOGS: {len(findings)} of {LOG_SCANNER.records} log records"]
    lines += ["  " + finding.describe() for finding in findings[:50]]
    if reporter is not None:
        reporter.write_sep("=", "secrets in logs", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        sys.stderr.write("\n".join(lines) + "\n")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite on ports of its own for the session, with ``AzureWebJobsStorage`` pointing at it
    (and the process-wide storage clients rebuilt from it); the tables and queues exist."""
    with Azurite() as emulator:
        previous = os.environ.get(STORAGE_SETTING)
        os.environ[STORAGE_SETTING] = emulator.connection_string
        set_storage_clients(None)
        ensure_storage(storage_clients())
        try:
            yield emulator
        finally:
            set_storage_clients(None)
            if previous is None:
                os.environ.pop(STORAGE_SETTING, None)
            else:
                os.environ[STORAGE_SETTING] = previous
