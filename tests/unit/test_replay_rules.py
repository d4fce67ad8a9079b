"""Replay's matching rules: what counts as another path, and parked stretches."""

from __future__ import annotations

from typing import Any

import pytest

from sagaflow.core import driver as d
from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.errors import NonDeterminismError
from sagaflow.core.replay import describe_command, describe_event, replay
from sagaflow.workflow import Registry, RetryPolicy, WorkflowContext

pytestmark = pytest.mark.unit


def registry_with(body: Any) -> Registry:
    registry = Registry()

    @registry.activity(name="a", task_queue="q")
    def a(ctx: Any, arg: Any) -> Any:
        return arg

    @registry.activity(name="b", task_queue="q")
    def b(ctx: Any, arg: Any) -> Any:
        return arg

    registry.workflow(name="w", version=1)(body)
    return registry


async def one_activity_then_wait(ctx: WorkflowContext, arg: Any) -> Any:
    await ctx.execute_activity("a", 1)
    return await ctx.wait_for_signal("go")


def recorded(body: Any, *commands: m.Command) -> list[m.Event]:
    engine = Engine(registry_with(body))
    events = list(engine.handle(m.StartWorkflow("wf", "w", b"null"), 10).events)
    for command in commands:
        events.extend(engine.handle(command, 20).events)
    return events


def test_code_that_stops_doing_a_recorded_step() -> None:
    history = recorded(one_activity_then_wait)

    async def waits_first(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.wait_for_signal("go")

    with pytest.raises(NonDeterminismError, match="did not do it"):
        replay(registry_with(waits_first), history)


def test_code_that_does_more_at_the_end_of_history() -> None:
    history = recorded(one_activity_then_wait)

    async def two_at_once(ctx: WorkflowContext, arg: Any) -> Any:
        ctx.start_activity("a", 1)
        ctx.start_activity("b", 1)
        return await ctx.wait_for_signal("go")

    with pytest.raises(NonDeterminismError, match="nothing more") as info:
        replay(registry_with(two_at_once), history)
    assert info.value.seq == 3


def test_code_that_does_more_before_the_next_activation() -> None:
    async def sleeps(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.wait_for_signal("go")
        return await ctx.wait_for_signal("go")

    history = recorded(
        sleeps, m.SignalWorkflow("wf", "go", b"1"), m.SignalWorkflow("wf", "go", b"2")
    )

    async def sleeps_between(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.sleep(5)
        await ctx.wait_for_signal("go")
        return await ctx.wait_for_signal("go")

    # The recorded history holds the first wait (seq 2), where the new code starts a timer.
    with pytest.raises(NonDeterminismError, match=r"started a timer.*SignalWaitStarted \(seq 2\)"):
        replay(registry_with(sleeps_between), history)


@pytest.mark.parametrize("change", ["timer", "marker", "result"])
def test_mismatched_command_kinds(change: str) -> None:
    async def original(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.sleep(1)
        return 1

    history = recorded(original)
    history.append(m.Event("wf", 3, history[0].run_id, 30, m.TimerFired(2)))
    history.append(m.Event("wf", 4, history[0].run_id, 30, m.WorkflowCompleted(b"1")))

    async def changed(ctx: WorkflowContext, arg: Any) -> Any:
        if change == "timer":
            await ctx.execute_activity("a", 1)
        elif change == "marker":
            ctx.patched("x")
        await ctx.sleep(1)
        if change == "result":
            raise RuntimeError("bug")
        return 1

    if change == "marker":
        # patched() is False on a history recorded without it: the old path is taken.
        assert replay(registry_with(changed), history).driver is not None
        return
    if change == "result":
        outcome = replay(registry_with(changed), history)
        assert outcome.driver is None and outcome.error is not None
        return
    with pytest.raises(NonDeterminismError, match="scheduled activity 'a'"):
        replay(registry_with(changed), history)


def test_a_history_must_start_with_its_run() -> None:
    with pytest.raises(ValueError, match="WorkflowStarted"):
        replay(Registry(), [])


def test_descriptions_name_what_happened() -> None:
    policy = RetryPolicy()
    commands = [
        d.ScheduleActivityCommand("x", "q", b"1", policy, 1, 0, True),
        d.StartTimerCommand(5),
        d.CancelTimerCommand(3),
        d.RecordMarkerCommand("c"),
        d.CompleteWorkflowCommand(b"1"),
        d.FailWorkflowCommand("E", "m", b"null"),
        d.CancelWorkflowCommand("r"),
        d.ContinueAsNewCommand(b"1"),
    ]
    texts = [describe_command(c) for c in commands]
    assert texts[0] == "scheduled compensation 'x'"
    assert len(set(texts)) == len(texts)
    event = m.Event("w", 4, "r", 0, m.TimerCancelled(3))
    assert describe_event(event) == "timer 3 cancelled (seq 4)"
    assert "patch 'c'" in describe_event(m.Event("w", 5, "r", 0, m.MarkerRecorded("c")))


def test_rebuild_through_a_parked_stretch_then_continue() -> None:
    """Parked (bug), a signal while parked, resumed by fixed code, then rebuilt from the log."""
    fixed = {"value": False}

    async def flaky(ctx: WorkflowContext, arg: Any) -> Any:
        first = await ctx.wait_for_signal("go")
        if not fixed["value"]:
            raise KeyError("bug")
        await ctx.execute_activity("a", first)  # a fix needs no patch: the bug recorded nothing
        second = await ctx.wait_for_signal("go")
        return [first, second]

    registry = registry_with(flaky)
    engine = Engine(registry)
    engine.handle(m.StartWorkflow("wf", "w", b"null"), 1)
    engine.handle(m.SignalWorkflow("wf", "go", b"1"), 2)
    assert engine.status("wf") == "parked"
    engine.handle(m.SignalWorkflow("wf", "go", b"2"), 3)  # recorded while parked
    fixed["value"] = True
    resumed = engine.resume_parked(4)
    assert [type(e.body) for e in resumed.events] == [
        m.WorkflowUnparked,
        m.ActivityScheduled,
    ]
    history = engine.history("wf")
    (task,) = resumed.tasks
    rebuilt = Engine(registry)
    for event in history:
        rebuilt.restore(event)
    complete = m.CompleteActivity("wf", task.run_id, task.activity_seq, 1, b"1")
    live_decision = engine.handle(complete, 5)
    rebuilt_decision = rebuilt.handle(complete, 5)
    assert live_decision.events == rebuilt_decision.events
    final = live_decision.events[-1].body
    assert isinstance(final, m.WorkflowCompleted) and final.result == b"[1,2]"
