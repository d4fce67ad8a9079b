"""Terminate: stop now, run no code (so no compensation), abandon pending activities and
timers, close as 'terminated' with who and why; late activity reports are refused."""

from __future__ import annotations

from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.examples.checkout import registry as checkout_registry
from sagaflow.examples.shop import InMemoryShop
from sagaflow.readmodel.fold import WorkflowRow, apply_event
from sagaflow.testing import WorkflowEnvironment
from sagaflow.workflow import Registry, WorkflowContext

pytestmark = pytest.mark.unit

T0 = 1_000_000
BIG = {
    "order_id": "o-1",
    "sku": "sku-1",
    "quantity": 1,
    "amount_cents": 500_000,
    "card": "tok_visa",
    "address": "1 Main St",
    "email": "a@example.com",
}


def fold(events: list[m.Event]) -> WorkflowRow:
    row = None
    for event in events:
        row = apply_event(row, event)
    assert row is not None
    return row


def test_a_saga_waiting_for_approval_is_terminated_without_compensation() -> None:
    env = WorkflowEnvironment(checkout_registry, resources={"shop": InMemoryShop()})
    env.start("checkout", BIG, workflow_id="o-1")
    env.run(advance_time=False)  # reserved and charged, now waiting for approval
    assert any(isinstance(e.body, m.SignalWaitStarted) for e in env.events)
    ran = len(env.executed)

    decision = env.send(m.TerminateWorkflow("o-1", "fraud suspected", "ops:ann", "t-1"))

    assert [e.body for e in decision.events] == [m.WorkflowTerminated("fraud suspected", "ops:ann")]
    assert decision.effects == ()
    assert [c.status for c in decision.closed] == ["terminated"]
    assert env.status("o-1") == "terminated"
    assert env.engine.next_due_ms() is None, "its approval timer is abandoned"
    env.run()
    assert len(env.executed) == ran, "no compensation ran"
    row = fold(env.events)
    assert row.status == "terminated" and row.signal_waits == [] and row.pending_timers == []
    assert row.error == {
        "type": "terminated",
        "message": "fraud suspected",
        "by": "ops:ann",
        "details": None,
    }


def test_a_late_report_for_an_abandoned_activity_is_rejected_as_closed() -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def one_step(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.execute_activity("slow", arg)

    @registry.activity(name="slow", task_queue="q")
    def slow(ctx: Any, arg: Any) -> Any:
        return arg

    engine = Engine(registry)
    (task,) = engine.handle(m.StartWorkflow("wf", "w", b"1", None, "s"), T0).tasks
    engine.handle(m.TerminateWorkflow("wf", "stuck", "ops"), T0 + 1)
    late = m.CompleteActivity("wf", task.run_id, task.activity_seq, task.attempt, b"1")
    decision = engine.handle(late, T0 + 2)
    assert decision.rejection is not None
    assert decision.rejection.reason == "workflow_closed"
    assert "terminated" in decision.rejection.message
    again = engine.handle(m.TerminateWorkflow("wf", "again", "ops"), T0 + 3)
    assert again.rejection is not None and again.rejection.reason == "workflow_closed"

    # After a normal close a late duplicate report stays a quiet no-op.
    (task,) = engine.handle(m.StartWorkflow("ok", "w", b"1", None, "s2"), T0).tasks
    done = m.CompleteActivity("ok", task.run_id, task.activity_seq, task.attempt, b"1")
    assert engine.status("ok") == "running"
    engine.handle(done, T0 + 1)
    assert engine.status("ok") == "completed"
    assert engine.handle(done, T0 + 2) == m.Decision()


def test_a_parked_workflow_can_be_terminated_and_a_rebuild_remembers_it() -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def buggy(ctx: WorkflowContext, arg: Any) -> Any:
        raise KeyError("sku")

    engine = Engine(registry)
    started = engine.handle(m.StartWorkflow("wf", "w", b"1", None, "s"), T0)
    assert engine.status("wf") == "parked"
    ended = engine.handle(m.TerminateWorkflow("wf", "bad input", "ops"), T0 + 1)
    assert engine.status("wf") == "terminated"

    rebuilt = Engine(registry)
    for event in (*started.events, *ended.events):
        rebuilt.restore(event)
    assert rebuilt.status("wf") == "terminated"
    closed = rebuilt.closed_workflow("wf")
    assert closed is not None and closed.status == "terminated"
