"""A chaos run: checkout sagas through the API and the CLI while a seeded schedule of faults
hits the orchestrators, the workers, the broker and Postgres; then the ledger checker.

    python -m tests.chaos.run --sagas 600 --rounds 4 --span 240     # what `make chaos` runs
    python -m tests.chaos.run --seed 1234                             # replay a run's schedule

The seed (printed, and in the JSON summary under .stack/chaos/) fixes the sagas' kinds, the
faults, their order, times and targets. The local stack must be up (`make up`): its Kafka and
Postgres are the processes killed and started again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from sagaflow.devstack import Stack
from tests.chaos.checker import Findings, check
from tests.chaos.load import Saga, Starter, plan
from tests.chaos.poison import DlqFigures, Poison, collect_copies, figures, plan_poison, run_poison
from tests.chaos.procs import (
    Death,
    Supervised,
    Supervisor,
    broker_targets,
    free_port,
    kill9_stack_service,
    now_iso,
)
from tests.sagas import Deployment, prepare
from tests.services import ROOT, orchestrator, worker
from tests.support import assert_eventually

RESULTS = ROOT / ".stack" / "chaos"
KINDS = (
    "kill_orchestrator",
    "kill_worker",
    "zombie_orchestrator",
    "kill_kafka",
    "kill_postgres",
)
DEPENDENCY_FAULTS = {"kill_kafka", "kill_postgres"}


@dataclass(frozen=True)
class Settings:
    seed: int
    sagas: int = 40
    rounds: int = 1
    """Each round: 2 orchestrator and 2 worker kills, a zombie, a broker and a Postgres kill."""
    span_s: float = 60.0
    """Starts and faults are spread over this many seconds."""
    wait_s: float = 150.0
    """After the span: how long every saga has to close."""
    partitions: int = 6
    poison: int = 4
    """Undecodable records sent during the span, half to the commands topic, half to a task
    topic: each must reach the dlq (the summary's dlq latency)."""


@dataclass
class Fault:
    kind: str
    target: str
    planned_at_s: float
    fired_at: str = ""
    """Wall-clock time the fault took effect; empty when it never fired."""
    pid: int | None = None
    recovered_s: float | None = None
    """Seconds from the fault until the target was back (restarted, thawed)."""
    detail: str = ""


@dataclass
class Report:
    settings: Settings
    faults: list[Fault]
    findings: Findings
    deaths: list[Death]
    started_at: str
    duration_s: float
    prefix: str
    sagas_by_kind: dict[str, int] = field(default_factory=dict)
    poison: list[Poison] = field(default_factory=list)
    fenced_zombies: list[str] = field(default_factory=list)

    @property
    def dlq(self) -> DlqFigures:
        return figures(self.poison)

    def fired(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults if f.fired_at)

    def dependency_deaths(self) -> list[Death]:
        return [d for d in self.deaths if DEPENDENCY_FAULTS & set(d.during_faults)]

    def line(self) -> str:
        f = self.findings
        faults = ",".join(f"{k}={self.fired()[k]}" for k in KINDS)
        return (
            f"chaos seed={self.settings.seed} sagas={f.sagas} faults[{faults}] "
            f"lost={len(f.lost)} duplicate_charges={f.duplicate_charges} "
            f"rerun_finished={len(f.rerun_finished)} stuck={len(f.stuck)} "
            f"wrong_status={len(f.wrong_status)} ledger_mismatch={len(f.ledger_mismatch)} "
            f"seq_errors={len(f.seq_errors)} readmodel_mismatch={len(f.readmodel_mismatch)} "
            f"{self.dlq.line()} "
            f"zombies_fenced={len(self.fenced_zombies)} "
            f"service_deaths={len(self.deaths)} "
            f"(near_dependency_fault={len(self.dependency_deaths())}) "
            f"duration={self.duration_s:.0f}s"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line(),
            "settings": asdict(self.settings),
            "prefix": self.prefix,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 1),
            "sagas_by_kind": self.sagas_by_kind,
            "faults_fired": dict(self.fired()),
            "faults": [asdict(x) for x in self.faults],
            "findings": asdict(self.findings),
            "service_deaths": [asdict(d) for d in self.deaths],
            "fenced_zombies": self.fenced_zombies,
            "dlq": self.dlq.as_dict(),
            "poison": [asdict(p) for p in self.poison],
        }

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"chaos-{self.settings.seed}-{int(time.time())}.json"
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return path


def schedule(rng: random.Random, s: Settings, brokers: list[str] | None = None) -> list[Fault]:
    """The faults of a run; `brokers`: what a broker kill may hit (one node of a cluster)."""
    kinds = [
        *["kill_orchestrator", "kill_orchestrator", "kill_worker", "kill_worker"],
        *["zombie_orchestrator", "kill_kafka", "kill_postgres"],
    ] * s.rounds
    rng.shuffle(kinds)
    times = sorted(rng.uniform(0.05, 0.85) * s.span_s for _ in kinds)
    targets = {
        "kill_orchestrator": ["orch-a", "orch-b"],
        "zombie_orchestrator": ["orch-a", "orch-b"],
        "kill_worker": ["worker-a", "worker-b"],
        "kill_kafka": brokers or ["kafka"],
        "kill_postgres": ["postgres"],
    }
    return [
        Fault(k, rng.choice(targets[k]), round(t, 2)) for k, t in zip(kinds, times, strict=True)
    ]


def group_owners(d: Deployment) -> list[bool]:
    """Whether each orchestrator group member owns partitions. Right after a broker restart
    the group's coordinator may still be loading: that is "not yet", to be polled again."""
    try:
        return [bool(ps) for ps in d.assignments().values()]
    except (KafkaException, TimeoutError) as exc:
        # TimeoutError: a fresh cluster's group coordinator can take longer than the describe's
        # 10 s to answer (its offsets topic is still being created at replication factor 3).
        raise AssertionError(f"describing the orchestrator group: {exc!r}") from exc


class Chaos:
    def __init__(self, settings: Settings, kafka_bootstrap: str, database_url: str) -> None:
        self.s = settings
        self.rng = random.Random(settings.seed)
        self.stack = Stack()
        self.deployment: Deployment = prepare(
            kafka_bootstrap, database_url, f"chaos-{settings.seed}", partitions=settings.partitions
        )
        self.supervisor = Supervisor()
        self.session_timeout_s = self.deployment.config.group_session_timeout_ms / 1000

    # ------------------------------------------------------------------ services

    def _services(self) -> None:
        env = self.deployment.env
        for instance in ("a", "b"):
            port = free_port()
            svc = orchestrator(
                f"orch-{instance}", {**env, "SAGAFLOW_HTTP_PORT": str(port)}, instance
            )
            self.supervisor.add(Supervised(svc, "orchestrator", http_port=port))
        for name in ("worker-a", "worker-b"):
            self.supervisor.add(Supervised(worker(name, env), "worker"))
        self.supervisor.start_watching()
        assert_eventually(
            lambda: self._owners() == [True, True],
            timeout=90,
            message="both orchestrators own commands partitions",
        )

    def _owners(self) -> list[bool]:
        return group_owners(self.deployment)

    def _ports(self) -> list[int]:
        return [m.http_port for m in self.supervisor.by_role("orchestrator") if m.http_port]

    # ------------------------------------------------------------------ faults

    def _inject(self, fault: Fault) -> None:
        if fault.target in self.supervisor.members:
            # A service that died on its own is started again by the watchdog a second later;
            # the fault waits for it rather than hitting nothing.
            assert_eventually(
                lambda: self.supervisor.running(fault.target),
                timeout=30,
                message=f"{fault.target} running again before {fault.kind}",
            )
        began = time.monotonic()
        window = self.supervisor.fault_began(fault.kind)
        if fault.kind in ("kill_orchestrator", "kill_worker"):
            fault.pid = self.supervisor.kill9_and_restart(fault.target)
            fault.fired_at = now_iso()
        elif fault.kind == "zombie_orchestrator":
            self._zombie(fault)
        else:
            fault.fired_at = now_iso()
            fault.pid = kill9_stack_service(self.stack, fault.target)
        self.supervisor.fault_ended(window)
        fault.recovered_s = round(time.monotonic() - began, 2)

    def _zombie(self, fault: Fault) -> None:
        """SIGSTOP until the group has dropped the member (past its session timeout), SIGCONT:
        the thawed process must find itself fenced, not append anything."""
        # From a settled group of two, "one member left" can only be the frozen one expiring
        # (a just-killed orchestrator's old member lingers until its own session ends).
        assert_eventually(
            lambda: self._owners() == [True, True],
            timeout=self.session_timeout_s + 60,
            interval=0.2,
            message="the orchestrator group settled at two members before the zombie fault",
        )
        fault.pid = self.supervisor.freeze(fault.target)
        try:
            assert_eventually(
                lambda: len(self._owners()) == 1,
                timeout=self.session_timeout_s + 30,
                interval=0.2,
                message=f"the group dropped frozen {fault.target}",
            )
            fault.fired_at = now_iso()
        except AssertionError as exc:
            fault.detail = str(exc)
        finally:
            self.supervisor.thaw(fault.target)

    def _run_faults(self, faults: list[Fault], t0: float, errors: list[BaseException]) -> None:
        for fault in faults:
            wait = t0 + fault.planned_at_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the schedule itself: a fault's planned time
            try:
                self._inject(fault)
            except BaseException as exc:  # the main thread reports it with the summary
                fault.detail = f"{type(exc).__name__}: {exc}"
                errors.append(exc)
                raise

    # ------------------------------------------------------------------ the run

    def run(self, progress: Callable[[str], None] = print) -> Report:
        started_at, t_start = now_iso(), time.monotonic()
        ids = [self.deployment.wid(f"c{i}") for i in range(self.s.sagas)]
        sagas = plan(self.rng, ids)
        faults = schedule(self.rng, self.s, broker_targets(self.stack))
        config = self.deployment.config
        poison = plan_poison(self.s.seed, config, self.s.poison, self.s.span_s)
        progress(
            f"chaos seed={self.s.seed}: {len(sagas)} sagas, {len(faults)} faults, "
            f"{len(poison)} poison records; kafka at {self.stack.kafka_bootstrap}"
        )
        try:
            self._services()
            starter = Starter(self.deployment.env, self._ports)
            errors: list[BaseException] = []
            t0 = time.monotonic()
            fault_thread = threading.Thread(
                target=self._run_faults, args=(faults, t0, errors), name="chaos-faults"
            )
            poison_thread = threading.Thread(
                target=run_poison, args=(config, poison, t0, errors), name="chaos-poison"
            )
            fault_thread.start()
            poison_thread.start()
            self._start_all(starter, sagas, t0)
            fault_thread.join(self.s.span_s + 600)
            poison_thread.join(self.s.span_s + 120)
            if errors:
                raise errors[0]
            progress("all sagas acknowledged and all faults injected; checking")
            findings = check(config, sagas, timeout_s=self.s.wait_s)
            collect_copies(config, poison, timeout_s=60)
        finally:
            self.supervisor.stop_all()
        return Report(
            self.s,
            faults,
            findings,
            list(self.supervisor.deaths),
            started_at,
            time.monotonic() - t_start,
            self.deployment.config.topics.prefix,
            dict(Counter(s.kind for s in sagas)),
            poison,
            list(self.supervisor.fenced_zombies),
        )

    def _start_all(self, starter: Starter, sagas: list[Saga], t0: float) -> None:
        gap = self.s.span_s / max(1, len(sagas))

        def one(i: int, saga: Saga) -> None:
            wait = t0 + i * gap - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # spreading the load over the span, by design
            starter.start(saga)

        with ThreadPoolExecutor(4, thread_name_prefix="chaos-start") as pool:
            for future in [pool.submit(one, i, s) for i, s in enumerate(sagas)]:
                future.result()


def seed_from_env() -> int:
    raw = os.environ.get("SAGAFLOW_CHAOS_SEED", "")
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    p.add_argument(
        "--seed", type=int, default=None, help="replay (default: SAGAFLOW_CHAOS_SEED or random)"
    )
    p.add_argument("--sagas", type=int, default=600)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--span", type=float, default=240.0)
    p.add_argument("--wait", type=float, default=300.0)
    p.add_argument("--poison", type=int, default=8, help="undecodable records sent")
    args = p.parse_args(argv)
    # SIGTERM (a timeout, Ctrl-C from make) unwinds through the finally blocks, so the
    # services this run started are killed instead of left running.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    settings = Settings(
        seed=args.seed if args.seed is not None else seed_from_env(),
        sagas=args.sagas,
        rounds=args.rounds,
        span_s=args.span,
        wait_s=args.wait,
        poison=args.poison,
    )
    stack = Stack()
    stack.up(["kafka", "postgres"])
    report = Chaos(settings, stack.kafka_bootstrap, stack.database_url).run()
    path = report.save()
    print(report.line())
    print(f"summary: {path}")
    clean = (
        report.findings.clean()
        and not report.deaths
        and all(f.fired_at for f in report.faults)
        and not report.dlq.missing
    )
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
