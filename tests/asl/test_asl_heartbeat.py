"""HeartbeatSeconds on an activity Task: the attempt gets the engine's heartbeat timeout, and a
Task whose activity goes silent fails with States.HeartbeatTimeout, which States.Timeout also
catches and States.TaskFailed does not (as AWS documents)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from sagaflow.asl.interpreter import register
from sagaflow.asl.model import load
from sagaflow.asl.run import WORKFLOW_ID, outcome_of
from sagaflow.core import messages as m
from sagaflow.testing import WorkflowEnvironment
from tests.asl import activities
from tests.asl.conftest import machine

pytestmark = pytest.mark.unit

_names = itertools.count()
SILENT_TASK = {"Type": "Task", "Resource": "activity:echo", "HeartbeatSeconds": 5}


def run_silent(definition: dict[str, Any], *, beat_at: tuple[float, ...] = ()) -> Any:
    """Run `definition` while every activity task is taken by a worker that heartbeats at
    `beat_at` seconds after it started and never reports: (outcome, tasks, history)."""
    name = f"heartbeat-{next(_names)}"
    register(activities.registry, name, load(json.dumps(definition)))
    with WorkflowEnvironment(activities.registry) as env:
        env.start(name, {"n": 1}, workflow_id=WORKFLOW_ID)
        scheduled: list[m.ActivityTask] = []
        for _ in range(50):
            if env.tasks:
                task = env.tasks.popleft()
                scheduled.append(task)
                started_ms = env.now_ms
                for at in beat_at:
                    env.advance((started_ms + at * 1000 - env.now_ms) / 1000)
                    env.send(
                        m.HeartbeatActivity(
                            task.workflow_id, task.run_id, task.activity_seq, task.attempt, b"1"
                        )
                    )
                continue
            due = env.engine.next_due_ms()
            if due is None:
                break
            env.advance((due - env.now_ms) / 1000)
        return outcome_of(env, WORKFLOW_ID), scheduled, env.history(WORKFLOW_ID)


def test_heartbeat_seconds_becomes_the_activity_heartbeat_timeout() -> None:
    outcome, scheduled, history = run_silent(machine(SILENT_TASK))
    assert [t.heartbeat_timeout_ms for t in scheduled] == [5_000]
    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "States.HeartbeatTimeout"
    failed = [e for e in history if isinstance(e.body, m.ActivityFailed)]
    assert failed[0].recorded_at_ms - history[0].recorded_at_ms == 5_000


def test_heartbeats_keep_a_task_alive_past_heartbeat_seconds() -> None:
    _, _, history = run_silent(machine(SILENT_TASK), beat_at=(4, 8, 12))
    failed = [e for e in history if isinstance(e.body, m.ActivityFailed)]
    assert failed[0].recorded_at_ms - history[0].recorded_at_ms == 17_000


@pytest.mark.parametrize(
    ("error_equals", "caught"),
    [
        (["States.HeartbeatTimeout"], True),
        (["States.Timeout"], True),
        (["States.ALL"], True),
        (["States.TaskFailed"], False),
    ],
)
def test_which_names_catch_a_heartbeat_timeout(error_equals: list[str], caught: bool) -> None:
    definition = {
        "StartAt": "S",
        "States": {
            "S": {**SILENT_TASK, "Next": "Done",
                  "Catch": [{"ErrorEquals": error_equals, "Next": "Caught"}]},
            "Caught": {"Type": "Pass", "Result": "caught", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }  # fmt: skip
    outcome, _, _ = run_silent(definition)
    if caught:
        assert outcome == {"status": "SUCCEEDED", "output": "caught"}
    else:
        assert (outcome["status"], outcome["error"]) == ("FAILED", "States.HeartbeatTimeout")


def test_a_heartbeat_timeout_is_retried_by_a_retrier_on_states_timeout() -> None:
    state = {**SILENT_TASK, "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 1,
                                       "IntervalSeconds": 1}]}  # fmt: skip
    outcome, scheduled, _ = run_silent(machine(state))
    assert len(scheduled) == 2
    assert outcome["error"] == "States.HeartbeatTimeout"
