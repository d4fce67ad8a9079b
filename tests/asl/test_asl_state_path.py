"""Every state transition is an event of its own (StateTransitioned): what the interpreter
records, that replay holds the records to it, how the CLI reads them, and the state path the
read model folds from them (tests/histories/asl/state_events_*)."""

from __future__ import annotations

import dataclasses

import pytest

from sagaflow.cli.output import describe
from sagaflow.core import messages as m
from sagaflow.core.errors import NonDeterminismError
from sagaflow.core.replay import replay
from sagaflow.readmodel.fold import WorkflowRow, apply_event
from sagaflow.testing import history_from_json
from tests.histories.asl import record

pytestmark = pytest.mark.unit


def recorded(run: str, prefix: str = "state_events") -> list[m.Event]:
    return history_from_json((record.HERE / f"{prefix}_{run}.json").read_text())


def transitions(history: list[m.Event]) -> list[tuple[str, str, str]]:
    return [
        (e.body.state, e.body.transition, e.body.scope)
        for e in history
        if isinstance(e.body, m.StateTransitioned)
    ]


def folded(history: list[m.Event]) -> WorkflowRow:
    row = None
    for event in history:
        row = apply_event(row, event)
    assert row is not None
    return row


def test_each_state_is_entered_and_left_once_with_its_output_and_next_state() -> None:
    history = recorded("completed")
    steps = transitions(history)
    top = [(s, t) for s, t, scope in steps if not scope]
    assert top == [
        (name, t)
        for name in ("Init", "Route", "Fan", "Approve", "Done")
        for t in ("entered", "succeeded")
    ]
    # the Map's iterations: each item runs Add then Nap in a scope of its own
    assert [(s, t) for s, t, scope in steps if scope == "Fan[2]"] == [
        ("Add", "entered"), ("Add", "succeeded"), ("Nap", "entered"), ("Nap", "succeeded")
    ]  # fmt: skip
    route = next(
        e.body
        for e in history
        if isinstance(e.body, m.StateTransitioned) and e.body.state == "Route"
        and e.body.transition == "succeeded"
    )  # fmt: skip
    assert (route.state_type, route.next_state) == ("Choice", "Fan")
    assert b'"xs":[1,2,3]' in route.output


def test_a_caught_error_is_a_failed_exit_with_a_next_state() -> None:
    history = recorded("caught_branch_failure")
    exits = {
        (e.body.state, e.body.scope): e.body
        for e in history
        if isinstance(e.body, m.StateTransitioned) and e.body.transition == "failed"
    }
    assert set(exits) == {("F", "Both[1]"), ("Both", "")}
    assert (exits["F", "Both[1]"].error, exits["F", "Both[1]"].next_state) == ("Boom", "")
    assert (exits["Both", ""].error, exits["Both", ""].next_state) == ("Boom", "Fan")
    event = next(e for e in history if e.body == exits["Both", ""])
    assert describe(event) == "state Both (Parallel) failed: Boom: it failed (caught) -> Fan"


def test_replay_holds_the_code_to_its_recorded_state_transitions() -> None:
    history = recorded("completed")
    index = next(
        i
        for i, e in enumerate(history)
        if isinstance(e.body, m.StateTransitioned) and e.body.transition == "succeeded"
    )
    body = history[index].body
    assert isinstance(body, m.StateTransitioned)
    history[index] = dataclasses.replace(
        history[index], body=dataclasses.replace(body, output=b'{"other":1}')
    )
    with pytest.raises(NonDeterminismError) as info:
        replay(record.registry(), history)
    assert info.value.seq == history[index].seq
    assert "state 'Init' succeeded" in info.value.code_did


def test_the_read_model_folds_the_state_path() -> None:
    done = folded(recorded("completed")).state_path
    assert done is not None
    assert done["visited"] == ["Init", "Route", "Fan", "Add", "Nap", "Approve", "Done"]
    assert (done["current"], done["failed"], done["active"]) == (None, None, [])

    failed = folded(recorded("failed")).state_path
    assert failed is not None
    assert (failed["visited"], failed["failed"]) == (["Init", "Route", "Abort"], "Abort")

    caught = recorded("caught_branch_failure")
    assert folded(caught).state_path["failed"] is None  # type: ignore[index]
    # Mid-run: branch F has failed (innermost failing state) while branch W still waits.
    cut = next(
        i + 1
        for i, e in enumerate(caught)
        if isinstance(e.body, m.StateTransitioned) and e.body.state == "F"
        and e.body.transition == "failed"
    )  # fmt: skip
    mid = folded(caught[:cut]).state_path
    assert mid is not None
    assert mid["failed"] == "F" and mid["current"] == "W"
    assert mid["active"] == [{"state": "Both", "scope": ""}, {"state": "W", "scope": "Both[0]"}]
    # Once the Parallel state catches the error, nothing is failing any more.
    after_catch = folded(caught[: cut + 1]).state_path
    assert after_catch is not None and after_catch["failed"] is None


def test_a_stopped_sibling_is_recorded_cancelled_and_leaves_the_state_path() -> None:
    history = recorded("caught_branch_failure", prefix="cancel_siblings")
    steps = transitions(history)
    f_failed = steps.index(("F", "failed", "Both[1]"))
    assert steps[f_failed + 1 : f_failed + 3] == [
        ("W", "cancelled", "Both[0]"), ("Both", "failed", "")
    ]  # fmt: skip
    both = next(i for i, e in enumerate(history) if isinstance(e.body, m.StateTransitioned)
                and (e.body.state, e.body.transition) == ("Both", "failed"))  # fmt: skip
    path = folded(history[: both + 1]).state_path
    assert path is not None
    assert (path["active"], path["current"], path["failed"]) == ([], None, None)


def test_executions_recorded_before_state_transitions_have_no_state_path() -> None:
    old = history_from_json((record.HERE / "before_state_events_completed.json").read_text())
    assert transitions(old) == []
    assert folded(old).state_path is None


def test_sagaflow_show_prints_the_state_path() -> None:
    from sagaflow.cli.views import _show_text

    row = folded(recorded("failed"))
    shown = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    text = _show_text(row.workflow_id, shown, [])
    assert "state     -  (visited Init, Route, Abort; failed in Abort)" in text


def test_an_output_over_the_limit_is_recorded_as_its_size() -> None:
    import json

    from sagaflow.asl.interpreter import RECORDED_OUTPUT_LIMIT, register
    from sagaflow.asl.model import load
    from sagaflow.testing import WorkflowEnvironment
    from sagaflow.workflow import Registry

    big = "x" * RECORDED_OUTPUT_LIMIT
    registry = Registry()
    definition = {"StartAt": "Big", "States": {"Big": {"Type": "Pass", "Result": big,
                                                       "Next": "Small"},
                                               "Small": {"Type": "Pass", "Result": 1,
                                                         "End": True}}}  # fmt: skip
    register(registry, "big", load(json.dumps(definition)))
    with WorkflowEnvironment(registry) as env:
        env.start("big", None, workflow_id="b")
        env.run()
        assert env.result("b") == 1
        left = {
            e.body.state: e.body.output
            for e in env.history("b")
            if isinstance(e.body, m.StateTransitioned) and e.body.transition == "succeeded"
        }
    assert left == {"Big": b'{"sagaflow.output_bytes":%d}' % (len(big) + 2), "Small": b"1"}
