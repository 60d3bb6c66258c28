"""Aftercare components as real processes, for integration tests: start, wait ready, kill."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


class ComponentProcess:
    """One ``aftercare <command>`` subprocess (or another program, given ``argv``) with its own
    log file, ready when ``ready_path`` on ``port`` answers 200."""

    def __init__(
        self,
        command: str,
        env: dict[str, str],
        log_path: Path,
        port: int,
        *,
        argv: list[str] | None = None,
        ready_path: str = "/health/ready",
    ) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.port = port
        self.argv = argv or [sys.executable, "-m", "pipeline.cli", command]
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    async def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds from now until /health/ready says ready; fails with the log's tail."""
        started = time.monotonic()
        deadline = started + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.command} exited early:\n{self.tail()}")
                try:
                    answer = await client.get(f"http://127.0.0.1:{self.port}{self.ready_path}")
                    if answer.status_code == 200 and (
                        self.ready_path != "/health/ready" or answer.json().get("ready")
                    ):
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.command} not ready within {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM and wait for a clean exit; the exit status (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            return None

    async def stopped(self) -> int | None:
        """:meth:`stop` without blocking the event loop, which may be serving the process (the
        in-process sandbox answers its SMTP QUIT while it shuts down)."""
        return await asyncio.to_thread(self.stop)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def worker_process(
    topics: Any, state: Path, log_path: Path, port: int, **extra: str
) -> ComponentProcess:
    """``aftercare worker`` on the topics of ``topics`` (Settings), with its own state folder and
    port, a session timeout of 6 s (a SIGKILLed worker's partitions come back quickly)."""
    env = {
        "AFTERCARE_TOPIC_PREFIX": topics.topic_prefix,
        "AFTERCARE_INPUT_PARTITIONS": str(topics.input_partitions),
        "AFTERCARE_OUTPUT_PARTITIONS": str(topics.output_partitions),
        "AFTERCARE_STATE_DIR": str(state),
        "AFTERCARE_WORKER_PORT": str(port),
        "AFTERCARE_SESSION_TIMEOUT_SECONDS": "6",
        **extra,
    }
    return ComponentProcess("worker", env, log_path, port)
