"""Queries and updates in the pure engine: answers as ReplyToCaller effects, validators that record
nothing, deduplicated update ids, replay after eviction, and the final state of a closed run."""

from __future__ import annotations

from typing import Any

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.interactions import answer_closed
from sagaflow.core.payload import dumps, loads
from sagaflow.examples.cart import registry
from sagaflow.workflow import ActivityOptions, Registry, WorkflowContext, WorkflowView

pytestmark = pytest.mark.unit

T0 = 1_000_000


def started(engine: Engine, wid: str = "c1", hold: bool = False) -> m.Decision:
    order = {"owner": "ann", "hold": hold}
    return engine.handle(m.StartWorkflow(wid, "cart", dumps(order), None, f"s-{wid}"), T0)


def query(engine: Engine, name: str, wid: str = "c1", args: Any = None) -> m.ReplyToCaller:
    decision = engine.handle(m.QueryWorkflow(wid, name, dumps(args), f"q-{name}"), T0 + 1)
    assert not decision.events, "a query records nothing"
    (reply,) = decision.effects
    assert isinstance(reply, m.ReplyToCaller)
    return reply


def update(engine: Engine, item: Any, uid: str = "u1", wid: str = "c1") -> m.Decision:
    return engine.handle(m.UpdateWorkflow(wid, "add_item", dumps(item), uid, f"r-{uid}"), T0 + 2)


def test_a_query_reads_state_from_a_workflow_whose_driver_was_evicted() -> None:
    engine = Engine(registry)
    started(engine)
    assert engine.drivers_held() == 0, "a cart waiting for a signal is idle: no driver kept"
    reply = query(engine, "status")
    assert reply.ok
    assert loads(reply.result) == {"cart": "open", "workflow": "running", "count": 0}
    assert engine.drivers_held() == 0, "answering by replay keeps no coroutine"


def test_an_unknown_query_is_rejected_naming_it() -> None:
    engine = Engine(registry)
    started(engine)
    reply = query(engine, "nope")
    assert (reply.ok, reply.error_type) == (False, "unknown_query")
    assert "'nope'" in reply.message and "items" in reply.message


def test_a_rejected_update_records_nothing_and_an_accepted_one_answers_its_result() -> None:
    engine = Engine(registry)
    started(engine)
    before = engine.history("c1")
    refused = update(engine, {"sku": "tea", "quantity": 0}, "u0")
    assert refused.events == ()
    (no,) = refused.effects
    assert (no.ok, no.error_type) == (False, "validator_rejected")
    assert "at least 1" in no.message
    assert engine.history("c1") == before

    accepted = update(engine, {"sku": "tea", "quantity": 2})
    kinds = [type(e.body) for e in accepted.events]
    assert kinds == [m.UpdateAccepted, m.UpdateCompleted]
    (yes,) = accepted.effects
    assert (yes.ok, loads(yes.result), yes.reply_to) == (True, 1, "r-u1")
    assert loads(query(engine, "items").result) == [{"sku": "tea", "quantity": 2}]


def test_a_repeated_update_id_returns_the_first_result_and_records_nothing() -> None:
    engine = Engine(registry)
    started(engine)
    update(engine, {"sku": "tea", "quantity": 2})
    again = engine.handle(
        m.UpdateWorkflow("c1", "add_item", dumps({"sku": "x", "quantity": 9}), "u1", "r-again"),
        T0 + 3,
    )
    assert again.events == ()
    (reply,) = again.effects
    assert (loads(reply.result), reply.reply_to) == (1, "r-again")
    assert len(loads(query(engine, "items").result)) == 1


def test_a_closed_workflow_is_queried_from_its_replayed_history() -> None:
    engine = Engine(registry)
    history = list(started(engine).events)
    history += update(engine, {"sku": "tea", "quantity": 2}).events
    history += engine.handle(m.SignalWorkflow("c1", "checkout", b"null"), T0 + 5).events
    closed = engine.closed_workflow("c1")
    assert closed is not None and closed.status == "completed"
    command = m.QueryWorkflow("c1", "status", b"null", "q-closed")
    assert engine.needs_history(command) == closed
    reply = answer_closed(registry, command, closed, history)
    assert loads(reply.result) == {"cart": "checked_out", "workflow": "completed", "count": 1}
    repeat = m.UpdateWorkflow("c1", "add_item", b"{}", "u1", "r-late")
    assert loads(answer_closed(registry, repeat, closed, history).result) == 1
    late = m.UpdateWorkflow("c1", "add_item", b"{}", "u9", "r-late")
    assert answer_closed(registry, late, closed, history).error_type == "workflow_closed"


def test_a_query_handler_cannot_act_on_the_workflow() -> None:
    sneaky = Registry()
    held: list[WorkflowContext] = []

    @sneaky.workflow(name="w", version=1)
    async def w(ctx: WorkflowContext, arg: Any) -> Any:
        held.append(ctx)
        return await ctx.wait_for_signal("go")

    @sneaky.query(workflow="w", name="poke")
    def poke(view: WorkflowView, args: Any) -> Any:
        held[-1].start_activity("anything", None, ActivityOptions(task_queue="q"))

    @sneaky.query(workflow="w", name="draw")
    def draw(view: WorkflowView, args: Any) -> Any:
        return held[-1].random()

    engine = Engine(sneaky)
    engine.handle(m.StartWorkflow("w1", "w", b"null"), T0)
    before = engine.history("w1")
    for name in ("poke", "draw"):
        reply = query(engine, name, "w1")
        assert (reply.ok, reply.error_type) == (False, "QueryMutationError")
    assert engine.history("w1") == before


def test_an_update_to_a_busy_workflow_runs_on_its_live_driver() -> None:
    engine = Engine(registry)
    started(engine, hold=True)
    assert engine.drivers_held() == 1
    (reply,) = update(engine, {"sku": "tea", "quantity": 1}).effects
    assert loads(reply.result) == 1
    assert engine.drivers_held() == 1
