"""Parallel and Map: when one branch (or item) fails, the others are stopped, as AWS stops them:
their timers cancelled, their task-token waits abandoned, nothing new scheduled in them, and
each stopped state recorded as cancelled. Through `sagaflow asl run`, and on the engine's events
(executions recorded before the change keep their siblings running: see the replay tests)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from sagaflow.asl.interpreter import PATCHES, RECORD_STATES, register
from sagaflow.asl.model import load
from sagaflow.core import messages as m
from sagaflow.testing import WorkflowEnvironment
from sagaflow.workflow import Registry
from tests.asl import activities
from tests.asl.conftest import AslRun

pytestmark = pytest.mark.unit

FAIL_TASK = {"Type": "Task", "Resource": "activity:fail", "Parameters": {"error": "Boom"}}
FAILING = {"StartAt": "F", "States": {"F": {**FAIL_TASK, "End": True}}}


def late_echo(marker: str, seconds: int = 100) -> dict[str, Any]:
    """A branch that waits, then calls echo with `marker` (what a stopped branch never does)."""
    return {
        "StartAt": "Nap",
        "States": {
            "Nap": {"Type": "Wait", "Seconds": seconds, "Next": "Late"},
            "Late": {"Type": "Task", "Resource": "activity:echo",
                     "Parameters": {"late": marker}, "End": True},
        },
    }  # fmt: skip


def caught(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with its error caught into a long Wait: the execution outlives the siblings'
    timers, so a sibling left running would get to call its activity."""
    return {
        "StartAt": "S",
        "States": {
            "S": {**state, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Linger",
                                      "ResultPath": "$.err"}], "End": True},
            "Linger": {"Type": "Wait", "Seconds": 1000, "End": True},
        },
    }  # fmt: skip


def echoed(marker: str) -> list[Any]:
    return [s["arg"] for s in activities.seen if s["arg"].get("late") == marker]


def test_a_failing_parallel_branch_stops_its_sibling(asl_run: AslRun) -> None:
    marker = uuid.uuid4().hex
    state = {"Type": "Parallel", "Branches": [late_echo(marker), FAILING]}
    outcome = asl_run(caught(state), {"a": 1})
    error = {"Error": "Boom", "Cause": "it failed"}
    assert outcome == {"status": "SUCCEEDED", "output": {"a": 1, "err": error}}
    assert echoed(marker) == []


def test_a_failing_map_item_stops_the_items_in_flight_and_starts_no_more(asl_run: AslRun) -> None:
    marker = uuid.uuid4().hex
    processor = {
        "StartAt": "Which",
        "States": {
            "Which": {"Type": "Choice", "Choices": [
                {"Variable": "$.fail", "BooleanEquals": True, "Next": "Bad"}], "Default": "Nap"},
            "Bad": {"Type": "Fail", "Error": "ItemFailed", "Cause": "bad item"},
            "Nap": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Late"},
            "Late": {"Type": "Task", "Resource": "activity:echo",
                     "Parameters": {"late": marker, "i.$": "$.i"}, "End": True},
        },
    }  # fmt: skip
    items = [{"i": 0, "wait": 100, "fail": False}, {"i": 1, "wait": 0, "fail": True}]
    items += [{"i": i, "wait": 0, "fail": False} for i in (2, 3)]
    state = {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
             "ItemProcessor": processor}  # fmt: skip
    outcome = asl_run(caught(state), {"items": items})
    assert outcome["status"] == "SUCCEEDED"
    assert echoed(marker) == []


def test_a_tolerated_map_failure_stops_nothing(asl_run: AslRun) -> None:
    marker = uuid.uuid4().hex
    processor = {
        "StartAt": "Which",
        "States": {
            "Which": {"Type": "Choice", "Choices": [
                {"Variable": "$", "NumericEquals": 1, "Next": "Bad"}], "Default": "Late"},
            "Bad": {"Type": "Fail", "Error": "ItemFailed", "Cause": "bad item"},
            "Late": {"Type": "Task", "Resource": "activity:echo",
                     "Parameters": {"late": marker, "i.$": "$"}, "End": True},
        },
    }  # fmt: skip
    state = {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
             "ToleratedFailureCount": 1, "ItemProcessor": processor}  # fmt: skip
    assert asl_run(caught(state), {"items": [0, 1, 2]})["status"] == "SUCCEEDED"
    assert sorted(a["i"] for a in echoed(marker)) == [0, 2]


def _registry(definition: dict[str, Any], patches: tuple[str, ...]) -> Registry:
    reg = Registry()
    for activity in activities.registry.activities.values():
        reg.activity(name=activity.name, task_queue=activity.task_queue)(activity.fn)
    register(reg, "m", load(json.dumps(definition)), patches=patches)
    return reg


def _run(definition: dict[str, Any], patches: tuple[str, ...]) -> list[m.Event]:
    with WorkflowEnvironment(_registry(definition, patches)) as env:
        env.start("m", {}, workflow_id="w")
        env.run()
        assert env.status("w") == "completed"
        return env.history("w")


def test_on_the_events_a_stopped_branch_cancels_its_timers_and_abandons_its_token_wait() -> None:
    waits_for_token = {
        "StartAt": "Ask",
        "States": {"Ask": {"Type": "Task", "Resource": "activity:remember_token.waitForTaskToken",
                           "Parameters": {"token.$": "$$.Task.Token"}, "TimeoutSeconds": 500,
                           "End": True}},
    }  # fmt: skip
    nap = {"Type": "Wait", "Seconds": 10, "Next": "F"}
    late_failure = {"StartAt": "Nap", "States": {"Nap": nap, "F": {**FAIL_TASK, "End": True}}}
    definition = caught({"Type": "Parallel",
                         "Branches": [late_echo("x"), waits_for_token, late_failure]})  # fmt: skip
    history = _run(definition, PATCHES)
    failed_at = next(i for i, e in enumerate(history) if isinstance(e.body, m.ActivityFailed))
    after = [e.body for e in history[failed_at:]]
    # the 100 s Wait's timer and the token wait's 500 s timeout are both cancelled at once
    cancelled_timers = {b.timer_seq for b in after if isinstance(b, m.TimerCancelled)}
    started = {b.timer_seq: b.fire_at_ms for b in (e.body for e in history)
               if isinstance(b, m.TimerStarted)}  # fmt: skip
    t0 = history[0].recorded_at_ms
    assert sorted(started[s] - t0 for s in cancelled_timers) == [100_000, 500_000]
    # nothing is scheduled in the stopped branches afterwards
    assert [b.activity_name for b in after if isinstance(b, m.ActivityScheduled)] == []
    stopped = {(b.state, b.scope) for b in after
               if isinstance(b, m.StateTransitioned) and b.transition == "cancelled"}  # fmt: skip
    assert stopped == {("Nap", "S[0]"), ("Ask", "S[1]")}

    # The interpreter before the change let the siblings run on: the 100 s Wait fires and its
    # branch calls echo (so the assertions above would fail there).
    old = _run(definition, (RECORD_STATES,))
    assert "echo" in [e.body.activity_name for e in old if isinstance(e.body, m.ActivityScheduled)]


def test_a_stopped_branch_asks_its_running_activity_to_stop() -> None:
    task = {"Type": "Task", "Resource": "activity:echo", "Parameters": {"late": "running"}}
    echo = {"StartAt": "E", "States": {"E": {**task, "End": True}}}
    # The failing branch's task runs first (tasks run in the order scheduled), while the echo
    # task of the other branch is still running.
    definition = caught({"Type": "Parallel", "Branches": [FAILING, echo]})
    history = _run(definition, PATCHES)
    scheduled = [e.body for e in history if isinstance(e.body, m.ActivityScheduled)]
    (echo_seq,) = [b.activity_seq for b in scheduled if b.activity_name == "echo"]
    requested = [e.body.activity_seq for e in history
                 if isinstance(e.body, m.ActivityCancelRequested)]  # fmt: skip
    assert requested == [echo_seq]
    stopped = [(e.body.state, e.body.transition) for e in history
               if isinstance(e.body, m.StateTransitioned) and e.body.scope == "S[1]"]  # fmt: skip
    assert stopped == [("E", "entered"), ("E", "cancelled")]
    # Before the change the running activity was left alone.
    old = _run(definition, (RECORD_STATES,))
    assert not [e for e in old if isinstance(e.body, m.ActivityCancelRequested)]
