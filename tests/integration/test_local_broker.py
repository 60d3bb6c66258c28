"""The local broker's lifecycle, on a throwaway broker of its own.

It runs on a free port pair under a temporary AFTERCARE_HOME, so it never meets the broker a
developer (or the session's ``broker`` fixture) runs on 9092; the jars are the shared ones,
fetched once into the real home and passed on through AFTERCARE_KAFKA_LIBS.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import localkafka
from pipeline.config import LocalBroker, Settings
from tests.support import free_ports

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_libs() -> Path:
    return localkafka.ensure_jars(Settings.from_env().local_broker)


@pytest.fixture
def scratch_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_libs: Path
) -> Iterator[LocalBroker]:
    monkeypatch.setenv(localkafka.LIBS_ENV, str(shared_libs))
    port, controller_port = free_ports(2)
    broker = LocalBroker(
        home=tmp_path / "home", port=port, controller_port=controller_port, heap="512m"
    )
    yield broker
    localkafka.stop(broker)  # whatever the test did, leave no JVM behind


def test_start_stop_and_restart_on_the_same_storage(scratch_broker: LocalBroker) -> None:
    first = localkafka.start(scratch_broker)

    assert first.running
    assert first.pid is not None
    assert first.bootstrap == scratch_broker.bootstrap
    assert _accepts(scratch_broker.port)
    # Proves the log4j config took: broker.log is written. (Not "Kafka Server started": Kafka logs
    # that a few ms after the client port opens.)
    controller = f"Awaiting socket connections on 127.0.0.1:{scratch_broker.controller_port}"
    assert controller in first.log_path.read_text()
    meta = first.data_dir / "data" / "meta.properties"
    formatted = meta.read_bytes()

    assert localkafka.start(scratch_broker).pid == first.pid

    assert localkafka.stop(scratch_broker) is True
    stopped = localkafka.status(scratch_broker)
    assert not stopped.running
    assert stopped.pid is None
    assert not _accepts(scratch_broker.port)
    assert localkafka.stop(scratch_broker) is False

    again = localkafka.start(scratch_broker)
    assert again.running
    assert again.pid not in (None, first.pid)
    assert meta.read_bytes() == formatted

    assert localkafka.stop(scratch_broker) is True
    assert not (again.data_dir / "broker.pid").exists()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def test_the_broker_keeps_none_of_its_parents_open_files(
    scratch_broker: LocalBroker, tmp_path: Path
) -> None:
    # What `flock LOCK aftercare broker start` hands down: an inheritable descriptor on a lock.
    held = os.open(tmp_path / "caller.lock", os.O_RDWR | os.O_CREAT)
    os.set_inheritable(held, True)
    try:
        state = localkafka.start(scratch_broker)
        opened = {
            os.readlink(f"/proc/{state.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{state.pid}/fd")
        }
    finally:
        os.close(held)
    assert str(tmp_path / "caller.lock") not in opened


def test_a_cluster_of_three_survives_a_killed_node_and_takes_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_libs: Path
) -> None:
    monkeypatch.setenv(localkafka.LIBS_ENV, str(shared_libs))
    ports = free_ports(6)
    cluster = LocalBroker(
        home=tmp_path / "home",
        port=ports[0],
        controller_port=ports[1],
        heap="512m",
        nodes=3,
        node_ports=((ports[0], ports[1]), (ports[2], ports[3]), (ports[4], ports[5])),
    )
    try:
        first = localkafka.start(cluster)
        assert first.running
        assert [n.running for n in first.nodes] == [True, True, True]
        cluster_ids = {
            (n.data_dir / "data" / "meta.properties").read_text().split("cluster.id=")[1][:22]
            for n in first.nodes
        }
        assert len(cluster_ids) == 1  # one cluster, not three single nodes

        assert localkafka.stop(cluster, node=2, kill=True) is True
        after_kill = localkafka.status(cluster)
        assert not after_kill.running
        assert [n.running for n in after_kill.nodes] == [True, False, True]
        assert not _accepts(ports[2])

        again = localkafka.start(cluster)  # brings back only what is down
        assert [n.running for n in again.nodes] == [True, True, True]
        assert again.nodes[0].pid == first.nodes[0].pid
        assert again.nodes[1].pid != first.nodes[1].pid
    finally:
        localkafka.stop(cluster)
    assert not any(n.running for n in localkafka.status(cluster).nodes)
