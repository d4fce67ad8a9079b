"""Run sagaflow's services as real processes for integration, e2e and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sagaflow.config import Config

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / ".stack" / "test-logs"


def service_env(
    kafka_bootstrap: str, database_url: str, prefix: str, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGAFLOW_", "OTEL_"))}
    env.update(
        {
            "SAGAFLOW_APP": "sagaflow.examples.checkout:registry",
            "SAGAFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SAGAFLOW_DATABASE_URL": database_url,
            "SAGAFLOW_TOPIC_PREFIX": prefix,
            # Tests share one broker: groups and transactional ids must not meet across tests.
            "SAGAFLOW_ORCHESTRATOR_GROUP": f"{prefix}orchestrator",
            "SAGAFLOW_WORKER_GROUP_PREFIX": f"{prefix}worker-",
            "SAGAFLOW_PROJECTOR_GROUP": f"{prefix}projector",
            "SAGAFLOW_PARTITIONS": "3",
            "SAGAFLOW_TRANSACTION_TIMEOUT_MS": "6000",
            "SAGAFLOW_CHECKPOINT_INTERVAL_MS": "500",
            "SAGAFLOW_WORKER_LEASE_MS": "3000",
            "SAGAFLOW_HTTP_PORT": "0",
            "SAGAFLOW_WORKER_HTTP_PORT": "0",
            "OTEL_SDK_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(
                [
                    str(ROOT),
                    str(ROOT / "services/orchestrator"),
                    str(ROOT / "services/activity_workers"),
                ]
            ),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def config_of(env: Mapping[str, str]) -> Config:
    return Config.from_env(env)


@dataclass
class Service:
    """One orchestrator or worker process; its log goes to .stack/test-logs/<name>.log."""

    name: str
    module: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        prefix = self.env.get("SAGAFLOW_TOPIC_PREFIX", "").strip(".")
        return LOGS / f"{prefix}-{self.name}.log"

    def start(self) -> Service:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after the timeout -> -9)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(10)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def orchestrator(name: str, env: dict[str, str], instance: str = "0") -> Service:
    """`instance` is unique within a test; the transactional id also carries the prefix."""
    unique = f"{env['SAGAFLOW_TOPIC_PREFIX'].strip('.').replace('.', '-')}-{instance}"
    return Service(name, "sagaflow_orchestrator", {**env, "SAGAFLOW_INSTANCE_ID": unique})


def worker(name: str, env: dict[str, str], **extra: str) -> Service:
    return Service(name, "sagaflow_worker", {**env, **extra})
