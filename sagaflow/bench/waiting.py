"""What waiting costs: K workflows parked on wait_for_signal. Measures the orchestrators'
resident memory per waiting workflow, the in-process rebuild of every partition, and the time
from kill -9 to ready of new orchestrators; then signals them all and checks they complete."""

from __future__ import annotations

import time
from typing import Any

from sagaflow.bench.load import Tracker
from sagaflow.bench.procs import Proc, rss_kib, wait_owned
from sagaflow.client import Client
from sagaflow.config import Config

BATCH = 2_000


def _rebuild_in_process(config: Config) -> tuple[float, int, int]:
    """(seconds, events read, open workflows) to rebuild every partition here, as a new
    orchestrator does on assignment."""
    from sagaflow.bench.app import registry
    from sagaflow_orchestrator import checkpoints
    from sagaflow_orchestrator.rebuild import rebuild_partition

    lows = checkpoints.read_all(config)
    began = time.perf_counter()
    events = opened = 0
    for p in range(config.partitions):
        cp = lows.get(checkpoints.key(config.topics.events, p))
        owned = rebuild_partition(config, registry, p, cp.low_water if cp else 0)
        events += owned.rebuilt_events
        opened += len(owned.engine.open_workflow_ids())
    return time.perf_counter() - began, events, opened


def run(
    config: Config, client: Client, tracker: Tracker, orchestrators: list[Proc], k: int, label: str
) -> tuple[dict[str, Any], list[Proc]]:
    """Returns the figures and the orchestrators now running (the restarted ones)."""
    pids = [p.pid for p in orchestrators]
    rss_before = rss_kib(pids)
    ids = [f"{label}-{i}" for i in range(k)]
    started0, closed0 = tracker.started, tracker.closed
    t0 = time.monotonic()
    for i in range(0, k, BATCH):
        client.start_many("bench_wait", ((w, None) for w in ids[i : i + BATCH]))
        if (i // BATCH) % 10 == 9:
            print(f"    {i + BATCH:,}/{k:,} waiting workflows sent", flush=True)
    tracker.wait_until(
        lambda: tracker.started - started0 >= k, max(120.0, k / 100), f"{label}: starting {k}"
    )
    start_s = time.monotonic() - t0
    rss_after = rss_kib(pids)
    kib_each = (rss_after - rss_before) / k
    print(
        f"    {k:,} waiting after {start_s:.1f}s; orchestrator RSS {rss_before:,} -> "
        f"{rss_after:,} KiB = {kib_each:.2f} KiB per waiting workflow",
        flush=True,
    )
    in_process, events, opened = _rebuild_in_process(config)
    print(
        f"    in-process rebuild of every partition: {in_process:.2f}s "
        f"({events:,} events, {opened:,} open)"
    )
    t = time.monotonic()
    for p in orchestrators:
        p.kill9()
    fresh = [
        Proc(p.kind, f"{p.name}-restarted", p.argv, p.env, p.port).start() for p in orchestrators
    ]
    wait_owned(fresh, config.partitions)
    to_ready = time.monotonic() - t
    print(
        f"    kill -9 -> new orchestrator(s) own every partition, rebuilt: {to_ready:.2f}s",
        flush=True,
    )
    t = time.monotonic()
    for i in range(0, k, BATCH):
        client.signal_many(((w, True) for w in ids[i : i + BATCH]), "go")
    tracker.wait_until(
        lambda: tracker.closed - closed0 >= k, max(120.0, k / 50), f"{label}: completing {k}"
    )
    complete_s = time.monotonic() - t
    print(f"    all {k:,} signalled and completed in {complete_s:.1f}s", flush=True)
    return (
        {
            "workflows": k,
            "start_seconds": start_s,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            "kib_per_workflow": kib_each,
            "rebuild_in_process_s": in_process,
            "rebuild_events": events,
            "rebuild_open_workflows": opened,
            "kill9_to_ready_s": to_ready,
            "signalled_completed": tracker.closed - closed0,
            "complete_seconds": complete_s,
        },
        fresh,
    )
