"""The Partner Center webhook receiver's work: check the delivery's signature, parse the event,
record it. The HTTP function around it only shapes the answer."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from partnercenter import PartnerCenterEvent, Settings, WebhookVerifier, require_event_size

from .event_store import RecordedEvent, record_event
from .runtime import get_runtime
from .storage import storage_clients

_lock = threading.Lock()
_verifier: tuple[Settings, WebhookVerifier] | None = None


def webhook_verifier() -> WebhookVerifier:
    """The process-wide verifier (its certificate cache), for the current settings."""
    global _verifier  # noqa: PLW0603 - the one process-wide instance
    settings = get_runtime().settings
    current = _verifier
    if current is not None and current[0] is settings:
        return current[1]
    with _lock:
        if _verifier is None or _verifier[0] is not settings:
            verifier = WebhookVerifier(allowed_hosts=settings.webhook_certificate_hosts)
            _verifier = (settings, verifier)
        return _verifier[1]


def receive_event(headers: Mapping[str, str], body: bytes) -> RecordedEvent:
    """Verify, parse and record one delivery.

    The size is checked first (no signature work on an oversized body), then the signature
    (:class:`partnercenter.WebhookSignatureError`: nothing is stored), then the payload
    (:class:`partnercenter.InvalidArgumentError`), then the event is stored and queued
    (:class:`gateway.storage.StorageUnavailableError` if that fails).
    """
    require_event_size(body)
    webhook_verifier().verify(headers, body)
    event = PartnerCenterEvent.from_json(body)
    return record_event(storage_clients(), event)
