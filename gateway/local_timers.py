"""Timer triggers for the local host: NCRONTAB schedules, fired on time (``make run``).

The Functions host reads a timer's schedule as NCRONTAB with six fields (second, minute, hour,
day of month, month, day of week; UTC), where ``%NAME%`` stands for the app setting ``NAME``.
This module parses the same expressions and runs each timer function when it is due. As in
NCrontab, a day must match both the day-of-month and the day-of-week fields.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from partnercenter import SETTINGS, utc_now

from .background import BackgroundRunner
from .registry import TimerFunction

logger = logging.getLogger("gateway.timers")

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SETTING = re.compile(r"^%([A-Za-z0-9_.:-]+)%$")
#: How far ahead a schedule is searched for its next occurrence.
_HORIZON = timedelta(days=366 * 5)


class ScheduleError(ValueError):
    """An NCRONTAB expression that cannot be parsed; the message says which field."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: The first name stands for this number (months start at 1).
    names_from: int = 0


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day of week", 0, 6, _DAYS, 0),
)


def _number(text: str, spec: _Field) -> int:
    lowered = text.lower()
    if lowered in spec.names:
        return spec.names.index(lowered) + spec.names_from
    if not text.isdigit():
        raise ScheduleError(f"{spec.name}: {text!r} is not a number")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise ScheduleError(f"{spec.name}: {value} is outside {spec.low}-{spec.high}")
    return value


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{spec.name}: bad step in {item!r}")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _number(first, spec), _number(last, spec)
            if low > high:
                raise ScheduleError(f"{spec.name}: the range {item!r} runs backwards")
        else:
            low = _number(base, spec)
            high = spec.high if step_text else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed six-field NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        """Parse ``expression``; :class:`ScheduleError` names the field that is wrong."""
        parts = expression.split()
        if len(parts) != len(_FIELDS):
            raise ScheduleError(
                f"{expression!r} has {len(parts)} fields; NCRONTAB needs six "
                "(second minute hour day month day-of-week)"
            )
        fields = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        return cls(expression, *fields)

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC)."""
        t = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        end = t + _HORIZON
        while t < end:
            if t.month not in self.months:
                t = _next_month(t)
            elif t.day not in self.days or (t.weekday() + 1) % 7 not in self.weekdays:
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            elif t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
            elif t.minute not in self.minutes:
                t = (t + timedelta(minutes=1)).replace(second=0)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ScheduleError(f"{self.expression!r} never occurs")


def _next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)


def resolve_schedule(schedule: str, environ: Mapping[str, str]) -> str:
    """The expression of a trigger's schedule: ``%NAME%`` is replaced by the setting ``NAME``
    (from the environment, else the setting's documented default)."""
    match = _SETTING.match(schedule.strip())
    if match is None:
        return schedule
    name = match.group(1)
    value = environ.get(name, "").strip()
    if not value:
        defaults = {spec.name: spec.default for spec in SETTINGS}
        value = defaults.get(name) or ""
    if not value:
        raise ScheduleError(f"the schedule names the app setting {name}, which is not set")
    return value


class TimerScheduler:
    """Fires each timer function when its schedule is due, on a thread of its own."""

    def __init__(
        self,
        timers: Sequence[TimerFunction],
        runner: BackgroundRunner,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        env = os.environ if environ is None else environ
        self._runner = runner
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.schedules: dict[str, tuple[TimerFunction, Schedule]] = {}
        for timer in timers:
            try:
                schedule = Schedule.parse(resolve_schedule(timer.schedule, env))
            except ScheduleError as err:
                logger.error("timer %s is disabled: its schedule is invalid: %s", timer.name, err)
                continue
            self.schedules[timer.name] = (timer, schedule)

    def start(self) -> None:
        """Start firing timers (and run those marked ``run_on_startup`` now)."""
        for timer, _ in self.schedules.values():
            if timer.run_on_startup:
                self._runner.start(timer, "", reason="Timer fired on startup")
        self._thread = threading.Thread(target=self._loop, name="timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop firing timers (runs in progress finish on their own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        now = self._clock()
        due = {name: schedule.next_after(now) for name, (_, schedule) in self.schedules.items()}
        for name, when in due.items():
            logger.info("timer %s: next run at %s", name, when.isoformat())
        while due and not self._stop.is_set():
            name, when = min(due.items(), key=lambda item: item[1])
            wait = (when - self._clock()).total_seconds()
            if wait > 0 and self._stop.wait(min(wait, 60.0)):
                return
            if self._clock() < when:
                continue
            timer, schedule = self.schedules[name]
            self._runner.start(timer, "", reason=f"Timer fired at {when.isoformat()}")
            due[name] = schedule.next_after(when)
