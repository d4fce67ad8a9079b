"""`python -m sagaflow.bench.core`: workflow decisions per second of the pure core, one core.

Drives N checkout sagas (below the approval threshold, instant activities with canned results)
through Engine.handle: every StartWorkflow and CompleteActivity is one decision. No Kafka, no
codec, no I/O: this is the ceiling the orchestrator's own work can reach on one partition.
Runs a few times (shared machines are noisy) and reports the best run. Prints the figure and
writes bench-results/core.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import deque
from pathlib import Path
from typing import Any

from sagaflow.core.engine import Engine
from sagaflow.core.messages import CLOSING_EVENTS, ActivityTask, CompleteActivity, StartWorkflow
from sagaflow.examples.checkout import registry

_RESULTS: dict[str, bytes] = {
    "reserve_inventory": b'{"reservation_id":"res_1"}',
    "charge_payment": b'{"charge_id":"ch_1"}',
    "create_shipment": b'{"shipment_id":"sh_1"}',
    "send_receipt_email": b'{"message_id":"msg_1"}',
}


def _order(i: int) -> bytes:
    order = {
        "order_id": f"order-{i}",
        "sku": "sku-1",
        "quantity": 1,
        "amount_cents": 1_999,
        "card": "tok_visa",
        "address": "1 Main St",
        "email": "buyer@example.com",
    }
    return json.dumps(order).encode()


def run(sagas: int, in_flight: int) -> dict[str, Any]:
    """Run `sagas` checkouts with up to `in_flight` open at once; return the figures."""
    engine = Engine(registry)
    tasks: deque[ActivityTask] = deque()
    decisions = events = started = closed = 0
    now_ms = 1_767_225_600_000
    began = time.perf_counter()
    while started < sagas or tasks:
        while started < sagas and started - closed < in_flight:
            command = StartWorkflow(f"wf-{started}", "checkout", _order(started), None, "")
            decision = engine.handle(command, now_ms)
            decisions += 1
            events += len(decision.events)
            tasks.extend(decision.tasks)
            started += 1
        task = tasks.popleft()
        complete = CompleteActivity(
            task.workflow_id,
            task.run_id,
            task.activity_seq,
            task.attempt,
            _RESULTS[task.activity_name],
        )
        decision = engine.handle(complete, now_ms)
        decisions += 1
        events += len(decision.events)
        closed += any(isinstance(e.body, CLOSING_EVENTS) for e in decision.events)
        tasks.extend(decision.tasks)
        now_ms += 1
    elapsed = time.perf_counter() - began
    completed = sum(1 for i in range(sagas) if engine.status(f"wf-{i}") == "completed")
    return {
        "benchmark": "core",
        "sagas": sagas,
        "completed": completed,
        "in_flight": in_flight,
        "decisions": decisions,
        "events": events,
        "seconds": round(elapsed, 4),
        "decisions_per_second": round(decisions / elapsed),
        "events_per_second": round(events / elapsed),
        "sagas_per_second": round(sagas / elapsed),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sagas", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best one is reported")
    parser.add_argument("--out", type=Path, default=Path("bench-results/core.json"))
    args = parser.parse_args(argv)
    runs = [run(args.sagas, args.in_flight) for _ in range(max(1, args.repeat))]
    result = max(runs, key=lambda r: int(r["decisions_per_second"]))
    result["all_runs_decisions_per_second"] = [r["decisions_per_second"] for r in runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"core: {result['decisions_per_second']:,} decisions/s "
        f"({result['events_per_second']:,} events/s, {result['sagas_per_second']:,} sagas/s; "
        f"{result['completed']}/{result['sagas']} completed) -> {args.out}"
    )


if __name__ == "__main__":
    main()
