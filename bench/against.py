"""``BENCH_AGAINST=<git revision> make bench``: every part measured on that revision's code too,
in the same run, so that a change is judged against what it changed on the same (noisy) machine.

The revision's ``pipeline/``, ``schemas/`` and ``deploy/`` are unpacked (``git archive``) into a
temporary folder beside today's ``bench/`` and ``tests/`` (linked, not copied), so both runs use
the same harness and report the same figures; the workers and senders started from that folder
run the revision's code. The revision's run goes first; its figures are kept under ``baseline``
in the results, and the Markdown gets a table of both with their ratio.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODE = ("pipeline", "schemas", "deploy")
SHARED = ("bench", "tests", "pyproject.toml")
COMPARED = (
    "worker_events_per_s",
    "ratio_to_raw",
    "layer_total_us",
    "e2e_knee_per_s",
    "e2e_p99_ms_at_50",
    "e2e_p99_ms_at_100",
    "e2e_p99_ms_at_200",
    "e2e_p99_ms_at_500",
    "e2e_p99_ms_at_1000",
    "timer_lateness_p99_s",
    "timer_worker_rss_bytes",
    "recovery_seconds",
    "senders_email_per_s",
)


def unpack(revision: str) -> Path:
    """A folder with ``revision``'s code and today's benchmark harness."""
    folder = Path(tempfile.mkdtemp(prefix="aftercare-bench-against-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, *CODE],
        check=True,
        capture_output=True,
    ).stdout
    archive_path = folder / "code.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(folder, filter="data")
    archive_path.unlink()
    for name in SHARED:
        (folder / name).symlink_to(ROOT / name)
    return folder


def measure(revision: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Run ``bench.run`` on ``revision``'s code; its figures."""
    folder = unpack(revision)
    results = folder / "results"
    try:
        subprocess.run(
            [sys.executable, "-m", "bench.run"],
            cwd=folder,
            env={**env, "BENCH_AGAINST": "", "BENCH_RESULTS": str(results)},
            check=True,
        )
        figures: dict[str, Any] = json.loads((results / "latest.json").read_text())
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def describe(revision: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", revision],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def table(baseline: Mapping[str, Any], now: Mapping[str, Any], shown: Any) -> list[str]:
    """Markdown rows: figure, the revision's, today's, today / revision."""
    lines = ["| figure | baseline | now | now / baseline |", "| --- | ---: | ---: | ---: |"]
    for key in COMPARED:
        old, new = baseline.get(key), now.get(key)
        ratio = (
            f"{new / old:.2f}"
            if isinstance(old, int | float) and isinstance(new, int | float) and old
            else "n/a"
        )
        lines.append(f"| {key} | {shown(baseline, key)} | {shown(now, key)} | {ratio} |")
    return lines


def revision_from_env() -> str | None:
    return os.environ.get("BENCH_AGAINST", "").strip() or None
