"""The UI's state machine graph: the path an execution took, found by replaying its history
through the interpreter, and the SVG that marks it (visited, current, failed) in colour and in
words. Executions run in-process on the test kit with the in-memory shop."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from sagaflow.asl.examples import checkout_definition
from sagaflow.asl.examples import registry as asl_examples
from sagaflow.asl.interpreter import register
from sagaflow.core.messages import Event
from sagaflow.examples.shop import InMemoryShop
from sagaflow.testing import WorkflowEnvironment
from sagaflow.ui.stategraph import state_graph_svg
from sagaflow.ui.statemachine import StatePath, is_state_machine, state_path
from sagaflow.workflow import Registry

pytestmark = pytest.mark.unit

NAME = "checkout-asl-ui"
ORDER: dict[str, Any] = {
    "order_id": "o-1",
    "sku": "sku-1",
    "quantity": 2,
    "amount_cents": 4_999,
    "card": "tok_visa",
    "address": "1 Main St",
    "email": "b@example.com",
}


def _registry() -> Registry:
    registry = Registry()
    for a in asl_examples.activities.values():
        registry.activity(name=a.name, task_queue=a.task_queue)(a.fn)
    for name, factory in asl_examples.resources.items():
        registry.resource(name)(factory)
    register(registry, NAME, checkout_definition())
    return registry


@pytest.fixture
def env() -> Iterator[WorkflowEnvironment]:
    with WorkflowEnvironment(_registry(), resources={"shop": InMemoryShop()}) as environment:
        yield environment


def _run(env: WorkflowEnvironment, wid: str, **order: Any) -> tuple[list[Event], str]:
    env.start(NAME, {**ORDER, "order_id": wid, **order}, workflow_id=wid)
    env.run(advance_time=False)  # a waiting execution stays waiting
    return env.history(wid), str(env.status(wid))


def _path(env: WorkflowEnvironment, wid: str, **order: Any) -> StatePath:
    history, status = _run(env, wid, **order)
    path, problem = state_path(checkout_definition(), history, status)
    assert problem is None and path is not None
    return path


def _marks(svg: str) -> dict[str, str]:
    return dict(re.findall(r'data-state="([^"]+)" data-mark="([a-z]+)"', svg))


def test_a_completed_execution_visits_its_states_and_is_nowhere_now(
    env: WorkflowEnvironment,
) -> None:
    path = _path(env, "ok")
    assert path.visited == (
        "Defaults", "Reserve", "Charge", "NeedsApproval", "Ship", "Email", "Done"
    )  # fmt: skip
    assert (path.current, path.failed) == (None, None)
    marks = _marks(state_graph_svg(checkout_definition(), path, NAME))
    assert set(marks.values()) == {"visited"} and set(marks) == set(path.visited)


def test_a_waiting_execution_is_in_the_approval_state(env: WorkflowEnvironment) -> None:
    path = _path(env, "big", amount_cents=250_000, approval_timeout_s=600)
    assert path.current == "Approval" and path.failed is None
    svg = state_graph_svg(checkout_definition(), path, NAME)
    assert _marks(svg)["Approval"] == "current"
    assert _marks(svg)["Charge"] == "visited"
    assert "Ship" not in _marks(svg)
    # Not colour alone: the word is in the box and in its tooltip.
    approval = svg[svg.index('data-state="Approval"') :]
    approval = approval[: approval.index("</g>")]
    assert "▶ now" in approval and "<title>Approval (Task): ▶ now</title>" in approval


def test_a_failed_execution_is_marked_where_it_failed_after_its_compensation(
    env: WorkflowEnvironment,
) -> None:
    path = _path(env, "declined", card="tok_declined")
    assert path.visited == ("Defaults", "Reserve", "Charge", "ReleaseInventory", "Failed")
    assert (path.current, path.failed) == (None, "Failed")
    marks = _marks(state_graph_svg(checkout_definition(), path, NAME))
    assert marks["Failed"] == "failed" and marks["ReleaseInventory"] == "visited"


def test_a_history_the_definition_does_not_replay_gives_no_path_and_says_why(
    env: WorkflowEnvironment,
) -> None:
    history, status = _run(env, "other")
    changed = checkout_definition()
    changed["States"]["Reserve"]["Resource"] = "activity:something_else"
    path, problem = state_path(changed, history, status)
    assert path is None and problem is not None and "does not replay" in problem
    svg = state_graph_svg(changed, None, NAME)  # still drawn, nothing marked
    assert "data-mark" not in svg and svg.count('class="node"') >= 10


PARALLEL: dict[str, Any] = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                {
                    "StartAt": "B",
                    "States": {"B": {"Type": "Pass", "Next": "C"}, "C": {"Type": "Succeed"}},
                },
            ],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": True}}},
            "Next": "Again",
        },
        "Again": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.again", "BooleanEquals": True, "Next": "Fan"}],
            "Default": "Stop",
        },
        "Stop": {"Type": "Succeed"},
    },
}


def test_branches_are_drawn_inline_and_their_states_marked() -> None:
    path = StatePath(("Fan", "A", "B", "C", "Each", "Item"), "Item", None, "test")
    svg = state_graph_svg(PARALLEL, path, "fan")
    marks = _marks(svg)
    assert marks == {"Fan": "visited", "A": "visited", "B": "visited", "C": "visited",
                     "Each": "visited", "Item": "current"}  # fmt: skip
    assert svg.count('data-kind="Branch"') == 3 and svg.count('data-kind="Join"') == 3
    ys = {
        name: float(re.findall(rf'data-state="{name}".*?<rect x="[\d.]+" y="([\d.]+)"', svg)[0])
        for name in ("Fan", "A", "B", "Each", "Item", "Stop")
    }
    # Layered top to bottom: the branches under their Parallel, the Map after both branches.
    assert ys["Fan"] < ys["A"] < ys["Each"] < ys["Item"] < ys["Stop"]
    assert ys["A"] == ys["B"]


def test_the_registry_tells_a_state_machine_from_code() -> None:
    registry = _registry()
    assert is_state_machine(registry, NAME, 1) is True
    from sagaflow.examples.checkout import registry as code

    assert is_state_machine(code, "checkout", 1) is False
    assert is_state_machine(None, NAME, 1) is None
    assert is_state_machine(registry, NAME, 2) is None


def test_a_recorded_state_path_is_used_as_the_read_model_has_it() -> None:
    recorded = {
        "visited": ["Fan", "A", "B"],
        "active": [{"state": "Fan", "scope": ""}, {"state": "A", "scope": "Fan[0]"},
                   {"state": "B", "scope": "Fan[1]"}],
        "current": "B",
        "failed": None,
        "failed_scope": None,
    }  # fmt: skip
    # The events are not even looked at: no replay when transitions are recorded.
    path, problem = state_path(PARALLEL, [], "running", recorded)
    assert problem is None and path is not None
    assert (path.visited, path.current, path.active) == (("Fan", "A", "B"), "B", ("Fan", "A", "B"))
    assert path.source == "recorded state transitions"
    # Both branches run at once: both are marked as where the execution is now.
    assert _marks(state_graph_svg(PARALLEL, path, "fan")) == {
        "Fan": "current", "A": "current", "B": "current"
    }  # fmt: skip


@pytest.mark.parametrize("recorded", [None, {}], ids=["no column", "no transitions recorded"])
def test_without_a_recorded_path_the_run_is_replayed(
    env: WorkflowEnvironment, recorded: dict[str, Any] | None
) -> None:
    history, status = _run(env, f"old-{len(str(recorded))}", card="tok_declined")
    path, problem = state_path(checkout_definition(), history, status, recorded)
    assert problem is None and path is not None
    assert path.failed == "Failed" and path.source == "replayed from the event log"
