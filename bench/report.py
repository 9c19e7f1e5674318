"""The results: one table (text and Markdown), the targets, JSON and a latency chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import MODES, BenchConfig
from .events import DELIVERY_P50_TARGET_MS, RECEIVER_P99_TARGET_MS

Row = list[str]

HEADERS = [
    "mode",
    "conc",
    "calls",
    "errors",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "calls/s",
    "token reqs",
    "new conns id+api",
    "overhead p50/p99 ms",
    "peak RSS +MiB",
]
#: Upper bounds of the targets.
OVERHEAD_P50_MS = 1.0
OVERHEAD_P99_MS = 5.0
IMPORT_MS = 200.0
BYTES_PER_USER = 10 * 1024
CACHED_LINK_P50_MS = 1.0
#: The first answer may take this much more than the import plus one token exchange and one
#: Partner Center call (a new user's answer in the same, warm, process).
FIRST_ANSWER_SLACK_MS = 20.0
#: A capped cache's memory may wobble this much (allocator slack) and still count as flat.
FLAT_TOLERANCE = 1.10


def _ms(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _ratio(gateway: float, baseline: float) -> str:
    if baseline == 0:
        return "-"
    ratio = gateway / baseline
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def _conns(run: dict[str, Any]) -> tuple[int, int]:
    return run["connections"].get("identity", 0), run["connections"].get("api", 0)


def _token_reqs(run: dict[str, Any]) -> int:
    return int(sum(run["token_requests"].values()))


def _run_row(run: dict[str, Any]) -> Row:
    latency, overhead = run["latency_ms"] or {}, run["overhead_ms"]
    identity, api = _conns(run)
    return [
        run["mode"],
        str(run["concurrency"]),
        str(run["requests"]),
        str(run["errors"]),
        _ms(latency.get("p50", float("nan"))),
        _ms(latency.get("p95", float("nan"))),
        _ms(latency.get("p99", float("nan"))),
        f"{run['throughput_rps']:.1f}",
        str(_token_reqs(run)),
        f"{identity}+{api}",
        f"{_ms(overhead['p50'])} / {_ms(overhead['p99'])}" if overhead else "n/a",
        f"{run['peak_rss_delta_mib']:.1f}",
    ]


def _ratio_row(gateway: dict[str, Any], baseline: dict[str, Any]) -> Row:
    g, b = gateway["latency_ms"], baseline["latency_ms"]
    return [
        f"{gateway['mode']} / baseline",
        str(gateway["concurrency"]),
        "",
        "",
        *(_ratio(g[q], b[q]) if g and b else "-" for q in ("p50", "p95", "p99")),
        _ratio(gateway["throughput_rps"], baseline["throughput_rps"]),
        _ratio(_token_reqs(gateway), _token_reqs(baseline)),
        _ratio(sum(_conns(gateway)), sum(_conns(baseline))),
        "",
        _ratio(gateway["peak_rss_delta_mib"], baseline["peak_rss_delta_mib"]),
    ]


def table_rows(runs: Sequence[dict[str, Any]]) -> list[Row]:
    """Per concurrency: a row per mode, then each gateway mode's ratio to the baseline."""
    rows: list[Row] = []
    for concurrency in sorted({run["concurrency"] for run in runs}):
        by_mode = {run["mode"]: run for run in runs if run["concurrency"] == concurrency}
        rows.extend(_run_row(by_mode[mode]) for mode in MODES if mode in by_mode)
        baseline = by_mode.get("baseline")
        if baseline is not None:
            rows.extend(
                _ratio_row(by_mode[mode], baseline)
                for mode in MODES
                if mode != "baseline" and mode in by_mode
            )
    return rows


def text_table(rows: Sequence[Row]) -> str:
    """A monospace table: text left-aligned, figures right-aligned."""
    widths = [max(len(HEADERS[i]), *(len(row[i]) for row in rows)) for i in range(len(HEADERS))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(HEADERS), rule, *(line(row) for row in rows)])


def markdown_table(rows: Sequence[Row]) -> str:
    """The same table in Markdown."""
    align = ["---", *("---:" for _ in HEADERS[1:])]
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(align) + "|"]
    lines.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return "\n".join(lines)


# --- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One target, whether it was met, and the figures that say so."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``PASS  name: detail``."""
        return f"{'PASS' if self.passed else 'MISS'}  {self.name}: {self.detail}"


def targets(results: dict[str, Any], pool_size: int) -> list[Target]:
    """Every target of the benchmark, evaluated on ``results``."""
    found: list[Target] = []
    gateway_runs = [run for run in results["runs"] if run["mode"] != "baseline"]

    per_user = [
        f"{run['mode']} c={run['concurrency']}: {run['token_requests']['on_behalf_of']} for "
        f"{run['distinct_users']} caller tokens"
        for run in gateway_runs
    ]
    found.append(
        Target(
            "one token request per caller token per token lifetime",
            # Each simulated user calls with one token, so caller tokens = users.
            all(r["token_requests"]["on_behalf_of"] <= r["distinct_users"] for r in gateway_runs),
            "; ".join(per_user),
        )
    )
    burst = results["single_flight"]
    found.append(
        Target(
            f"{burst['callers']} concurrent first calls of one user make one token request",
            burst["token_requests"]["on_behalf_of"] == 1 and burst["errors"] == 0,
            f"{burst['token_requests']['on_behalf_of']} token request(s), "
            f"{burst['errors']} errors (cache: {burst['cache']['misses']} miss, "
            f"{burst['cache']['waits']} waited on it)",
        )
    )
    for run in results["runs"]:
        if run["mode"] != "in-process" or not run["overhead_ms"]:
            continue
        overhead = run["overhead_ms"]
        found.append(
            Target(
                f"gateway overhead in process p50 <= {OVERHEAD_P50_MS:g} ms, "
                f"p99 <= {OVERHEAD_P99_MS:g} ms (c={run['concurrency']})",
                overhead["p50"] <= OVERHEAD_P50_MS and overhead["p99"] <= OVERHEAD_P99_MS,
                f"p50 {overhead['p50']:.3f} ms, p99 {overhead['p99']:.3f} ms",
            )
        )
    identity = max(_conns(run)[0] for run in gateway_runs)
    api = max(_conns(run)[1] for run in gateway_runs)
    found.append(
        Target(
            f"upstream connections opened per host <= pool size ({pool_size})",
            identity <= pool_size and api <= pool_size,
            f"at most {identity} to Entra ID and {api} to Partner Center in one gateway run",
        )
    )
    found += cold_start_targets(results["cold_start"])
    memory = results["token_cache_memory"]
    uncapped, capped = memory["uncapped"], memory["capped"]
    at_cap = next(b for n, b in capped["traced_bytes"] if n >= capped["cap"])
    flat = capped["traced_bytes"][-1][1] <= at_cap * FLAT_TOLERANCE
    found.append(
        Target(
            f"memory per cached user <= {BYTES_PER_USER // 1024} KB and the cap holds",
            uncapped["bytes_per_cached_user"] <= BYTES_PER_USER
            and capped["size"] == capped["cap"]
            and flat,
            f"{uncapped['bytes_per_cached_user'] / 1024:.2f} KB per user "
            f"({memory['token_chars']}-char tokens, {uncapped['users']} users); "
            f"cap {capped['cap']}: size {capped['size']} after {capped['users']} users, "
            f"{at_cap / 2**20:.2f} MiB at the cap -> {capped['traced_bytes'][-1][1] / 2**20:.2f} "
            "MiB at the end",
        )
    )
    link = results["cached_relationship_request"]
    upstream = _token_reqs(link) + link["api_calls"] + sum(link["connections"].values())
    found.append(
        Target(
            f"cached relationship request p50 <= {CACHED_LINK_P50_MS:g} ms in process, "
            "no upstream call",
            link["latency_ms"]["p50"] <= CACHED_LINK_P50_MS and upstream == 0,
            f"p50 {link['latency_ms']['p50']:.3f} ms, p99 {link['latency_ms']['p99']:.3f} ms "
            f"over {link['calls']} calls; {link['api_calls']} API calls, "
            f"{_token_reqs(link)} token requests, {sum(link['connections'].values())} connections",
        )
    )
    found.extend(event_targets(results["events"]))
    return found


def cold_start_targets(cold: dict[str, Any]) -> list[Target]:
    """The two cold-start targets, evaluated on ``cold`` (``runner.cold_start``'s figures)."""
    runs = len(cold["runs_ms"])
    return [
        Target(
            f"import of function_app <= {IMPORT_MS:g} ms with no network",
            cold["median_ms"] <= IMPORT_MS and cold["network_calls"] == 0,
            f"median {cold['median_ms']:.0f} ms of {runs} fresh processes, "
            f"{cold['network_calls']} network calls (after the worker's own imports, "
            f"azure.functions and its standard-library modules, "
            f"{cold['worker_preload_median_ms']:.0f} ms)",
        ),
        Target(
            "first answer of a fresh process <= import + one token exchange + one Partner Center "
            f"call + {FIRST_ANSWER_SLACK_MS:g} ms",
            cold["first_answer_median_ms"] <= cold["first_answer_budget_median_ms"],
            f"median {cold['first_answer_median_ms']:.0f} ms against "
            f"{cold['first_answer_budget_median_ms']:.0f} ms (import {cold['median_ms']:.0f} + "
            f"warm new-user answer {cold['warm_answer_median_ms']:.0f} + "
            f"{FIRST_ANSWER_SLACK_MS:g}); indexing {cold['index_median_ms']:.1f} ms; "
            f"{cold['first_answer_within_budget']} of {runs} starts within",
        ),
    ]


def event_targets(result: dict[str, Any]) -> list[Target]:
    """The events targets: the receiver's p99 answer time and the p50 receipt to callback."""
    receiver, delivery = result["receiver_ms"], result["receipt_to_callback_ms"]
    health = result["baseline_health_ms"]
    complete = result["callbacks_arrived"] == result["callbacks_expected"]
    cpu = "".join(
        f", {name} {ms:.1f} ms" for name, ms in result.get("cpu_ms_per_event", {}).items()
    )
    return [
        Target(
            f"webhook receiver p99 <= {RECEIVER_P99_TARGET_MS:g} ms at {result['rate']:g} events/s",
            receiver["p99"] <= RECEIVER_P99_TARGET_MS
            and result["events_acknowledged"] == result["events_sent"],
            f"p50 {receiver['p50']:.1f} ms, p99 {receiver['p99']:.1f} ms over "
            f"{result['events_sent']} events ({result['events_acknowledged']} acknowledged); "
            f"baseline GET /api/health p50 {health['p50']:.1f} ms, p99 {health['p99']:.1f} ms",
        ),
        Target(
            f"receipt to callback p50 <= {DELIVERY_P50_TARGET_MS:g} ms, every callback arrives",
            delivery["p50"] <= DELIVERY_P50_TARGET_MS and complete,
            f"p50 {delivery['p50']:.0f} ms, p95 {delivery['p95']:.0f} ms; "
            f"{result['callbacks_arrived']} of {result['callbacks_expected']} callbacks "
            f"({result['subscriptions']} subscriptions); CPU per event{cpu or ' unknown'}",
        ),
    ]


# --- files ------------------------------------------------------------------------------------


def chart(runs: Sequence[dict[str, Any]], config: BenchConfig, path: Path) -> None:
    """Latency distributions of the modes side by side, one panel per concurrency."""
    import matplotlib  # noqa: PLC0415 - only the report needs it, and it is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    levels = sorted({run["concurrency"] for run in runs})
    figure, axes = plt.subplots(
        1, len(levels), figsize=(4 * len(levels), 4.5), sharey=True, squeeze=False
    )
    for axis, concurrency in zip(axes[0], levels, strict=True):
        by_mode = {run["mode"]: run for run in runs if run["concurrency"] == concurrency}
        modes = [mode for mode in MODES if by_mode.get(mode, {}).get("latencies_ms")]
        # Violins, not boxes: the gateway's latencies are multi-modal (cached link, API call,
        # first call with a token exchange) and a box would hide that.
        axis.violinplot(
            [by_mode[mode]["latencies_ms"] for mode in modes],
            showmedians=True,
            quantiles=[[0.01, 0.99] for _ in modes],
            widths=0.8,
            showextrema=False,
            bw_method=0.08,
        )
        axis.set_xticks(range(1, len(modes) + 1), modes)
        axis.set_title(f"concurrency {concurrency}")
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("latency per call (ms); bars: median, p1, p99")
    figure.suptitle(
        f"Simulated upstream: token {config.token_latency * 1000:.0f} ms, "
        f"Partner Center {config.api_latency * 1000:.0f} ms; "
        f"{config.users} users x {config.calls_per_user} calls"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(
    rows: Sequence[Row], found: Sequence[Target], results: dict[str, Any], command: str
) -> str:
    """The Markdown the README's Performance section is made of."""
    config = results["config"]
    machine = results["machine"]
    lines = [
        f"Measured {results['generated_at']} on {machine['cpus']} CPUs, Python "
        f"{machine['python']}; simulated upstream with {config['token_latency'] * 1000:.0f} ms "
        f"per token request and {config['api_latency'] * 1000:.0f} ms per Partner Center call; "
        f"{config['users']} users x {config['calls_per_user']} calls per run.",
        "",
        markdown_table(rows),
        "",
        "Overhead: gateway latency minus the time spent in upstream calls and token "
        "acquisition (instrumented per request). Peak RSS: resident memory above the run's "
        "start, sampled every 5 ms. Connections: new TCP connections accepted by the simulated "
        "Entra ID and Partner Center.",
        "",
        *(f"- {target.line()}" for target in found),
        "",
        f"Reproduce: `{command}` (wall time {results['wall_seconds']:.0f} s).",
        "",
    ]
    return "\n".join(lines)


def write(
    results: dict[str, Any],
    rows: Sequence[Row],
    found: Sequence[Target],
    config: BenchConfig,
    command: str,
) -> list[Path]:
    """``latest.json``, ``latest.md`` and ``latency.png`` in the results folder."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    data = {
        **results,
        "runs": [{k: v for k, v in run.items() if k != "latencies_ms"} for run in results["runs"]],
        "table": {"headers": HEADERS, "rows": list(rows)},
        "targets": [{"name": t.name, "passed": t.passed, "detail": t.detail} for t in found],
    }
    paths = [out / "latest.json", out / "latest.md", out / "latency.png"]
    paths[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(rows, found, data, command), encoding="utf-8")
    chart(results["runs"], config, paths[2])
    return paths
