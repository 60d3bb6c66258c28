"""The demo's child processes: the sandbox, the senders and the worker, started and stopped as one.

Each child is ``python -m pipeline.cli <command>`` in a session (and process group) of its own,
with its output in a log file of the run directory. Its own session means the terminal's Ctrl-C
reaches only ``aftercare run``, which then stops the children in order (worker first, so that
nothing is left half-dispatched), each with SIGTERM to its whole group, a wait, and SIGKILL after a
timeout. On Linux each child also asks the kernel for SIGTERM should ``aftercare run`` itself die
without cleaning up (``PR_SET_PDEATHSIG``): even ``kill -9`` of the run leaves nothing behind.

The pids of the running children are kept in ``children.json`` in the run directory, so that a
script (or a test) can check afterwards that none of them is still alive.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

_POLL_SECONDS = 0.1
_TAIL_LINES = 15
_PR_SET_PDEATHSIG = 1


class ChildError(RuntimeError):
    """A child process exited or never became ready; the message names it and its log file."""


@dataclass(frozen=True)
class ChildSpec:
    """What to run: a name for messages, the ``aftercare`` command, its environment, its log
    file and the URL that answers 200 (with ``"ready": true`` where the body says) once it is
    ready."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    log: Path
    ready_url: str

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "pipeline.cli", *self.command]


class Child:
    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        self.spec.log.parent.mkdir(parents=True, exist_ok=True)
        with self.spec.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.spec.argv,
                env={**self.spec.env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )

    def exit_status(self) -> int | None:
        """None while it runs (or was never started), else its exit status."""
        return None if self.process is None else self.process.poll()

    def failure(self, what: str) -> ChildError:
        status = self.exit_status()
        if status is None:
            ended = "is still running"
        elif status < 0:
            ended = f"ended by {signal.Signals(-status).name}"
        else:
            ended = f"exited with status {status}"
        return ChildError(
            f"the {self.name} {what} ({ended}); its log is {self.spec.log}:\n{self.tail()}"
        )

    async def wait_ready(self, client: httpx.AsyncClient, deadline: float) -> None:
        """Until ``ready_url`` says ready; :class:`ChildError` if it exits or ``deadline``
        (``time.monotonic()``) passes first."""
        while True:
            if self.exit_status() is not None:
                raise self.failure("exited before it was ready")
            with suppress(httpx.TransportError, ValueError):
                answer = await client.get(self.spec.ready_url, timeout=2.0)
                if answer.status_code == 200 and answer.json().get("ready", True):
                    return
            if time.monotonic() > deadline:
                raise self.failure("was not ready in time")
            await asyncio.sleep(_POLL_SECONDS)

    async def stop(self, timeout: float) -> int | None:
        """SIGTERM to its process group, then SIGKILL after ``timeout`` seconds. Its exit status
        (negative: the signal that ended it)."""
        if self.process is None:
            return None
        self.stopping = True
        for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            if self.process.poll() is not None:
                break
            self.signal_group(signum)
            await self._ended(time.monotonic() + wait)
        return self.process.poll()

    async def _ended(self, deadline: float) -> bool:
        """Whether the child ended before ``deadline`` (monotonic); reaps it if so."""
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)

    def signal_group(self, signum: int) -> None:
        """Signal the child's whole process group, while the child (its leader) is alive: then
        the group id is certainly still the child's."""
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def tail(self, lines: int = _TAIL_LINES) -> str:
        try:
            text = self.spec.log.read_text(errors="replace")
        except FileNotFoundError:
            return "    (no log)"
        return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (empty)"


class Children:
    """The children of one run, in start order; stopped in reverse order unless told otherwise."""

    def __init__(self, pids_file: Path) -> None:
        self.pids_file = pids_file
        self.started: list[Child] = []

    def start(self, spec: ChildSpec) -> Child:
        child = Child(spec)
        child.start()
        self.started.append(child)
        self._write_pids()
        return child

    def get(self, name: str) -> Child:
        for child in self.started:
            if child.name == name:
                return child
        raise KeyError(name)

    async def wait_ready(self, deadline: float, on_ready: Callable[[Child], None]) -> None:
        """Until every child is ready; the first :class:`ChildError` otherwise."""
        async with httpx.AsyncClient() as client:

            async def one(child: Child) -> None:
                await child.wait_ready(client, deadline)
                on_ready(child)

            tasks = [asyncio.create_task(one(child)) for child in self.started]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()  # the first failure, if any
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def died(self) -> Child | None:
        """A child that exited although nobody stopped it."""
        for child in self.started:
            if not child.stopping and child.exit_status() is not None:
                return child
        return None

    async def stop_all(self, timeout: float) -> None:
        for child in reversed(self.started):
            await child.stop(timeout)
        self._write_pids()

    def kill_all(self) -> None:
        """SIGKILL every group now (a second Ctrl-C)."""
        for child in self.started:
            child.stopping = True
            child.signal_group(signal.SIGKILL)

    def _write_pids(self) -> None:
        pids = {
            child.name: {"pid": child.pid, "exit_status": child.exit_status()}
            for child in self.started
        }
        partial = self.pids_file.with_name(self.pids_file.name + ".partial")
        partial.write_text(json.dumps(pids, indent=2) + "\n")
        partial.replace(self.pids_file)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send SIGTERM to the child when its parent dies.

    Resolved here, in the parent, so that the child only makes one foreign call between fork and
    exec. The setting survives exec; it is Linux's alone, elsewhere children outlive a killed run.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody will stop us
            os._exit(1)

    return set_death_signal
