"""Child workflows in the pure core: start, outcome, failure, duplicate ids, redelivery, parent
close policies, replay and rebuild. Commands between workflows are delivered by the test kit
(in production they travel through the commands topic)."""

from __future__ import annotations

from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.replay import replay
from sagaflow.testing import WorkflowEnvironment, encode, stub
from sagaflow.workflow import (
    ApplicationError,
    ChildWorkflowError,
    ParentClosePolicy,
    Registry,
    WorkflowContext,
)

pytestmark = pytest.mark.unit


def make_registry() -> Registry:
    registry = Registry()

    @registry.activity(name="ship", task_queue="q")
    def ship(ctx: Any, arg: Any) -> Any:
        return {"shipped": arg}

    @registry.workflow(name="shipment", version=1)
    async def shipment(ctx: WorkflowContext, arg: Any) -> Any:
        if arg == "broken":
            raise ApplicationError("no such parcel", type="ParcelUnknown")
        if arg == "wait":
            return await ctx.wait_for_signal("go")
        return await ctx.execute_activity("ship", arg)

    @registry.workflow(name="order", version=1)
    async def order(ctx: WorkflowContext, arg: dict[str, Any]) -> Any:
        try:
            shipped = await ctx.execute_child_workflow(
                "shipment",
                arg["parcel"],
                id=arg.get("child_id"),
                parent_close_policy=ParentClosePolicy(arg.get("policy", "terminate")),
            )
        except ChildWorkflowError as err:
            return {"child_failed": err.status, "cause": err.cause_type, "message": str(err)}
        return {"order": shipped}

    return registry


@pytest.fixture
def env() -> WorkflowEnvironment:
    return WorkflowEnvironment(make_registry())


def bodies(env: WorkflowEnvironment, workflow_id: str) -> list[m.EventBody]:
    return [e.body for e in env.events if e.workflow_id == workflow_id]


def test_a_child_runs_as_its_own_workflow_and_its_result_resumes_the_parent(
    env: WorkflowEnvironment,
) -> None:
    env.start("order", {"parcel": "p1"}, workflow_id="o1")
    env.run()

    assert env.result("o1") == {"order": {"shipped": "p1"}}
    started = bodies(env, "o1")[1]
    assert started == m.ChildWorkflowStarted(
        2, "o1/child-2", "shipment", 0, encode("p1"), ParentClosePolicy.TERMINATE
    )
    child = bodies(env, "o1/child-2")
    assert isinstance(child[0], m.WorkflowStarted)
    assert (child[0].parent_workflow_id, child[0].parent_child_seq) == ("o1", 2)
    assert child[0].parent_run_id == env.events[0].run_id
    assert isinstance(child[-1], m.WorkflowCompleted)
    # The child's history is its own: none of its events are in the parent's.
    assert not any(isinstance(b, m.ActivityScheduled) for b in bodies(env, "o1"))
    assert [type(b) for b in bodies(env, "o1")[2:]] == [
        m.ChildWorkflowCompleted,
        m.WorkflowCompleted,
    ]


def test_a_failing_child_raises_child_workflow_error_with_the_cause(
    env: WorkflowEnvironment,
) -> None:
    env.start("order", {"parcel": "broken"}, workflow_id="o2")
    env.run()

    outcome = env.result("o2")
    assert outcome["child_failed"] == "failed"
    assert outcome["cause"] == "ParcelUnknown"
    assert "no such parcel" in outcome["message"]
    failed = bodies(env, "o2")[2]
    assert isinstance(failed, m.ChildWorkflowFailed)
    assert (failed.status, failed.error_type) == ("failed", "ParcelUnknown")


def test_a_child_id_that_exists_fails_the_start_in_the_parent(env: WorkflowEnvironment) -> None:
    env.start("shipment", "wait", workflow_id="taken")
    env.start("order", {"parcel": "p1", "child_id": "taken"}, workflow_id="o3")
    env.run(advance_time=False)

    outcome = env.result("o3")
    assert outcome["child_failed"] == "start_failed"
    assert outcome["cause"] == "duplicate_workflow_id"
    assert "could not be started" in outcome["message"] and "'taken'" in outcome["message"]
    assert env.status("taken") == "running"  # the existing workflow is untouched


def test_a_redelivered_report_is_recorded_once() -> None:
    engine = Engine(make_registry())
    first = engine.handle(
        m.StartWorkflow("o4", "order", encode({"parcel": "wait"}), None, "s-o4"), 1_000
    )
    (start_child,) = [e.command for e in first.effects if isinstance(e, m.CommandToWorkflow)]
    assert isinstance(start_child, m.StartWorkflow)
    assert start_child.parent_workflow_id == "o4"
    child = engine.handle(start_child, 2_000)
    assert child.events and not child.effects
    assert engine.handle(start_child, 2_001) == m.Decision()  # the same start, redelivered

    closed = engine.handle(m.SignalWorkflow(start_child.workflow_id, "go", b"7", "sig"), 3_000)
    (report,) = [e.command for e in closed.effects if isinstance(e, m.CommandToWorkflow)]
    assert isinstance(report, m.ReportChildClosed)
    assert (report.workflow_id, report.status, report.result) == ("o4", "completed", b"7")

    recorded = engine.handle(report, 4_000)
    assert [type(e.body) for e in recorded.events] == [
        m.ChildWorkflowCompleted,
        m.WorkflowCompleted,
    ]
    assert engine.handle(report, 4_001) == m.Decision()  # the parent is closed: nothing


def test_a_redelivered_report_to_a_running_parent_adds_nothing() -> None:
    registry = make_registry()

    @registry.workflow(name="two_children", version=1)
    async def two_children(ctx: WorkflowContext, arg: Any) -> Any:
        first = ctx.start_child_workflow("shipment", "wait")
        second = ctx.start_child_workflow("shipment", "wait")
        return [await first, await second]

    env = WorkflowEnvironment(registry)
    env.start("two_children", None, workflow_id="tc")
    env.run(advance_time=False)
    env.signal("tc/child-2", "go", 1)
    report = env.sent[0]
    env.run(advance_time=False)
    assert env.send(report) == m.Decision()
    env.signal("tc/child-3", "go", 2)
    env.run(advance_time=False)
    assert env.result("tc") == [1, 2]
    outcomes = [b for b in bodies(env, "tc") if isinstance(b, m.ChildWorkflowCompleted)]
    assert len(outcomes) == 2


def test_a_report_from_a_stranger_is_rejected_as_child_unknown(env: WorkflowEnvironment) -> None:
    env.start("shipment", "wait", workflow_id="lonely")
    decision = env.send(m.ReportChildClosed("lonely", "someone", "r", "completed", b"1", "", ""))
    assert decision.rejection is not None
    assert decision.rejection.reason == "child_unknown"


@pytest.mark.parametrize(
    ("policy", "child_status"),
    [
        (ParentClosePolicy.TERMINATE, "terminated"),
        (ParentClosePolicy.REQUEST_CANCEL, "cancelled"),
        (ParentClosePolicy.ABANDON, "running"),
    ],
)
def test_cancelling_the_parent_follows_the_parent_close_policy(
    env: WorkflowEnvironment, policy: ParentClosePolicy, child_status: str
) -> None:
    env.start("order", {"parcel": "wait", "policy": policy}, workflow_id="o5")
    env.run(advance_time=False)
    assert env.status("o5/child-2") == "running"

    env.cancel("o5", "customer changed mind")
    env.run(advance_time=False)

    assert env.status("o5") == "cancelled"
    assert env.status("o5/child-2") == child_status
    if policy is ParentClosePolicy.ABANDON:
        env.signal("o5/child-2", "go", "later")
        env.run(advance_time=False)
        assert env.status("o5/child-2") == "completed"  # its report reached nobody, quietly
        assert not env.rejections
    else:
        closing = bodies(env, "o5/child-2")[-1]
        expected = (
            m.WorkflowTerminated if policy is ParentClosePolicy.TERMINATE else m.WorkflowCancelled
        )
        assert isinstance(closing, expected)
        assert f"parent 'o5' closed (cancelled); parent close policy {policy}" in closing.reason


def test_parent_and_child_histories_replay_deterministically(env: WorkflowEnvironment) -> None:
    env.start("order", {"parcel": "p9"}, workflow_id="o6")
    env.run()
    for workflow_id in ("o6", "o6/child-2"):
        history = [e for e in env.events if e.workflow_id == workflow_id]
        outcome = replay(env.registry, history)
        assert outcome.driver is not None and outcome.driver.finished


def test_a_rebuilt_parent_takes_its_childs_report() -> None:
    registry = make_registry()
    engine = Engine(registry)
    decision = engine.handle(
        m.StartWorkflow("o7", "order", encode({"parcel": "wait"}), None, "s-o7"), 1_000
    )
    rebuilt = Engine(registry)
    for event in decision.events:
        rebuilt.restore(event)
    state = rebuilt.state("o7")
    assert state is not None and set(state.children) == {"o7/child-2"}
    report = m.ReportChildClosed("o7", "o7/child-2", "r", "completed", b'"done"', "", "", "c1")
    recorded = rebuilt.handle(report, 2_000)
    assert isinstance(recorded.events[-1].body, m.WorkflowCompleted)
    assert recorded.events[-1].body.result == encode({"order": "done"})


def test_an_unknown_child_type_fails_the_start_in_the_parent() -> None:
    registry = make_registry()

    @registry.workflow(name="typo", version=1)
    async def typo(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.execute_child_workflow("shipmnet", arg)

    env = WorkflowEnvironment(registry, stubs={"ship": stub(1)})
    env.start("typo", 1, workflow_id="t1")
    env.run()
    failed = env.failure("t1")
    assert failed.error_type == "ChildWorkflowError"
    assert "unknown_workflow_type" in failed.message and "shipmnet" in failed.message


def test_the_checkout_batch_example_runs_one_child_per_order() -> None:
    from sagaflow.examples.checkout import registry
    from sagaflow.examples.shop import InMemoryShop

    shop = InMemoryShop()
    order = {"sku": "sku-1", "quantity": 1, "card": "tok", "address": "a", "email": "e"}
    orders = [
        {**order, "order_id": "a", "amount_cents": 100},
        {**order, "order_id": "b", "amount_cents": 500_000, "approval_timeout_s": 5},
    ]
    with WorkflowEnvironment(registry, resources={"shop": shop}) as env:
        env.start("checkout_batch", {"orders": orders}, workflow_id="batch")
        env.run()
        outcome = env.result("batch")
    assert outcome["a"]["status"] == "completed"
    assert outcome["b"]["status"] == "failed"
    assert "SignalTimeoutError" in outcome["b"]["error"]


def test_child_records_round_trip_and_older_writers_decode_without_a_parent() -> None:
    import io
    import json

    import fastavro

    from sagaflow import codec
    from tests.unit.test_codec import REPO_SCHEMAS

    start = m.StartWorkflow(
        "c",
        "shipment",
        b"1",
        None,
        "s",
        parent_workflow_id="p",
        parent_run_id="run-p",
        parent_child_seq=4,
    )
    assert codec.decode_command(codec.encode_command(start)) == start
    for body in (
        m.WorkflowStarted(
            "shipment",
            1,
            b"1",
            7,
            "s",
            parent_workflow_id="p",
            parent_run_id="run-p",
            parent_child_seq=4,
        ),
        m.ChildWorkflowStarted(4, "c", "shipment", 0, b"1", "abandon"),
        m.ChildWorkflowCompleted(4, "c", "run-c", b"2"),
        m.ChildWorkflowFailed(4, "c", "", "start_failed", "duplicate_workflow_id", "exists"),
    ):
        event = m.Event("p", 5, "run-p", 9, body)
        assert codec.decode_event(codec.encode_event(event)) == event

    # A start written with command schema v2 (before children) has no parent.
    v2 = fastavro.parse_schema(json.loads((REPO_SCHEMAS / "command.v2.avsc").read_text()))
    buffer = io.BytesIO()
    buffer.write(bytes((codec.MAGIC, codec.KIND_COMMAND, 2)))
    fields = {"workflow_id": "c", "workflow_type": "t", "input": b"1", "version": None}
    fastavro.schemaless_writer(
        buffer, v2, {"body": ("sagaflow.StartWorkflow", {**fields, "command_id": "s"})}
    )
    old = codec.decode_command(buffer.getvalue())
    assert isinstance(old, m.StartWorkflow) and old.parent_workflow_id == ""


def test_a_parent_history_replayed_against_code_starting_another_child_is_nondeterministic() -> (
    None
):
    from pathlib import Path

    from sagaflow.core.errors import NonDeterminismError
    from sagaflow.testing import history_from_json

    path = Path(__file__).parents[1] / "histories" / "checkout_batch_children.json"
    history = history_from_json(path.read_text())
    other = Registry()

    @other.workflow(name="checkout_batch", version=1)
    async def checkout_batch(ctx: WorkflowContext, batch: Any) -> Any:
        return await ctx.execute_child_workflow("refund_all", batch)

    with pytest.raises(NonDeterminismError, match=r"started child workflow 'refund_all'"):
        replay(other, history)


def test_sagaflow_show_names_the_parent_and_the_pending_children() -> None:
    from datetime import UTC, datetime

    from sagaflow.cli.views import _show_text

    at = datetime(2026, 1, 1, tzinfo=UTC)
    row: dict[str, Any] = {
        "workflow_id": "batch",
        "run_id": "r",
        "type": "checkout_batch",
        "version": 1,
        "status": "running",
        "created_at": at,
        "updated_at": at,
        "last_seq": 3,
        "input": {},
        "result": None,
        "error": None,
        "current_step": None,
        "pending_activities": {},
        "pending_timers": [],
        "received_signals": [],
        "signal_waits": [],
        "cancel_requested": False,
        "parked": None,
        "parent": {"workflow_id": "nightly", "run_id": "rp", "child_seq": 7},
        "pending_children": [
            {"workflow_id": "o-1", "type": "checkout", "seq": 2, "parent_close_policy": "abandon"}
        ],
    }
    text = _show_text("batch", row, [])
    assert "parent    nightly (child step 7)" in text
    assert "child     o-1 checkout running (step 2, on parent close: abandon)" in text


def test_a_child_that_continues_as_new_reports_from_its_last_run() -> None:
    registry = make_registry()

    @registry.workflow(name="countdown", version=1)
    async def countdown(ctx: WorkflowContext, n: int) -> Any:
        if n > 0:
            ctx.continue_as_new(n - 1)
        return "liftoff"

    @registry.workflow(name="launch", version=1)
    async def launch(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.execute_child_workflow("countdown", 2)

    env = WorkflowEnvironment(registry)
    env.start("launch", None, workflow_id="l1")
    env.run()
    assert env.result("l1") == "liftoff"
    starts = [b for b in bodies(env, "l1/child-2") if isinstance(b, m.WorkflowStarted)]
    assert len(starts) == 3 and all(s.parent_workflow_id == "l1" for s in starts)


def test_a_child_whose_input_is_too_large_fails_the_start_in_the_parent() -> None:
    registry = make_registry()

    @registry.workflow(name="big", version=1)
    async def big(ctx: WorkflowContext, arg: Any) -> Any:
        return await ctx.execute_child_workflow("shipment", "x" * 300)

    env = WorkflowEnvironment(registry, max_payload_bytes=200)
    env.start("big", None, workflow_id="b1")
    env.run()
    failed = env.failure("b1")
    assert "could not be started (payload_too_large)" in failed.message
