"""What deciding in event-time order costs: the worker with its idle bound and without, one run.

    .venv/bin/python -m bench.ordering      (BENCH_QUICK=1: a short smoke run)

The worker holds a partition number's records while one of its five inputs is empty, up to
``AFTERCARE_MAX_IDLE_MS``. This part measures the throughput part and the latency part at rates a
worker keeps up with (50 and 200 order confirmations a second), first with a bound of 1 ms (next
to no wait: the order within each batch only) and then with the default of 100 ms, and reports
both and their ratios. Figures only.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bench import latency, throughput
from bench.common import print_figures, quick

RATES = (50, 200)
BOUNDS_MS = (1, 100)


async def run(short: bool | None = None) -> dict[str, Any]:
    short = quick() if short is None else short
    figures: dict[str, Any] = {}
    before = os.environ.get("AFTERCARE_MAX_IDLE_MS")
    try:
        for bound in BOUNDS_MS:
            os.environ["AFTERCARE_MAX_IDLE_MS"] = str(bound)  # the worker processes inherit it
            tput = await throughput.run(short)
            figures[f"order_worker_events_per_s_idle_{bound}ms"] = tput.get("worker_events_per_s")
            lat = await latency.run(short, rates=RATES)
            for rate in RATES:
                for q in ("p50", "p99"):
                    figures[f"order_e2e_{q}_ms_at_{rate}_idle_{bound}ms"] = lat.get(
                        f"e2e_{q}_ms_at_{rate}"
                    )
    finally:
        if before is None:
            os.environ.pop("AFTERCARE_MAX_IDLE_MS", None)
        else:
            os.environ["AFTERCARE_MAX_IDLE_MS"] = before
    low, high = BOUNDS_MS
    fast, held = (
        figures[f"order_worker_events_per_s_idle_{low}ms"],
        figures[f"order_worker_events_per_s_idle_{high}ms"],
    )
    if isinstance(fast, int | float) and isinstance(held, int | float) and fast:
        figures["order_throughput_ratio"] = round(held / fast, 3)
    for rate in RATES:
        a = figures.get(f"order_e2e_p50_ms_at_{rate}_idle_{low}ms")
        b = figures.get(f"order_e2e_p50_ms_at_{rate}_idle_{high}ms")
        if isinstance(a, int | float) and isinstance(b, int | float):
            figures[f"order_e2e_p50_added_ms_at_{rate}"] = round(b - a, 1)
    return figures


def main() -> None:
    print_figures(asyncio.run(run()))


if __name__ == "__main__":
    main()
