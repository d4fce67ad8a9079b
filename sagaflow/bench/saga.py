"""`python -m sagaflow.bench.saga`: sagas per second, step latency and restart time, measured
on the real stack (Kafka, Postgres) with both services as real processes.

Activities are instant, so the figures are the engine's own cost: Kafka transactions, the
orchestrator's decisions, the worker's idempotency claims in Postgres. Writes
bench-results/saga.json and bench-results/saga-latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sagaflow.client import Client, Recorded, follow, wait_closed
from sagaflow.config import Config
from sagaflow.core.messages import (
    ActivityCompleted,
    ActivityScheduled,
    WorkflowStarted,
)
from sagaflow.kafka.admin import create_topics

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench-results"
HTTP_PORT = 18090


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _start(module: str, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    logs = ROOT / ".stack" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", module],
        env=env,
        stdout=(logs / f"bench-{name}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _run_sagas(config: Config, n: int, tag: str) -> dict[str, Any]:
    client = Client(config)
    ids = [f"{tag}-{i}" for i in range(n)]
    scheduled: dict[tuple[str, int], int] = {}
    steps: list[float] = []
    started_at: dict[str, int] = {}
    closed_at: dict[str, int] = {}
    t0 = time.monotonic()
    for w in ids:
        client.start("bench_saga", {"order_id": w}, workflow_id=w)
    sent = time.monotonic() - t0

    def on_event(rec: Recorded) -> None:
        e, b = rec.event, rec.event.body
        if isinstance(b, WorkflowStarted):
            started_at[e.workflow_id] = e.recorded_at_ms
        elif isinstance(b, ActivityScheduled):
            scheduled[(e.workflow_id, b.activity_seq)] = e.recorded_at_ms
        elif isinstance(b, ActivityCompleted):
            s = scheduled.get((e.workflow_id, b.activity_seq))
            if s is not None:
                steps.append(e.recorded_at_ms - s)

    closed = wait_closed(config, ids, timeout_s=max(120, n), on_event=on_event)
    for w, e in closed.items():
        closed_at[w] = e.recorded_at_ms
    span_ms = max(closed_at.values()) - min(started_at.values())
    sagas = [closed_at[w] - started_at[w] for w in ids if w in started_at]
    return {
        "sagas": n,
        "seconds": span_ms / 1000,
        "sagas_per_s": n / (span_ms / 1000),
        "send_seconds": sent,
        "step_ms": steps,
        "saga_ms": sagas,
        "step_p50_ms": _pct(steps, 0.5),
        "step_p99_ms": _pct(steps, 0.99),
        "saga_p50_ms": _pct(sagas, 0.5),
        "saga_p99_ms": _pct(sagas, 0.99),
    }


def _measure_rebuild(
    config: Config, env: dict[str, str], orch: subprocess.Popen[bytes], open_n: int, tag: str
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    from sagaflow.bench.app import registry
    from sagaflow_orchestrator import checkpoints
    from sagaflow_orchestrator.rebuild import rebuild_partition

    client = Client(config)
    ids = [f"{tag}-open-{i}" for i in range(open_n)]
    for w in ids:
        client.start("bench_wait", None, workflow_id=w)
    # Started workflows show up in the log; they stay open, waiting for a signal.
    pending = set(ids)
    deadline = time.monotonic() + 120
    for rec in follow(config, stop=lambda: time.monotonic() > deadline):
        if isinstance(rec.event.body, WorkflowStarted):
            pending.discard(rec.event.workflow_id)
            if not pending:
                break
    print(f"    {open_n} workflows open; timing the rebuild of every partition in-process")
    lows = checkpoints.read_all(config)
    t = time.perf_counter()
    events = opened = 0
    for p in range(config.partitions):
        cp = lows.get(checkpoints.key(config.topics.events, p))
        owned = rebuild_partition(config, registry, p, cp.low_water if cp else 0)
        events += owned.rebuilt_events
        opened += len(owned.engine.open_workflow_ids())
    in_process = time.perf_counter() - t
    print("    kill -9 the orchestrator and time a new one to ready")
    orch.kill()
    orch.wait()
    t = time.monotonic()
    new = _start("sagaflow_orchestrator", env, "orchestrator-2")
    while not _ready(HTTP_PORT):
        if time.monotonic() - t > 180:
            raise TimeoutError("restarted orchestrator not ready after 180s")
        time.sleep(0.05)  # polling the readiness probe
    to_ready = time.monotonic() - t
    for w in ids:
        client.signal(w, "go", True)
    return (
        {
            "open_workflows": opened,
            "events_read": events,
            "rebuild_seconds_in_process": in_process,
            "restart_to_ready_seconds": to_ready,
        },
        new,
    )


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].hist(result["run"]["step_ms"], bins=50, color="#3b7dd8")
    axes[0].set_title("activity step latency (scheduled -> completed)")
    axes[0].set_xlabel("ms")
    axes[1].hist(result["run"]["saga_ms"], bins=50, color="#d8843b")
    axes[1].set_title("saga latency (started -> completed)")
    axes[1].set_xlabel("ms")
    fig.suptitle(f"{result['run']['sagas']} sagas, {result['run']['sagas_per_s']:.1f}/s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sagaflow.bench.saga", description=__doc__)
    ap.add_argument("--sagas", type=int, default=500)
    ap.add_argument("--open", type=int, default=1000, help="open workflows for the rebuild")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--sequential", type=int, default=20, help="sagas run one at a time")
    args = ap.parse_args(argv)
    tag = f"bench{int(time.time())}"
    env = {
        **os.environ,
        "SAGAFLOW_APP": "sagaflow.bench.app:registry",
        "SAGAFLOW_TOPIC_PREFIX": f"{tag}.",
        "SAGAFLOW_PARTITIONS": str(args.partitions),
        "SAGAFLOW_ORCHESTRATOR_GROUP": f"{tag}-orchestrator",
        "SAGAFLOW_WORKER_GROUP_PREFIX": f"{tag}-worker-",
        "SAGAFLOW_INSTANCE_ID": tag,
        "SAGAFLOW_HTTP_PORT": str(HTTP_PORT),
        "SAGAFLOW_WORKER_HTTP_PORT": "18091",
        "SAGAFLOW_WORKER_CONCURRENCY": "64",
        "SAGAFLOW_CHECKPOINT_INTERVAL_MS": "1000",
        "SAGAFLOW_PROJECTOR": "off",
        "OTEL_SDK_DISABLED": "true",
    }
    config = Config.from_env(env)
    print(f"==> topics under {tag}. ({args.partitions} partitions), migrating Postgres")
    create_topics(config, ["bench"])
    from sagaflow.db.migrate import migrate

    asyncio.run(migrate(config.database_url))
    print("==> starting orchestrator and worker")
    orch = _start("sagaflow_orchestrator", env, "orchestrator")
    work = _start("sagaflow_worker", env, "worker")
    try:
        print("==> warm-up: 20 sagas")
        _run_sagas(config, 20, f"{tag}-warm")
        print(f"==> {args.sequential} sagas one at a time (latency without queueing)")
        idle_steps: list[float] = []
        idle_sagas: list[float] = []
        for i in range(args.sequential):
            one = _run_sagas(config, 1, f"{tag}-seq{i}")
            idle_steps += one["step_ms"]
            idle_sagas += one["saga_ms"]
        idle = {
            "sagas": args.sequential,
            "step_p50_ms": _pct(idle_steps, 0.5),
            "step_p99_ms": _pct(idle_steps, 0.99),
            "saga_p50_ms": _pct(idle_sagas, 0.5),
        }
        print(
            f"    step p50 {idle['step_p50_ms']:.0f} ms, p99 {idle['step_p99_ms']:.0f} ms; "
            f"saga p50 {idle['saga_p50_ms']:.0f} ms"
        )
        print(f"==> {args.sagas} sagas at once")
        run = _run_sagas(config, args.sagas, tag)
        print(
            f"    {run['sagas_per_s']:.1f} sagas/s; step p50 {run['step_p50_ms']:.0f} ms, "
            f"p99 {run['step_p99_ms']:.0f} ms; saga p50 {run['saga_p50_ms']:.0f} ms"
        )
        print(f"==> rebuild with {args.open} open workflows")
        rebuild, orch = _measure_rebuild(config, env, orch, args.open, tag)
        print(
            f"    in-process rebuild {rebuild['rebuild_seconds_in_process']:.2f}s for "
            f"{rebuild['events_read']} events; restart to ready "
            f"{rebuild['restart_to_ready_seconds']:.2f}s"
        )
    finally:
        for p in (orch, work):
            p.terminate()
        for p in (orch, work):
            p.wait(30)
    OUT.mkdir(exist_ok=True)
    result = {
        "run": run,
        "rebuild": rebuild,
        "partitions": args.partitions,
        "machine": {"cpus": os.cpu_count()},
    }
    summary = {k: v for k, v in run.items() if k not in ("step_ms", "saga_ms")}
    (OUT / "saga.json").write_text(json.dumps({**result, "run": summary}, indent=2))
    _plot(result, OUT / "saga-latency.png")
    print(f"==> wrote {OUT / 'saga.json'} and {OUT / 'saga-latency.png'}")
    print(json.dumps({"run": summary, "idle": idle, "rebuild": rebuild}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
