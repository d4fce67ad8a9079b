"""Signal waits are events (SignalWaitStarted, event schema v3): recorded when code starts
waiting for a signal that has not arrived, projected as "waiting for signal NAME until T", and
histories recorded before the event existed still replay and run on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.errors import NonDeterminismError
from sagaflow.core.replay import replay
from sagaflow.examples.checkout import registry as checkout_registry
from sagaflow.readmodel.fold import WorkflowRow, apply_event
from sagaflow.testing import WorkflowEnvironment, history_from_json
from sagaflow.workflow import CancelledError, Registry, WorkflowContext

pytestmark = pytest.mark.unit

HISTORIES = Path(__file__).parents[1] / "histories"
T0 = 1_000_000


def waiting_registry() -> Registry:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def waits(ctx: WorkflowContext, arg: Any) -> Any:
        first = await ctx.wait_for_signal("approve", timeout=30)
        second = await ctx.wait_for_signal("ship")
        return [first, second]

    return registry


def bodies(events: list[m.Event] | tuple[m.Event, ...]) -> list[m.EventBody]:
    return [e.body for e in events]


def fold(events: list[m.Event]) -> WorkflowRow:
    row = None
    for event in events:
        row = apply_event(row, event)
    assert row is not None
    return row


def test_a_wait_is_recorded_with_its_timer_and_timeout() -> None:
    env = WorkflowEnvironment(waiting_registry(), start_ms=T0)
    started = env.start("w", None, workflow_id="wf")
    assert bodies(started.events)[1:] == [
        m.TimerStarted(2, T0 + 30_000),
        m.SignalWaitStarted("approve", 2, T0 + 30_000),
    ]
    signalled = env.signal("wf", "approve", 1)
    assert bodies(signalled.events)[1:] == [m.TimerCancelled(2), m.SignalWaitStarted("ship")]
    assert env.signal("wf", "ship", 2).events[-1].body == m.WorkflowCompleted(b"[1,2]")


def test_a_signal_already_buffered_records_no_wait() -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def sleeps_then_waits(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.sleep(10)
        return await ctx.wait_for_signal("go")

    env = WorkflowEnvironment(registry, start_ms=T0)
    env.start("w", None, workflow_id="wf")
    env.signal("wf", "go", "early")
    env.run()
    assert not any(isinstance(e.body, m.SignalWaitStarted) for e in env.events)
    assert env.status("wf") == "completed"


def test_the_read_model_shows_the_wait_until_it_ends() -> None:
    env = WorkflowEnvironment(waiting_registry(), start_ms=T0)
    env.start("w", None, workflow_id="wf")
    (wait,) = fold(env.events).signal_waits
    assert wait["name"] == "approve" and wait["timer_seq"] == 2
    assert wait["timeout_at_ms"] == T0 + 30_000
    assert wait["description"] == (
        "waiting for signal approve until 1970-01-01 00:17:10.000 (timer 2)"
    )

    env.signal("wf", "approve", 1)  # arrives: the wait ends, the next one begins
    (wait,) = fold(env.events).signal_waits
    assert (wait["name"], wait["timeout_at_ms"]) == ("ship", 0)
    assert wait["description"] == "waiting for signal ship"

    env.signal("wf", "ship", 2)  # the run closes
    assert fold(env.events).signal_waits == []


def test_a_wait_that_times_out_or_is_cancelled_leaves_the_read_model() -> None:
    env = WorkflowEnvironment(waiting_registry(), start_ms=T0)
    env.start("w", None, workflow_id="timeout")
    env.advance(31)  # the timer fires: SignalTimeoutError fails the workflow
    assert fold(env.events).signal_waits == []

    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def catches_cancel(ctx: WorkflowContext, arg: Any) -> Any:
        try:
            return await ctx.wait_for_signal("ship")
        except CancelledError:
            await ctx.sleep(3_600)  # still running, no longer waiting
            raise

    env = WorkflowEnvironment(registry, start_ms=T0)
    env.start("w", None, workflow_id="cancel")
    assert len(fold(env.events).signal_waits) == 1
    env.cancel("cancel", "no longer needed")
    row = fold(env.events)
    assert row.status == "running" and row.signal_waits == []


def test_a_history_recorded_before_waits_were_events_replays_and_runs_on() -> None:
    history = history_from_json((HISTORIES / "checkout_approved.json").read_text())
    assert not any(isinstance(e.body, m.SignalWaitStarted) for e in history)
    assert replay(checkout_registry, history).driver is not None

    # Rebuilt while waiting for approval (the signal not yet recorded), it goes on live.
    waiting = [e for e in history if e.seq < 7]
    engine = Engine(checkout_registry)
    for event in waiting:
        engine.restore(event)
    approve = m.SignalWorkflow("order-3", "approve", b'{"approved":true,"by":"bob"}', "c-9")
    decision = engine.handle(approve, waiting[-1].recorded_at_ms + 1_000)
    kinds = [type(b) for b in bodies(decision.events)]
    assert kinds[:3] == [m.SignalReceived, m.TimerCancelled, m.ActivityScheduled]
    assert engine.status("order-3") == "running"


def test_a_new_recorded_history_holds_the_wait() -> None:
    history = history_from_json((HISTORIES / "checkout_approved_wait_recorded.json").read_text())
    waits = [e.body for e in history if isinstance(e.body, m.SignalWaitStarted)]
    assert waits == [m.SignalWaitStarted("approve", 6, history[0].recorded_at_ms + 600_000)]
    outcome = replay(checkout_registry, history)
    assert outcome.driver is not None and outcome.driver.finished


def test_a_recorded_wait_the_code_does_not_make_is_nondeterminism() -> None:
    env = WorkflowEnvironment(waiting_registry(), start_ms=T0)
    env.start("w", None, workflow_id="wf")
    history = list(env.history("wf"))

    other = Registry()

    @other.workflow(name="w", version=1)
    async def sleeps(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.sleep(30)

    with pytest.raises(NonDeterminismError, match="SignalWaitStarted"):
        replay(other, history)

    renamed = Registry()

    @renamed.workflow(name="w", version=1)
    async def waits_for_another(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.wait_for_signal("approval", timeout=30)

    with pytest.raises(NonDeterminismError, match="waited for signal 'approval'"):
        replay(renamed, history)
