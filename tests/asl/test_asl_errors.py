"""Conformance: Retry, Catch, error names, timeouts (task, heartbeat, execution) and task
tokens, through `sagaflow asl run` or its function (`run_definition`) where a test must act
while the execution waits."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from sagaflow.asl import tokens
from sagaflow.asl.interpreter import register
from sagaflow.asl.model import load
from sagaflow.asl.run import WORKFLOW_ID, outcome_of, run_definition
from sagaflow.core import messages as m
from sagaflow.testing import WorkflowEnvironment
from tests.asl import activities
from tests.asl.conftest import AslRun, machine

pytestmark = pytest.mark.unit

_keys = itertools.count()


def flaky(failures: int, error: str = "Flaky") -> dict[str, Any]:
    """A Task state calling `flaky`, which fails `failures` times before it succeeds."""
    key = f"k{next(_keys)}"
    return {"Type": "Task", "Resource": "activity:flaky",
            "Parameters": {"key": key, "failures": failures, "error": error}}  # fmt: skip


# ------------------------------------------------------------------ Retry


@pytest.mark.parametrize(
    ("failures", "retrier", "outcome"),
    [
        (2, {"ErrorEquals": ["Flaky"], "MaxAttempts": 2}, {"calls": 3}),
        (3, {"ErrorEquals": ["Flaky"], "MaxAttempts": 2}, "Flaky"),
        (1, {"ErrorEquals": ["Flaky"], "MaxAttempts": 0}, "Flaky"),
        (2, {"ErrorEquals": ["Flaky"]}, {"calls": 3}),
        (3, {"ErrorEquals": ["Flaky"]}, {"calls": 4}),
        (4, {"ErrorEquals": ["Flaky"]}, "Flaky"),
        (1, {"ErrorEquals": ["States.ALL"]}, {"calls": 2}),
        (1, {"ErrorEquals": ["States.TaskFailed"]}, {"calls": 2}),
        (1, {"ErrorEquals": ["Other"]}, "Flaky"),
    ],
    ids=["within", "exhausted", "max-attempts-0", "default-3", "default-3-last",
         "default-3-over", "all", "task-failed", "no-match"],
)  # fmt: skip
def test_retry(asl_run: AslRun, failures: int, retrier: dict[str, Any], outcome: Any) -> None:
    got = asl_run(machine({**flaky(failures), "Retry": [retrier]}), {})
    if isinstance(outcome, str):
        assert (got["status"], got["error"]) == ("FAILED", outcome)
    else:
        assert got == {"status": "SUCCEEDED", "output": outcome}


def test_each_retrier_counts_its_own_attempts(asl_run: AslRun) -> None:
    retry = [{"ErrorEquals": ["Other"], "MaxAttempts": 5}, {"ErrorEquals": ["Flaky"],
             "MaxAttempts": 1}]  # fmt: skip
    assert asl_run(machine({**flaky(2), "Retry": retry}), {})["error"] == "Flaky"


def _retry_delays(definition: dict[str, Any]) -> list[int]:
    registry = activities.registry
    name = f"delays-{next(_keys)}"
    register(registry, name, load_definition(definition))
    with WorkflowEnvironment(registry) as env:
        env.start(name, {}, workflow_id="d")
        env.run()
        return [
            e.body.fire_at_ms - e.recorded_at_ms
            for e in env.history("d")
            if isinstance(e.body, m.TimerStarted)
        ]


def load_definition(definition: dict[str, Any]) -> dict[str, Any]:
    return load(json.dumps(definition))


def test_retry_interval_backoff_and_max_delay() -> None:
    retrier = {"ErrorEquals": ["Flaky"], "IntervalSeconds": 3, "BackoffRate": 2,
               "MaxDelaySeconds": 5, "MaxAttempts": 3}  # fmt: skip
    assert _retry_delays(machine({**flaky(3), "Retry": [retrier]})) == [3000, 5000, 5000]
    plain = {"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 1.5}
    assert _retry_delays(machine({**flaky(3), "Retry": [plain]})) == [2000, 3000, 4500]


def test_full_jitter_is_below_the_backoff_and_the_same_on_every_run() -> None:
    retrier = {"ErrorEquals": ["Flaky"], "IntervalSeconds": 10, "MaxAttempts": 3,
               "JitterStrategy": "FULL"}  # fmt: skip
    first = _retry_delays(machine({**flaky(3), "Retry": [retrier]}))
    second = _retry_delays(machine({**flaky(3), "Retry": [retrier]}))
    assert first == second
    assert all(0 <= d < cap for d, cap in zip(first, [10_000, 20_000, 40_000], strict=True))
    assert first != [10_000, 20_000, 40_000]


def test_retry_count_is_in_the_context_object(asl_run: AslRun) -> None:
    state = flaky(2)
    state["Parameters"]["n.$"] = "$$.State.RetryCount"
    state["Retry"] = [{"ErrorEquals": ["Flaky"]}]
    state["ResultSelector"] = {"calls.$": "$.calls"}
    activities.seen.clear()
    assert asl_run(machine(state), {}) == {"status": "SUCCEEDED", "output": {"calls": 3}}


# ------------------------------------------------------------------ error names and Catch


def test_application_error_type_and_python_exceptions_are_error_names(asl_run: AslRun) -> None:
    fail = {"Type": "Task", "Resource": "activity:fail",
            "Parameters": {"error": "Payment.Declined", "cause": "card expired"}}  # fmt: skip
    assert asl_run(machine(fail), {}) == {
        "status": "FAILED", "error": "Payment.Declined", "cause": "card expired"}  # fmt: skip
    crash = asl_run(machine({"Type": "Task", "Resource": "activity:crash"}), {})
    assert (crash["error"], crash["cause"]) == ("ValueError", "not a number")


def _catching(catchers: list[dict[str, Any]], error: str = "Boom") -> dict[str, Any]:
    states = {
        "T": {"Type": "Task", "Resource": "activity:fail", "Parameters": {"error": error},
              "Catch": catchers, "Next": "Done"},
        "Handler": {"Type": "Pass", "End": True},
        "Done": {"Type": "Succeed"},
    }  # fmt: skip
    if any(c["Next"] == "Other" for c in catchers):
        states["Other"] = {"Type": "Pass", "Result": "other", "End": True}
    return {"StartAt": "T", "States": states}


@pytest.mark.parametrize(
    ("catchers", "error", "output"),
    [
        ([{"ErrorEquals": ["Boom"], "Next": "Handler"}], "Boom",
         {"Error": "Boom", "Cause": "it failed"}),
        ([{"ErrorEquals": ["Boom"], "Next": "Handler", "ResultPath": "$.err"}], "Boom",
         {"order": 1, "err": {"Error": "Boom", "Cause": "it failed"}}),
        ([{"ErrorEquals": ["Boom"], "Next": "Handler", "ResultPath": None}], "Boom", {"order": 1}),
        ([{"ErrorEquals": ["Nope"], "Next": "Other"},
          {"ErrorEquals": ["States.ALL"], "Next": "Handler", "ResultPath": "$.e"}], "Boom",
         {"order": 1, "e": {"Error": "Boom", "Cause": "it failed"}}),
        ([{"ErrorEquals": ["States.TaskFailed"], "Next": "Other"},
          {"ErrorEquals": ["States.ALL"], "Next": "Handler"}], "Boom", "other"),
    ],
    ids=["default-result-path", "result-path", "result-path-null", "second-catcher",
         "first-wins"],
)  # fmt: skip
def test_catch(asl_run: AslRun, catchers: list[Any], error: str, output: Any) -> None:
    assert asl_run(_catching(catchers, error), {"order": 1}) == {
        "status": "SUCCEEDED", "output": output}  # fmt: skip


def test_states_runtime_is_caught_by_nothing(asl_run: AslRun) -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": {"Type": "Pass", "Parameters": {"x.$": "$.missing"}, "Next": "Done",
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"},
                            {"ErrorEquals": ["States.Runtime"], "Next": "Done"}]},
            "Done": {"Type": "Succeed"},
        },
    }  # fmt: skip
    definition["States"]["T"]["Type"] = "Task"
    definition["States"]["T"]["Resource"] = "activity:echo"
    assert asl_run(definition, {})["error"] == "States.Runtime"


def test_parallel_and_map_catch_and_retry_their_failures(asl_run: AslRun) -> None:
    inner = {"StartAt": "F", "States": {"F": {**flaky(1), "End": True}}}
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [inner],
                  "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1}], "Next": "M"},
            "M": {"Type": "Map", "ItemsPath": "$.xs",
                  "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Fail",
                                    "Error": "ItemBad"}}},
                  "Catch": [{"ErrorEquals": ["ItemBad"], "Next": "H", "ResultPath": "$.e"}],
                  "End": True},
            "H": {"Type": "Pass", "OutputPath": "$.e.Error", "End": True},
        },
    }  # fmt: skip
    definition["States"]["P"]["ResultPath"] = "$.p"
    assert asl_run(definition, {"xs": [1]}) == {"status": "SUCCEEDED", "output": "ItemBad"}


# ------------------------------------------------------------------ timeouts


def test_task_timeout_seconds_is_states_timeout_and_catchable() -> None:
    definition = load_definition({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "activity:echo", "TimeoutSeconds": 10,
                  "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Late"}], "End": True},
            "Late": {"Type": "Pass", "Parameters": {"t.$": "$$.State.EnteredTime",
                                                    "e.$": "$.Error"}, "End": True},
        },
    })  # fmt: skip
    registry = activities.registry
    name = f"timeout-{next(_keys)}"
    register(registry, name, definition)
    with WorkflowEnvironment(registry) as env:
        env.start(name, {}, workflow_id=WORKFLOW_ID)
        assert [t.activity_name for t in env.tasks] == ["echo"]
        env.tasks.clear()  # the worker never answers: the attempt must time out
        env.run()
        late = {"t": "2026-01-01T00:00:10Z", "e": "States.Timeout"}
        assert outcome_of(env, WORKFLOW_ID) == {"status": "SUCCEEDED", "output": late}


def test_execution_timeout_seconds_times_the_execution_out(asl_run: AslRun) -> None:
    definition = {"TimeoutSeconds": 10, "StartAt": "W",
                  "States": {"W": {"Type": "Wait", "Seconds": 100, "End": True}}}  # fmt: skip
    outcome = asl_run(definition, {})
    assert (outcome["status"], outcome["error"]) == ("TIMED_OUT", "States.Timeout")


def test_execution_timeout_is_not_caught_by_a_catch(asl_run: AslRun) -> None:
    loop = {"TimeoutSeconds": 30, "StartAt": "T", "States": {
        "T": {**flaky(100), "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 99,
              "BackoffRate": 1, "IntervalSeconds": 7}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True},
        "Caught": {"Type": "Succeed"}}}  # fmt: skip
    assert asl_run(loop, {})["status"] == "TIMED_OUT"


# ------------------------------------------------------------------ task tokens

_TOKEN_TASK = {
    "Type": "Task",
    "Resource": "activity:remember_token.waitForTaskToken",
    "Parameters": {"token.$": "$$.Task.Token", "order.$": "$.order"},
}


def _answer(payload: dict[str, Any]) -> Any:
    def answer(env: WorkflowEnvironment) -> None:
        token = tokens.TaskToken.decode(activities.tokens[-1])
        assert token.workflow_id == WORKFLOW_ID
        assert env.status(WORKFLOW_ID) == "running"  # it waits, as a signal wait does
        env.signal(token.workflow_id, token.signal, payload)

    return answer


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        (tokens.success({"approved": True}),
         {"status": "SUCCEEDED", "output": {"order": 7, "answer": {"approved": True}}}),
        (tokens.failure("Rejected", "no budget"),
         {"status": "FAILED", "error": "Rejected", "cause": "no budget"}),
    ],
    ids=["success", "failure"],
)  # fmt: skip
def test_wait_for_task_token(payload: dict[str, Any], outcome: Any) -> None:
    definition = load_definition(machine({**_TOKEN_TASK, "ResultPath": "$.answer"}))
    assert run_definition(definition, {"order": 7}, activities.registry,
                          on_env=_answer(payload)) == outcome  # fmt: skip


def test_task_token_timeout_and_heartbeat() -> None:
    timed = load_definition(machine({**_TOKEN_TASK, "TimeoutSeconds": 60}))
    outcome = run_definition(timed, {"order": 1}, activities.registry)
    assert (outcome["status"], outcome["error"]) == ("FAILED", "States.Timeout")
    beating = load_definition(machine({**_TOKEN_TASK, "HeartbeatSeconds": 5}))
    outcome = run_definition(beating, {"order": 1}, activities.registry)
    assert (outcome["status"], outcome["error"]) == ("FAILED", "States.Timeout")

    def heartbeat_then_answer(env: WorkflowEnvironment) -> None:
        token = tokens.TaskToken.decode(activities.tokens[-1])
        for _ in range(3):  # each heartbeat restarts the 5 s heartbeat window
            env.advance(4)
            env.signal(token.workflow_id, token.signal, tokens.heartbeat())
        env.advance(4)
        env.signal(token.workflow_id, token.signal, tokens.success("done"))

    registry = activities.registry
    name = f"beat-{next(_keys)}"
    register(registry, name, beating)
    with WorkflowEnvironment(registry) as env:
        env.start(name, {"order": 1}, workflow_id=WORKFLOW_ID)
        env.run(advance_time=False)
        heartbeat_then_answer(env)
        env.run()
        assert outcome_of(env, WORKFLOW_ID) == {"status": "SUCCEEDED", "output": "done"}


def test_a_bad_task_token_is_refused_with_advice() -> None:
    with pytest.raises(tokens.TaskTokenError, match=r"\$\$\.Task\.Token"):
        tokens.TaskToken.decode("not-a-token")
