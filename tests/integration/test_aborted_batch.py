"""An aborted batch rebuilds only the partitions it touched, and every workflow still ends as if
nothing had gone wrong.

A group change aborts the batch in flight (its offsets carry the old generation) at the very
moment a survivor should take over a lost member's partitions; rebuilding every partition it
owns then was most of the survivor's delay (docs/failover.md). Here the abort is injected once,
through the hook the loop calls inside the transaction, in a batch that holds one signal."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from sagaflow.cli.eventlog import Logged, all_events, workflow_events
from sagaflow.client import Client, wait_closed
from sagaflow.config import Config
from sagaflow.core.messages import Event, SignalReceived, WorkflowCompleted, WorkflowStarted
from sagaflow.kafka import triage
from sagaflow.kafka.partition import partition_for
from sagaflow.workflow import Registry, WorkflowContext
from sagaflow_orchestrator.hooks import ConsumedCommand, Decided, DecisionHeaders, Hooks
from sagaflow_orchestrator.loop import Orchestrator
from tests.readmodel_support import environment
from tests.support import assert_eventually, running_loop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PARTITIONS = 3

registry = Registry()


@registry.workflow(name="gate", version=1)
async def gate(ctx: WorkflowContext, req: dict[str, Any]) -> dict[str, Any]:
    go = await ctx.wait_for_signal("go")
    return {"go": go}


class AbortOnce(Hooks):
    """Fails the first batch that decides for `target` (once armed) with an abortable error,
    and records which partitions were rebuilt."""

    def __init__(self) -> None:
        self.target = ""
        self.fired = threading.Event()
        self.rebuilt_partitions: list[int] = []
        self.aborts = 0

    def rebuilt(self, partition: int, events: int, seconds: float) -> None:
        self.rebuilt_partitions.append(partition)

    def aborted(self) -> None:
        self.aborts += 1

    def batch(self, decided: Sequence[Decided]) -> Sequence[DecisionHeaders] | None:
        hit = any(
            isinstance(d.cause, ConsumedCommand) and d.cause.command.workflow_id == self.target
            for d in decided
        )
        if self.target and hit and not self.fired.is_set():
            self.fired.set()
            raise triage.AbortRequired("injected by the test: the batch's transaction failed")
        return None


@pytest.fixture
def config(kafka_bootstrap: str, database_url: str) -> Iterator[Config]:
    with environment(kafka_bootstrap, database_url, "aborted-batch") as c:
        yield c


def _one_id_per_partition() -> dict[int, str]:
    ids: dict[int, str] = {}
    k = 0
    while len(ids) < PARTITIONS:
        wid = f"gate-{k}"
        ids.setdefault(partition_for(wid.encode(), PARTITIONS), wid)
        k += 1
    return ids


def test_an_aborted_batch_rebuilds_only_what_it_touched(config: Config) -> None:
    hooks = AbortOnce()
    orchestrator = Orchestrator(config, registry, hooks=hooks)
    ids = _one_id_per_partition()
    client = Client(config)
    with running_loop(orchestrator.run, "orchestrator"):
        assert_eventually(
            lambda: orchestrator.owned_partitions() == list(range(PARTITIONS)),
            timeout=60,
            message="the orchestrator owns every partition",
        )
        for wid in ids.values():
            client.start("gate", {}, workflow_id=wid)
        # A signal's batch must meet running workflows.
        assert_eventually(
            lambda: _started(config) == set(ids.values()),
            timeout=30,
            message="every workflow started",
        )
        hooks.rebuilt_partitions.clear()
        target_partition, target = 1, ids[1]
        hooks.target = target
        client.signal(target, "go", "first")
        closed = wait_closed(config, [target], 30)
        assert hooks.fired.is_set(), "the injected abort never fired: the test proves nothing"
        assert hooks.aborts == 1
        assert hooks.rebuilt_partitions == [target_partition], (
            f"an abort of a batch that touched one partition rebuilt {hooks.rebuilt_partitions}"
        )
        assert isinstance(closed[target].body, WorkflowCompleted)
        # The partitions left alone kept a state that still decides correctly.
        others = [w for p, w in ids.items() if p != target_partition]
        for wid in others:
            client.signal(wid, "go", "later")
        wait_closed(config, others, 30)
    history = _history(config, target)
    assert [e.seq for e in history] == list(range(1, len(history) + 1)), history
    assert sum(isinstance(e.body, SignalReceived) for e in history) == 1, history
    assert sum(isinstance(e.body, WorkflowCompleted) for e in history) == 1, history


def _history(config: Config, workflow_id: str) -> list[Event]:
    return [
        rec.event
        for rec in workflow_events(config, workflow_id)
        if isinstance(rec, Logged) and rec.event.seq > 0
    ]


def _started(config: Config) -> set[str]:
    return {
        rec.event.workflow_id
        for rec in all_events(config, timeout_s=10)
        if isinstance(rec, Logged) and isinstance(rec.event.body, WorkflowStarted)
    }
