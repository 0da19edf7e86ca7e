"""The local Kafka broker of the embedded default deployment: Apache Kafka's own broker, run
from its Maven Central jars (var/jars/kafka) as one KRaft node (broker + controller) on loopback.

Why not a container or a Python fake: the skeleton must run on real components with nothing
but a JVM, and the same code talks to a real cluster when `kafka.bootstrap_servers` is set.
Why static quorum voters (not `format --standalone`): the listener ports are picked free at
each start; a dynamic quorum would remember the controller's old endpoint in its bootstrap
checkpoint, while `controller.quorum.voters` always comes from the current server.properties.

Everything lives under {settings.var_dir}/kafka, so a test can run an isolated broker by
pointing CDP_VAR_DIR at a tmp dir:
    config/server.properties, config/log4j2.properties, config/ports.json
    data/                 (log.dirs, also the KRaft metadata log)
    logs/broker.out       (the JVM's stdout+stderr; the previous run's is broker.out.1)
    broker.json           ({pid, bootstrap_servers, started_at} of the running broker)
and {kafka.broker_jars_dir}/kafka-broker.jsa caches the JVM's class data (see CDS_ARCHIVE).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

HOST = "127.0.0.1"
NODE_ID = 1
JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    # A dev broker on a shared 2-core box: no GC worker threads competing with Spark.
    "-XX:+UseSerialGC",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
]
# A dynamic class-data-sharing archive of the broker's classes cuts JVM startup by ~30-40%
# (it matters: tests start brokers, and 2 shared cores make class loading slow). The first
# broker dumps it at a graceful exit; later ones map it. It sits next to the jars, so
# re-resolving var/jars/kafka drops it with them; a mismatched archive is ignored by the JVM.
CDS_ARCHIVE = "kafka-broker.jsa"
# Tuned for one node on a laptop/CI box, not for durability or throughput.
BROKER_DEFAULTS: dict[str, str] = {
    "auto.create.topics.enable": "true",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    # 1 instead of 50: the first consumer group otherwise waits for 50 partitions to be created.
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # Fast flush: data reaches disk within a second (tests kill brokers; dev data stays sane).
    "log.flush.interval.messages": "1000",
    "log.flush.interval.ms": "200",
    "log.flush.scheduler.interval.ms": "200",
    "log.segment.bytes": str(64 * 1024 * 1024),
    "log.retention.hours": "168",
    "log.retention.check.interval.ms": "60000",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
}
LOG4J2 = """\
# Written by jobs.stream.broker: the broker logs to stdout, which goes to logs/broker.out.
status = warn
name = cdp-kafka
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    bootstrap_servers: str
    log_file: str
    started_at: str


# -- paths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paths:
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def properties(self) -> Path:
        return self.config_dir / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.config_dir / "log4j2.properties"

    @property
    def ports(self) -> Path:
        return self.config_dir / "ports.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "broker.out"

    @property
    def info_file(self) -> Path:
        return self.root / "broker.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


def _paths(settings: Settings) -> _Paths:
    return _Paths(Path(settings.var_dir) / "kafka")


@contextlib.contextmanager
def _locked(paths: _Paths) -> Iterator[None]:
    """Serialise start/stop across processes (the CLI, a test session, a DAG task)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- process helpers -----------------------------------------------------------------------


def _reap(pid: int) -> bool:
    """Collect the exit status if pid is our exited child (else it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    return False


def _pid_alive(pid: int) -> bool:
    """True if pid runs and is not a zombie (reaping it if it is our own exited child)."""
    if _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    with contextlib.suppress(OSError, IndexError):
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            # A JVM's main thread can be a zombie while its other threads still run the
            # shutdown hooks: the process is gone only when no other task is left.
            if len(os.listdir(proc / "task")) > 1:
                return True
            _reap(pid)
            return False
    return True


def _is_our_broker(pid: int, paths: _Paths) -> bool:
    """Guard against pid reuse: the process must be kafka.Kafka with our server.properties."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # not Linux: trust the pid
        return _pid_alive(pid)
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in args and str(paths.properties).encode() in args


def _port_open(bootstrap: str, timeout: float = 1.0) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Same as the JVM's server socket, so a port in TIME_WAIT still counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _choose_ports(paths: _Paths) -> tuple[int, int]:
    """Reuse last run's ports when both are still free (a stable address is friendlier)."""
    if paths.ports.exists():
        with contextlib.suppress(ValueError, KeyError, OSError):
            saved = json.loads(paths.ports.read_text())
            broker, controller = int(saved["broker"]), int(saved["controller"])
            if broker != controller and _port_free(broker) and _port_free(controller):
                return broker, controller
    broker = _free_port()
    controller = _free_port()
    while controller == broker:
        controller = _free_port()
    return broker, controller


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise CdpError("no `java` on PATH (and JAVA_HOME unset): install a JDK 17+ for Kafka")
    return found


def _classpath(settings: Settings) -> str:
    jars = Path(settings.kafka.broker_jars_dir)
    if not any(jars.glob("kafka_2.13-*.jar")):
        raise CdpError(f"Kafka broker jars not found in {jars}: run `make setup` first")
    return f"{jars}/*"


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log output)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# -- config + storage ----------------------------------------------------------------------


def _server_properties(paths: _Paths, broker_port: int, controller_port: int) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(paths.data_dir),
        **BROKER_DEFAULTS,
    }
    header = "# Written by jobs.stream.broker at each start; edits are overwritten.\n"
    return header + "".join(f"{k}={v}\n" for k, v in props.items())


def _format_storage(paths: _Paths, java: str, classpath: str) -> None:
    """Format the KRaft data dir once (meta.properties marks it); a new random cluster id."""
    if (paths.data_dir / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cmd = [
        java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",  # a short CLI run
        f"-Dlog4j2.configurationFile={paths.log4j}", "-cp", classpath,
        "kafka.tools.StorageTool", "format", "--ignore-formatted",
        # `=` form: a base64 id may start with "-", which argparse would take for an option.
        f"--cluster-id={cluster_id}", "-c", str(paths.properties),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise CdpError(f"formatting Kafka storage in {paths.data_dir} failed: " + " | ".join(out))


# -- readiness ------------------------------------------------------------------------------


def _broker_ready(bootstrap: str, timeout_ms: int = 5000) -> bool:
    """The broker answers a DescribeCluster with itself registered (KRaft: unfenced)."""
    if not _port_open(bootstrap):
        return False
    from kafka import KafkaAdminClient  # deferred: keep `cdp --help` fast

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="cdp-broker-check",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except Exception:
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except Exception:
        return False
    finally:
        admin.close()


def _cds_opts(settings: Settings) -> tuple[list[str], Path | None]:
    """JVM options to use the CDS archive, or to dump one (to a temp file) at exit."""
    jars = Path(settings.kafka.broker_jars_dir)
    archive = jars / CDS_ARCHIVE
    if archive.exists():
        return ["-Xshare:auto", f"-XX:SharedArchiveFile={archive}"], None
    if not os.access(jars, os.W_OK):
        return [], None
    dump = jars / f"{CDS_ARCHIVE}.{uuid.uuid4().hex[:8]}.tmp"
    return [f"-XX:ArchiveClassesAtExit={dump}"], dump


def _settle_cds(settings: Settings, dump: str | None, graceful: bool) -> None:
    """Publish a complete archive atomically; drop one a SIGKILL may have cut short."""
    if not dump or not Path(dump).exists():
        return
    archive = Path(settings.kafka.broker_jars_dir) / CDS_ARCHIVE
    if graceful and Path(dump).stat().st_size > 0 and not archive.exists():
        os.replace(dump, archive)
    else:
        Path(dump).unlink(missing_ok=True)


def _read_cds_dump(paths: _Paths) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(paths.info_file.read_text()).get("cds_dump")
    return None


def _read_info(paths: _Paths) -> BrokerInfo | None:
    try:
        raw = json.loads(paths.info_file.read_text())
        return BrokerInfo(
            pid=int(raw["pid"]),
            bootstrap_servers=str(raw["bootstrap_servers"]),
            log_file=str(raw.get("log_file", paths.log_file)),
            started_at=str(raw["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_info(paths: _Paths, info: BrokerInfo, cds_dump: Path | None = None) -> None:
    tmp = paths.info_file.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(
            {
                "pid": info.pid,
                "bootstrap_servers": info.bootstrap_servers,
                "started_at": info.started_at,
                "log_file": info.log_file,
                "cds_dump": str(cds_dump) if cds_dump else None,
            },
            indent=2,
        )
        + "\n"
    )
    tmp.replace(paths.info_file)


def _wait_ready(info: BrokerInfo, paths: _Paths, deadline: float) -> None:
    while time.monotonic() < deadline:
        if not _pid_alive(info.pid):
            raise CdpError(
                f"Kafka broker exited during startup; see {paths.log_file}:\n"
                + _tail(paths.log_file)
            )
        if _broker_ready(info.bootstrap_servers):
            return
        time.sleep(0.5)
    raise CdpError(
        f"Kafka broker did not accept connections on {info.bootstrap_servers} in time; "
        f"see {paths.log_file}:\n" + _tail(paths.log_file)
    )


def _kill(pid: int, timeout: float) -> bool:
    """SIGTERM (Kafka's controlled shutdown), then SIGKILL after timeout; True if graceful."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not _pid_alive(pid):
            break
        time.sleep(0.1)
    return False


# -- public API -----------------------------------------------------------------------------


def status(settings: Settings | None = None) -> BrokerInfo | None:
    """The running local broker (pid alive and its port answering), else None."""
    paths = _paths(settings or get_settings())
    info = _read_info(paths)
    if info is None or not _is_our_broker(info.pid, paths):
        return None
    return info if _port_open(info.bootstrap_servers) else None


def start(settings: Settings | None = None, wait_seconds: float = 60) -> BrokerInfo:
    """Start the local broker in the background and wait until it serves; idempotent.

    Always the local broker, whatever kafka.bootstrap_servers says (callers such as
    `cdp kafka start` decide whether a local broker is wanted). Raises CdpError, with the
    tail of logs/broker.out, when the JVM exits or does not serve within wait_seconds.
    """
    settings = settings or get_settings()
    paths = _paths(settings)
    with _locked(paths):
        current = _read_info(paths)
        if current is not None and _is_our_broker(current.pid, paths):
            # Running, or still starting (another process began it): wait for it.
            _wait_ready(current, paths, time.monotonic() + wait_seconds)
            return current
        paths.info_file.unlink(missing_ok=True)  # stale

        java, classpath = _java(), _classpath(settings)
        cds_opts, cds_dump = _cds_opts(settings)
        for d in (paths.config_dir, paths.data_dir, paths.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        broker_port, controller_port = _choose_ports(paths)
        paths.properties.write_text(_server_properties(paths, broker_port, controller_port))
        paths.log4j.write_text(LOG4J2)
        paths.ports.write_text(
            json.dumps({"broker": broker_port, "controller": controller_port}) + "\n"
        )
        _format_storage(paths, java, classpath)

        if paths.log_file.exists():
            paths.log_file.replace(paths.log_file.with_name("broker.out.1"))
        cmd = [
            java, *JVM_OPTS, *cds_opts,
            f"-Dlog4j2.configurationFile={paths.log4j}",
            f"-Dkafka.logs.dir={paths.logs_dir}",
            "-cp", classpath, "kafka.Kafka", str(paths.properties),
        ]  # fmt: skip
        with open(paths.log_file, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=paths.root,
                start_new_session=True,
                close_fds=True,
            )
        info = BrokerInfo(
            pid=proc.pid,
            bootstrap_servers=f"{HOST}:{broker_port}",
            log_file=str(paths.log_file),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        # Written before readiness so a concurrent `start`/`stop` finds the starting JVM.
        _write_info(paths, info, cds_dump)
        try:
            _wait_ready(info, paths, time.monotonic() + wait_seconds)
        except BaseException:
            _kill(proc.pid, timeout=10)
            _settle_cds(settings, str(cds_dump) if cds_dump else None, graceful=False)
            paths.info_file.unlink(missing_ok=True)
            raise
        return info


def stop(settings: Settings | None = None, timeout: float = 30) -> bool:
    """Stop the local broker; True if one was running. Idempotent."""
    settings = settings or get_settings()
    paths = _paths(settings)
    with _locked(paths):
        info = _read_info(paths)
        running = info is not None and _is_our_broker(info.pid, paths)
        if running and info is not None:
            graceful = _kill(info.pid, timeout)
            _settle_cds(settings, _read_cds_dump(paths), graceful)
        paths.info_file.unlink(missing_ok=True)
        return running


def bootstrap_servers(settings: Settings | None = None) -> str:
    """The configured cluster (kafka.bootstrap_servers), else the running local broker."""
    settings = settings or get_settings()
    if settings.kafka.bootstrap_servers.strip():
        return settings.kafka.bootstrap_servers.strip()
    info = status(settings)
    if info is None:
        raise CdpError(
            "no Kafka broker: run `cdp kafka start` (local broker) or set "
            "kafka.bootstrap_servers / CDP_KAFKA__BOOTSTRAP_SERVERS"
        )
    return info.bootstrap_servers


def ensure_topics(
    bootstrap: str, topics: list[str], partitions: int = 1, timeout_ms: int = 30000
) -> None:
    """Create the topics that do not exist yet and wait until each has a leader."""
    if not topics:
        return
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="cdp-ensure-topics",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as exc:
        raise CdpError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        result = admin.create_topics(
            {t: {"num_partitions": partitions} for t in topics},
            timeout_ms=timeout_ms,
            raise_errors=False,
        )
        for topic in result["topics"]:
            error = for_code(topic["error_code"])
            if topic["error_code"] and error is not TopicAlreadyExistsError:
                raise CdpError(
                    f"creating Kafka topic {topic['name']} failed: {error.__name__} "
                    f"{topic.get('error_message') or ''}".rstrip()
                )
        admin.wait_for_topics(topics, timeout_ms=timeout_ms)
    except KafkaError as exc:
        raise CdpError(f"creating Kafka topics {topics} at {bootstrap} failed: {exc}") from exc
    finally:
        admin.close()
