"""``make bench``: every benchmark part in turn, on the local broker; figures to bench/results/.

    .venv/bin/python -m bench.run                 (BENCH_QUICK=1: a short smoke run)

Parts, in the order they run (the last one sizes itself to the time left):

5. senders     (bench.bench_channels)  messages per second per channel into the sandbox
1. throughput  (bench.throughput)      events/s through one worker, a raw passthrough, CPU per layer
2. latency     (bench.latency)         produced -> accepted by the sandbox, 50 to 1,000/s, knee
4. state       (bench.state)           disk and memory per customer, recovery, at 100k customers
3. timers      (bench.timers)          a million pending touchpoints: lateness, memory, recovery

Writes ``bench/results/bench-<UTC time>.json`` and ``.md``, and the same as ``latest.json`` and
``latest.md``. Figures only: nothing here passes or fails. A part that fails is recorded as
``<part>_error`` and the others still run.

BENCH_BUDGET_SECONDS (default 860, quick 300) is the whole run's time; the timers part measures
the largest customer count up to a million that its calibration predicts will fit in what is left.
BENCH_PARTS (comma-separated part names) runs only those.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import against, bench_channels, latency, state, throughput, timers
from bench.common import RESULTS, Stopwatch, cores, print_figures, quick

BUDGET_SECONDS = 860.0
QUICK_BUDGET_SECONDS = 300.0
RESERVE_SECONDS = 15.0  # kept back from the timers part's share: writing results, slack
REQUIRED = (
    "worker_events_per_s",
    "raw_passthrough_events_per_s",
    "ratio_to_raw",
    "e2e_p50_ms_at_1000",
    "e2e_p99_ms_at_1000",
    "timer_lateness_p99_s",
    "timer_pending",
    "timer_worker_rss_bytes",
    "recovery_seconds",
    "cores",
    "date",
)
PARTS = ("senders", "throughput", "latency", "state", "timers")
SECTIONS = {
    "throughput": ("worker_", "raw_", "ratio_", "warmup_", "produce_", "input_", "layer_"),
    "latency": ("e2e_", "latency_error"),
    "timers": ("timer_", "recovery_seconds"),
    "state": ("state_",),
    "senders": ("senders_",),
}


class Bench:
    def __init__(self, short: bool, budget: float, parts: tuple[str, ...]) -> None:
        self.short = short
        self.budget = budget
        self.parts = parts
        self.clock = Stopwatch()
        self.figures: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}
        self.calibration: dict[str, Any] | None = None

    async def part(self, name: str, work: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        if name not in self.parts:
            return
        print(f"[{self.clock():6.0f} s] {name} ...", flush=True)
        started = Stopwatch()
        try:
            self.figures.update(await work())
        except Exception as exc:
            traceback.print_exc()
            self.figures[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:500]
        self.seconds[name] = round(started(), 1)
        print(f"[{self.clock():6.0f} s] {name} took {self.seconds[name]:.0f} s", flush=True)

    async def state_part(self) -> dict[str, Any]:
        customers = timers.QUICK_CALIBRATION if self.short else timers.CALIBRATION
        self.calibration = await state.measure(customers)
        name = state.size_name(customers)
        return {f"state_{key}_at_{name}": value for key, value in self.calibration.items()}

    async def timers_part(self) -> dict[str, Any]:
        left = self.budget - self.clock() - RESERVE_SECONDS
        return await timers.run(self.short, calibration=self.calibration, budget_seconds=left)

    async def run(self) -> dict[str, Any]:
        await self.part("senders", lambda: bench_channels.run(self.short))
        await self.part("throughput", lambda: throughput.run(self.short))
        await self.part("latency", lambda: latency.run(self.short))
        await self.part("state", self.state_part)
        await self.part("timers", self.timers_part)
        return self.results()

    def results(self) -> dict[str, Any]:
        figures = dict(self.figures)
        figures.update(self.per_customer(figures))
        results: dict[str, Any] = dict.fromkeys(REQUIRED)
        results.update(figures)
        results["cores"] = cores()
        results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["quick"] = self.short
        results["budget_seconds"] = self.budget
        results["wall_seconds"] = round(self.clock(), 1)
        results["part_seconds"] = self.seconds
        return results

    def per_customer(self, figures: Mapping[str, Any]) -> dict[str, Any]:
        """Part 4 at the timers part's size, and what one more customer costs between sizes."""
        if self.calibration is None or not figures.get("timer_customers"):
            return {}
        large = figures["timer_customers"]
        name = state.size_name(large)
        out: dict[str, Any] = {
            f"state_disk_bytes_at_{name}": figures.get("timer_state_disk_bytes"),
            f"state_worker_rss_bytes_at_{name}": figures.get("timer_worker_rss_bytes"),
            f"state_recovery_seconds_at_{name}": figures.get("recovery_seconds"),
            f"state_cold_recovery_seconds_at_{name}": figures.get("timer_recovery_seconds"),
        }
        small = self.calibration
        extra = large - small["customers"]
        for key, timer_key in (
            ("disk_bytes", "timer_state_disk_bytes"),
            ("worker_rss_bytes", "timer_worker_rss_bytes"),
        ):
            if extra > 0 and figures.get(timer_key) is not None:
                out[f"state_{key}_per_customer_marginal"] = round(
                    (figures[timer_key] - small[key]) / extra, 1
                )
        return out


def markdown(results: Mapping[str, Any]) -> str:
    """The results as Markdown: the headline figures, then every figure by part."""
    kind = "a quick smoke run (sizes too small to mean much)" if results["quick"] else "a full run"
    lines = [
        f"# Aftercare benchmark, {results['date']}",
        "",
        f"{kind.capitalize()}: {results['cores']} cores, {results['wall_seconds']:.0f} s in all. "
        "Figures only; the machine may have been shared.",
        "",
        "| figure | value |",
        "| --- | ---: |",
    ]
    lines += [f"| {key} | {_cell(results, key)} |" for key in REQUIRED]
    baseline = results.get("baseline")
    if baseline:
        lines += ["", f"## against {baseline['revision']}, measured in the same run", ""]
        lines += against.table(baseline, results, _cell)
    placed = set(REQUIRED) | {"quick", "budget_seconds", "wall_seconds", "part_seconds", "baseline"}
    for part in PARTS:
        prefixes = SECTIONS[part]
        keys = [k for k in results if k not in placed and k.startswith(prefixes)]
        keys += [k for k in results if k == f"{part}_error"]
        if not keys:
            continue
        seconds = results["part_seconds"].get(part)
        lines += ["", f"## {part}" + (f" ({seconds:.0f} s)" if seconds is not None else ""), ""]
        lines += ["| figure | value |", "| --- | ---: |"]
        lines += [f"| {key} | {_cell(results, key)} |" for key in keys]
        placed.update(keys)
    rest = [k for k in results if k not in placed]
    if rest:
        lines += ["", "## other", "", "| figure | value |", "| --- | ---: |"]
        lines += [f"| {key} | {_cell(results, key)} |" for key in rest]
    return "\n".join(lines) + "\n"


def _cell(results: Mapping[str, Any], key: str) -> str:
    shown = _shown(results.get(key))
    # A latency percentile that messages never accepted may have moved is only a lower bound.
    if key.startswith("e2e_p"):
        name, rate = key.split("_")[1], key.rsplit("_", 1)[-1]
        if name in (results.get(f"e2e_lower_bounds_at_{rate}") or ()):
            return f"≥ {shown}"
    return shown


def _shown(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write(results: Mapping[str, Any]) -> list[str]:
    folder = Path(os.environ.get("BENCH_RESULTS") or RESULTS)  # BENCH_AGAINST's run: elsewhere
    folder.mkdir(exist_ok=True)
    stamp = datetime.fromisoformat(results["date"]).strftime("%Y%m%dT%H%M%SZ")
    document = json.dumps(results, indent=2) + "\n"
    table = markdown(results)
    written = []
    for name in (f"bench-{stamp}", "latest"):
        (folder / f"{name}.json").write_text(document)
        (folder / f"{name}.md").write_text(table)
        written += [str(folder / f"{name}.json"), str(folder / f"{name}.md")]
    return written


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Topics are created just before they are used: aiokafka's retries on a leader not yet
    # elected are expected here, not news.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    short = quick()
    budget = float(
        os.environ.get("BENCH_BUDGET_SECONDS")
        or (QUICK_BUDGET_SECONDS if short else BUDGET_SECONDS)
    )
    chosen = os.environ.get("BENCH_PARTS", "").strip()
    parts = tuple(p.strip() for p in chosen.split(",") if p.strip()) if chosen else PARTS
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(
            f"BENCH_PARTS: no part named {', '.join(sorted(unknown))} (parts: {', '.join(PARTS)})"
        )
    revision = against.revision_from_env()
    baseline = None
    if revision is not None:
        print(f"measuring {against.describe(revision)} first (BENCH_AGAINST)", flush=True)
        baseline = against.measure(revision, os.environ)
        print("now today's code", flush=True)
    results = asyncio.run(Bench(short, budget, parts).run())
    if baseline is not None and revision is not None:
        results["baseline"] = {"revision": against.describe(revision), **baseline}
    print()
    print_figures({k: v for k, v in results.items() if k not in ("part_seconds", "baseline")})
    print()
    for path in write(results):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
