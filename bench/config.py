"""What one benchmark run does: latencies, workload size, concurrency levels, where results go."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

#: The three ways of calling Partner Center that are compared, in table order.
MODES = ("in-process", "http", "baseline")
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class BenchConfig:
    """Every knob of a run; the defaults are the ``make bench`` run."""

    token_latency: float = 0.120
    api_latency: float = 0.150
    users: int = 50
    calls_per_user: int = 5
    concurrency: tuple[int, ...] = (1, 8, 32)
    cold_start_runs: int = 7
    cache_users: int = 10_000
    cache_cap: int = 1_000
    burst_callers: int = 64
    cached_link_calls: int = 300
    seed: int = 6
    #: Partner Center events: per second, for how long, to how many subscriptions (bench.events).
    event_rate: float = 50.0
    event_seconds: float = 20.0
    event_subscriptions: int = 3
    out_dir: Path = DEFAULT_RESULTS
    quick: bool = False
    profile: bool = False
    #: Only the cold starts (``--cold-start-only``): figures printed, no files written.
    cold_start_only: bool = False

    @property
    def requests_per_run(self) -> int:
        """Calls made by one (mode, concurrency) run."""
        return self.users * self.calls_per_user

    def as_json(self) -> dict[str, Any]:
        """The configuration as plain JSON data."""
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["concurrency"] = list(self.concurrency)
        return data


#: ``--quick``: the same measurements on a workload small enough for a ~1 minute smoke run.
QUICK = BenchConfig(
    users=12,
    calls_per_user=3,
    cold_start_runs=3,
    cache_users=2_000,
    cache_cap=200,
    cached_link_calls=100,
    event_seconds=5.0,
    quick=True,
)


def _concurrency(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected numbers separated by commas") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("expected positive numbers, e.g. 1,8,32")
    return levels


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _milliseconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value / 1000


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """The configuration from the command line (``python -m bench --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The gateway (in process and over HTTP) against the naive way of calling "
        "Partner Center, on the same simulated upstream.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a ~1 minute smoke run (smaller numbers)"
    )
    parser.add_argument(
        "--token-latency-ms", type=_milliseconds, help="added to every token request (120)"
    )
    parser.add_argument(
        "--api-latency-ms", type=_milliseconds, help="added to every Partner Center call (150)"
    )
    parser.add_argument("--users", type=_positive, help="distinct users per run (50)")
    parser.add_argument(
        "--calls-per-user",
        type=_positive,
        help="calls per user per run, one of them a relationship request (5); with --users "
        "this sets how long a run lasts",
    )
    parser.add_argument(
        "--concurrency", type=_concurrency, help="thread-pool sizes to run, e.g. 1,8,32"
    )
    parser.add_argument("--cold-start-runs", type=_positive, help="fresh imports timed (7)")
    parser.add_argument("--cache-users", type=_positive, help="users put in the token cache")
    parser.add_argument("--cache-cap", type=_positive, help="TOKEN_CACHE_MAX_USERS of the cap test")
    parser.add_argument(
        "--burst-callers", type=_positive, help="concurrent first calls of one user (64)"
    )
    parser.add_argument(
        "--cached-link-calls", type=_positive, help="cached relationship requests timed"
    )
    parser.add_argument("--seed", type=int, help="seed of the call order (6)")
    parser.add_argument("--event-rate", type=float, help="Partner Center events per second (50)")
    parser.add_argument("--event-seconds", type=float, help="how long events are sent (20)")
    parser.add_argument(
        "--event-subscriptions", type=_positive, help="subscriptions each event goes to (3)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile warm in-process calls with pyinstrument (profile.txt, profile.html)",
    )
    parser.add_argument(
        "--cold-start-only",
        action="store_true",
        help="only the cold starts (import and first answer), printed; writes no results",
    )
    parser.add_argument("--out", type=Path, help=f"results folder ({DEFAULT_RESULTS})")
    args = parser.parse_args(argv)

    config = replace(
        QUICK if args.quick else BenchConfig(),
        profile=args.profile,
        cold_start_only=args.cold_start_only,
    )
    explicit = {
        "token_latency": args.token_latency_ms,
        "api_latency": args.api_latency_ms,
        "users": args.users,
        "calls_per_user": args.calls_per_user,
        "concurrency": args.concurrency,
        "cold_start_runs": args.cold_start_runs,
        "cache_users": args.cache_users,
        "cache_cap": args.cache_cap,
        "burst_callers": args.burst_callers,
        "cached_link_calls": args.cached_link_calls,
        "seed": args.seed,
        "event_rate": args.event_rate,
        "event_seconds": args.event_seconds,
        "event_subscriptions": args.event_subscriptions,
        "out_dir": args.out,
    }
    return replace(config, **{k: v for k, v in explicit.items() if v is not None})
