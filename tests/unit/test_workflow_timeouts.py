"""Execution and run timeouts of a workflow: when one passes the workflow closes as timed_out
at once, runs no more code (nothing compensates) and abandons what is pending; the execution
timeout spans continue-as-new, the run timeout restarts with each run."""

from __future__ import annotations

from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.readmodel.fold import WorkflowRow, apply_event
from sagaflow.testing import WorkflowEnvironment, encode
from sagaflow.workflow import Registry, WorkflowContext

pytestmark = pytest.mark.unit

T0 = 1_000_000


def registry() -> Registry:
    r = Registry()

    @r.workflow(name="waits", version=1)
    async def waits(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.wait_for_signal("go")

    @r.workflow(name="loops", version=1)
    async def loops(ctx: WorkflowContext, n: int) -> Any:
        await ctx.sleep(5)
        ctx.continue_as_new(n + 1)

    return r


def start(
    env: WorkflowEnvironment, wf_type: str, *, execution_ms: int = 0, run_ms: int = 0
) -> m.Decision:
    command = m.StartWorkflow(
        "wf",
        wf_type,
        encode(0),
        None,
        "s-1",
        execution_timeout_ms=execution_ms,
        run_timeout_ms=run_ms,
    )
    return env.send(command)


def fold(events: list[m.Event]) -> WorkflowRow:
    row = None
    for event in events:
        row = apply_event(row, event)
    assert row is not None
    return row


def closing(env: WorkflowEnvironment) -> m.EventBody:
    return env.events[-1].body


def test_an_execution_timeout_closes_a_waiting_workflow_and_refuses_what_comes_later() -> None:
    env = WorkflowEnvironment(registry(), start_ms=T0)
    started = start(env, "waits", execution_ms=10_000)
    assert started.events[0].body == m.WorkflowStarted(
        "waits", 1, b"0", started.events[0].body.random_seed, "s-1", "", T0 + 10_000, 0
    )
    env.advance(9.999)
    assert env.status("wf") == "running"
    env.advance(0.001)
    assert closing(env) == m.WorkflowTimedOut("execution", T0 + 10_000)
    assert env.status("wf") == "timed_out"
    assert env.engine.closed_workflow("wf") is not None
    row = fold(env.events)
    assert row.status == "timed_out" and row.signal_waits == []
    assert row.error is not None and row.error["timeout"] == "execution"
    late = env.signal("wf", "go", 1)
    assert late.rejection is not None and late.rejection.reason == "workflow_closed"


def test_a_run_timeout_restarts_with_each_run_the_execution_timeout_does_not() -> None:
    env = WorkflowEnvironment(registry(), start_ms=T0)
    start(env, "loops", execution_ms=12_000, run_ms=8_000)
    env.run()
    runs = [e for e in env.events if isinstance(e.body, m.WorkflowStarted)]
    assert len(runs) == 3, "runs of 5 s each: the 8 s run timeout never passes"
    assert {e.body.execution_deadline_ms for e in runs} == {T0 + 12_000}  # type: ignore[union-attr]
    assert closing(env) == m.WorkflowTimedOut("execution", T0 + 12_000)
    assert env.now_ms == T0 + 12_000

    env = WorkflowEnvironment(registry(), start_ms=T0)
    start(env, "loops", run_ms=3_000)
    env.run()
    assert closing(env) == m.WorkflowTimedOut("run", T0 + 3_000)
    assert not any(isinstance(e.body, m.TimerFired) for e in env.events), "its timer abandoned"


def test_a_rebuilt_engine_still_times_the_workflow_out() -> None:
    env = WorkflowEnvironment(registry(), start_ms=T0)
    start(env, "waits", run_ms=60_000)
    rebuilt = Engine(registry())
    for event in env.events:
        rebuilt.restore(event)
    assert rebuilt.next_due_ms() == T0 + 60_000
    decision = rebuilt.fire_due(T0 + 60_000)
    assert [e.body for e in decision.events] == [m.WorkflowTimedOut("run", T0 + 60_000)]
    assert [c.status for c in decision.closed] == ["timed_out"]
