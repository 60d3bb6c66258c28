"""The local broker: a real Apache Kafka 3.9.1 (KRaft, single node) for development and tests.

What is the local broker? The same ``kafka.Kafka`` a cluster runs, as one JVM on 127.0.0.1 that is
both broker and controller, started and stopped by ``aftercare broker start|stop``. Its jars come
from Maven Central once (``deploy/kafka/pom.xml``); its data, config and logs live outside any
checkout, under ``$AFTERCARE_HOME`` (default ``~/.cache/aftercare``)::

    <home>/kafka-3.9.1/libs/      every runtime jar, plus a ``.complete`` marker
    <home>/broker-<port>/         one folder per broker (per client port):
        server.properties         written on every start (edits are overwritten)
        log4j.properties          written on every start
        data/                     log.dirs, formatted once for KRaft
        broker.log                the broker's log (rolled at 10 MB, 3 kept)
        broker.out                the JVM's own stdout/stderr, appended
        broker.pid                pid of the running broker
        broker.lock               held while starting or stopping, so two callers never race
        hs_err_pid*.log           JVM crash reports, if it ever crashes

``AFTERCARE_KAFKA_LIBS``, if set, names a folder of already-fetched jars to use instead of
``<home>/kafka-3.9.1/libs`` (it is never downloaded into or deleted); tests use it to run throwaway
brokers under a temporary home without fetching the jars again.

``aftercare broker start --brokers 3`` (or ``AFTERCARE_BROKER_NODES=3``) runs a KRaft cluster of
three such nodes instead, each broker and controller, from the same jars: node ``i`` listens on the
client and controller ports ``+ 2(i-1)`` and lives in ``<home>/cluster-<port>/node-<i>/`` (laid out
as above); all share one cluster id (``<home>/cluster-<port>/cluster.id``). Internal topics are
replicated three ways and ``min.insync.replicas`` is 2, so the cluster loses no acknowledged record
when one node dies. ``aftercare broker stop --node 2 [--kill]`` stops (or SIGKILLs) one node and
``aftercare broker start --brokers 3`` brings it back.

The broker runs detached in its own session, so it outlives the command that started it; the pid
file ties it to this folder. Before signalling a pid, :func:`stop` checks (in ``/proc``, so Linux
only) that the process runs ``kafka.Kafka`` with this broker's ``server.properties``: a pid the
kernel has since given to another process is never signalled.

Every failure raises :class:`LocalBrokerError` (a ``RuntimeError``) whose message says what failed,
where, and what to do; the prerequisite errors (no Java 17+, no Maven) are one line.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import LocalBroker
from pipeline.resources import kafka_deploy_dir

KAFKA_VERSION = "3.9.1"
LIBS_ENV = "AFTERCARE_KAFKA_LIBS"
MIN_JAVA = 17

_MARKER = ".complete"
_KAFKA_JAR = "kafka_2.13-*.jar"
_POLL_SECONDS = 0.1
_TAIL_LINES = 20
_NO_BROKER_HINT = "or set KAFKA_BOOTSTRAP_SERVERS to use an existing cluster"
_INSTALL_JAVA = "Debian/Ubuntu: apt-get install openjdk-17-jre-headless"


class LocalBrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says what to do."""


@dataclass(frozen=True)
class NodeStatus:
    """One node of the local broker. ``running``: its process is alive and its client port accepts.

    ``pid`` is set whenever the process is alive, also while it is still starting.
    """

    node: int
    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path
    data_dir: Path


@dataclass(frozen=True)
class BrokerStatus:
    """What :func:`status` sees. ``running``: every node's process is alive and accepts.

    ``pid``, ``log_path`` and ``data_dir`` are the first node's (the only one's, for a single
    broker: ``data_dir`` is ``<home>/broker-<port>``); ``nodes`` has each node's.
    """

    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path
    data_dir: Path
    nodes: tuple[NodeStatus, ...]


@dataclass(frozen=True)
class Node:
    """One node of the local broker: its id (from 1), its ports and its folder."""

    broker: LocalBroker
    id: int

    @property
    def port(self) -> int:
        return self.broker.ports_of(self.id)[0]

    @property
    def controller_port(self) -> int:
        return self.broker.ports_of(self.id)[1]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dir(self) -> Path:
        if self.broker.nodes == 1:
            return self.broker.home / f"broker-{self.port}"
        return cluster_dir(self.broker) / f"node-{self.id}"


def nodes_of(broker: LocalBroker) -> list[Node]:
    return [Node(broker, i) for i in range(1, broker.nodes + 1)]


def cluster_dir(broker: LocalBroker) -> Path:
    return broker.home / f"cluster-{broker.port}"


@dataclass(frozen=True)
class _Files:
    dir: Path
    properties: Path
    log4j: Path
    data: Path
    log: Path
    out: Path
    pid: Path
    lock: Path

    @classmethod
    def of(cls, node: Node) -> _Files:
        d = node.dir
        return cls(
            dir=d,
            properties=d / "server.properties",
            log4j=d / "log4j.properties",
            data=d / "data",
            log=d / "broker.log",
            out=d / "broker.out",
            pid=d / "broker.pid",
            lock=d / "broker.lock",
        )


# -- pure parts ------------------------------------------------------------------------------------


def broker_dir(broker: LocalBroker, node: int = 1) -> Path:
    return Node(broker, node).dir


def libs_dir(broker: LocalBroker) -> Path:
    """Where the jars are (or will be): ``$AFTERCARE_KAFKA_LIBS``, else under the home."""
    override = os.environ.get(LIBS_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return broker.home / f"kafka-{KAFKA_VERSION}" / "libs"


def server_properties(broker: LocalBroker, node: int = 1) -> str:
    this = Node(broker, node)
    data = this.dir / "data"
    plaintext = f"127.0.0.1:{this.port}"
    controller = f"127.0.0.1:{this.controller_port}"
    voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in nodes_of(broker))
    replicas = str(min(broker.nodes, 3))
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{plaintext},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{plaintext}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "offsets.topic.replication.factor": replicas,
        # The default of 50 makes the first consumer group wait for 50 partitions on a laptop.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": str(min(broker.nodes, 2)),
        # On a cluster, a write acknowledged by acks=all is on two nodes at least: losing one
        # loses nothing, and a partition stays writable.
        "min.insync.replicas": str(min(broker.nodes, 2)),
        "default.replication.factor": replicas,
        # A node that died is fenced (and its partitions led elsewhere) after 6 s, not 9.
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "6000",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        # Topics are made by `aftercare topics create`; Faust makes its internal topics through
        # the admin API, which this does not affect.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "log.dirs": str(data),
    }
    header = "# Written by aftercare on every `aftercare broker start`: edits are overwritten.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def log4j_properties(broker: LocalBroker, node: int = 1) -> str:
    log = Node(broker, node).dir / "broker.log"
    return f"""\
# Written by aftercare on every `aftercare broker start`: edits are overwritten.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=10MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
# Per-request, per-partition and per-config chatter: warnings and errors only.
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.kafka.log.UnifiedLog$=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.cluster.Partition=WARN
log4j.logger.kafka.server.ReplicaFetcherManager=WARN
log4j.logger.kafka.server.ReplicaAlterLogDirsManager=WARN
log4j.logger.org.apache.kafka.common.config.AbstractConfig=WARN
"""


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's ``Uuid.randomUuid()`` makes it, without starting a JVM.

    Base64url without padding of a random (version 4) UUID: 22 characters. Like Kafka, it never
    starts with ``-`` (it would read as an option on the command line).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def _java_major(version_output: str) -> int | None:
    """17 from ``openjdk version "17.0.15"``, 8 from ``java version "1.8.0_392"``."""
    match = re.search(r'version "(?:1\.(\d+)|(\d+))', version_output)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


# -- prerequisites and jars ------------------------------------------------------------------------


def find_java() -> str:
    """The ``java`` on PATH if it is Java 17 or newer, else a one-line :class:`LocalBrokerError`."""
    needed = f"Java {MIN_JAVA} or newer is needed to run the local Kafka broker"
    java = shutil.which("java")
    if java is None:
        raise LocalBrokerError(
            f"{needed} and `java` was not found on PATH: install it ({_INSTALL_JAVA}), "
            f"{_NO_BROKER_HINT}."
        )
    try:
        result = subprocess.run(
            [java, "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalBrokerError(
            f"{needed} and `{java} -version` failed ({exc}): reinstall it ({_INSTALL_JAVA}), "
            f"{_NO_BROKER_HINT}."
        ) from None
    output = result.stderr + result.stdout
    major = _java_major(output)
    if major is None:
        first = output.strip().splitlines()[0] if output.strip() else "no output"
        raise LocalBrokerError(
            f"{needed} and the version of {java} could not be read from `java -version` "
            f"({first!r}): install Java {MIN_JAVA}+ ({_INSTALL_JAVA}) first on PATH, "
            f"{_NO_BROKER_HINT}."
        )
    if major < MIN_JAVA:
        raise LocalBrokerError(
            f"{needed} and {java} is Java {major}: install a newer one ({_INSTALL_JAVA}) and put "
            f"it first on PATH, {_NO_BROKER_HINT}."
        )
    return java


def ensure_jars(broker: LocalBroker) -> Path:
    """The folder of Kafka's runtime jars, fetched with Maven on first use.

    Maven writes into a temporary sibling folder that is renamed into place, marker included,
    only once complete: an interrupted download never leaves a folder that looks complete.
    """
    libs = libs_dir(broker)
    if os.environ.get(LIBS_ENV, "").strip():
        if not any(libs.glob(_KAFKA_JAR)):
            raise LocalBrokerError(
                f"{LIBS_ENV}={libs} holds no {_KAFKA_JAR}: point it at a folder of Apache Kafka "
                f"{KAFKA_VERSION} jars (such as <AFTERCARE_HOME>/kafka-{KAFKA_VERSION}/libs), "
                "or unset it to fetch them."
            )
        return libs
    if (libs / _MARKER).is_file():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with _locked(libs.parent / "fetch.lock"):
        if not (libs / _MARKER).is_file():  # another process may have fetched them meanwhile
            _fetch_jars(libs)
    return libs


def _fetch_jars(libs: Path) -> None:
    find_java()  # Maven runs on it too
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalBrokerError(
            f"Maven is needed once, to fetch the Apache Kafka {KAFKA_VERSION} jars into {libs}, "
            "and `mvn` was not found on PATH: install it (Debian/Ubuntu: apt-get install maven), "
            f"or set {LIBS_ENV} to a folder of already-fetched jars, {_NO_BROKER_HINT}."
        )
    # We hold the fetch lock, so any partial folder is left over from an interrupted fetch.
    for leftover in libs.parent.glob("libs.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    partial = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    pom = kafka_deploy_dir() / "pom.xml"
    print(
        f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs} (once)",
        file=sys.stderr,
        flush=True,
    )
    try:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
                "-DincludeScope=runtime",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not any(partial.glob(_KAFKA_JAR)):
            tail = "\n".join(result.stdout.strip().splitlines()[-_TAIL_LINES:]) or "(no output)"
            raise LocalBrokerError(
                f"fetching the Apache Kafka {KAFKA_VERSION} jars with `mvn -f {pom}` failed "
                f"(exit {result.returncode}); check access to Maven Central (or the mirror in "
                f"~/.m2/settings.xml) and retry. Last lines of Maven's output:\n{tail}"
            )
        (partial / _MARKER).write_text(f"Apache Kafka {KAFKA_VERSION} runtime jars from {pom}\n")
        if libs.exists():  # a folder without the marker is not ours to trust
            shutil.rmtree(libs)
        partial.rename(libs)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


# -- lifecycle -------------------------------------------------------------------------------------


def status(broker: LocalBroker) -> BrokerStatus:
    nodes = tuple(_node_status(node) for node in nodes_of(broker))
    first = nodes[0]
    return BrokerStatus(
        running=all(n.running for n in nodes),
        pid=first.pid,
        bootstrap=broker.bootstrap,
        log_path=first.log_path,
        data_dir=first.data_dir,
        nodes=nodes,
    )


def _node_status(node: Node) -> NodeStatus:
    files = _Files.of(node)
    pid = _live_pid(files)
    return NodeStatus(
        node=node.id,
        running=pid is not None and _accepts(node.port),
        pid=pid,
        bootstrap=node.bootstrap,
        log_path=files.log,
        data_dir=files.dir,
    )


def start(broker: LocalBroker, timeout: float = 90.0) -> BrokerStatus:
    """Start every node that is not running and wait until all accept connections.

    Running nodes are left as they are, so on a cluster this also brings back a node that was
    stopped or killed. The nodes of a cluster start together: none is ready before a quorum is.
    """
    java: str | None = None
    libs: Path | None = None
    spawned: list[tuple[Node, _Files, int, tuple[int, int], bool]] = []
    cluster_id = _cluster_id(broker) if broker.nodes > 1 else None
    for node in nodes_of(broker):
        files = _Files.of(node)
        files.dir.mkdir(parents=True, exist_ok=True)
        with _locked(files.lock):
            pid = _live_pid(files)
            fresh = pid is None
            if pid is None:
                files.pid.unlink(missing_ok=True)  # stale: its process is gone
                _refuse_taken_ports(node)
                java = java or find_java()
                libs = libs or ensure_jars(broker)
                files.properties.write_text(server_properties(broker, node.id))
                files.log4j.write_text(log4j_properties(broker, node.id))
                _format_storage(java, libs, files, cluster_id or new_cluster_id())
                since = _log_sizes(files)
                pid = _spawn(java, libs, broker, files)
            else:
                since = _log_sizes(files)
        spawned.append((node, files, pid, since, fresh))
    try:
        for node, files, pid, since, fresh in spawned:
            with _locked(files.lock):
                _wait_until_ready(node, files, pid, timeout, since, kill_on_timeout=fresh)
    except LocalBrokerError:
        for _node, files, pid, _, fresh in spawned:  # never leave half a cluster behind
            if fresh and broker.nodes > 1:
                with _locked(files.lock), suppress(LocalBrokerError):
                    _terminate(pid, files, timeout=10.0)
                    files.pid.unlink(missing_ok=True)
        raise
    return status(broker)


def stop(
    broker: LocalBroker, timeout: float = 30.0, *, node: int | None = None, kill: bool = False
) -> bool:
    """SIGTERM the broker (a clean shutdown), SIGKILL after ``timeout``; False if none ran.

    ``node`` stops that node of a cluster only; ``kill`` sends SIGKILL at once (a crash: the
    node recovers its logs when it starts again).
    """
    if node is not None and not 1 <= node <= broker.nodes:
        raise LocalBrokerError(f"there is no node {node}: the local broker has {broker.nodes}")
    stopped = False
    chosen = nodes_of(broker) if node is None else [Node(broker, node)]
    for each in chosen:
        files = _Files.of(each)
        if not files.dir.is_dir():
            continue
        with _locked(files.lock):
            pid = _live_pid(files)
            if pid is not None:
                _terminate(pid, files, timeout, kill=kill)
                stopped = True
            files.pid.unlink(missing_ok=True)
    return stopped


def _cluster_id(broker: LocalBroker) -> str:
    """The cluster's id, made once and shared by every node's storage."""
    path = cluster_dir(broker) / "cluster.id"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name("cluster.lock")):
        if not path.is_file():
            _write_atomically(path, new_cluster_id() + "\n")
        return path.read_text().strip()


def _refuse_taken_ports(node: Node) -> None:
    for port, variable in (
        (node.port, "AFTERCARE_BROKER_PORT"),
        (node.controller_port, "AFTERCARE_BROKER_CONTROLLER_PORT"),
    ):
        if _accepts(port):
            raise LocalBrokerError(
                f"something else listens on 127.0.0.1:{port}, which the local Kafka broker "
                f"(in {node.dir}) needs: stop it, or set {variable} to a free port, "
                f"{_NO_BROKER_HINT}."
            )


def _format_storage(java: str, libs: Path, files: _Files, cluster_id: str) -> None:
    if (files.data / "meta.properties").is_file():
        return
    files.data.mkdir(parents=True, exist_ok=True)
    command = [
        java,
        f"-Dlog4j.configuration=file:{files.log4j}",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(files.properties),
        "--ignore-formatted",
    ]
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LocalBrokerError(
            f"formatting the local broker's storage in {files.data} took over 300 s and was "
            f"stopped; delete {files.data} and retry."
        ) from None
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-_TAIL_LINES:]) or "(no output)"
        raise LocalBrokerError(
            f"formatting the local broker's storage in {files.data} failed "
            f"(exit {result.returncode}); delete {files.data} and retry. Output:\n{tail}"
        )


def _spawn(java: str, libs: Path, broker: LocalBroker, files: _Files) -> int:
    argv = [
        java,
        "-Xms256m",
        f"-Xmx{broker.heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-XX:ErrorFile={files.dir}/hs_err_pid%p.log",  # not in whatever the cwd is
        f"-Dlog4j.configuration=file:{files.log4j}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(files.properties),
    ]
    # posix_spawn rather than Popen(start_new_session=True): the broker must outlive us, and a
    # Popen object dropped while its child runs warns (ResourceWarning, an error under pytest's
    # filterwarnings=error). We reap our child ourselves (see _has_exited).
    # The broker outlives us, so it must not keep what we inherited open: a lock held by
    # `flock LOCK aftercare broker start`, a pipe a caller reads to its end. glibc ignores a
    # close of a descriptor that is no longer open by the time of the spawn.
    inherited = [fd for fd in _open_descriptors() if fd > 2]
    pid = os.posix_spawn(
        java,
        argv,
        os.environ,
        file_actions=[
            *((os.POSIX_SPAWN_CLOSE, fd) for fd in inherited),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(files.out), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,  # its own session: a Ctrl-C in our terminal does not reach it
        # Python ignores SIGPIPE and SIGXFSZ and an ignored signal stays ignored across exec.
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP),
        setsigmask=(),
    )
    _write_atomically(files.pid, f"{pid}\n")
    return pid


def _open_descriptors() -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: every descriptor up to the soft limit
        return list(range(3, min(os.sysconf("SC_OPEN_MAX"), 65536)))


def _wait_until_ready(
    broker: Node,
    files: _Files,
    pid: int,
    timeout: float,
    since: tuple[int, int],
    *,
    kill_on_timeout: bool,
) -> None:
    # Only the client port means ready: the controller port opens earlier.
    deadline = time.monotonic() + timeout
    while not _accepts(broker.port):
        if _has_exited(pid, files):
            files.pid.unlink(missing_ok=True)
            raise LocalBrokerError(
                f"the local Kafka broker (pid {pid}) exited before it accepted connections on "
                f"{broker.bootstrap}; its last lines follow (all of it: {files.log}, "
                f"{files.out}):\n{_logs_since(files, since)}"
            )
        if time.monotonic() >= deadline:
            if kill_on_timeout:
                _terminate(pid, files, timeout=10.0)
                files.pid.unlink(missing_ok=True)
            raise LocalBrokerError(
                f"the local Kafka broker (pid {pid}) did not accept connections on "
                f"{broker.bootstrap} within {timeout:g} s"
                + (" and was stopped" if kill_on_timeout else "")
                + f"; see {files.log} and {files.out}. Its last lines:\n"
                + _logs_since(files, since)
            )
        time.sleep(_POLL_SECONDS)


def _terminate(pid: int, files: _Files, timeout: float, *, kill: bool = False) -> None:
    steps = ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0))
    for sig, wait in steps[1:] if kill else steps:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while not _has_exited(pid, files):
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
        else:
            return
    raise LocalBrokerError(
        f"the local Kafka broker (pid {pid}, {files.dir}) is still alive after SIGKILL: "
        "check it with `ps` and remove it by hand."
    )


# -- processes, ports, files -----------------------------------------------------------------------


def _live_pid(files: _Files) -> int | None:
    """The pid in the pid file, if that process is alive and is this broker."""
    try:
        pid = int(files.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_our_broker(pid, files) else None


def _is_our_broker(pid: int, files: _Files) -> bool:
    """Whether ``pid`` runs ``kafka.Kafka`` on this broker's config: never trust a bare pid."""
    with suppress(ChildProcessError):  # our own child (started by this process) that exited:
        os.waitpid(pid, os.WNOHANG)  # collect it, so it leaves no zombie behind
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone (a zombie reads as empty, which fails the test below too)
        return False
    return b"kafka.Kafka" in args and os.fsencode(files.properties) in args


def _has_exited(pid: int, files: _Files) -> bool:
    """Whether a broker we started (or are stopping) is gone.

    For our own child ``waitpid`` answers exactly; /proc cannot, because ``posix_spawn`` returns
    while the child is still inside exec, when its cmdline is briefly empty. A broker another
    process started is checked by its cmdline.
    """
    try:
        exited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not _is_our_broker(pid, files)
    return exited != 0


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _log_sizes(files: _Files) -> tuple[int, int]:
    """Where broker.log and broker.out end now, to quote only the lines of what follows."""
    sizes = []
    for path in (files.log, files.out):
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:
            sizes.append(0)
    return sizes[0], sizes[1]


def _logs_since(files: _Files, since: tuple[int, int]) -> str:
    parts = []
    for path, offset in zip((files.log, files.out), since, strict=True):
        lines = _tail(path, offset)
        if lines:
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
    return "\n".join(parts) or "(both are empty)"


def _tail(path: Path, since: int) -> list[str]:
    """The last lines written after byte ``since`` (from the start if the file was rolled)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(since if since <= size else 0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-_TAIL_LINES:]
