"""Structured logs: every record carries the request's correlation id (in its message too), and no
secret."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

# JWTs (base64url parts starting with a JSON header; the signature may have been cut off by a
# length limit upstream), bearer values, and the key=value forms in which secrets travel (form
# bodies, connection strings, query strings).
_REDACTIONS = (
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)((?:client_secret|refresh_token|access_token|id_token|assertion|client_assertion"
        r"|password|passphrase|code)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]{4,}"
    ),
)
_secret_values: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it would appear in a log record."""
    if value and len(value) >= 6:
        _secret_values.add(value)


def redact(text: str) -> str:
    """``text`` with tokens and secrets replaced by ``[redacted]``."""
    for secret in _secret_values:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    text = _REDACTIONS[0].sub("[redacted-jwt]", text)
    text = _REDACTIONS[1].sub(r"\1[redacted]", text)
    return _REDACTIONS[2].sub(r"\1[redacted]", text)


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[None]:
    """Attach ``correlation_id`` to every log record made in this context."""
    token = _correlation_id.set(correlation_id)
    try:
        yield
    finally:
        _correlation_id.reset(token)


def current_correlation_id() -> str | None:
    """The correlation id of the request being served, if any."""
    return _correlation_id.get()


_base_factory = logging.getLogRecordFactory()

#: How a log message names its request's correlation id (searchable as text in any log store).
CORRELATION_MARK = "correlationId="


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    correlation_id = _correlation_id.get()
    # Render and redact here: every handler (the Functions host's included) then sees clean text.
    try:
        message = redact(record.getMessage())
    except (TypeError, ValueError):
        message = redact(str(record.msg))
    if correlation_id is not None:
        # Only the formatted message reaches the Functions host and Application Insights (the
        # record's fields are lost there), so the message itself names the request. A field
        # that is None would be an invalid OpenTelemetry attribute: it is set only when known.
        record.correlation_id = correlation_id
        message = f"{message} {CORRELATION_MARK}{correlation_id}"
    record.msg = message
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlationId, extras."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "correlation_id"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlationId": getattr(record, "correlation_id", None),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool) else redact(str(value))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


#: Libraries whose INFO records are per-call noise: the Azure SDK's HTTP logging policy (every
#: Key Vault, storage and managed-identity request's URL and headers) and azure-identity's "token
#: acquired" lines. In Azure they would be a trace each in Application Insights. Their warnings
#: and errors still show.
QUIET_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity")


def configure_logging(*, json_to_stderr: bool = False, level: int = logging.INFO) -> None:
    """Install the redacting record factory (idempotent); optionally JSON lines on stderr."""
    if logging.getLogRecordFactory() is not _record_factory:
        logging.setLogRecordFactory(_record_factory)
    for name in ("gateway", "partnercenter"):
        logging.getLogger(name).setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    if json_to_stderr:
        root = logging.getLogger()
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.handlers = [handler]
        root.setLevel(level)
