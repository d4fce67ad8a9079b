"""`make demo`: the main job from nothing.

Starts one orchestrator and one worker against the local stack, runs four checkout sagas and
prints each one's timeline and the payment provider's ledger:

  1. completes                      reserve -> charge -> ship -> email
  2. card declined                  reserve -> charge fails -> release inventory
  3. large order, approved          ... waits for the "approve" signal, which the demo sends
  4. large order, approval times out ... waits, times out -> refund, release

Exits 0 only when every saga ended the way it should and the ledger shows exactly one charge
per charged order and one refund per compensated one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagaflow.app import load_registry
from sagaflow.client import Client, Recorded, wait_closed
from sagaflow.config import Config
from sagaflow.core.messages import (
    ActivityCompleted,
    ActivityFailed,
    ActivityScheduled,
    Event,
    SignalReceived,
    TimerStarted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
)
from sagaflow.kafka.admin import create_topics
from sagaflow.kafka.clients import command_producer

ROOT = Path(__file__).resolve().parents[1]
JAEGER = "http://127.0.0.1:16686"


def _trace_id(headers: list[tuple[str, bytes]]) -> str:
    """The trace id in a record's W3C traceparent header ('' when there is none)."""
    for name, value in headers:
        if name == "traceparent":
            parts = value.decode(errors="replace").split("-")
            if len(parts) == 4:
                return parts[1]
    return ""


@dataclass
class Saga:
    label: str
    workflow_id: str
    order: dict[str, Any]
    expect: str  # the closing event's type
    charges: int
    refunds: int
    timeline: list[str] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    t0: float = 0.0
    trace_id: str = ""


def _orders(run: str) -> list[Saga]:
    base = {
        "sku": "sku-espresso",
        "quantity": 1,
        "address": "1 Log Street",
        "email": "buyer@example.com",
        "card": "tok_visa",
    }
    return [
        Saga(
            "completes",
            f"{run}-1",
            {**base, "order_id": f"{run}-1", "amount_cents": 4_200},
            "WorkflowCompleted",
            1,
            0,
        ),
        Saga(
            "declined, compensates",
            f"{run}-2",
            {**base, "order_id": f"{run}-2", "amount_cents": 4_200, "card": "tok_declined"},
            "WorkflowFailed",
            0,
            0,
        ),
        Saga(
            "approved by signal",
            f"{run}-3",
            {**base, "order_id": f"{run}-3", "amount_cents": 250_000},
            "WorkflowCompleted",
            1,
            0,
        ),
        Saga(
            "approval times out",
            f"{run}-4",
            {**base, "order_id": f"{run}-4", "amount_cents": 250_000, "approval_timeout_s": 3},
            "WorkflowFailed",
            1,
            1,
        ),
    ]


def _describe(event: Event, saga: Saga) -> str:
    b = event.body
    if isinstance(b, ActivityScheduled):
        saga.names[b.activity_seq] = b.activity_name
        kind = "compensate" if b.compensation else "schedule"
        return f"{kind:10} {b.activity_name}"
    if isinstance(b, ActivityCompleted):
        return f"completed  {saga.names.get(b.activity_seq, b.activity_seq)}"
    if isinstance(b, ActivityFailed):
        return (
            f"failed     {saga.names.get(b.activity_seq, b.activity_seq)}: "
            f"{b.error_type} ({b.reason})"
        )
    if isinstance(b, TimerStarted):
        return f"timer      fires in {(b.fire_at_ms - event.recorded_at_ms) / 1000:.1f}s"
    if isinstance(b, SignalReceived):
        return f"signal     {b.name}"
    if isinstance(b, WorkflowStarted):
        return f"started    {b.workflow_type} v{b.version}"
    if isinstance(b, WorkflowCompleted):
        return f"COMPLETED  {b.result.decode()[:100]}"
    if isinstance(b, WorkflowFailed):
        return f"FAILED     {b.error_type}: {b.message[:100]}"
    return type(b).__name__


def _service(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", module], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


async def _prepare_db(config: Config) -> None:
    from sagaflow.db.migrate import migrate
    from sagaflow.examples import shop_pg

    await migrate(config.database_url)
    await shop_pg.seed_stock(config.database_url, {"sku-espresso": 1_000})


async def _ledger(config: Config, order_ids: list[str]) -> list[dict[str, Any]]:
    from sagaflow.examples import shop_pg

    rows: list[dict[str, Any]] = []
    for oid in order_ids:
        rows += await shop_pg.ledger(config.database_url, oid)
    return rows


def run(config: Config, out: Callable[[str], None] = print) -> int:
    registry = load_registry(config.app)
    out("==> creating topics (idempotent)")
    create_topics(config, registry.task_queues())
    out("==> migrating the database and stocking the shop")
    asyncio.run(_prepare_db(config))
    logs = ROOT / ".stack" / "logs"
    env = {
        **os.environ,
        "SAGAFLOW_HTTP_PORT": os.environ.get("SAGAFLOW_HTTP_PORT", "18080"),
        "SAGAFLOW_WORKER_HTTP_PORT": os.environ.get("SAGAFLOW_WORKER_HTTP_PORT", "18081"),
    }
    out(f"==> starting one orchestrator and one worker (logs in {logs.relative_to(ROOT)}/)")
    procs = [
        _service(
            "sagaflow_orchestrator",
            {**env, "SAGAFLOW_INSTANCE_ID": "demo"},
            logs / "demo-orchestrator.log",
        ),
        _service("sagaflow_worker", env, logs / "demo-worker.log"),
    ]
    ui = f"http://127.0.0.1:{env['SAGAFLOW_HTTP_PORT']}/ui"
    try:
        code = _run_sagas(config, out, procs, ui)
        if sys.stdin.isatty() and sys.stdout.isatty():
            # A person is watching: keep the orchestrator (and its UI) up to look around.
            out(f"\n==> the UI stays up at {ui}/ until Ctrl-C")
            try:
                while all(p.poll() is None for p in procs):
                    time.sleep(1)  # waiting for the person, not synchronising with anything
            except KeyboardInterrupt:
                out("")
        return code
    finally:
        out("==> stopping the services (SIGTERM)")
        _stop(procs)


def _run_sagas(
    config: Config, out: Callable[[str], None], procs: list[subprocess.Popen[bytes]], ui: str
) -> int:
    run_id = f"demo-{time.strftime('%H%M%S')}-{os.getpid() % 1000}"
    sagas = {s.workflow_id: s for s in _orders(run_id)}
    client = Client(config, producer=command_producer(config, log_level=3))
    out(f"==> starting four checkout sagas ({run_id}-1..4)")
    for s in sagas.values():
        s.t0 = time.monotonic()
        client.start("checkout", s.order, workflow_id=s.workflow_id)
    approver = sagas[f"{run_id}-3"]
    signalled: list[bool] = []

    def on_event(rec: Recorded) -> None:
        saga = sagas[rec.event.workflow_id]
        line = (
            f"  [{saga.workflow_id}] +{time.monotonic() - saga.t0:5.2f}s "
            f"{_describe(rec.event, saga)}"
        )
        saga.timeline.append(line)
        if isinstance(rec.event.body, WorkflowStarted):
            saga.trace_id = _trace_id(rec.headers)
        out(line)
        if saga is approver and isinstance(rec.event.body, TimerStarted) and not signalled:
            out(f"  [{saga.workflow_id}] (demo) a manager approves: sending signal 'approve'")
            client.signal(
                saga.workflow_id, "approve", {"approved": True, "by": "manager@example.com"}
            )
            signalled.append(True)
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(
                    f"a service exited with code {p.returncode}; see .stack/logs/demo-*.log"
                )

    closed = wait_closed(config, sagas, timeout_s=120, on_event=on_event)
    ledger = asyncio.run(_ledger(config, [s.order["order_id"] for s in sagas.values()]))
    return _report(sagas, closed, ledger, out, ui)


def _report(
    sagas: dict[str, Saga],
    closed: dict[str, Event],
    ledger: list[dict[str, Any]],
    out: Callable[[str], None],
    ui: str,
) -> int:
    ok = True
    out("\n==> outcome")
    for wid, s in sagas.items():
        got = type(closed[wid].body).__name__
        charges = sum(1 for r in ledger if r["order_id"] == wid and r["kind"] == "charge")
        refunds = sum(1 for r in ledger if r["order_id"] == wid and r["kind"] == "refund")
        good = got == s.expect and charges == s.charges and refunds == s.refunds
        ok &= good
        out(
            f"  {'ok ' if good else 'BAD'} {wid:24} {s.label:24} {got:18} "
            f"charges={charges} refunds={refunds}"
        )
        out(f"      ui:    {ui}/workflows/{wid}")
        if s.trace_id:
            out(f"      trace: {JAEGER}/api/traces/{s.trace_id} (drawn on the UI page)")
    out("\n==> the payment provider's ledger")
    for r in ledger:
        out(
            "  "
            + json.dumps(
                {
                    k: r[k]
                    for k in ("order_id", "kind", "amount_cents", "idempotency_key")
                    if k in r
                },
                default=str,
            )
        )
    out("\n==> " + ("all four sagas ended as expected" if ok else "SOMETHING WENT WRONG"))
    out(f"==> every workflow: {ui}/   dead letters: {ui}/dlq")
    return 0 if ok else 1


def main() -> int:
    from sagaflow.logs import setup

    # The demo shows every saga's trace, so it traces every workflow (the default samples 10 %).
    os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    # The demo runs the example shop (services refuse to start without an app).
    os.environ.setdefault("SAGAFLOW_APP", "sagaflow.examples.checkout:registry")
    config = Config.from_env()
    setup("WARNING")
    return run(config)


if __name__ == "__main__":
    raise SystemExit(main())
