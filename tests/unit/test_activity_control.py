"""Heartbeat timeouts, heartbeat details and cancellation of running activities, in the pure
core (the engine on virtual time; activity reports sent by hand where timing matters)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.replay import replay
from sagaflow.testing import WorkflowEnvironment, encode, history_from_json, history_to_json
from sagaflow.workflow import (
    ActivityCancelledError,
    ActivityContext,
    ActivityError,
    ActivityOptions,
    Registry,
    RetryPolicy,
    WorkflowContext,
)

pytestmark = pytest.mark.unit

T0 = 1_000_000
HISTORIES = Path(__file__).parents[1] / "histories"
FAST = RetryPolicy(initial_interval_ms=1_000, maximum_attempts=3)


def make_registry() -> Registry:
    registry = Registry()

    @registry.activity(name="crunch", task_queue="q", retry_policy=FAST)
    def crunch(ctx: ActivityContext, arg: Any) -> Any:
        start = ctx.heartbeat_details or 0
        ctx.heartbeat(start + 1)
        return {"resumed_from": start}

    @registry.activity(name="obedient", task_queue="q", retry_policy=FAST)
    def obedient(ctx: ActivityContext, arg: Any) -> Any:
        ctx.raise_if_cancelled()
        return "ran"

    @registry.workflow(name="heartbeating", version=1)
    async def heartbeating(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.execute_activity("crunch", arg, heartbeat_timeout=10)

    @registry.workflow(name="canceller", version=1)
    async def canceller(ctx: WorkflowContext, arg: dict[str, Any]) -> Any:
        handle = ctx.start_activity(
            arg.get("activity", "crunch"), None, ActivityOptions(retry_policy=FAST)
        )
        await ctx.wait_for_signal("stop")
        handle.cancel(wait_for_cancellation=arg["wait"])
        try:
            return {"result": await handle}
        except ActivityCancelledError as err:
            return {"cancelled": err.reason, "after": ctx.now().timestamp()}

    return registry


REGISTRY = make_registry()


def start(engine: Engine, wf_type: str, arg: Any = None, wf: str = "wf") -> m.Decision:
    return engine.handle(m.StartWorkflow(wf, wf_type, encode(arg), None, f"s-{wf}"), T0)


def heartbeat(engine: Engine, task: m.ActivityTask, details: Any, at: int) -> m.Decision:
    command = m.HeartbeatActivity(
        task.workflow_id, task.run_id, task.activity_seq, task.attempt, encode(details)
    )
    return engine.handle(command, at)


def bodies(decision: m.Decision) -> list[type]:
    return [type(e.body) for e in decision.events]


def test_a_heartbeat_pushes_the_deadline_and_silence_times_the_attempt_out() -> None:
    engine = Engine(REGISTRY)
    (task,) = start(engine, "heartbeating").tasks
    assert task.heartbeat_timeout_ms == 10_000
    assert engine.next_due_ms() == T0 + 10_000
    recorded = heartbeat(engine, task, {"done": 40}, T0 + 6_000)
    assert bodies(recorded) == [m.ActivityHeartbeatRecorded]
    assert engine.next_due_ms() == T0 + 16_000
    assert engine.fire_due(T0 + 15_999).events == ()
    timed_out = engine.fire_due(T0 + 16_000).events
    (failed,) = [e.body for e in timed_out]
    assert isinstance(failed, m.ActivityAttemptFailed)
    assert (failed.error_type, failed.timed_out, failed.attempt) == ("HeartbeatTimeout", True, 1)
    retried = engine.fire_due(failed.retry_at_ms)
    (second,) = retried.tasks
    assert second.attempt == 2
    assert second.heartbeat_details == encode({"done": 40})


def test_heartbeats_of_another_attempt_or_during_backoff_decide_nothing() -> None:
    engine = Engine(REGISTRY)
    (task,) = start(engine, "heartbeating").tasks
    stale = m.ActivityTask(**{**_fields(task), "attempt": 9})
    assert heartbeat(engine, stale, 1, T0 + 1).events == ()
    engine.fire_due(T0 + 10_000)  # timed out: now in backoff
    assert heartbeat(engine, task, 1, T0 + 10_001).events == ()


def test_the_heartbeat_deadline_survives_a_rebuild() -> None:
    live = Engine(REGISTRY)
    (task,) = start(live, "heartbeating").tasks
    heartbeat(live, task, "half", T0 + 4_000)
    rebuilt = Engine(REGISTRY)
    for event in live.history("wf"):
        rebuilt.restore(event)
    assert rebuilt.next_due_ms() == live.next_due_ms() == T0 + 14_000
    (failed,) = [e.body for e in rebuilt.fire_due(T0 + 14_000).events]
    assert isinstance(failed, m.ActivityAttemptFailed) and failed.error_type == "HeartbeatTimeout"


def test_the_next_attempt_resumes_from_the_last_heartbeat_details() -> None:
    env = WorkflowEnvironment(REGISTRY, start_ms=T0)
    env.start("heartbeating", None, workflow_id="wf")
    (task,) = env.tasks
    env.tasks.clear()
    heartbeat(env.engine, task, 41, T0 + 1_000)
    env.run()  # the attempt never reports: it times out, the retry runs in the kit
    assert env.result("wf") == {"resumed_from": 41}
    assert [t.attempt for t in env.executed] == [2]


def test_start_to_close_still_wins_when_it_comes_first() -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def w(ctx: WorkflowContext, arg: Any) -> Any:
        options = ActivityOptions(
            task_queue="q", retry_policy=FAST, start_to_close_timeout=timedelta(seconds=5)
        )
        return await ctx.execute_activity("x", arg, options, heartbeat_timeout=10)

    engine = Engine(registry)
    start(engine, "w")
    (failed,) = [e.body for e in engine.fire_due(T0 + 5_000).events]
    assert isinstance(failed, m.ActivityAttemptFailed)
    assert failed.error_type == "StartToCloseTimeout"


def test_cancel_and_wait_tells_the_worker_and_the_workflow_sees_the_confirmation() -> None:
    engine = Engine(REGISTRY)
    (task,) = start(engine, "canceller", {"wait": True}).tasks
    decision = engine.handle(m.SignalWorkflow("wf", "stop", b"null"), T0 + 1_000)
    assert bodies(decision) == [m.SignalReceived, m.ActivityCancelRequested]
    assert decision.cancellations == (m.ActivityCancellation("wf/2", "wf", task.run_id, 2),)
    report = m.FailActivity(
        "wf", task.run_id, 2, 1, "ActivityCancelled", "stopped", retryable=False
    )
    done = engine.handle(report, T0 + 2_000)
    assert bodies(done) == [m.ActivityFailed, m.WorkflowCompleted]
    assert done.events[0].body.reason == "cancelled"  # type: ignore[union-attr]
    assert done.cancellations == (m.ActivityCancellation("wf/2", "wf", task.run_id, 2, False),)
    result = done.events[-1].body
    assert isinstance(result, m.WorkflowCompleted)
    assert result.result == encode({"cancelled": "cancelled", "after": (T0 + 2_000) / 1000})


def test_a_cancelled_activity_that_fails_anyway_is_not_retried() -> None:
    engine = Engine(REGISTRY)
    (task,) = start(engine, "canceller", {"wait": True}).tasks
    engine.handle(m.SignalWorkflow("wf", "stop", b"null"), T0)
    report = m.FailActivity("wf", task.run_id, 2, 1, "Boom", "crashed", retryable=True)
    done = engine.handle(report, T0 + 1)
    assert bodies(done) == [m.ActivityFailed, m.WorkflowCompleted]
    assert done.tasks == ()


def test_a_cancelled_activity_that_finished_first_returns_its_result() -> None:
    engine = Engine(REGISTRY)
    (task,) = start(engine, "canceller", {"wait": True}).tasks
    engine.handle(m.SignalWorkflow("wf", "stop", b"null"), T0)
    done = engine.handle(m.CompleteActivity("wf", task.run_id, 2, 1, encode(7)), T0 + 1)
    result = done.events[-1].body
    assert isinstance(result, m.WorkflowCompleted) and result.result == encode({"result": 7})


def test_abandoning_goes_on_at_once_and_ignores_the_late_report() -> None:
    engine = Engine(REGISTRY)
    (task,) = start(engine, "canceller", {"wait": False}).tasks
    decision = engine.handle(m.SignalWorkflow("wf", "stop", b"null"), T0 + 1_000)
    assert bodies(decision) == [m.SignalReceived, m.ActivityCancelRequested, m.WorkflowCompleted]
    assert [c.active for c in decision.cancellations] == [True, False]
    assert engine.status("wf") == "completed"
    late = m.FailActivity("wf", task.run_id, 2, 1, "ActivityCancelled", "x", retryable=False)
    assert engine.handle(late, T0 + 2_000) == m.Decision()


def test_cancelling_during_backoff_fails_at_once_without_a_worker() -> None:
    engine = Engine(REGISTRY)
    (task,) = start(engine, "canceller", {"wait": True}).tasks
    engine.handle(m.FailActivity("wf", task.run_id, 2, 1, "Boom", "x", retryable=True), T0)
    decision = engine.handle(m.SignalWorkflow("wf", "stop", b"null"), T0 + 10)
    assert bodies(decision) == [
        m.SignalReceived,
        m.ActivityCancelRequested,
        m.ActivityFailed,
        m.WorkflowCompleted,
    ]
    assert decision.cancellations == ()  # nothing ran, so no worker needs telling
    assert engine.fire_due(T0 + 60_000).tasks == ()


def test_the_kit_hands_the_cancel_signal_to_a_task_not_yet_run() -> None:
    env = WorkflowEnvironment(REGISTRY, start_ms=T0)
    env.start("canceller", {"wait": True, "activity": "obedient"}, workflow_id="wf")
    env.signal("wf", "stop")
    assert env.cancelled == {"wf/2"}
    env.run()
    assert env.result("wf")["cancelled"] == "cancelled"
    assert env.cancelled == set()


def test_activity_error_is_the_base_of_the_cancelled_error() -> None:
    assert issubclass(ActivityCancelledError, ActivityError)


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("activity_*.json")), ids=lambda p: p.stem)
def test_recorded_activity_control_histories_replay(path: Path) -> None:
    history = history_from_json(path.read_text())
    outcome = replay(REGISTRY, history)
    assert outcome.error is None and outcome.driver is not None and outcome.driver.finished
    assert history_from_json(history_to_json(history)) == history


def test_there_are_recorded_activity_control_histories() -> None:
    names = {p.stem for p in HISTORIES.glob("activity_*.json")}
    assert {"activity_heartbeat_timeout", "activity_cancelled", "activity_abandoned"} <= names


def record_histories() -> None:
    """Write tests/histories/activity_*.json (run by hand when adding one; never to make a
    failing replay pass): `python -m tests.unit.test_activity_control`."""

    def write(name: str, env: WorkflowEnvironment) -> None:
        (HISTORIES / f"{name}.json").write_text(history_to_json(env.history("wf")))

    env = WorkflowEnvironment(REGISTRY, start_ms=T0)
    env.start("heartbeating", None, workflow_id="wf")
    (task,) = env.tasks
    env.tasks.clear()
    heartbeat(env.engine, task, 41, T0 + 1_000)
    env.run()
    write("activity_heartbeat_timeout", env)
    for name, wait in (("activity_cancelled", True), ("activity_abandoned", False)):
        env = WorkflowEnvironment(REGISTRY, start_ms=T0)
        env.start("canceller", {"wait": wait, "activity": "obedient"}, workflow_id="wf")
        env.signal("wf", "stop")
        env.run()
        write(name, env)


def _fields(task: m.ActivityTask) -> dict[str, Any]:
    return {f: getattr(task, f) for f in task.__dataclass_fields__}


if __name__ == "__main__":
    record_histories()


def test_cancelling_from_the_handler_of_another_cancellation_settles_each_once() -> None:
    registry = Registry()

    @registry.workflow(name="chain", version=1)
    async def chain(ctx: WorkflowContext, arg: Any) -> Any:
        options = ActivityOptions(task_queue="q", retry_policy=FAST)
        first = ctx.start_activity("x", 1, options)
        second = ctx.start_activity("x", 2, options)
        await ctx.wait_for_signal("stop")
        first.cancel()
        try:
            await first
        except ActivityCancelledError:
            second.cancel()  # decided while the first one's cancellation is being settled
        with contextlib.suppress(ActivityCancelledError):
            await second
        await ctx.sleep(10)
        return "both cancelled"

    engine = Engine(registry)
    tasks = start(engine, "chain").tasks
    for t in tasks:  # both wait for their next attempt
        engine.handle(m.FailActivity("wf", t.run_id, t.activity_seq, 1, "E", "x", True), T0)
    decision = engine.handle(m.SignalWorkflow("wf", "stop", b"null"), T0 + 1)
    failed = [e.body for e in decision.events if isinstance(e.body, m.ActivityFailed)]
    assert [(f.activity_seq, f.reason) for f in failed] == [(2, "cancelled"), (3, "cancelled")]
    assert engine.status("wf") == "running"
    assert [type(e.body) for e in decision.events][-1] is m.TimerStarted
