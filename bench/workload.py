"""The workload every mode runs, and the statistics of what it measured."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from simulator import CUSTOMERS

#: The gateway's ``type`` query values, cycled through by the agreement listings.
AGREEMENT_TYPES = ("MicrosoftCustomerAgreement", "MicrosoftCloudAgreement", "all")


@dataclass(frozen=True)
class Call:
    """One call of the workload: a user lists a customer's agreements or asks for the link."""

    user: int
    kind: Literal["agreements", "relationship-request"]
    customer_id: str = ""
    agreement_type: str = "all"


def plan(users: int, calls_per_user: int, seed: int) -> list[Call]:
    """``calls_per_user`` calls for each user (one relationship request, the rest agreement
    listings of customers from the simulator's population), interleaved in a seeded order so
    that one user's calls may run at the same time, as parallel flow runs do."""
    rng = random.Random(seed)
    calls: list[Call] = []
    for user in range(users):
        listings = calls_per_user - 1 if calls_per_user > 1 else 1
        calls.extend(
            Call(
                user,
                "agreements",
                customer_id=rng.choice(CUSTOMERS),
                agreement_type=AGREEMENT_TYPES[(user + n) % len(AGREEMENT_TYPES)],
            )
            for n in range(listings)
        )
        if calls_per_user > 1:
            calls.append(Call(user, "relationship-request"))
    rng.shuffle(calls)
    return calls


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (not empty), linearly interpolated."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float] | None:
    """p50, p95, p99, mean and max of durations in seconds, as milliseconds (None if empty)."""
    if not seconds:
        return None
    return {
        "p50": percentile(seconds, 0.50) * 1000,
        "p95": percentile(seconds, 0.95) * 1000,
        "p99": percentile(seconds, 0.99) * 1000,
        "mean": sum(seconds) / len(seconds) * 1000,
        "max": max(seconds) * 1000,
    }
