"""The workflow API: gather, patched, versions, continue-as-new, determinism, sagas."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.errors import NonDeterminismError
from sagaflow.core.replay import replay
from sagaflow.testing import WorkflowEnvironment, encode
from sagaflow.workflow import (
    ActivityContext,
    ActivityError,
    ApplicationError,
    CancelledError,
    Registry,
    RegistryError,
    RetryPolicy,
    WorkflowContext,
)

pytestmark = pytest.mark.unit


def base_registry() -> Registry:
    registry = Registry()

    @registry.activity(name="echo", task_queue="q")
    def echo(ctx: ActivityContext, arg: Any) -> Any:
        return arg

    @registry.activity(name="broken", task_queue="q", retry_policy=RetryPolicy(maximum_attempts=1))
    async def broken(ctx: ActivityContext, arg: Any) -> Any:
        raise ApplicationError("nope", type="Broken")

    return registry


def test_gather_with_cancel_siblings_stops_the_others_and_raises_the_first_failure() -> None:
    registry = base_registry()
    seen: list[str] = []

    @registry.workflow(name="stop", version=1)
    async def stop(ctx: WorkflowContext, arg: Any) -> Any:
        async def sleeper() -> None:
            try:
                await ctx.sleep(100)
            except CancelledError as err:
                seen.append(f"sleeper: {err.reason}")
                raise
            await ctx.execute_activity("echo", "never")

        async def waiter() -> None:
            try:
                await ctx.wait_for_signal("go", timeout=500)
            except CancelledError:
                seen.append("waiter")
                raise

        async def not_started() -> None:
            seen.append("not started ran")  # cancelled before its first step: never runs

        async def failing() -> None:
            raise ApplicationError("at once", type="Now")

        try:
            await ctx.gather(sleeper(), waiter(), failing(), not_started(), cancel_siblings=True)
        except ApplicationError as err:
            return {"failed": err.error_type}
        return "not reached"

    with WorkflowEnvironment(registry) as env:
        env.start("stop", None, workflow_id="s")
        env.run()
        assert env.result("s") == {"failed": "Now"}
        bodies = [e.body for e in env.history("s")]
    assert len([b for b in bodies if isinstance(b, m.TimerCancelled)]) == 2
    assert [b for b in bodies if isinstance(b, m.ActivityScheduled)] == []
    assert seen == ["sleeper: another branch of the gather failed", "waiter"]


def test_gather_runs_activities_and_coroutines_concurrently() -> None:
    registry = base_registry()

    @registry.workflow(name="fan", version=1)
    async def fan(ctx: WorkflowContext, arg: Any) -> Any:
        async def two_steps() -> Any:
            first = await ctx.execute_activity("echo", "a")
            return first + await ctx.execute_activity("echo", "b")

        handle = ctx.start_activity(echo_fn, "h")
        results = await ctx.gather(handle, two_steps(), ctx.execute_activity("echo", "c"))
        empty = await ctx.gather()
        return [results, empty, handle.activity_seq]

    echo_fn = registry.activities["echo"].fn
    engine = Engine(registry)
    decision = engine.handle(m.StartWorkflow("g", "fan", b"null"), 0)
    assert [t.activity_name for t in decision.tasks] == ["echo", "echo", "echo"]
    with WorkflowEnvironment(registry) as env:
        env.start("fan", None, workflow_id="g")
        env.run()
        assert env.result("g") == [["h", "ab", "c"], [], 2]


def test_gather_fails_with_the_first_failure_and_cancel_reaches_children() -> None:
    registry = base_registry()

    @registry.workflow(name="fan", version=1)
    async def fan(ctx: WorkflowContext, arg: Any) -> Any:
        try:
            await ctx.gather(ctx.execute_activity("broken"), ctx.sleep(60))
        except ActivityError as err:
            return err.details["cause_type"]
        return "no"

    @registry.workflow(name="fan2", version=1)
    async def fan2(ctx: WorkflowContext, arg: Any) -> Any:
        try:
            await ctx.gather(ctx.sleep(60), ctx.wait_for_signal("x"))
        except CancelledError:
            return ["cancelled", ctx.cancel_requested]
        return "no"

    with WorkflowEnvironment(registry) as env:
        env.start("fan", None, workflow_id="a")
        env.run()
        assert env.result("a") == "Broken"
        env.start("fan2", None, workflow_id="b")
        env.cancel("b")
        assert env.result("b") == ["cancelled", True]
        assert sum(isinstance(e.body, m.TimerCancelled) for e in env.history("b")) == 1


def test_patched_records_its_decision_and_old_histories_take_the_old_branch() -> None:
    old = base_registry()

    @old.workflow(name="p", version=1)
    async def p_old(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.wait_for_signal("go")
        return await ctx.execute_activity("echo", "old")

    new = base_registry()

    @new.workflow(name="p", version=1)
    async def p_new(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.wait_for_signal("go")
        if ctx.patched("use-new"):
            assert ctx.patched("use-new")
            return await ctx.execute_activity("echo", "new")
        return await ctx.execute_activity("echo", "old")

    # A run that passed the patch point under old code keeps the old branch under new code.
    with WorkflowEnvironment(old) as env:
        env.start("p", None, workflow_id="o")
        env.signal("o", "go")
        half = list(env.history("o"))
    engine = Engine(new)
    for event in half:
        engine.restore(event)
    (task,) = [e.body for e in engine.history("o") if isinstance(e.body, m.ActivityScheduled)]
    assert task.input == b'"old"'
    # A fresh run under new code takes the new branch and records a marker.
    with WorkflowEnvironment(new) as env:
        env.start("p", None, workflow_id="n")
        env.signal("n", "go")
        env.run()
        assert env.result("n") == "new"
        assert any(isinstance(e.body, m.MarkerRecorded) for e in env.history("n"))
        assert replay(new, env.history("n")).driver is not None
        # Removing the patch later is a nondeterminism for runs that recorded it.
        with pytest.raises(NonDeterminismError):
            replay(old, env.history("n"))


def test_new_starts_take_the_newest_version_and_running_ones_keep_theirs() -> None:
    registry = base_registry()

    @registry.workflow(name="v", version=1)
    async def v1(ctx: WorkflowContext, arg: Any) -> Any:
        await ctx.wait_for_signal("go")
        return ["v1", ctx.version, ctx.workflow_type]

    with WorkflowEnvironment(registry) as env:
        env.start("v", None, workflow_id="old")

        @registry.workflow(name="v", version=2)
        async def v2(ctx: WorkflowContext, arg: Any) -> Any:
            return ["v2", ctx.version]

        env.start("v", None, workflow_id="new")
        env.start("v", None, workflow_id="pinned", version=1)
        env.signal("old", "go")
        env.signal("pinned", "go")
        assert env.result("old") == ["v1", 1, "v"]
        assert env.result("new") == ["v2", 2]
        assert env.result("pinned") == ["v1", 1, "v"]


def test_deterministic_values_are_the_same_on_replay() -> None:
    registry = base_registry()

    @registry.workflow(name="d", version=1)
    async def d(ctx: WorkflowContext, arg: Any) -> Any:
        values = [ctx.random(), ctx.uuid4(), ctx.workflow_id, ctx.run_id, ctx.now().isoformat()]
        await ctx.wait_for_signal("go")
        return values

    live = Engine(registry)
    live.handle(m.StartWorkflow("d", "d", b"null"), 1_700_000_000_000)
    rebuilt = Engine(registry)
    for event in live.history("d"):
        rebuilt.restore(event)
    a = live.handle(m.SignalWorkflow("d", "go", b"null"), 5)
    b = rebuilt.handle(m.SignalWorkflow("d", "go", b"null"), 5)
    assert a.events == b.events
    body = a.events[-1].body
    assert isinstance(body, m.WorkflowCompleted)
    rnd, uid, wf, run, now = __import__("json").loads(body.result)
    assert 0 <= rnd < 1
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uid)
    assert wf == "d" and run == a.events[0].run_id
    assert now == "2023-11-14T22:13:20+00:00"


def test_continue_as_new_starts_a_fresh_run_with_continuing_seqs() -> None:
    registry = base_registry()

    @registry.workflow(name="loop", version=1)
    async def loop(ctx: WorkflowContext, n: int) -> Any:
        await ctx.execute_activity("echo", n)
        if n < 3:
            ctx.continue_as_new(n + 1)
        return n

    with WorkflowEnvironment(registry) as env:
        env.start("loop", 0, workflow_id="l")
        env.run()
        assert env.result("l") == 3
        events = env.history("l")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        starts = [e for e in events if isinstance(e.body, m.WorkflowStarted)]
        assert len(starts) == 4 and len({e.run_id for e in starts}) == 4
        assert isinstance(starts[1].body, m.WorkflowStarted)
        assert starts[1].body.continued_from_run_id == starts[0].run_id
        keys = [t.idempotency_key for t in env.executed]
        assert len(set(keys)) == 4  # a new run never reuses a step's key


def test_continued_run_keeps_only_its_own_history() -> None:
    registry = base_registry()

    @registry.workflow(name="loop", version=1)
    async def loop(ctx: WorkflowContext, n: int) -> Any:
        if n < 1:
            ctx.continue_as_new(n + 1)
        return await ctx.wait_for_signal("go")

    engine = Engine(registry)
    engine.handle(m.StartWorkflow("l", "loop", b"0"), 0)
    history = engine.history("l")
    assert isinstance(history[0].body, m.WorkflowStarted) and history[0].seq == 3
    assert engine.status("l") == "running"


def test_saga_compensation_failure_is_reported_and_bugs_do_not_compensate() -> None:
    registry = base_registry()

    @registry.workflow(name="s", version=1)
    async def s(ctx: WorkflowContext, arg: Any) -> Any:
        async with ctx.saga() as saga:
            await ctx.execute_activity("echo", 1)
            saga.add_compensation("broken", 1)
            saga.add_compensation("echo", "undo")
            assert saga.pending == 2
            if arg == "bug":
                raise ZeroDivisionError("bug")
            raise ApplicationError("business says no", type="No", details={"why": "x"})

    with WorkflowEnvironment(registry) as env:
        env.start("s", "fail", workflow_id="a")
        env.run()
        failure = env.failure("a")
        assert failure.error_type == "CompensationFailed"
        assert env.scheduled("a", compensation=True) == ["echo", "broken"]
        env.start("s", "bug", workflow_id="b")
        env.run()
        assert env.status("b") == "parked"
        assert env.scheduled("b", compensation=True) == []


def test_uncaught_application_error_records_type_and_details() -> None:
    registry = base_registry()

    @registry.workflow(name="f", version=1)
    async def f(ctx: WorkflowContext, arg: Any) -> Any:
        raise ApplicationError("no", type="Rule", details={"k": object()})

    engine = Engine(registry)
    decision = engine.handle(m.StartWorkflow("f", "f", b"null"), 0)
    body = decision.events[-1].body
    assert isinstance(body, m.WorkflowFailed) and body.error_type == "Rule"


def test_registry_rejects_mistakes() -> None:
    registry = base_registry()

    @registry.workflow(name="w", version=1)
    async def w(ctx: WorkflowContext, arg: Any) -> Any:
        return None

    with pytest.raises(RegistryError, match="twice"):
        registry.workflow(name="w", version=1)(w)
    with pytest.raises(RegistryError, match=">= 1"):
        registry.workflow(name="w", version=0)(w)
    with pytest.raises(RegistryError, match="async def"):
        registry.workflow(name="sync", version=1)(lambda ctx, arg: None)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="twice"):
        registry.activity(name="echo", task_queue="q")(lambda ctx, arg: None)
    with pytest.raises(RegistryError, match="unknown activity"):
        registry.get_activity("nope")
    with pytest.raises(RegistryError, match="not a registered activity"):
        registry.activity_name(lambda ctx, arg: None)

    @registry.resource("db")
    def db(config: Any) -> Any:
        return None

    with pytest.raises(RegistryError, match="twice"):
        registry.resource("db")(db)
    assert registry.resources["db"] is db
    assert registry.task_queues() == frozenset({"q"})
    assert set(registry.workflows) == {"w"}


def test_payload_and_error_strings_name_the_fix() -> None:
    err = NonDeterminismError(workflow_id="w", seq=3, code_did="did A", history_recorded="B")
    assert "patched" in str(err) and "seq 3" in str(err)
    assert encode({"a": 1}) == b'{"a":1}'
