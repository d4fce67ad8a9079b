"""Typed payloads in the engine, with the test kit: a workflow receives its annotated input
type, an activity its annotated argument, the workflow the activity's annotated result; a start
whose input does not fit is refused naming the field; an activity argument that does not fit
fails the activity for good; replay rebuilds the same typed run."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from sagaflow.core import messages as m
from sagaflow.core.replay import replay
from sagaflow.testing import WorkflowEnvironment
from sagaflow.workflow import ActivityContext, Registry, WorkflowContext

pytestmark = pytest.mark.unit

registry = Registry()


@dataclass(frozen=True)
class Order:
    order_id: str
    quantity: int


class Reserved(BaseModel):
    order_id: str
    slots: list[int]


seen: list[object] = []


@registry.activity(name="reserve", task_queue="q")
def reserve(ctx: ActivityContext, order: Order) -> Reserved:
    seen.append(order)
    return Reserved(order_id=order.order_id, slots=list(range(order.quantity)))


@registry.workflow(name="typed", version=1)
async def typed(ctx: WorkflowContext, order: Order) -> Reserved:
    seen.append(order)
    reserved = await ctx.execute_activity(reserve, order)
    seen.append(reserved)
    return reserved  # type: ignore[no-any-return]


@registry.workflow(name="misuse", version=1)
async def misuse(ctx: WorkflowContext, order_id: str) -> object:
    return await ctx.execute_activity(reserve, {"order_id": order_id})  # no quantity


def test_each_side_receives_its_annotated_type() -> None:
    seen.clear()
    with WorkflowEnvironment(registry) as env:
        env.start("typed", Order("o-1", 2), workflow_id="w1")
        env.run()
        assert env.result("w1") == {"order_id": "o-1", "slots": [0, 1]}
    assert seen == [Order("o-1", 2), Order("o-1", 2), Reserved(order_id="o-1", slots=[0, 1])]


def test_replay_rebuilds_the_typed_run() -> None:
    with WorkflowEnvironment(registry) as env:
        env.start("typed", Order("o-1", 2), workflow_id="w1")
        env.run()
        history = env.history("w1")
    seen.clear()
    outcome = replay(registry, history)
    assert outcome.error is None and outcome.driver is not None and outcome.driver.finished
    assert seen == [Order("o-1", 2), Reserved(order_id="o-1", slots=[0, 1])]


def test_a_start_whose_input_does_not_fit_is_refused_naming_the_field() -> None:
    with WorkflowEnvironment(registry) as env:
        env.start("typed", {"order_id": "o-1", "quantity": "2"}, workflow_id="w1")
        env.start("typed", {"order_id": "o-1"}, workflow_id="w2")
        assert env.history("w1") == [] and env.history("w2") == []
    first, second = env.rejections
    assert first.reason == "invalid_input"
    assert first.message.startswith("input.quantity: must be a whole number")
    assert "workflow 'typed' version 1" in first.message
    assert second.message.startswith("input.quantity: is required")


def test_an_activity_argument_that_does_not_fit_fails_it_for_good() -> None:
    with WorkflowEnvironment(registry) as env:
        env.start("misuse", "o-1", workflow_id="w1")
        env.run()
        failed = [e.body for e in env.history("w1") if isinstance(e.body, m.ActivityFailed)]
    assert len(failed) == 1  # not retried: no attempt can make the argument fit
    assert failed[0].error_type == "InvalidActivityInput"
    assert "arg.quantity: is required" in failed[0].message
