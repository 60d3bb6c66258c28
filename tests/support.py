"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket

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
