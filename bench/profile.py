"""Where a worker's CPU goes, per layer: a sampling profile (py-spy) read into µs per event.

    profile = await Profile.attach(pid, seconds)   # py-spy record --pid PID --format raw
    ...                                            # the worker works
    samples = await profile.stop()                 # {stack: count}
    layers(samples, cpu_seconds, events)           # {"layer_<name>_us": CPU µs per event, ...}

py-spy samples each thread that is running (not idle) about ``rate`` times a second; some samples
fail (``--nonblocking`` reads a running process), so the samples give each layer's *share*, and
the process's CPU time over the same window (``/proc/PID/stat``) gives the total. Each sample is
charged to one layer: the innermost frame a rule below recognises decides (so fastavro called from
the command encoder counts as encoding, and a RocksDB put made by Faust's table counts as RocksDB).
Samples no rule recognises are ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

RATE = 250

# (layer, pattern over one frame "function (path:line)"), tried innermost frame first; the first
# frame any rule matches names the sample's layer (frames none matches, such as a dataclass's
# generated ``__init__``, are charged to their caller). Order matters only within one frame.
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (layer, re.compile(pattern))
    for layer, pattern in (
        ("metrics", r"prometheus_client/"),
        ("rocksdb", r"rocksdict|faust/stores/rocksdb\.py"),
        (
            "state_codec",
            r"worker/statecodec\.py|worker/statecache\.py|scheduler\.py:\d+\)$"
            r"|^(pack|unpack_state|unpack_wake) ",
        ),
        (
            "command_encode",
            r"^(JourneyProcessor\.encode|dispatch_record|outcome_record"
            r"|SchemaSet\.encode|Encoders\.\w+) ",
        ),
        ("journey_core", r"pipeline/journeys/"),
        ("intake_decode", r"pipeline/(intake|codec|validation)\.py|^to_event |worker/convert\.py"),
        (
            "produce",
            r"aiokafka/producer/|faust/transport/producer\.py|Producer\.send"
            r"|_send_changelog|faust/tables/",
        ),
        ("fetch", r"aiokafka/consumer/|aiokafka/record/|aiokafka/conn\.py|aiokafka/client\.py"),
        ("produce", r"aiokafka/"),
        ("faust_glue", r"faust/|mode/"),
        ("worker_glue", r"pipeline/worker/|pipeline/"),
    )
)
# The event loop itself: a sample whose innermost frames are the loop's own (polling, running a
# callback) is the loop's. asyncio's helpers (wait, gather, futures, queues) are charged to their
# caller instead, so Faust's per-message ``asyncio.wait`` counts as Faust.
LOOP = re.compile(r"^(BaseEventLoop\.(_run_once|run_forever)|Handle\._run) ")
TRANSPARENT = re.compile(r"asyncio/|selectors\.py|<frozen|contextvars|weakref\.py|typing\.py")
LAYERS = (*dict.fromkeys(layer for layer, _ in RULES), "asyncio_loop", "other")

Samples = Mapping[str, int]


def layer_of(stack: str) -> str:
    for frame in reversed(stack.split(";")):
        if LOOP.search(frame):
            return "asyncio_loop"
        if TRANSPARENT.search(frame):
            continue
        for layer, pattern in RULES:
            if pattern.search(frame):
                return layer
    return "other"


def read_raw(text: str) -> Counter[str]:
    """py-spy's ``--format raw``: one ``frame;frame;... count`` per line."""
    samples: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[stack] += int(count)
    return samples


def layers(samples: Samples, cpu_seconds: float, events: int) -> dict[str, float]:
    """CPU µs per event of each layer (and their sum, ``layer_total_us``): each layer's share of
    the samples times ``cpu_seconds`` (the process's, over the window), over ``events``."""
    counts: Counter[str] = Counter()
    for stack, count in samples.items():
        counts[layer_of(stack)] += count
    total = sum(counts.values()) or 1
    per_event = cpu_seconds / max(events, 1) * 1e6
    figures = {f"layer_{name}_us": round(counts[name] / total * per_event, 1) for name in LAYERS}
    figures["layer_total_us"] = round(per_event, 1)
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Profile:
    """py-spy recording one process in the background."""

    process: asyncio.subprocess.Process | None
    output: Path
    rate: int
    error: str | None = None

    @classmethod
    async def attach(cls, pid: int, seconds: float, rate: int = RATE) -> Profile:
        output = Path(tempfile.mkstemp(prefix="aftercare-profile-", suffix=".txt")[1])
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():  # noqa: ASYNC240 - one stat, before anything runs
            return cls(None, output, rate, "py-spy is not installed (pip install py-spy)")
        argv = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
        argv += ["--nonblocking", "--duration", str(max(int(seconds), 1)), "-o", str(output)]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        return cls(process, output, rate)

    async def stop(self) -> Counter[str]:
        """End the recording now (or when its duration ran out) and read it."""
        if self.process is None:
            return Counter()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
        _, stderr = await self.process.communicate()
        try:
            samples = read_raw(self.output.read_text())
        finally:
            self.output.unlink(missing_ok=True)
        if not samples:
            self.error = f"py-spy recorded nothing: {stderr.decode(errors='replace')[-300:]}"
        return samples


def top(samples: Samples, n: int = 15) -> Iterable[tuple[str, int]]:
    """The innermost frames that took the most samples (for reading a profile by hand)."""
    leaves: Counter[str] = Counter()
    for stack, count in samples.items():
        leaves[stack.rsplit(";", 1)[-1]] += count
    return leaves.most_common(n)


def main() -> None:
    """``python -m bench.profile FILE EVENTS CPU_SECONDS``: a raw py-spy file, read into layers."""
    path, events, cpu = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    samples = read_raw(Path(path).read_text())
    for name, value in layers(samples, cpu, events).items():
        print(f"{name:32} {value:10,.1f}")
    for frame, count in top(samples):
        print(f"{count:8} {frame}")


if __name__ == "__main__":
    main()
