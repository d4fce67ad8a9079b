"""The processes a chaos run owns or hurts: sagaflow services under a watchdog that counts every
death it did not cause, and the local stack's Kafka and Postgres, killed and started again."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sagaflow.devstack import Stack
from sagaflow.devstack.cluster import KafkaCluster
from sagaflow.devstack.common import StackError, pid_alive, port_in_use
from tests.services import Service
from tests.support import assert_eventually


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def free_port() -> int:
    """A port nothing listens on now (the orchestrator binds it again after each restart)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Death:
    """A service process that exited on its own: not by our kill -9."""

    service: str
    at: str
    exit_code: int | None
    during_faults: list[str]
    """Faults under way at the death or recovered less than GRACE_S before it: a dependency
    fault here means the service most likely died of the outside world, which it must never do."""
    cause: str
    """The last exception line of the service's log, if any."""
    log_tail: str


GRACE_S = 30.0
_EXCEPTION = re.compile(r"^[\w.]+(?:Error|Exception|Required|Exit)\b.*$", re.MULTILINE)


def last_exception(text: str) -> str:
    found = _EXCEPTION.findall(text)
    return found[-1][:300] if found else ""


@dataclass
class Supervised:
    service: Service
    role: str
    """'orchestrator' or 'worker'."""
    http_port: int | None = None
    expect_exit: bool = False
    restart_at: float | None = None
    """When a dead process is started again (a second later: a crash loop must not spin)."""
    thawed: bool = False
    """Frozen past its session and thawed (the zombie fault): fencing may end it, as designed."""


@dataclass
class Supervisor:
    """Watches the sagaflow services; a process that exits while we did not expect it is a death,
    recorded and (so the run goes on and every later death is counted too) started again."""

    restart_dead: bool = True
    members: dict[str, Supervised] = field(default_factory=dict)
    deaths: list[Death] = field(default_factory=list)
    fenced_zombies: list[str] = field(default_factory=list)
    """Thawed zombies that found themselves fenced and exited 3: Kafka's zombie fencing doing its
    job (the new owner fenced the frozen member's transactional id), restarted, not deaths."""
    faults: list[tuple[str, float, float | None]] = field(default_factory=list)
    """(kind, monotonic start, monotonic end or None while under way)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, member: Supervised) -> None:
        with self._lock:
            self.members[member.service.name] = member
            member.service.start()

    def start_watching(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="chaos-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                for m in self.members.values():
                    if m.restart_at is not None and time.monotonic() >= m.restart_at:
                        m.restart_at = None
                        m.service.start()
                    proc = m.service.proc
                    if m.expect_exit or m.restart_at or proc is None or proc.poll() is None:
                        continue
                    tail = m.service.tail(40)
                    if m.thawed and proc.returncode == 3 and "fenced" in tail:
                        m.thawed = False
                        self.fenced_zombies.append(m.service.name)
                        m.restart_at = time.monotonic() + 1.0
                        continue
                    self.deaths.append(
                        Death(
                            m.service.name,
                            now_iso(),
                            proc.returncode,
                            self._faults_near(time.monotonic()),
                            last_exception(tail),
                            "\n".join(tail.splitlines()[-12:]),
                        )
                    )
                    if self.restart_dead:
                        m.restart_at = time.monotonic() + 1.0
                    else:
                        m.expect_exit = True

    def fault_began(self, kind: str) -> int:
        self.faults.append((kind, time.monotonic(), None))
        return len(self.faults) - 1

    def fault_ended(self, index: int) -> None:
        kind, began, _ = self.faults[index]
        self.faults[index] = (kind, began, time.monotonic())

    def _faults_near(self, at: float) -> list[str]:
        return [
            kind
            for kind, began, ended in self.faults
            if began <= at and (ended is None or at <= ended + GRACE_S)
        ]

    def running(self, name: str) -> bool:
        with self._lock:
            proc = self.members[name].service.proc
            return proc is not None and proc.poll() is None

    def by_role(self, role: str) -> list[Supervised]:
        return [m for m in self.members.values() if m.role == role]

    def kill9_and_restart(self, name: str) -> int:
        """kill -9, wait until reaped, start again; returns the pid killed."""
        with self._lock:
            m = self.members[name]
            proc = m.service.proc
            assert proc is not None and proc.poll() is None, f"{name} is not running"
            m.restart_at = None
            m.expect_exit = True
            pid = proc.pid
            m.service.kill()
            m.service.start()
            m.expect_exit = False
            return pid

    def freeze(self, name: str) -> int:
        """SIGSTOP: the process keeps its sockets but sends nothing, heartbeats included."""
        with self._lock:
            proc = self.members[name].service.proc
            assert proc is not None and proc.poll() is None, f"{name} is not running"
            proc.send_signal(signal.SIGSTOP)
            return proc.pid

    def thaw(self, name: str) -> None:
        with self._lock:
            proc = self.members[name].service.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                self.members[name].thawed = True

    def stop_all(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for m in self.members.values():
                m.expect_exit = True
                proc = m.service.proc
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)  # a frozen process ignores even SIGKILL's wait
                m.service.kill()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        assert_eventually(condition, timeout=timeout, interval=0.05, message=what)
    except AssertionError as exc:
        raise StackError(f"{what} did not happen within {timeout:.0f}s") from exc


def _gone(pid: int) -> bool:
    """Not even a zombie: Postgres refuses to start while its old pid still exists."""
    if pid_alive(pid):
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it was our child (a stack started in-process)
    return not os.path.exists(f"/proc/{pid}")


def broker_targets(stack: Stack) -> list[str]:
    """What a broker kill may hit: the single broker ("kafka"), or one node of a cluster."""
    kafka = stack.services["kafka"]
    return [n.name for n in kafka.nodes] if isinstance(kafka, KafkaCluster) else ["kafka"]


def kill9_cluster_node(stack: Stack, name: str, restart_timeout: float = 150.0) -> int:
    """kill -9 one node of the local three-broker cluster (`name` as in broker_targets), wait
    until it and its ports are gone, start it again while the others serve, and wait until the
    whole cluster answers. Returns the pid killed."""
    cluster = stack.services["kafka"]
    if not isinstance(cluster, KafkaCluster):
        raise StackError(f"{name}: the local stack runs no Kafka cluster (SAGAFLOW_KAFKA_BROKERS)")
    node = next((n for n in cluster.nodes if n.name == name), None)
    if node is None:
        raise StackError(f"{name}: no such node; the cluster has {broker_targets(stack)}")
    pid = node.pid()
    if pid is None:
        raise StackError(f"{name} of the local cluster is not running; start it with `make up`")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _gone(pid), 30, f"{name} (pid {pid}) exiting after kill -9")
    _wait(
        lambda: not any(port_in_use(p) for p in node.ports),
        30,
        f"{name}'s ports {node.ports} freeing",
    )
    cluster.start_missing()
    cluster.wait_ready(restart_timeout)
    return pid


def kill9_stack_service(stack: Stack, name: str, restart_timeout: float = 120.0) -> int:
    """kill -9 Kafka's or Postgres's main process, wait until it and its ports are gone, start it
    again and wait until it answers. Returns the pid killed."""
    if name != "kafka" and name.startswith("kafka-"):
        return kill9_cluster_node(stack, name)
    service = stack.services[name]
    pid = service.pid()
    if pid is None:
        raise StackError(f"{name} of the local stack is not running; start it with `make up`")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _gone(pid), 30, f"{name} (pid {pid}) exiting after kill -9")
    # Postgres's backends notice the postmaster's death on their own; the port frees with them.
    _wait(
        lambda: not any(port_in_use(p) for p in service.ports),
        30,
        f"{name}'s ports {service.ports} freeing",
    )
    deadline = time.monotonic() + restart_timeout
    while True:
        try:
            stack.up([name])
            return pid
        except StackError:
            if time.monotonic() > deadline:
                raise
