"""The local broker's pure parts: its config, its cluster id, and the prerequisite checks.

Nothing here starts a JVM: a missing or old ``java`` is a fake on an emptied PATH.
"""

from __future__ import annotations

import base64
import os
import re
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import localkafka
from pipeline.config import LocalBroker
from pipeline.localkafka import LocalBrokerError
from tests.support import free_ports


def _broker(home: Path, port: int = 39092, controller_port: int = 39093) -> LocalBroker:
    return LocalBroker(home=home, port=port, controller_port=controller_port, heap="1g")


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH is one empty folder: no java, no mvn (until a test puts a fake there)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.delenv(localkafka.LIBS_ENV, raising=False)
    return folder


def _fake_java(folder: Path, version_line: str) -> None:
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)


def test_server_properties_put_both_listeners_on_loopback_with_the_configured_ports(
    tmp_path: Path,
) -> None:
    props = _properties(localkafka.server_properties(_broker(tmp_path, 39092, 39555)))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39555"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:39092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:39555"
    assert props["log.dirs"] == str(tmp_path / "broker-39092" / "data")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("process.roles", "broker,controller"),
        ("node.id", "1"),
        ("controller.listener.names", "CONTROLLER"),
        ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("offsets.topic.replication.factor", "1"),
        ("offsets.topic.num.partitions", "4"),
        ("transaction.state.log.replication.factor", "1"),
        ("transaction.state.log.min.isr", "1"),
        ("transaction.state.log.num.partitions", "4"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("auto.create.topics.enable", "false"),
        ("num.partitions", "1"),
    ],
)
def test_server_properties_make_a_single_node_kraft_cluster(
    tmp_path: Path, key: str, value: str
) -> None:
    assert _properties(localkafka.server_properties(_broker(tmp_path)))[key] == value


def test_a_three_node_cluster_has_every_node_vote_and_replicates_three_ways(
    tmp_path: Path,
) -> None:
    cluster = replace(_broker(tmp_path, 39092, 39093), nodes=3)
    nodes = [_properties(localkafka.server_properties(cluster, i)) for i in (1, 2, 3)]

    assert cluster.bootstrap == "127.0.0.1:39092,127.0.0.1:39094,127.0.0.1:39096"
    assert [props["node.id"] for props in nodes] == ["1", "2", "3"]
    voters = "1@127.0.0.1:39093,2@127.0.0.1:39095,3@127.0.0.1:39097"
    assert {props["controller.quorum.voters"] for props in nodes} == {voters}
    assert nodes[1]["listeners"] == "PLAINTEXT://127.0.0.1:39094,CONTROLLER://127.0.0.1:39095"
    assert nodes[2]["advertised.listeners"] == "PLAINTEXT://127.0.0.1:39096"
    assert nodes[2]["log.dirs"] == str(tmp_path / "cluster-39092" / "node-3" / "data")
    for props in nodes:
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"


def test_a_cluster_may_name_each_nodes_ports(tmp_path: Path) -> None:
    cluster = replace(_broker(tmp_path), nodes=2, node_ports=((41000, 41500), (42000, 42500)))
    second = _properties(localkafka.server_properties(cluster, 2))

    assert cluster.bootstrap == "127.0.0.1:41000,127.0.0.1:42000"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:41500,2@127.0.0.1:42500"
    assert second["listeners"] == "PLAINTEXT://127.0.0.1:42000,CONTROLLER://127.0.0.1:42500"


def test_stopping_a_node_the_cluster_does_not_have_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalBrokerError, match="there is no node 4: the local broker has 3"):
        localkafka.stop(replace(_broker(tmp_path), nodes=3), node=4)


def test_log4j_writes_the_broker_log_in_the_broker_folder(tmp_path: Path) -> None:
    props = _properties(localkafka.log4j_properties(_broker(tmp_path)))

    assert props["log4j.appender.file.File"] == str(tmp_path / "broker-39092" / "broker.log")
    assert props["log4j.appender.file"] == "org.apache.log4j.RollingFileAppender"


def test_cluster_id_is_kafkas_22_character_base64url_uuid() -> None:
    ids = {localkafka.new_cluster_id() for _ in range(200)}

    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_missing_java_is_one_line_that_says_how_to_install_it(bare_path: Path) -> None:
    with pytest.raises(LocalBrokerError) as caught:
        localkafka.find_java()

    message = str(caught.value)
    assert "\n" not in message
    assert "`java` was not found" in message
    assert "apt-get install openjdk-17-jre-headless" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_start_without_java_fails_before_touching_any_jar(tmp_path: Path, bare_path: Path) -> None:
    with pytest.raises(LocalBrokerError, match="`java` was not found"):
        localkafka.start(_broker(tmp_path / "home", *free_ports(2)))

    assert not (tmp_path / "home" / f"kafka-{localkafka.KAFKA_VERSION}").exists()


@pytest.mark.parametrize(
    ("version_line", "usable"),
    [
        ('java version "1.8.0_392"', False),
        ('openjdk version "11.0.22" 2024-01-16', False),
        ('openjdk version "17.0.15" 2025-04-15', True),
        ('openjdk version "21" 2023-09-19', True),
        ('openjdk version "25-ea" 2025-09-16', True),
    ],
)
def test_java_must_be_17_or_newer(bare_path: Path, version_line: str, usable: bool) -> None:
    _fake_java(bare_path, version_line)

    if usable:
        assert localkafka.find_java() == str(bare_path / "java")
    else:
        with pytest.raises(LocalBrokerError, match=r"is Java (8|11): install") as caught:
            localkafka.find_java()
        assert "\n" not in str(caught.value)


def test_missing_maven_is_one_line_when_the_jars_are_absent(
    tmp_path: Path, bare_path: Path
) -> None:
    _fake_java(bare_path, 'openjdk version "17.0.15" 2025-04-15')

    with pytest.raises(LocalBrokerError) as caught:
        localkafka.ensure_jars(_broker(tmp_path))

    message = str(caught.value)
    assert "\n" not in message
    assert "`mvn` was not found" in message
    assert "apt-get install maven" in message


def test_complete_jars_need_neither_java_nor_maven(tmp_path: Path, bare_path: Path) -> None:
    libs = tmp_path / f"kafka-{localkafka.KAFKA_VERSION}" / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").write_text("")

    assert localkafka.ensure_jars(_broker(tmp_path)) == libs


def test_jars_from_the_environment_are_used_as_they_are(
    tmp_path: Path, bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared-libs"
    shared.mkdir()
    (shared / "kafka_2.13-3.9.1.jar").write_bytes(b"")
    monkeypatch.setenv(localkafka.LIBS_ENV, str(shared))

    assert localkafka.ensure_jars(_broker(tmp_path / "home")) == shared
    assert localkafka.libs_dir(_broker(tmp_path / "home")) == shared


def test_jars_from_the_environment_must_hold_kafka(
    tmp_path: Path, bare_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(localkafka.LIBS_ENV, str(tmp_path))

    with pytest.raises(LocalBrokerError, match=f"{localkafka.LIBS_ENV}=.* holds no kafka_2.13"):
        localkafka.ensure_jars(_broker(tmp_path / "home"))


def test_start_refuses_a_port_something_else_listens_on(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        broker = _broker(tmp_path, port, free_ports(1)[0])

        with pytest.raises(LocalBrokerError, match=f"something else listens on 127.0.0.1:{port}"):
            localkafka.start(broker)


def test_a_pid_file_naming_another_process_is_stale_and_never_signalled(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    folder = localkafka.broker_dir(broker)
    folder.mkdir(parents=True)
    pid_file = folder / "broker.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a Kafka broker: this test process

    assert localkafka.status(broker).pid is None
    assert localkafka.stop(broker) is False
    assert not pid_file.exists()


def test_stopping_a_broker_that_never_ran_does_nothing(tmp_path: Path) -> None:
    assert localkafka.stop(_broker(tmp_path)) is False
    assert not (tmp_path / "broker-39092").exists()
