"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

from pipeline.config import Settings
from pipeline.topics import admin_client


def settings_for(prefix: str, **overrides: str) -> Settings:
    """Settings from the environment, with the given topic prefix and small partition counts."""
    env = {
        **os.environ,
        "AFTERCARE_TOPIC_PREFIX": prefix,
        "AFTERCARE_INPUT_PARTITIONS": "4",
        "AFTERCARE_OUTPUT_PARTITIONS": "2",
        **overrides,
    }
    return Settings.from_env(env)


async def delete_topics_with_prefix(settings: Settings, prefix: str) -> None:
    admin = admin_client(settings)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait until ``condition()`` holds, letting other tasks run; fail after ``timeout`` seconds.

    For unit tests that wait on a task of their own: a deadline, not a count of loop turns that
    happens to be enough on one machine.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        await asyncio.sleep(0.001)
