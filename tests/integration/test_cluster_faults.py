"""The worker on a three-node cluster while one node is SIGKILLed and brought back.

Topics are replicated three ways with ``min.insync.replicas=2``: losing a node loses no
acknowledged record and leaves every partition writable. The worker must ride it out: keep its
loop, keep (or regain) readiness, and account for every record produced before, during and after
the loss. Malformed records are the probe, as in test_worker_faults: each one must come out on
``dead-letters`` naming its source offset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from pipeline import localkafka
from pipeline.codec import SchemaSet
from pipeline.config import LocalBroker, Settings
from pipeline.names import RECORD_OF_TOPIC, TopicRole
from pipeline.topics import ensure_topics
from tests.integration.kafkatools import (
    end_offsets,
    produce_malformed,
    read_range,
    wait_committed,
)
from tests.integration.processes import worker_process
from tests.support import free_ports, settings_for

pytestmark = pytest.mark.integration

DEAD_LETTER = RECORD_OF_TOPIC[TopicRole.DEAD_LETTERS]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    libs = localkafka.ensure_jars(Settings.from_env().local_broker)
    ports = free_ports(6)
    broker = LocalBroker(
        home=tmp_path_factory.mktemp("cluster"),
        port=ports[0],
        controller_port=ports[1],
        heap="512m",
        nodes=3,
        node_ports=((ports[0], ports[1]), (ports[2], ports[3]), (ports[4], ports[5])),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(localkafka.LIBS_ENV, str(libs))
        localkafka.start(broker)
        try:
            yield broker
        finally:
            localkafka.stop(broker)


async def test_a_worker_accounts_for_every_record_across_the_loss_of_a_node(
    cluster: LocalBroker, schemas: SchemaSet, tmp_path: Path
) -> None:
    settings = settings_for(
        "test-cluster.",
        KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap,
        AFTERCARE_REPLICATION_FACTOR="3",
    )
    states = await ensure_topics(settings)
    assert {state.replicas for state in states} == {3}
    (port,) = free_ports(1)
    worker = worker_process(
        settings,
        tmp_path / "state",
        tmp_path / "worker.log",
        port,
        KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap,
        AFTERCARE_REPLICATION_FACTOR="3",
    )
    letters_topic = settings.topic(TopicRole.DEAD_LETTERS)
    inputs = [
        settings.topic(r) for r in (TopicRole.PURCHASES, TopicRole.SHIPMENTS, TopicRole.APP_USAGE)
    ]
    producer = AIOKafkaProducer(acks="all", **settings.kafka_client_kwargs())
    await producer.start()
    worker.start()
    try:
        await worker.wait_ready()
        produced = await produce_malformed(producer, settings, 300, "before")
        lost = time.monotonic()
        assert localkafka.stop(cluster, node=1, kill=True)  # the first bootstrap address, too
        produced |= await produce_malformed(producer, settings, 300, "one node down")
        localkafka.start(cluster)
        back = time.monotonic() - lost
        produced |= await produce_malformed(producer, settings, 300, "after")
        await wait_committed(settings, settings.worker_id, inputs, timeout=120)
        ready_after = await worker.wait_ready(timeout=60)
        letters = await read_range(
            settings,
            letters_topic,
            {},
            await end_offsets(settings, letters_topic),
        )
        assert worker.process is not None
        alive = worker.process.poll() is None
    finally:
        await producer.stop()
        status = worker.stop()
    print(f"node back after {back:.1f} s; worker ready {ready_after:.1f} s after catching up")
    assert alive, worker.tail()
    assert status == 0, worker.tail()
    lettered = {
        (r["source_topic"], r["source_partition"], r["source_offset"])
        for r in (schemas.decode(m.value, DEAD_LETTER).record for m in letters)
    }
    missing = produced - lettered
    assert not missing, f"{len(missing)} records never dead-lettered, e.g. {sorted(missing)[:5]}"
