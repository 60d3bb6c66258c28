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
class BrokerStatus:
    """What :func:`status` sees. ``running``: the process is alive and its client port accepts.

    ``pid`` is set whenever the process is alive, also while it is still starting.
    ``data_dir`` is the broker's folder, ``<home>/broker-<port>``.
    """

    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path
    data_dir: Path


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
    def of(cls, broker: LocalBroker) -> _Files:
        d = broker_dir(broker)
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


def broker_dir(broker: LocalBroker) -> Path:
    return broker.home / f"broker-{broker.port}"


def libs_dir(broker: LocalBroker) -> Path:
    """Where the jars are (or will be): ``$AFTERCARE_KAFKA_LIBS``, else under the home."""
    override = os.environ.get(LIBS_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return broker.home / f"kafka-{KAFKA_VERSION}" / "libs"


def server_properties(broker: LocalBroker) -> str:
    data = broker_dir(broker) / "data"
    plaintext = f"127.0.0.1:{broker.port}"
    controller = f"127.0.0.1:{broker.controller_port}"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{controller}",
        "listeners": f"PLAINTEXT://{plaintext},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{plaintext}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "offsets.topic.replication.factor": "1",
        # The default of 50 makes the first consumer group wait for 50 partitions on a laptop.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
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


def log4j_properties(broker: LocalBroker) -> str:
    log = broker_dir(broker) / "broker.log"
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
    files = _Files.of(broker)
    pid = _live_pid(files)
    return BrokerStatus(
        running=pid is not None and _accepts(broker.port),
        pid=pid,
        bootstrap=broker.bootstrap,
        log_path=files.log,
        data_dir=files.dir,
    )


def start(broker: LocalBroker, timeout: float = 90.0) -> BrokerStatus:
    """Start the broker and wait until it accepts connections; a running one is left as it is."""
    files = _Files.of(broker)
    files.dir.mkdir(parents=True, exist_ok=True)
    with _locked(files.lock):
        pid = _live_pid(files)
        spawned = pid is None
        if pid is None:
            files.pid.unlink(missing_ok=True)  # stale: its process is gone
            _refuse_taken_ports(broker)
            java = find_java()
            libs = ensure_jars(broker)
            files.properties.write_text(server_properties(broker))
            files.log4j.write_text(log4j_properties(broker))
            _format_storage(java, libs, files)
            since = _log_sizes(files)
            pid = _spawn(java, libs, broker, files)
        else:
            since = _log_sizes(files)
        _wait_until_ready(broker, files, pid, timeout, since, kill_on_timeout=spawned)
    return status(broker)


def stop(broker: LocalBroker, timeout: float = 30.0) -> bool:
    """SIGTERM the broker (a clean shutdown), SIGKILL after ``timeout``; False if none ran."""
    files = _Files.of(broker)
    if not files.dir.is_dir():
        return False
    with _locked(files.lock):
        pid = _live_pid(files)
        if pid is not None:
            _terminate(pid, files, timeout)
        files.pid.unlink(missing_ok=True)
    return pid is not None


def _refuse_taken_ports(broker: LocalBroker) -> None:
    for port, variable in (
        (broker.port, "AFTERCARE_BROKER_PORT"),
        (broker.controller_port, "AFTERCARE_BROKER_CONTROLLER_PORT"),
    ):
        if _accepts(port):
            raise LocalBrokerError(
                f"something else listens on 127.0.0.1:{port}, which the local Kafka broker "
                f"(in {broker_dir(broker)}) needs: stop it, or set {variable} to a free port, "
                f"{_NO_BROKER_HINT}."
            )


def _format_storage(java: str, libs: Path, files: _Files) -> None:
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
        new_cluster_id(),
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
    pid = os.posix_spawn(
        java,
        argv,
        os.environ,
        file_actions=[
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


def _wait_until_ready(
    broker: LocalBroker,
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


def _terminate(pid: int, files: _Files, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
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
