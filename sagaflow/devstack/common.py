"""Paths, processes and ports shared by the local stack's services."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


class StackError(Exception):
    """A stack step failed; the message is one line saying what happened and what to do."""


def progress(message: str) -> None:
    """A progress line for a long step; flushed so `make` shows it while the step runs."""
    print(f"==> {message}", flush=True)  # noqa: T201 - the stack's CLI talks to a person


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps things: per-clone runtime state and the shared download cache."""

    repo: Path
    cache: Path

    @property
    def stack(self) -> Path:
        return self.repo / ".stack"

    @property
    def logs(self) -> Path:
        return self.stack / "logs"

    @property
    def run(self) -> Path:
        return self.stack / "run"

    @property
    def cache_logs(self) -> Path:
        return self.cache / "logs"

    @property
    def cache_bin(self) -> Path:
        return self.cache / "bin"

    def service_dir(self, name: str) -> Path:
        return self.stack / name

    def make_dirs(self) -> None:
        for d in (self.stack, self.logs, self.run, self.cache, self.cache_logs, self.cache_bin):
            d.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackPaths:
        e = os.environ if env is None else env
        cache = Path(e.get("SAGAFLOW_CACHE") or Path.home() / ".cache" / "sagaflow")
        return cls(repo=_repo_root(), cache=cache.expanduser().resolve())


def _repo_root() -> Path:
    # The package is installed editable from the clone, so the clone is two levels up. A
    # non-editable install has no clone: fall back to the working directory.
    candidate = Path(__file__).resolve().parents[2]
    if (candidate / "pyproject.toml").is_file():
        return candidate
    return Path.cwd().resolve()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialises stack operations across processes (several engineers share one machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def require_tool(name: str, what_for: str, install_hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is not on PATH but is needed {what_for}; {install_hint}")
    return found


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def ensure_ports_free(service: str, ports: Sequence[int]) -> None:
    for port in ports:
        if port_in_use(port):
            raise StackError(
                f"{service} cannot start: {HOST}:{port} is already in use by a process that is "
                f"not this clone's stack; find it with `ss -ltnp 'sport = :{port}'` and stop it "
                "(or run `make down` in the clone that started it)"
            )


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    # A zombie has exited; only its parent's wait() is missing.
    return state != "Z"


def live_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in `pid_file` if that process still runs and is ours.

    The marker (a path unique to this clone's stack) must appear in the process's command
    line, so a recycled pid or another clone's stack is never mistaken for ours.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    if pid_alive(pid) and marker in cmdline(pid):
        return pid
    return None


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of one process in KiB, from /proc/<pid>/status."""
    rss = peak = 0
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return (0, 0)
    for line in lines:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return (rss, peak)


def terminate(pid: int, name: str, first_signal: int = signal.SIGTERM, grace: float = 30.0) -> None:
    """Sends `first_signal`, waits up to `grace` seconds, then SIGKILLs; returns when gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first_signal)
    deadline = time.monotonic() + grace
    while pid_alive(pid):
        if time.monotonic() > deadline:
            progress(
                f"{name} (pid {pid}) ignored {signal.Signals(first_signal).name} for "
                f"{grace:.0f}s; sending SIGKILL"
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < kill_deadline:
                _reap(pid)
                time.sleep(0.05)
            break
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid):
        raise StackError(
            f"{name} (pid {pid}) survived SIGKILL; inspect it with `ps -o "
            f"pid,stat,cmd -p {pid}` (a process stuck in the kernel cannot be killed)"
        )


def _reap(pid: int) -> None:
    # When this process started the service (pytest fixtures do), it must reap it, or the
    # exited child lingers as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def run_logged(
    cmd: Sequence[str],
    log: Path,
    *,
    what: str,
    fix: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    heartbeat: float = 30.0,
) -> None:
    """Runs a long command with its output in `log`, printing a line every `heartbeat` s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
        )
        while True:
            try:
                code = proc.wait(timeout=heartbeat)
                break
            except subprocess.TimeoutExpired:
                progress(f"still {what} ({time.monotonic() - started:.0f}s; log: {log})")
    if code != 0:
        raise StackError(f"{what} failed (exit {code}); see {log}; {fix}")


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:])
