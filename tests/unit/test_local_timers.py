"""NCRONTAB schedules and the local host's timer and admin runners."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import azure.functions as func
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.admin_functions import AdminFunctions
from gateway.background import BackgroundRunner, invoke
from gateway.local_timers import Schedule, ScheduleError, TimerScheduler, resolve_schedule
from gateway.registry import QueueFunction, TimerFunction


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 3 * * *", "2026-12-02T13:00:00", "2026-12-03T03:00:00"),
        ("0 0 3 * * *", "2026-12-02T02:59:59", "2026-12-02T03:00:00"),
        ("0 0 3 * * *", "2026-12-02T03:00:00", "2026-12-03T03:00:00"),
        ("*/15 * * * * *", "2026-12-02T13:00:07", "2026-12-02T13:00:15"),
        ("0 */5 * * * *", "2026-12-02T13:58:00", "2026-12-02T14:00:00"),
        ("0 30 9 * * 1-5", "2026-12-05T10:00:00", "2026-12-07T09:30:00"),  # Sat -> Mon
        ("0 30 9 * * Mon", "2026-12-02T10:00:00", "2026-12-07T09:30:00"),
        ("0 0 0 1 Jan *", "2026-12-02T00:00:00", "2027-01-01T00:00:00"),
        ("0 0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 12 31 * *", "2026-11-01T00:00:00", "2026-12-31T12:00:00"),
        ("5,10 0 0 * * *", "2026-12-02T00:00:05", "2026-12-02T00:00:10"),
        ("0 0 0 13 * 5", "2026-01-01T00:00:00", "2026-02-13T00:00:00"),  # Friday the 13th
    ],
)
def test_next_occurrence(expression: str, after: str, expected: str) -> None:
    assert Schedule.parse(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 3 * *",
        "0 0 3 * * * *",
        "60 * * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * * 13 *",
        "* * * * * 7",
        "*/0 * * * * *",
        "5-1 * * * * *",
        "x * * * * *",
        "0 0 0 31 2 *",
    ],
)
def test_invalid_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression).next_after(at("2026-01-01T00:00:00"))


def test_a_setting_in_the_schedule_is_resolved() -> None:
    assert resolve_schedule("%CONSENT_ROTATION_SCHEDULE%", {}) == "0 0 3 * * *"
    env = {"CONSENT_ROTATION_SCHEDULE": "0 */5 * * * *"}
    assert resolve_schedule("%CONSENT_ROTATION_SCHEDULE%", env) == "0 */5 * * * *"
    assert resolve_schedule("0 0 * * * *", env) == "0 0 * * * *"
    with pytest.raises(ScheduleError, match="NOT_A_SETTING"):
        resolve_schedule("%NOT_A_SETTING%", {})


def test_the_scheduler_fires_a_timer_when_it_is_due() -> None:
    fired = threading.Event()
    seen: list[func.TimerRequest] = []

    def handler(timer: func.TimerRequest) -> None:
        seen.append(timer)
        fired.set()

    timer = TimerFunction("EverySecond", "%EVERY%", False, "timer", handler)
    runner = BackgroundRunner()
    scheduler = TimerScheduler([timer], runner, environ={"EVERY": "* * * * * *"})
    scheduler.start()
    try:
        assert fired.wait(30)
    finally:
        scheduler.stop()
        runner.wait_idle(10)
    assert seen[0].past_due is False


def test_a_timer_with_a_bad_schedule_is_disabled_not_fatal() -> None:
    timer = TimerFunction("Broken", "%MISSING_SETTING%", False, "timer", lambda timer: None)
    assert TimerScheduler([timer], BackgroundRunner(), environ={}).schedules == {}


def test_a_failing_function_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def handler(timer: func.TimerRequest) -> None:
        raise RuntimeError("boom")

    assert (
        invoke(TimerFunction("Fails", "* * * * * *", False, "timer", handler), "", reason="t")
        is False
    )
    assert any("Failed" in r.getMessage() for r in caplog.records)


def _post(path: str, body: bytes) -> Request:
    return Request(EnvironBuilder(path=path, method="POST", data=body).get_environ())


def test_admin_runs_a_queue_function_with_the_input_as_its_message() -> None:
    received: list[str] = []

    def handler(msg: func.QueueMessage) -> None:
        received.append(msg.get_body().decode())

    queue = QueueFunction("DeliverEvent", "events", "AzureWebJobsStorage", "msg", handler)
    runner = BackgroundRunner()
    admin = AdminFunctions({"DeliverEvent": queue}, runner)
    answer = admin.dispatch(_post("/admin/functions/DeliverEvent", b'{"input": "{\\"id\\": 1}"}'))
    assert answer.status_code == 202
    assert runner.wait_idle(10)
    assert received == ['{"id": 1}']
    assert admin.dispatch(_post("/admin/functions/deliverevent", b"{}")).status_code == 202
    assert runner.wait_idle(10)
    assert received[-1] == ""
    assert admin.dispatch(_post("/admin/functions/Other", b"{}")).status_code == 404
    assert admin.dispatch(_post("/admin/functions/DeliverEvent/x", b"{}")).status_code == 404
    assert admin.dispatch(_post("/admin/other", b"{}")).status_code == 404
    assert (
        admin.dispatch(_post("/admin/functions/DeliverEvent", b'{"input": null}')).status_code
        == 400
    )
