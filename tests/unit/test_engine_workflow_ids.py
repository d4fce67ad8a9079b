"""The engine remembers every workflow id of its partition: the same start again is a no-op, a
different start for a known id is a duplicate, and commands to a closed workflow are recognised
as such, also after a rebuild that read none of its events (the closed index was loaded)."""

from __future__ import annotations

from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.identity import start_command_id
from sagaflow.testing import encode
from sagaflow.workflow import Registry, WorkflowContext

pytestmark = pytest.mark.unit

T0 = 1_000_000


def make_registry() -> Registry:
    registry = Registry()

    @registry.activity(name="work", task_queue="q")
    def work(ctx: Any, arg: Any) -> Any:
        return arg

    @registry.workflow(name="one", version=1)
    async def one(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.execute_activity("work", arg)

    @registry.workflow(name="looper", version=1)
    async def looper(ctx: WorkflowContext, arg: int) -> Any:
        if arg > 0:
            ctx.continue_as_new(arg - 1)
        return await ctx.wait_for_signal("go")

    return registry


def start_of(wf: str, arg: Any = 1, wf_type: str = "one") -> m.StartWorkflow:
    data = encode(arg)
    return m.StartWorkflow(wf, wf_type, data, None, start_command_id(wf, wf_type, None, data))


def finish(engine: Engine, wf: str) -> m.Decision:
    (task,) = engine.handle(start_of(wf), T0).tasks
    report = m.CompleteActivity(wf, task.run_id, task.activity_seq, task.attempt, encode("ok"))
    return engine.handle(report, T0 + 5)


def reason(decision: m.Decision) -> str | None:
    return decision.rejection.reason if decision.rejection is not None else None


def test_start_command_ids_are_derived_from_what_is_started() -> None:
    a = start_command_id("wf", "one", None, b"1")
    assert a == start_command_id("wf", "one", None, b"1")
    others = {
        start_command_id("wf2", "one", None, b"1"),
        start_command_id("wf", "two", None, b"1"),
        start_command_id("wf", "one", 1, b"1"),
        start_command_id("wf", "one", None, b"2"),
    }
    assert a not in others and len(others) == 4


def test_the_same_start_again_is_a_no_op_while_open_and_after_closing() -> None:
    engine = Engine(make_registry())
    first = engine.handle(start_of("wf"), T0)
    assert [type(e.body) for e in first.events] == [m.WorkflowStarted, m.ActivityScheduled]
    assert engine.handle(start_of("wf"), T0 + 1) == m.Decision()
    assert reason(engine.handle(start_of("wf", 2), T0 + 1)) == "duplicate_workflow_id"
    (task,) = first.tasks
    done = engine.handle(
        m.CompleteActivity("wf", task.run_id, task.activity_seq, 1, encode("ok")), T0 + 5
    )
    assert done.closed == (
        m.ClosedWorkflow("wf", task.run_id, "completed", start_of("wf").command_id, 4, T0 + 5),
    )
    assert engine.handle(start_of("wf"), T0 + 9) == m.Decision()
    assert reason(engine.handle(start_of("wf", 2), T0 + 9)) == "duplicate_workflow_id"
    blank = m.StartWorkflow("wf", "one", encode(1), None, "")
    assert reason(engine.handle(blank, T0 + 9)) == "duplicate_workflow_id"


def test_a_rebuilt_engine_knows_closed_workflows_from_the_index_alone() -> None:
    live = Engine(make_registry())
    (closed,) = finish(live, "done").closed
    rebuilt = Engine(make_registry())
    rebuilt.remember(closed)  # no event of "done" is read: it closed before the low-water mark
    assert rebuilt.status("done") == "completed"
    assert rebuilt.closed_workflow("done") == closed
    assert rebuilt.handle(start_of("done"), T0 + 10) == m.Decision()
    assert reason(rebuilt.handle(start_of("done", 7), T0 + 10)) == "duplicate_workflow_id"
    signal = m.SignalWorkflow("done", "go", encode(1), "sig-1")
    assert reason(rebuilt.handle(signal, T0 + 10)) == "workflow_closed"
    assert reason(rebuilt.handle(m.CancelWorkflow("done"), T0 + 10)) == "workflow_closed"
    late = m.CompleteActivity("done", closed.run_id, 2, 1, encode("ok"))
    assert rebuilt.handle(late, T0 + 10) == m.Decision(), "a late report to a closed one"
    # Its events, if a rebuild reads some after loading the index, change nothing.
    for event in live.history("done"):
        rebuilt.restore(event)
    assert rebuilt.closed_workflow("done") == closed


def test_continued_runs_carry_the_start_command_id() -> None:
    engine = Engine(make_registry())
    start = start_of("loop", 2, "looper")
    decision = engine.handle(start, T0)
    starts = [e.body for e in decision.events if isinstance(e.body, m.WorkflowStarted)]
    assert len(starts) == 3 and {s.command_id for s in starts} == {start.command_id}
    # Rebuilt from the last run only (what a checkpoint past the first start reads).
    last_run = [e for e in decision.events if e.run_id == decision.events[-1].run_id]
    rebuilt = Engine(make_registry())
    rebuilt.restore(
        m.Event("loop", last_run[0].seq - 1, "x", T0, m.WorkflowContinuedAsNew("", b"0"))
    )
    for event in last_run:
        rebuilt.restore(event)
    assert rebuilt.status("loop") == "running"
    assert rebuilt.handle(start, T0 + 1) == m.Decision()
    done = rebuilt.handle(m.SignalWorkflow("loop", "go", encode(1), "s"), T0 + 2)
    assert [c.start_command_id for c in done.closed] == [start.command_id]


def test_a_workflow_waiting_for_a_signal_holds_no_driver() -> None:
    engine = Engine(make_registry())
    engine.handle(start_of("waits", 0, "looper"), T0)
    assert engine.status("waits") == "running"
    assert engine.drivers_held() == 0, "waiting costs no coroutine"
    engine.handle(start_of("busy"), T0)
    assert engine.drivers_held() == 1, "a workflow with an activity in flight keeps its driver"
    done = engine.handle(m.SignalWorkflow("waits", "go", encode(5), "s-1"), T0 + 1)
    assert [type(e.body) for e in done.events] == [m.SignalReceived, m.WorkflowCompleted]
    assert done.events[-1].body == m.WorkflowCompleted(encode(5))
    assert engine.drivers_held() == 1
