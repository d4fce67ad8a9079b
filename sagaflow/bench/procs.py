"""The processes a bench runs and measures: sagaflow's services, the raw loop, and the local
stack's broker and Postgres. CPU time and resident memory are read from /proc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sagaflow.devstack import Stack
from sagaflow.devstack.common import children, memory_kib

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".stack" / "logs"
ORCHESTRATOR_PORT = 18090
WORKER_PORT = 18190
_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    """CPU time of a process and its reaped children (utime+stime+cutime+cstime), in ms; 0 when
    the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # Fields after the parenthesised command name; utime is field 14 of the whole line.
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) * _TICK_MS


@dataclass
class Proc:
    """One process the bench started: a sagaflow service or a raw-loop process."""

    kind: str  # orchestrators, workers, raw_orchestrators, raw_workers
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    stopped: bool = False  # the bench stopped or killed it on purpose

    def start(self) -> Proc:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=(LOGS / f"bench-{self.name}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def ready(self) -> bool:
        if self.port is None:
            return self.alive()
        try:
            url = f"http://127.0.0.1:{self.port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def assigned(self) -> set[int]:
        """The commands partitions this orchestrator owns and has rebuilt (from /readyz)."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 503 while rebuilding: the body still says
            body = json.loads(exc.read() or b"{}")
        except OSError:
            return set()
        if not body.get("ready"):
            return set()
        return {int(p) for p in body.get("assigned", [])}

    def kill9(self) -> None:
        self.stopped = True
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(30)

    def stop(self) -> None:
        self.stopped = True
        if self.popen is None or not self.alive():
            return
        self.popen.terminate()
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log_tail(self, lines: int = 20) -> str:
        path = LOGS / f"bench-{self.name}.log"
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def exited(procs: Iterable[Proc]) -> str | None:
    """Which started process has exited, with its code and the end of its log; None if none."""
    for p in procs:
        if not p.stopped and p.popen is not None and p.popen.poll() is not None:
            return (
                f"{p.name} (pid {p.pid}) exited with {p.popen.returncode} while the bench ran; "
                f"its log ({LOGS}/bench-{p.name}.log) ends with:\n{p.log_tail()}"
            )
    return None


def wait_ready(procs: Iterable[Proc], timeout_s: float = 120.0) -> float:
    """Poll until every process answers ready; returns the seconds it took."""
    began = time.monotonic()
    pending = list(procs)
    while pending:
        for p in pending:
            if not p.alive():
                raise RuntimeError(
                    f"{p.name} exited with {p.popen.returncode if p.popen else '?'} before "
                    f"being ready; its log ({LOGS}/bench-{p.name}.log) ends with:\n{p.log_tail()}"
                )
        pending = [p for p in pending if not p.ready()]
        if pending and time.monotonic() - began > timeout_s:
            names = ", ".join(p.name for p in pending)
            raise TimeoutError(f"{names} not ready after {timeout_s:.0f}s; see logs in {LOGS}")
        if pending:
            time.sleep(0.05)  # polling the readiness probes
    return time.monotonic() - began


def wait_owned(orchestrators: Sequence[Proc], partitions: int, timeout_s: float = 300.0) -> float:
    """Poll until the orchestrators together own every partition, rebuilt and ready (a fresh
    one is ready at once as a standby while a killed member still holds its partitions until
    the group's session timeout); returns the seconds it took."""
    began = time.monotonic()
    wanted = set(range(partitions))
    while True:
        owned: set[int] = set()
        for p in orchestrators:
            owned |= p.assigned()
        if owned >= wanted:
            return time.monotonic() - began
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(
                f"orchestrators own partitions {sorted(owned)} of {partitions} after "
                f"{timeout_s:.0f}s; see their logs in {LOGS}"
            )
        time.sleep(0.05)  # polling the readiness probes


def sagaflow_services(
    env: Mapping[str, str], tag: str, orchestrators: int, workers: int
) -> list[Proc]:
    """N orchestrators (one transactional id each, sharing partitions through the group) and M
    workers (sharing the task partitions through their group), each on its own HTTP port."""
    procs: list[Proc] = []
    for i in range(orchestrators):
        port = ORCHESTRATOR_PORT + i
        e = {**env, "SAGAFLOW_INSTANCE_ID": f"{tag}-o{i}", "SAGAFLOW_HTTP_PORT": str(port)}
        e["SAGAFLOW_WORKER_HTTP_PORT"] = str(WORKER_PORT + 50 + i)  # unused by an orchestrator
        argv = [sys.executable, "-m", "sagaflow_orchestrator"]
        procs.append(Proc("orchestrators", f"orchestrator-{i}", argv, e, port))
    for i in range(workers):
        port = WORKER_PORT + i
        e = {**env, "SAGAFLOW_INSTANCE_ID": f"{tag}-w{i}", "SAGAFLOW_WORKER_HTTP_PORT": str(port)}
        argv = [sys.executable, "-m", "sagaflow_worker"]
        procs.append(Proc("workers", f"worker-{i}", argv, e, port))
    return procs


def raw_processes(env: Mapping[str, str], orchestrators: int, workers: int) -> list[Proc]:
    procs: list[Proc] = []
    for role, kind, n in (
        ("orchestrator", "raw_orchestrators", orchestrators),
        ("worker", "raw_workers", workers),
    ):
        for i in range(n):
            argv = [sys.executable, "-m", "sagaflow.bench.raw", role, str(i)]
            procs.append(Proc(kind, f"raw-{role}-{i}", argv, dict(env)))
    return procs


@dataclass
class CpuMeter:
    """CPU ms per process kind between two readings: the bench's processes plus the local
    stack's broker (its java process) and Postgres (postmaster and every backend)."""

    procs: Sequence[Proc]
    stack: Stack = field(default_factory=Stack)

    def pids(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for p in self.procs:
            if p.alive():
                found.setdefault(p.kind, []).append(p.pid)
        broker = self.stack.services["kafka"].pid()
        found["broker"] = [broker] if broker is not None else []
        postgres = self.stack.services["postgres"].pid()
        found["postgres"] = [postgres, *children(postgres)] if postgres is not None else []
        jaeger = self.stack.services["jaeger"].pid()
        found["jaeger"] = [jaeger] if jaeger is not None else []
        # The bench itself (sender and trackers): if it nears a core, it is what limits the run.
        found["driver"] = [os.getpid()]
        return found

    def read(self) -> dict[int, tuple[str, float]]:
        return {pid: (kind, cpu_ms(pid)) for kind, pids in self.pids().items() for pid in pids}

    @staticmethod
    def used(
        before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
    ) -> dict[str, float]:
        """CPU ms per kind spent between the readings. A Postgres backend that exited in
        between is counted through its parent's cumulative children time."""
        out: dict[str, float] = {}
        for pid, (kind, ms) in after.items():
            out[kind] = out.get(kind, 0.0) + ms - before.get(pid, (kind, 0.0))[1]
        return out


def rss_kib(pids: Iterable[int]) -> int:
    return sum(memory_kib(pid)[0] for pid in pids)
