"""Engine behaviour: rejections, duplicates, retries and timeouts, rebuild, parking, quarantine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.testing import WorkflowEnvironment, encode, stub
from sagaflow.workflow import (
    ActivityOptions,
    ApplicationError,
    CancelledError,
    Registry,
    RetryPolicy,
    WorkflowContext,
)

pytestmark = pytest.mark.unit

T0 = 1_000_000


def make_registry(policy: RetryPolicy | None = None, **timeouts: timedelta) -> Registry:
    registry = Registry()

    @registry.activity(name="work", task_queue="q", retry_policy=policy, **timeouts)
    def work(ctx: Any, arg: Any) -> Any:
        return arg

    @registry.workflow(name="one", version=1)
    async def one(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.execute_activity("work", arg)

    @registry.workflow(name="waiter", version=1)
    async def waiter(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.wait_for_signal("go")

    return registry


@pytest.fixture
def engine() -> Engine:
    return Engine(make_registry(), max_payload_bytes=64)


def start(engine: Engine, wf: str = "wf", wf_type: str = "one", arg: Any = 1) -> m.Decision:
    return engine.handle(m.StartWorkflow(wf, wf_type, encode(arg), None, f"start-{wf}"), T0)


def complete(engine: Engine, task: m.ActivityTask, result: Any = "ok", at: int = T0) -> m.Decision:
    return engine.handle(
        m.CompleteActivity(
            task.workflow_id, task.run_id, task.activity_seq, task.attempt, encode(result)
        ),
        at,
    )


def fail(
    engine: Engine,
    task: m.ActivityTask,
    *,
    retryable: bool = True,
    error: str = "Boom",
    at: int = T0,
) -> m.Decision:
    return engine.handle(
        m.FailActivity(
            task.workflow_id, task.run_id, task.activity_seq, task.attempt, error, "boom", retryable
        ),
        at,
    )


def bodies(decision: m.Decision) -> list[type]:
    return [type(e.body) for e in decision.events]


def rejection(decision: m.Decision) -> str:
    rejected = decision.rejection
    assert rejected is not None, decision
    assert all(e.seq == 0 for e in decision.events)
    return rejected.reason


# --------------------------------------------------------------------------- rejections


def test_start_schedules_the_first_activity_with_derived_identity(engine: Engine) -> None:
    decision = start(engine)
    assert bodies(decision) == [m.WorkflowStarted, m.ActivityScheduled]
    assert [e.seq for e in decision.events] == [1, 2]
    (task,) = decision.tasks
    assert task.idempotency_key == "wf/2" and task.attempt == 1 and task.task_queue == "q"
    again = Engine(make_registry())
    assert start(again).events == decision.events  # run id and seed are derived, not random
    assert engine.status("wf") == "running"
    assert engine.open_workflow_ids() == frozenset({"wf"})


def other_start(wf: str = "wf") -> m.StartWorkflow:
    return m.StartWorkflow(wf, "one", encode(2), None, f"another-start-{wf}")


def test_bad_commands_are_rejected_not_raised(engine: Engine) -> None:
    start(engine)
    assert rejection(engine.handle(other_start(), T0)) == "duplicate_workflow_id"
    assert rejection(start(engine, "x", "nope")) == "unknown_workflow_type"
    versioned = m.StartWorkflow("y", "one", b"1", 7, "c")
    assert rejection(engine.handle(versioned, T0)) == "unknown_version"
    assert rejection(engine.handle(m.SignalWorkflow("zz", "go", b"1"), T0)) == "workflow_not_found"
    assert rejection(engine.handle(m.CancelWorkflow("zz"), T0)) == "workflow_not_found"
    big = m.StartWorkflow("z", "one", encode("x" * 100), None, "c-big")
    decision = engine.handle(big, T0)
    assert rejection(decision) == "payload_too_large"
    assert decision.rejection is not None and decision.rejection.command_id == "c-big"
    assert rejection(engine.handle(m.StartWorkflow("z", "one", b"{nope", None), T0)) == (
        "invalid_payload"
    )
    assert engine.status("z") is None and engine.status("x") is None


def test_commands_to_closed_workflows(engine: Engine) -> None:
    (task,) = start(engine).tasks
    assert bodies(complete(engine, task)) == [m.ActivityCompleted, m.WorkflowCompleted]
    assert engine.status("wf") == "completed"
    assert engine.history("wf") == ()
    assert rejection(engine.handle(other_start(), T0)) == "duplicate_workflow_id"
    assert rejection(engine.handle(m.SignalWorkflow("wf", "go", b"1"), T0)) == "workflow_closed"
    assert rejection(engine.handle(m.CancelWorkflow("wf"), T0)) == "workflow_closed"
    assert complete(engine, task).events == ()  # late duplicate: nothing
    unknown = m.CompleteActivity("nobody", "r", 2, 1, b"1")
    assert rejection(engine.handle(unknown, T0)) == "workflow_not_found"


def test_duplicate_and_stale_activity_reports_decide_nothing(engine: Engine) -> None:
    (task,) = start(engine, "w2", "waiter").tasks or (None,)
    assert task is None
    (task,) = start(engine).tasks
    stale_run = m.CompleteActivity("wf", "other-run", task.activity_seq, 1, b"1")
    assert engine.handle(stale_run, T0) == m.Decision()
    never = m.CompleteActivity("wf", task.run_id, 99, 1, b"1")
    assert engine.handle(never, T0) == m.Decision()
    stale_heartbeat = m.HeartbeatActivity("wf", task.run_id, task.activity_seq, 7)
    assert engine.handle(stale_heartbeat, T0) == m.Decision()
    other_run_heartbeat = m.HeartbeatActivity("wf", "other-run", task.activity_seq, 1)
    assert engine.handle(other_run_heartbeat, T0) == m.Decision()
    assert bodies(complete(engine, task)) == [m.ActivityCompleted, m.WorkflowCompleted]


def test_signal_redelivered_with_the_same_command_id_adds_nothing(engine: Engine) -> None:
    engine.handle(m.StartWorkflow("w", "waiter", b"null"), T0)
    engine.handle(m.StartWorkflow("v", "waiter", b"null"), T0)
    signal = m.SignalWorkflow("w", "other", b"1", "sig-1")
    assert bodies(engine.handle(signal, T0)) == [m.SignalReceived]
    assert engine.handle(signal, T0) == m.Decision()
    go = engine.handle(m.SignalWorkflow("w", "go", b"5", "sig-2"), T0)
    assert bodies(go) == [m.SignalReceived, m.WorkflowCompleted]


# --------------------------------------------------------------------------- retries and timeouts


def test_retry_backoff_then_completion_by_a_later_attempt() -> None:
    policy = RetryPolicy(initial_interval_ms=100, backoff_coefficient=3, maximum_interval_ms=250)
    engine = Engine(make_registry(policy))
    (task,) = start(engine).tasks
    failed = fail(engine, task)
    assert bodies(failed) == [m.ActivityAttemptFailed]
    body = failed.events[0].body
    assert isinstance(body, m.ActivityAttemptFailed) and body.retry_at_ms == T0 + 100
    assert fail(engine, task) == m.Decision()  # duplicate report while waiting
    assert engine.next_due_ms() == T0 + 100
    assert engine.fire_due(T0 + 99) == m.Decision()
    retried = engine.fire_due(T0 + 100)
    assert bodies(retried) == [m.ActivityRetried]
    (task2,) = retried.tasks
    assert task2.attempt == 2 and task2.idempotency_key == task.idempotency_key
    assert bodies(fail(engine, task2, at=T0 + 100)) == [m.ActivityAttemptFailed]
    third = engine.fire_due(T0 + 100 + 250)  # 300 capped at 250
    assert bodies(third) == [m.ActivityRetried]
    # The first attempt's late completion still counts: its side effect happened.
    assert bodies(complete(engine, task, at=T0 + 400)) == [m.ActivityCompleted, m.WorkflowCompleted]


def test_attempts_exhausted_and_non_retryable_fail_the_workflow() -> None:
    policy = RetryPolicy(
        initial_interval_ms=10, maximum_attempts=2, non_retryable_error_types=("Fatal",)
    )
    engine = Engine(make_registry(policy))
    (task,) = start(engine, "a").tasks
    fail(engine, task)
    (task2,) = engine.fire_due(T0 + 10).tasks
    final = fail(engine, task2, at=T0 + 10)
    assert bodies(final) == [m.ActivityFailed, m.WorkflowFailed]
    assert isinstance(final.events[0].body, m.ActivityFailed)
    assert final.events[0].body.reason == "attempts_exhausted"
    (task,) = start(engine, "b").tasks
    final = fail(engine, task, error="Fatal")
    assert isinstance(final.events[0].body, m.ActivityFailed)
    assert final.events[0].body.reason == "non_retryable"
    (task,) = start(engine, "c").tasks
    final = fail(engine, task, retryable=False)
    assert engine.status("c") == "failed"


def test_start_to_close_timeout_retries_and_schedule_to_close_gives_up() -> None:
    policy = RetryPolicy(initial_interval_ms=1_000, backoff_coefficient=1)
    registry = make_registry(
        policy,
        start_to_close_timeout=timedelta(seconds=5),
        schedule_to_close_timeout=timedelta(seconds=13),
    )
    engine = Engine(registry)
    start(engine)
    assert engine.next_due_ms() == T0 + 5_000
    timed_out = engine.fire_due(T0 + 5_000)
    body = timed_out.events[0].body
    assert isinstance(body, m.ActivityAttemptFailed) and body.timed_out
    assert body.error_type == "StartToCloseTimeout"
    assert engine.fire_due(T0 + 6_000).tasks[0].attempt == 2
    assert bodies(engine.fire_due(T0 + 11_000)) == [m.ActivityAttemptFailed]
    assert bodies(engine.fire_due(T0 + 12_000)) == [m.ActivityRetried]
    final = engine.fire_due(T0 + 13_000)
    assert bodies(final) == [m.ActivityFailed, m.WorkflowFailed]
    assert isinstance(final.events[0].body, m.ActivityFailed)
    assert final.events[0].body.reason == "schedule_to_close_timeout"
    assert engine.next_due_ms() is None


def test_a_retry_past_the_schedule_to_close_deadline_is_not_scheduled() -> None:
    policy = RetryPolicy(initial_interval_ms=10_000)
    engine = Engine(make_registry(policy, schedule_to_close_timeout=timedelta(seconds=5)))
    (task,) = start(engine).tasks
    final = fail(engine, task)
    assert isinstance(final.events[0].body, m.ActivityFailed)
    assert final.events[0].body.reason == "schedule_to_close_timeout"


# --------------------------------------------------------------------------- rebuild


def test_restore_then_continue_is_the_same_as_never_stopping() -> None:
    registry = make_registry()
    live = Engine(registry)
    (task,) = start(live).tasks
    rebuilt = Engine(registry)
    for event in live.history("wf"):
        rebuilt.restore(event)
    rebuilt.restore(m.Event("wf", 0, "", T0, m.CommandRejected("c", "X", "r", "m")))
    assert rebuilt.state("wf") == live.state("wf")
    assert complete(rebuilt, task).events == complete(live, task).events


def test_restore_quarantines_on_gap_duplicate_and_bad_events() -> None:
    registry = make_registry()
    live = Engine(registry)
    start(live, "gap")
    start(live, "dup")
    start(live, "bad")
    engine = Engine(registry)
    for wf in ("gap", "dup", "bad"):
        for event in live.history(wf):
            engine.restore(event)
    run = live.history("gap")[0].run_id
    engine.restore(m.Event("gap", 5, run, T0, m.SignalReceived("s", b"1")))
    engine.restore(live.history("dup")[-1])
    engine.restore(m.Event("bad", 3, run, T0, m.TimerFired(42)))
    for wf in ("gap", "dup", "bad"):
        assert engine.status(wf) == "quarantined"
        decision = engine.handle(m.SignalWorkflow(wf, "s", b"1"), T0)
        assert rejection(decision) == "workflow_quarantined"
    engine.restore(m.Event("gap", 6, run, T0, m.SignalReceived("s", b"1")))  # ignored
    assert engine.status("gap") == "quarantined"
    assert engine.fire_due(T0 + 10**9) == m.Decision()


def test_restore_of_a_history_that_starts_midway() -> None:
    engine = Engine(make_registry())
    engine.restore(m.Event("orphan", 7, "r", T0, m.SignalReceived("s", b"1")))
    assert engine.status("orphan") == "quarantined"
    engine.restore(m.Event("closed", 9, "r", T0, m.WorkflowCompleted(b"1")))
    assert engine.status("closed") == "completed"
    engine.restore(m.Event("closed", 10, "r", T0, m.SignalReceived("s", b"1")))
    assert engine.status("closed") == "completed"
    assert rejection(start(engine, "closed")) == "duplicate_workflow_id"
    engine.restore(m.Event("can", 4, "r", T0, m.WorkflowContinuedAsNew("r2", b"1")))
    started = m.WorkflowStarted("one", 1, b"1", 5, "", "r")
    engine.restore(m.Event("can", 5, "r2", T0, started))
    assert engine.status("can") == "running"


# --------------------------------------------------------------------------- parking


def buggy_registry(fixed: bool) -> Registry:
    registry = Registry()

    @registry.workflow(name="buggy", version=1)
    async def buggy(ctx: WorkflowContext, arg: Any) -> Any:
        got = await ctx.wait_for_signal("go")
        if not fixed:
            raise KeyError("missing")
        return got

    return registry


def test_a_bug_parks_and_new_code_resumes() -> None:
    engine = Engine(buggy_registry(fixed=False))
    engine.handle(m.StartWorkflow("b", "buggy", b"null"), T0)
    decision = engine.handle(m.SignalWorkflow("b", "go", b"3"), T0)
    assert bodies(decision) == [m.SignalReceived, m.WorkflowParked]
    parked = decision.events[1].body
    assert isinstance(parked, m.WorkflowParked) and parked.kind == "workflow_error"
    assert "KeyError" in parked.message
    assert engine.status("b") == "parked"
    # While parked, commands are still recorded (the code runs again on resume).
    assert bodies(engine.handle(m.SignalWorkflow("b", "other", b"1"), T0)) == [m.SignalReceived]
    assert engine.resume_parked(T0) == m.Decision()  # same code, same failure: nothing new
    history = engine.history("b")
    fixed = Engine(buggy_registry(fixed=True))
    for event in history:
        fixed.restore(event)
    resumed = fixed.resume_parked(T0 + 1)
    assert bodies(resumed) == [m.WorkflowUnparked, m.WorkflowCompleted]
    assert fixed.status("b") == "completed"


def test_a_bug_that_changes_is_recorded_again() -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def w(ctx: WorkflowContext, arg: Any) -> Any:
        raise ValueError("first")

    engine = Engine(registry)
    engine.handle(m.StartWorkflow("w", "w", b"null"), T0)
    history = engine.history("w")
    other = Registry()

    @other.workflow(name="w", version=1)
    async def w2(ctx: WorkflowContext, arg: Any) -> Any:
        raise ValueError("second")

    engine2 = Engine(other)
    for event in history:
        engine2.restore(event)
    again = engine2.resume_parked(T0)
    assert bodies(again) == [m.WorkflowParked]
    assert engine2.resume_parked(T0) == m.Decision()
    gone = Engine(Registry())
    for event in history:
        gone.restore(event)
    assert bodies(gone.resume_parked(T0)) == [m.WorkflowParked]


@pytest.mark.parametrize("problem", ["asyncio", "not_json"])
def test_workflow_misuse_parks(problem: str) -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def w(ctx: WorkflowContext, arg: Any) -> Any:
        if problem == "asyncio":
            await asyncio.sleep(0)
        return object()

    engine = Engine(registry)
    decision = engine.handle(m.StartWorkflow("w", "w", b"null"), T0)
    assert bodies(decision) == [m.WorkflowStarted, m.WorkflowParked]


def test_rebuild_with_a_removed_version_parks_on_the_next_command() -> None:
    live = Engine(make_registry())
    engine = Engine(Registry())
    for event in [*start(live, "w", "waiter").events]:
        engine.restore(event)
    decision = engine.handle(m.SignalWorkflow("w", "go", b"1"), T0)
    assert bodies(decision) == [m.SignalReceived, m.WorkflowParked]


# --------------------------------------------------------------------------- timers


def test_virtual_time_only_moves_to_due_timers() -> None:
    registry = Registry()

    @registry.workflow(name="sleepy", version=1)
    async def sleepy(ctx: WorkflowContext, arg: Any) -> Any:
        before = ctx.now()
        await ctx.sleep(timedelta(minutes=5))
        await ctx.sleep(1.5)
        return (ctx.now() - before).total_seconds()

    with WorkflowEnvironment(registry, start_ms=T0) as env:
        env.start("sleepy", None, workflow_id="s")
        assert env.engine.next_due_ms() == T0 + 300_000
        env.run()
        assert env.result("s") == 301.5
        assert env.now_ms == T0 + 301_500


def test_advance_fires_in_order() -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def w(ctx: WorkflowContext, arg: Any) -> Any:
        try:
            return await ctx.wait_for_signal("go", timeout=10)
        except CancelledError:
            return "cancelled"

    with WorkflowEnvironment(registry) as env:
        env.start("w", None, workflow_id="a")
        env.advance(9)
        assert env.status("a") == "running"
        env.advance(1)
        assert env.status("a") == "failed"
        env.start("w", None, workflow_id="b")
        env.cancel("b")
        assert env.result("b") == "cancelled"
        types = [type(e.body) for e in env.history("b")]
        assert m.TimerCancelled in types


@pytest.fixture
def kit() -> Iterator[WorkflowEnvironment]:
    with WorkflowEnvironment(Registry()) as env:
        yield env


def test_stub_errors_are_reported_as_failures() -> None:
    registry = make_registry(RetryPolicy(maximum_attempts=1))
    boom = stub(error=ApplicationError("no", type="Nope", non_retryable=True))
    with WorkflowEnvironment(registry, stubs={"work": boom}) as env:
        env.start("one", 1, workflow_id="x")
        env.run()
        assert env.failure("x").error_type == "ActivityError"

    def crash(ctx: Any, arg: Any) -> Any:
        raise RuntimeError("crash")

    with WorkflowEnvironment(registry, stubs={"work": crash}) as env:
        env.start("one", 1, workflow_id="y")
        env.run()
        assert "RuntimeError" in env.failure("y").message
        with pytest.raises(AssertionError):
            env.result("y")
        with pytest.raises(AssertionError):
            env.failure("nobody")


def test_run_detects_endless_workflows() -> None:
    registry = Registry()

    @registry.workflow(name="forever", version=1)
    async def forever(ctx: WorkflowContext, arg: Any) -> Any:
        while True:
            await ctx.sleep(1)

    with WorkflowEnvironment(registry) as env:
        env.start("forever", None, workflow_id="f")
        with pytest.raises(RuntimeError):
            env.run(max_steps=20)


def test_unregistered_activity_needs_a_task_queue() -> None:
    registry = Registry()

    @registry.workflow(name="w", version=1)
    async def w(ctx: WorkflowContext, arg: Any) -> Any:
        if arg:
            return await ctx.execute_activity("remote", 1, ActivityOptions(task_queue="far"))
        return await ctx.execute_activity("remote", 1)

    engine = Engine(registry)
    decision = engine.handle(m.StartWorkflow("a", "w", b"true"), T0)
    assert decision.tasks[0].task_queue == "far"
    decision = engine.handle(m.StartWorkflow("b", "w", b"false"), T0)
    assert bodies(decision) == [m.WorkflowStarted, m.WorkflowParked]


def test_a_child_outcome_no_child_awaits_is_rejected(engine: Engine) -> None:
    start(engine)
    report = m.ReportChildClosed("wf", "stranger", "r-1", "completed", b"1", command_id="c-1")
    decision = engine.handle(report, T0)
    assert rejection(decision) == "child_unknown"
    assert not decision.effects
    assert engine.status("wf") == "running"


def test_outcome_decisions_say_which_step_they_are_about(engine: Engine) -> None:
    """Outcome events carry only the activity's seq; the decision names the step, so an
    observer needs no copy of the workflow's open steps."""
    (task,) = start(engine).tasks
    assert start(engine, "other").steps == ()  # scheduling needs no view: the event has it
    view = m.StepView("wf", task.activity_seq, "work", False, T0)
    failed = fail(engine, task, at=T0 + 5)
    assert [type(e.body) for e in failed.events] == [m.ActivityAttemptFailed]
    assert failed.steps == (view,)
    retried = engine.fire_due(T0 + 60_000)
    assert [type(e.body) for e in retried.events] == [m.ActivityRetried]
    assert retried.steps == (view,)
    (retry,) = retried.tasks
    done = complete(engine, retry, at=T0 + 2_000)
    assert done.steps == (view,)
