"""Recorded histories stay green against today's code; a known-bad one must still fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagaflow.core import messages as m
from sagaflow.core.engine import Engine
from sagaflow.core.errors import NonDeterminismError
from sagaflow.core.registry import Registry
from sagaflow.core.replay import replay
from sagaflow.examples import cart
from sagaflow.examples.checkout import registry
from sagaflow.testing import history_from_json, history_to_json
from sagaflow.workflow import WorkflowContext

pytestmark = pytest.mark.unit

HISTORIES = Path(__file__).parents[1] / "histories"
GOOD = sorted(p for p in HISTORIES.glob("checkout_*.json") if p.stem != "checkout_nondeterministic")
BAD = HISTORIES / "checkout_nondeterministic.json"


def load(path: Path) -> list[m.Event]:
    return history_from_json(path.read_text())


def registry_of(history: list[m.Event]) -> Registry:
    started = history[0].body
    assert isinstance(started, m.WorkflowStarted)
    return cart.registry if started.workflow_type == "cart" else registry


def test_there_are_recorded_histories() -> None:
    assert len(GOOD) >= 6


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_recorded_history_replays_cleanly(path: Path) -> None:
    history = load(path)
    outcome = replay(registry_of(history), history)
    assert outcome.error is None
    assert outcome.driver is not None
    # A terminated run stops where its code was: no code ran for the terminate.
    terminated = isinstance(history[-1].body, m.WorkflowTerminated)
    assert outcome.driver.finished != terminated
    assert outcome.new_commands == []


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_history_json_round_trips(path: Path) -> None:
    history = load(path)
    assert history_from_json(history_to_json(history)) == history


def test_history_from_other_code_raises_nondeterminism_naming_seq_and_paths() -> None:
    with pytest.raises(NonDeterminismError) as info:
        replay(registry, load(BAD))
    err = info.value
    assert err.workflow_id == "order-7"
    assert err.seq == 2
    assert "reserve_inventory" in err.code_did
    assert "charge_payment" in err.history_recorded
    assert "order-7" in str(err) and "seq 2" in str(err)


def test_engine_parks_a_nondeterministic_workflow_instead_of_corrupting_it() -> None:
    history = load(BAD)
    # Everything up to (not including) the close: the workflow is still open when rebuilt.
    open_part = [e for e in history if not isinstance(e.body, m.WorkflowCompleted)]
    engine = Engine(registry)
    for event in open_part:
        engine.restore(event)
    assert engine.status("order-7") == "running"
    decision = engine.handle(m.SignalWorkflow("order-7", "poke", b"null", "c-1"), 1)
    bodies = [e.body for e in decision.events]
    assert isinstance(bodies[0], m.SignalReceived)
    assert isinstance(bodies[1], m.WorkflowParked)
    assert bodies[1].kind == "nondeterminism"
    assert "seq 2" in bodies[1].message
    assert engine.status("order-7") == "parked"
    assert decision.tasks == ()
    # Still failing the same way after a restart: nothing new is recorded.
    assert engine.resume_parked(2).events == ()
    assert list(engine.history("order-7")) == [*open_part, *decision.events]


def test_restored_workflow_continues_from_history_without_rerunning_activities() -> None:
    history = load(HISTORIES / "checkout_approved.json")
    cut = next(
        i for i, e in enumerate(history) if isinstance(e.body, m.SignalReceived)
    )  # waiting for approval
    engine = Engine(registry)
    for event in history[:cut]:
        engine.restore(event)
    decision = engine.handle(
        m.SignalWorkflow("order-3", "approve", b'{"approved":true}', "c-9"), 10
    )
    assert [t.activity_name for t in decision.tasks] == ["create_shipment"]
    scheduled = [e.body for e in decision.events if isinstance(e.body, m.ActivityScheduled)]
    assert [s.activity_name for s in scheduled] == ["create_shipment"]


def test_a_cart_replays_its_updates_and_answers_queries_from_the_final_state() -> None:
    outcome = replay(cart.registry, load(HISTORIES / "cart_updated.json"))
    assert outcome.driver is not None and outcome.driver.finished
    assert outcome.driver.state["items"] == [
        {"sku": "tea", "quantity": 2},
        {"sku": "jam", "quantity": 1},
    ]


def test_an_update_handler_that_now_acts_differently_is_a_nondeterminism() -> None:
    changed = Registry()
    changed.workflow(name="cart", version=1)(cart.cart)
    changed.query(workflow="cart", name="items")(cart.items)

    @changed.update(workflow="cart", name="add_item")
    async def add_item_with_a_timer(ctx: WorkflowContext, item: dict[str, object]) -> int:
        await ctx.sleep(1)  # new code: the recorded run completed the update at once
        ctx.state["items"].append(item)
        return len(ctx.state["items"])

    with pytest.raises(NonDeterminismError) as info:
        replay(changed, load(HISTORIES / "cart_updated.json"))
    assert "update 'u1' completed" in info.value.history_recorded
