"""The service user's consent state (what /api/health shows), from a store's record."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from partnercenter import (
    ConsentRecord,
    ConsentState,
    ConsentStoreError,
    ServiceUserConsent,
    ServiceUserNotConfiguredError,
    StoredRefreshToken,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class FakeStore:
    location = "a fake store"
    writable = True

    def __init__(self, record: ConsentRecord | Exception) -> None:
        self.record = record
        self.reads = 0
        self.release = threading.Event()
        self.release.set()

    def read(self, *, timeout: float) -> StoredRefreshToken:
        return StoredRefreshToken("token", self.read_record(timeout=timeout))

    def read_record(self, *, timeout: float) -> ConsentRecord:
        self.reads += 1
        self.release.wait(30)
        if isinstance(self.record, Exception):
            raise self.record
        return self.record

    def write(
        self, token: str, *, expires_on: datetime, tags: Mapping[str, str], timeout: float
    ) -> ConsentRecord:
        raise AssertionError("not written here")


def consent(store: FakeStore | None, **kwargs: object) -> ServiceUserConsent:
    return ServiceUserConsent(store, wall_clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def record(days_left: float, version: str = "v1", **tags: str) -> ConsentRecord:
    return ConsentRecord(version, NOW - timedelta(days=1), NOW + timedelta(days=days_left), tags)


@pytest.mark.parametrize(
    ("days_left", "state"),
    [
        (60, ConsentState.OK),
        (14.5, ConsentState.OK),
        (13, ConsentState.EXPIRING),
        (0.01, ConsentState.EXPIRING),
        (0, ConsentState.EXPIRED),
        (-3, ConsentState.EXPIRED),
    ],
)
def test_state_from_the_expiry(days_left: float, state: ConsentState) -> None:
    status = consent(FakeStore(record(days_left))).status()
    assert status.state is state
    assert status.expires_on == NOW + timedelta(days=days_left)


def test_missing_unknown_and_no_mfa() -> None:
    assert consent(None).status().state is ConsentState.MISSING
    assert (
        consent(FakeStore(ServiceUserNotConfiguredError("none"))).status().state
        is ConsentState.MISSING
    )
    assert consent(FakeStore(ConsentStoreError("down"))).status().state is ConsentState.UNKNOWN
    assert consent(FakeStore(ConsentRecord())).status().state is ConsentState.UNKNOWN
    assert consent(FakeStore(record(60, mfa="false"))).status().state is ConsentState.NO_MFA


def test_a_refusal_holds_for_its_version_only() -> None:
    store = FakeStore(record(60))
    tracked = consent(store, status_ttl=0.0)
    tracked.record_success("v1")
    tracked.record_refusal(ConsentState.NO_MFA)
    assert tracked.status().state is ConsentState.NO_MFA
    tracked.record_success("v1")  # redeeming works without MFA: still refused
    assert tracked.status().state is ConsentState.NO_MFA
    store.record = record(90, version="v2")  # a new consent
    assert tracked.status().state is ConsentState.OK
    tracked.record_refusal(ConsentState.EXPIRED, "v2")
    assert tracked.status().state is ConsentState.EXPIRED
    tracked.record_success("v2")
    assert tracked.status().state is ConsentState.OK


def test_reads_are_cached_and_a_slow_store_is_unknown() -> None:
    store = FakeStore(record(60))
    tracked = consent(store, status_ttl=300.0, status_timeout=0.2)
    assert tracked.status().state is ConsentState.OK
    assert tracked.status().state is ConsentState.OK
    assert store.reads == 1
    tracked.forget()
    store.release.clear()
    assert tracked.status().state is ConsentState.UNKNOWN
    assert tracked.status().state is ConsentState.UNKNOWN
    assert store.reads == 2  # one read in flight, shared
    store.release.set()
