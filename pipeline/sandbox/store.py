"""The sandbox's outbox: every message the stand-in providers accepted, in one SQLite file.

A test or a developer asks "what would the customer have received?" and the answer has to survive
the process that sent it, be readable with any SQLite tool, and be the same whether the message
came in over SMTP or one of the HTTP APIs. So everything lands in one table, ``messages``, with the
fields every channel shares (recipient, body, the touchpoint id it carried, the id the sandbox gave
back) and the rest kept as JSON. ``requests`` counts every answer the sandbox gave, by channel and
result, so fault-injection tests can assert how many attempts were throttled, failed or repeated.

One connection in WAL mode, used from the event loop: every statement is a single-row insert or an
indexed read, far quicker than the network round trip that caused it, so there is no thread pool.
Nothing ``await``\\ s between :meth:`SandboxStore.find_by_idempotency` and
:meth:`SandboxStore.add_message`, which is what makes an idempotent repeat race-free; a unique index
on ``(channel, idempotency_key)`` backs that up.

Row ids use ``AUTOINCREMENT`` so they are never reused after :meth:`SandboxStore.clear`: provider
ids derived from them stay unique, and a reader polling with ``since_id`` never misses a message.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_args

Channel = Literal["email", "sms", "whatsapp", "push", "webhook"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)

# What the sandbox answered: "rejected" is every permanent refusal (bad credentials, an invalid
# request, an injected reject), the others name one fault each.
Result = Literal["accepted", "duplicate", "throttled", "failed", "outage", "rejected"]
RESULTS: Final[tuple[Result, ...]] = get_args(Result)

SCHEMA_VERSION: Final = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    touchpoint_id TEXT,
    provider_id TEXT UNIQUE,
    idempotency_key TEXT,
    recipient TEXT NOT NULL,
    sender TEXT,
    subject TEXT,
    body TEXT NOT NULL,
    html TEXT,
    headers TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_touchpoint ON messages (touchpoint_id);
CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency
    ON messages (channel, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS requests (
    channel TEXT NOT NULL,
    result TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (channel, result)
);
"""

_COLUMNS = (
    "id",
    "channel",
    "touchpoint_id",
    "provider_id",
    "idempotency_key",
    "recipient",
    "sender",
    "subject",
    "body",
    "html",
    "headers",
    "received_at",
)


class SandboxStoreError(RuntimeError):
    """The outbox file cannot be used; the message names the file and what to do."""


def default_provider_id(channel: Channel, number: int) -> str:
    """The id the sandbox hands back for message ``number``, shaped like the real provider's."""
    if channel == "sms":
        return f"SM{number:032x}"  # Twilio: "SM" and 32 hex digits
    if channel == "whatsapp":
        # Meta's ids are "wamid." and base64; any unique base64 will do.
        return "wamid." + base64.b64encode(f"sandbox.{number:012d}".encode()).decode().rstrip("=")
    if channel == "webhook":
        return f"wh_{number}"
    return f"sandbox-{channel}-{number}"


class SandboxStore:
    """The outbox at ``path`` (``~`` expanded; created with its folders if missing;
    ``":memory:"`` also works)."""

    def __init__(self, path: Path | str, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        if str(path) == ":memory:":
            self.path = ":memory:"
        else:
            file = Path(path).expanduser()
            self.path = str(file)
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SandboxStoreError(
                    f"cannot create the folder of the sandbox outbox {file}: {exc.strerror}; "
                    "point AFTERCARE_SANDBOX_DB at a writable place"
                ) from exc
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise SandboxStoreError(
                    f"{self.path} holds sandbox schema version {version}, this sandbox writes "
                    f"version {SCHEMA_VERSION}: delete the file (it only holds sandbox messages) "
                    "or point AFTERCARE_SANDBOX_DB elsewhere"
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise SandboxStoreError(
                f"cannot open the sandbox outbox {self.path}: {exc}; check the path is a writable "
                "file (or delete it) and that no other program holds it locked"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def add_message(
        self,
        channel: Channel,
        *,
        recipient: str,
        body: str,
        touchpoint_id: str | None = None,
        sender: str | None = None,
        subject: str | None = None,
        html: str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        provider_id: Callable[[int], str] | None = None,
    ) -> str:
        """Store one accepted message and return its provider id.

        ``provider_id`` turns the row number into the id; without it, :func:`default_provider_id`.
        """
        make_id = provider_id or (lambda number: default_provider_id(channel, number))
        with self._transaction():
            row = self._db.execute(
                "INSERT INTO messages (channel, touchpoint_id, idempotency_key, recipient, sender,"
                " subject, body, html, headers, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    channel,
                    touchpoint_id,
                    idempotency_key,
                    recipient,
                    sender,
                    subject,
                    body,
                    html,
                    json.dumps(dict(headers or {}), sort_keys=True),
                    self._wall(),
                ),
            ).fetchone()
            number = int(row[0])
            new_id = make_id(number)
            self._db.execute("UPDATE messages SET provider_id = ? WHERE id = ?", (new_id, number))
        return new_id

    def find_by_idempotency(self, channel: Channel, key: str) -> str | None:
        """The provider id of the message accepted earlier with this idempotency key, if any."""
        row = self._db.execute(
            "SELECT provider_id FROM messages WHERE channel = ? AND idempotency_key = ?",
            (channel, key),
        ).fetchone()
        return None if row is None else str(row[0])

    def get(self, provider_id: str) -> dict[str, Any] | None:
        """The stored message with this provider id, shaped as in :meth:`messages`."""
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM messages WHERE provider_id = ?", (provider_id,)
        ).fetchone()
        return None if row is None else _as_dict(row)

    def messages(
        self,
        channel: Channel | None = None,
        touchpoint_id: str | None = None,
        since_id: int = 0,
    ) -> list[dict[str, Any]]:
        """Stored messages with ``id > since_id``, oldest first; ``headers`` decoded."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM messages WHERE id > ?"
        params: list[object] = [since_id]
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        if touchpoint_id is not None:
            sql += " AND touchpoint_id = ?"
            params.append(touchpoint_id)
        return [_as_dict(row) for row in self._db.execute(sql + " ORDER BY id", params)]

    def count(self, channel: Channel, result: Result) -> None:
        """Record one answer the sandbox gave."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO requests (channel, result, count) VALUES (?, ?, 1)"
                " ON CONFLICT (channel, result) DO UPDATE SET count = count + 1",
                (channel, result),
            )

    def counts(self) -> dict[str, dict[str, int]]:
        """Answers given so far: ``{channel: {result: n}}``, with every channel and result."""
        table: dict[str, dict[str, int]] = {
            channel: dict.fromkeys(RESULTS, 0) for channel in CHANNELS
        }
        for channel, result, count in self._db.execute(
            "SELECT channel, result, count FROM requests"
        ):
            table.setdefault(channel, {})[result] = int(count)
        return table

    def clear(self) -> int:
        """Forget every message and every count; returns how many messages there were."""
        with self._transaction():
            deleted = self._db.execute("DELETE FROM messages").rowcount
            self._db.execute("DELETE FROM requests")
        return int(deleted)

    def _transaction(self) -> sqlite3.Connection:
        # In autocommit mode (isolation_level=None) the connection's context manager does not
        # open a transaction, so begin one explicitly; `with` then commits or rolls back.
        self._db.execute("BEGIN IMMEDIATE")
        return self._db


def _as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    message = dict(zip(_COLUMNS, row, strict=True))
    message["headers"] = json.loads(message["headers"])
    return message
