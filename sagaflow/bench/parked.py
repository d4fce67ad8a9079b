"""`python -m sagaflow.bench.parked`: what a workflow parked on wait_for_signal costs.

Starts N workflows that run one activity and then wait for a signal, in one partition's engine
(pure core, no I/O), and reports:

- resident memory per waiting workflow (RSS growth over N, after a full collection), and how
  many driver coroutines the engine still holds for them (idle drivers are evicted);
- with --kafka: the time to rebuild that partition from a real events log (the decided events
  are produced to a fresh topic set first), and that a signal to one of them completes it.

Numbers, not pass/fail; printed and written to bench-results/parked.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from sagaflow.core.engine import Engine
from sagaflow.core.messages import (
    CompleteActivity,
    Event,
    SignalWorkflow,
    StartWorkflow,
    WorkflowCompleted,
)
from sagaflow.workflow import Registry, WorkflowContext

registry = Registry()


@registry.activity(name="hold_seat", task_queue="waiting")
def hold_seat(ctx: Any, order: Any) -> Any:
    return {"held": True}


@registry.workflow(name="parked", version=1)
async def parked(ctx: WorkflowContext, order: Any) -> Any:
    held = await ctx.execute_activity("hold_seat", order)
    decision = await ctx.wait_for_signal("go")
    return {"held": held, "decision": decision}


NOW_MS = 1_767_225_600_000


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def park(engine: Engine, n: int) -> list[Event]:
    """N workflows, each past its activity and waiting for "go"; returns every event decided."""
    events: list[Event] = []
    for i in range(n):
        wid = f"parked-{i}"
        started = engine.handle(
            StartWorkflow(wid, "parked", b'{"order":%d}' % i, None, f"start-{i}"), NOW_MS
        )
        (task,) = started.tasks
        done = engine.handle(
            CompleteActivity(wid, task.run_id, task.activity_seq, 1, b'{"held":true}'), NOW_MS
        )
        events += started.events
        events += done.events
    return events


def measure_memory(n: int) -> tuple[dict[str, Any], list[Event]]:
    gc.collect()
    engine = Engine(registry)
    before = _rss_bytes()
    events = park(engine, n)
    # What the orchestrator keeps is the engine; the decided events list is the test's copy.
    held_events = sum(len(engine.history(f"parked-{i}")) for i in range(n))
    gc.collect()
    after = _rss_bytes()
    figures = {
        "workflows": n,
        "rss_growth_bytes": after - before,
        "drivers_held": engine.drivers_held(),
        "history_events_held": held_events,
    }
    return figures, events


def measure_rebuild(events: list[Event], n: int) -> dict[str, Any]:
    from sagaflow import codec
    from sagaflow.config import Config
    from sagaflow.kafka.admin import create_topics
    from sagaflow.kafka.clients import transactional_producer
    from sagaflow_orchestrator.rebuild import rebuild_partition

    env = dict(os.environ)
    env.setdefault("SAGAFLOW_TOPIC_PREFIX", f"bench-parked-{uuid.uuid4().hex[:8]}.")
    env.setdefault("SAGAFLOW_APP", "sagaflow.bench.parked:registry")
    config = Config.from_env(env)
    create_topics(config, ["waiting"], partitions=1, replication_factor=1)
    producer = transactional_producer(config, f"bench-parked-{uuid.uuid4().hex[:8]}")
    producer.init_transactions(30)
    producer.begin_transaction()
    for event in events:
        while True:
            try:
                producer.produce(
                    config.topics.events,
                    codec.encode_event(event),
                    event.workflow_id.encode(),
                    partition=0,
                )
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: let librdkafka drain it
    producer.commit_transaction(120)
    started = time.perf_counter()
    owned = rebuild_partition(config, registry, 0, low_water=0, timeout_s=300)
    seconds = time.perf_counter() - started
    engine = owned.engine
    wid = f"parked-{n // 2}"
    decided = engine.handle(SignalWorkflow(wid, "go", b'"yes"', "go-1"), NOW_MS + 1)
    return {
        "rebuild_s": round(seconds, 3),
        "rebuilt_events": owned.rebuilt_events,
        "open_after_rebuild": len(engine.open_workflow_ids()),
        "signal_completes_one": any(isinstance(e.body, WorkflowCompleted) for e in decided.events),
        "topic_prefix": config.topics.prefix,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--kafka", action="store_true", help="also time a rebuild from Kafka")
    args = parser.parse_args()
    memory, events = measure_memory(args.workflows)
    report: dict[str, Any] = {
        **memory,
        "waiting_kib_per_workflow": round(memory["rss_growth_bytes"] / args.workflows / 1024, 3),
    }
    if args.kafka:
        report.update(measure_rebuild(events, args.workflows))
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "waiting.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
