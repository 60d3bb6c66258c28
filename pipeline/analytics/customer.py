"""``aftercare customer ID``: one customer's journey as support reads it, and why each message went
or did not.

    aftercare customer CUSTOMER_ID [--json]

The state is the worker's own: the newest record of the customer in the customers table's
changelog (a compacted topic, the table's source of truth, so any machine that reaches the cluster
can answer, whichever worker owns the partition and whether or not it runs). The history is every
outcome on ``deliveries`` and every command on ``dispatch`` for the customer. Only the customer's
partition of each topic is read: records are keyed by customer id and placed by Kafka's default
partitioner, so the partition follows from the id.

Addresses are shown masked (``a***@example.org``): enough to tell that one is known, not enough to
contact anyone; ``--json`` leaves out what the messages said. Nothing about the customer is
logged. The exit status is 3 when neither the table nor the topics know the customer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from pipeline.analytics.reading import ReadError
from pipeline.codec import DecodeError, SchemaSet
from pipeline.journeys.model import CustomerState
from pipeline.jsonio import to_json
from pipeline.money import format_minor
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.privacy import mask_address, mask_addresses_in
from pipeline.topics import topic_partitions
from pipeline.worker.statecodec import (
    NO_WAKE,
    StateDecodeError,
    decode_value,
    encode_state,
    unpack_wake,
)

if TYPE_CHECKING:
    from pipeline.config import Settings


@dataclass(frozen=True)
class CustomerView:
    customer_id: str
    partition: int
    state: CustomerState | None
    next_wake: datetime | None
    history: tuple[dict[str, Any], ...]  # outcomes and dispatches, in time order
    unreadable: int = 0  # records of the customer that did not decode


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "customer",
        help="one customer's journey: orders, pending touchpoints, consent, caps, history",
        description="Show one customer's journey state as the worker keeps it (from the table's "
        "changelog) and every outcome and dispatch of theirs, with the reasons.",
    )
    parser.add_argument("customer_id", help="the customer id, as on the records' keys")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of text")
    parser.set_defaults(handler=_customer)


def _customer(settings: Settings, args: argparse.Namespace) -> int:
    try:
        view = asyncio.run(look_up(settings, args.customer_id))
    except ReadError as exc:
        print(f"aftercare customer: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(as_json(view), ensure_ascii=False, indent=2))
    else:
        for line in as_text(view):
            print(line)
    return 0 if view.state is not None or view.history else 3


LOOK_UP_SECONDS = 60.0  # reading three partitions from their start: bounded, not for ever


async def look_up(settings: Settings, customer_id: str) -> CustomerView:
    """The customer's state and history (see the module docstring); :class:`ReadError` if the
    cluster cannot be read within :data:`LOOK_UP_SECONDS`."""
    try:
        async with asyncio.timeout(LOOK_UP_SECONDS):
            return await _look_up(settings, customer_id)
    except TimeoutError:
        raise ReadError(
            f"reading {customer_id!r}'s partitions took over {LOOK_UP_SECONDS:g} s; the topics are "
            "large or the cluster is slow"
        ) from None


async def _look_up(settings: Settings, customer_id: str) -> CustomerView:
    key = customer_id.encode("utf-8")
    schemas = SchemaSet.load()
    changelog = settings.changelog_topic
    partitions = {}
    for topic in (
        changelog,
        settings.topic(TopicRole.DELIVERIES),
        settings.topic(TopicRole.DISPATCH),
    ):
        try:
            found = sorted(p.partition for p in await topic_partitions(settings, [topic]))
        except Exception as exc:  # aiokafka raises KafkaConnectionError and others
            raise ReadError(
                f"cannot reach Kafka at {settings.bootstrap_servers} ({exc!r}); is the broker "
                "running (`aftercare broker status`)?"
            ) from exc
        if not found:
            raise ReadError(
                f"topic {topic} does not exist on {settings.bootstrap_servers}; check "
                "AFTERCARE_TOPIC_PREFIX and AFTERCARE_WORKER_ID"
            )
        partitions[topic] = TopicPartition(topic, DefaultPartitioner()(key, found, found))
    values = await _read_key(settings, list(partitions.values()), key)
    state: CustomerState | None = None
    wake: datetime | None = None
    unreadable = 0
    stored = values[partitions[changelog]]
    if stored and stored[-1] is not None:
        latest = stored[-1]
        try:
            state = decode_value(latest)
            millis = unpack_wake(latest)
            wake = None if millis == NO_WAKE else _from_millis(millis)
        except (StateDecodeError, ValueError):
            unreadable += 1
    history: list[dict[str, Any]] = []
    for role in (TopicRole.DELIVERIES, TopicRole.DISPATCH):
        for value in values[partitions[settings.topic(role)]]:
            if value is None:
                continue
            try:
                record = schemas.decode(value, RECORD_OF_TOPIC[role]).record
            except DecodeError:
                unreadable += 1
                continue
            history.append({**record, "_topic": role.value})
    history.sort(key=lambda r: (r["occurred_at"], r["_topic"]))
    return CustomerView(
        customer_id,
        partitions[changelog].partition,
        state,
        wake,
        tuple(history),
        unreadable,
    )


async def _read_key(
    settings: Settings, partitions: Sequence[TopicPartition], key: bytes
) -> dict[TopicPartition, list[bytes | None]]:
    """The values of ``key`` in each partition, oldest first, up to the end seen at the start."""
    consumer = AIOKafkaConsumer(
        client_id=f"{settings.client_id}-customer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings.kafka_client_kwargs(),
    )
    await consumer.start()
    found: dict[TopicPartition, list[bytes | None]] = {tp: [] for tp in partitions}
    try:
        consumer.assign(list(partitions))
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(list(partitions))
        pending = {tp for tp in partitions if end[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset < end[tp] and message.key == key:
                        found[tp].append(message.value)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return found


def _from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


# -- as people read it ---------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.isoformat(timespec="minutes").replace("+00:00", "Z")


def _minutes(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


def as_text(view: CustomerView) -> list[str]:
    lines = [f"customer {view.customer_id} (partition {view.partition})"]
    state = view.state
    if state is None:
        lines.append("  the worker keeps no state for this customer (never seen, or forgotten)")
    else:
        contact, preferences = state.contact, state.preferences
        known = ", ".join(
            f"{name} {mask_address(value)}"
            for name, value in (
                ("email", contact.email),
                ("phone", contact.phone),
                ("push token", contact.push_token),
            )
            if value
        )
        lines.append(f"  contact: {known or 'no address known'}; locale {contact.locale or '-'}, "
                     f"time zone {contact.timezone or '(the journeys default)'}")  # fmt: skip
        consent = preferences.consent
        allowed = [c for c in ("email", "sms", "whatsapp", "push", "in_app") if getattr(consent, c)]
        quiet = preferences.quiet_hours
        lines += [
            f"  consent: {', '.join(allowed) or 'none'}; marketing opt-in "
            f"{'yes' if preferences.marketing_opt_in else 'no'}; unsubscribed from engagement: "
            f"{', '.join(c.value for c in preferences.unsubscribed) or '-'}",
            "  quiet hours: "
            + (
                f"{_minutes(quiet.start_minute)}-{_minutes(quiet.end_minute)} (their own)"
                if quiet
                else "the journeys file's"
            )
            + f"; preferences as of {_when(preferences.updated_at)}",
            f"  last app activity: {_when(state.last_app_activity)}",
            "  engagement sends counted by the caps: "
            + (", ".join(_when(t) for t in state.engagement_sends) or "none"),
            f"  next wake-up: {_when(view.next_wake)}",
            "  orders:" if state.orders else "  orders: none known",
        ]
        for order in state.orders:
            facts = [f"placed {_when(order.placed_at)}" if order.placed_at else "not placed (seen)"]
            if order.total_minor is not None and order.currency:
                facts.append(format_minor(order.total_minor, order.currency))
            for label, moment in (
                ("delivered", order.delivered_at),
                ("returned", order.returned_at),
                ("setup completed", order.setup_completed_at),
            ):
                if moment is not None:
                    facts.append(f"{label} {_when(moment)}")
            if order.closed_by:
                facts.append(order.closed_by.lower().replace("_", " "))
            if order.rating is not None:
                facts.append(f"rated {order.rating}")
            lines.append(f"    {order.order_id}: {', '.join(facts)}")
            for parcel in order.shipments:
                lines.append(f"      parcel {parcel.shipment_id}: stage {parcel.stage} since "
                             f"{_when(parcel.stage_at)} ({parcel.carrier or '-'})")  # fmt: skip
        lines.append("  pending touchpoints:" if state.pending else "  pending touchpoints: none")
        for pending in sorted(state.pending, key=lambda p: p.not_before):
            tp = pending.touchpoint
            waiting = " (waiting for consent)" if pending.awaiting_consent else ""
            lines.append(
                f"    {_when(pending.not_before)}  {tp.journey}.{tp.step}  "
                f"{', '.join(c.value.lower() for c in tp.channels)}  due {_when(tp.due_at)}, "
                f"expires {_when(tp.expires_at)}{waiting}"
            )
    lines.append("  history:" if view.history else "  history: nothing on deliveries or dispatch")
    for record in view.history:
        lines.append("    " + _history_line(record))
    if view.unreadable:
        lines.append(f"  {view.unreadable} record(s) of this customer could not be decoded")
    return lines


def _history_line(record: Mapping[str, Any]) -> str:
    step = f"{record['journey']}.{record['step']}"
    if record["_topic"] == TopicRole.DISPATCH.value:
        channels = ", ".join(c.lower() for c in record["channels"])
        return f"{_when(record['occurred_at'])}  dispatched  {step}  on {channels}"
    why = record.get("reason") or ""
    if record.get("detail"):  # a provider's words may quote the address
        detail = mask_addresses_in(str(record["detail"]))
        why = f"{why}: {detail}" if why else detail
    channel = (record.get("channel") or "-").lower()
    return f"{_when(record['occurred_at'])}  {record['status']}  {step}  {channel}  {why}".rstrip()


def as_json(view: CustomerView) -> dict[str, Any]:
    state: Any = None
    if view.state is not None:
        state = json.loads(encode_state(view.state))["s"]
        contact = state["contact"]
        for field in ("email", "phone", "push_token"):
            if contact.get(field):
                contact[field] = mask_address(contact[field])
        for pending in state["pending"]:
            pending["touchpoint"].pop("context", None)  # what the message says: not support's
    history = []
    for record in view.history:
        shown = {
            k: v for k, v in record.items() if k not in ("recipient", "context", "digest", "_topic")
        }
        if shown.get("detail"):
            shown["detail"] = mask_addresses_in(str(shown["detail"]))
        if record.get("digest"):
            shown["digest"] = [m["touchpoint_id"] for m in record["digest"]]
        history.append({"topic": record["_topic"], **to_json(shown)})
    return {
        "customer_id": view.customer_id,
        "partition": view.partition,
        "next_wake": to_json(view.next_wake),
        "state": state,
        "history": history,
        "unreadable": view.unreadable,
    }
