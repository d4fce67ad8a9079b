"""Conformance: every state type and the data flow between states, through `sagaflow asl run`.

The cases follow the ASL specification's documented behaviour (input and output processing,
the context object, Map and Parallel results); each asserts an output that a wrong
implementation would change.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.asl.conftest import AslRun, machine

pytestmark = pytest.mark.unit

OK = "SUCCEEDED"


def succeeded(output: Any) -> dict[str, Any]:
    return {"status": OK, "output": output}


def failed(error: str | None, cause: str | None = None) -> dict[str, Any]:
    return {"status": "FAILED", "error": error, "cause": cause}


# ------------------------------------------------------------------ Pass and data flow

PASS_CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    ("input passes through", {"Type": "Pass"}, {"a": 1}, {"a": 1}),
    ("Result replaces the input", {"Type": "Pass", "Result": {"x": 1}}, {"a": 1}, {"x": 1}),
    (
        "ResultPath adds the result",
        {"Type": "Pass", "Result": "hi", "ResultPath": "$.greeting"},
        {"a": 1},
        {"a": 1, "greeting": "hi"},
    ),
    (
        "ResultPath creates missing parents",
        {"Type": "Pass", "Result": 7, "ResultPath": "$.a.b.c"},
        {"a": {}},
        {"a": {"b": {"c": 7}}},
    ),
    (
        "ResultPath overwrites a field",
        {"Type": "Pass", "Result": 2, "ResultPath": "$.a"},
        {"a": 1, "b": 1},
        {"a": 2, "b": 1},
    ),
    (
        "ResultPath null discards the result",
        {"Type": "Pass", "Result": "x", "ResultPath": None},
        {"a": 1},
        {"a": 1},
    ),
    (
        "InputPath selects, OutputPath filters",
        {"Type": "Pass", "InputPath": "$.inner", "OutputPath": "$.b"},
        {"inner": {"b": [2]}},
        [2],
    ),
    ("InputPath null gives {}", {"Type": "Pass", "InputPath": None}, {"a": 1}, {}),
    ("OutputPath null gives {}", {"Type": "Pass", "OutputPath": None}, {"a": 1}, {}),
    (
        "Parameters: static, .$ paths and the context object",
        {
            "Type": "Pass",
            "Parameters": {
                "static": "s",
                "v.$": "$.a",
                "name.$": "$$.Execution.Name",
                "state.$": "$$.State.Name",
                "machine.$": "$$.StateMachine.Name",
                "nested": {"deep.$": "$.b[1]"},
            },
        },
        {"a": 1, "b": [10, 20]},
        {
            "static": "s",
            "v": 1,
            "name": "asl-run",
            "state": "S",
            "machine": "machine",
            "nested": {"deep": 20},
        },
    ),
    (
        "Execution.Input is the execution's original input",
        {"Type": "Pass", "InputPath": "$.x", "Parameters": {"orig.$": "$$.Execution.Input"}},
        {"x": {"y": 1}},
        {"orig": {"x": {"y": 1}}},
    ),
    (
        "an indefinite path yields a list",
        {"Type": "Pass", "Parameters": {"names.$": "$.people[*].name"}},
        {"people": [{"name": "ann"}, {"name": "bo"}]},
        {"names": ["ann", "bo"]},
    ),
    (
        "a filter expression",
        {"Type": "Pass", "Parameters": {"dear.$": "$.items[?(@.price > 10)].sku"}},
        {"items": [{"sku": "a", "price": 5}, {"sku": "b", "price": 50}]},
        {"dear": ["b"]},
    ),
    (
        "Parameters then ResultPath keeps the raw input",
        {"Type": "Pass", "Parameters": {"k.$": "$.a"}, "ResultPath": "$.copy"},
        {"a": 1},
        {"a": 1, "copy": {"k": 1}},
    ),
    (
        "the start time is virtual",
        {"Type": "Pass", "Parameters": {"t.$": "$$.Execution.StartTime"}},
        {},
        {"t": "2026-01-01T00:00:00Z"},
    ),
]


@pytest.mark.parametrize(("state", "input", "output"), [c[1:] for c in PASS_CASES],
                         ids=[c[0] for c in PASS_CASES])  # fmt: skip
def test_pass_and_data_flow(
    asl_run: AslRun, state: dict[str, Any], input: Any, output: Any
) -> None:
    assert asl_run(machine(state), input) == succeeded(output)


@pytest.mark.parametrize(
    "state",
    [
        {"Type": "Pass", "InputPath": "$.missing"},
        {"Type": "Pass", "OutputPath": "$.missing"},
        {"Type": "Pass", "Parameters": {"x.$": "$.missing"}},
        {"Type": "Task", "Resource": "activity:echo", "ResultSelector": {"x.$": "$.missing"}},
        {
            "Type": "Map",
            "ItemsPath": "$.missing",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
        },
    ],
    ids=["InputPath", "OutputPath", "Parameters", "ResultSelector", "ItemsPath"],
)
def test_a_path_that_matches_nothing_is_states_runtime(
    asl_run: AslRun, state: dict[str, Any]
) -> None:
    outcome = asl_run(machine(state), {"a": 1})
    assert outcome["status"] == "FAILED"
    assert outcome["error"] == "States.Runtime"
    assert "$.missing" in outcome["cause"]


def test_result_path_into_a_non_object_is_result_path_match_failure(asl_run: AslRun) -> None:
    outcome = asl_run(machine({"Type": "Pass", "Result": 1, "ResultPath": "$.x"}), [1, 2])
    assert outcome["error"] == "States.ResultPathMatchFailure"


def test_the_aws_input_output_processing_example(asl_run: AslRun) -> None:
    """Parameters pick the operands, ResultPath files the sum under data, OutputPath keeps data."""
    state = {
        "Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:add",
        "Parameters": {"a.$": "$.data.val1", "b.$": "$.data.val2"},
        "ResultPath": "$.data.result",
        "OutputPath": "$.data",
    }
    data = {"comment": "c", "data": {"val1": 23, "val2": 17}, "extra": "foo"}
    assert asl_run(machine(state), data) == succeeded({"val1": 23, "val2": 17, "result": 40})


# ------------------------------------------------------------------ Task resources


def test_activity_resource_gets_the_effective_input(asl_run: AslRun) -> None:
    state = {"Type": "Task", "Resource": "activity:echo", "InputPath": "$.x"}
    assert asl_run(machine(state), {"x": {"y": 1}}) == succeeded({"y": 1})


def test_lambda_invoke_calls_the_bare_function_name_and_wraps_the_result(asl_run: AslRun) -> None:
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": "arn:aws:lambda:eu-west-1:123456789012:function:add:$LATEST",
            "Payload": {"a.$": "$.n", "b": 3},
        },
        "ResultSelector": {"sum.$": "$.Payload", "code.$": "$.StatusCode"},
    }
    assert asl_run(machine(state), {"n": 2}) == succeeded({"sum": 5, "code": 200})
    plain = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
             "Parameters": {"FunctionName": "echo", "Payload": {"v": 1}}}  # fmt: skip
    assert asl_run(machine(plain), {}) == succeeded(
        {"Payload": {"v": 1}, "StatusCode": 200, "ExecutedVersion": "$LATEST"}
    )


def test_an_unregistered_activity_fails_the_task_with_a_name_to_register(asl_run: AslRun) -> None:
    outcome = asl_run(machine({"Type": "Task", "Resource": "activity:nope"}), {})
    assert outcome["error"] == "Sagaflow.ActivityNotRegistered"
    assert "nope" in outcome["cause"]


# ------------------------------------------------------------------ Wait, Succeed, Fail


@pytest.mark.parametrize(
    ("wait", "input", "entered"),
    [
        ({"Seconds": 90}, {}, "2026-01-01T00:01:30Z"),
        ({"SecondsPath": "$.s"}, {"s": 3600}, "2026-01-01T01:00:00Z"),
        ({"Timestamp": "2026-01-02T00:00:00Z"}, {}, "2026-01-02T00:00:00Z"),
        ({"TimestampPath": "$.t"}, {"t": "2026-01-01T00:00:05+00:00"}, "2026-01-01T00:00:05Z"),
        ({"Timestamp": "2020-01-01T00:00:00Z"}, {}, "2026-01-01T00:00:00Z"),
        ({"Seconds": 0}, {}, "2026-01-01T00:00:00Z"),
    ],
    ids=["Seconds", "SecondsPath", "Timestamp", "TimestampPath", "past", "zero"],
)
def test_wait_is_a_durable_timer_on_virtual_time(
    asl_run: AslRun, wait: dict[str, Any], input: Any, entered: str
) -> None:
    definition = {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Next": "After", **wait},
            "After": {"Type": "Pass", "Parameters": {"t.$": "$$.State.EnteredTime"}, "End": True},
        },
    }
    assert asl_run(definition, input) == succeeded({"t": entered})


@pytest.mark.parametrize(
    ("wait", "input"),
    [({"SecondsPath": "$.s"}, {"s": "ten"}), ({"TimestampPath": "$.t"}, {"t": "tomorrow"}),
     ({"SecondsPath": "$.s"}, {"s": -1})],
    ids=["seconds-not-a-number", "not-a-timestamp", "negative"],
)  # fmt: skip
def test_wait_with_a_bad_value_is_states_runtime(
    asl_run: AslRun, wait: dict[str, Any], input: Any
) -> None:
    assert asl_run(machine({"Type": "Wait", **wait}), input)["error"] == "States.Runtime"


def test_succeed_applies_input_and_output_paths(asl_run: AslRun) -> None:
    state = {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}
    assert asl_run(machine(state), {"a": {"b": 5}}) == succeeded(5)


@pytest.mark.parametrize(
    ("state", "input", "outcome"),
    [
        ({"Type": "Fail", "Error": "E", "Cause": "C"}, {}, failed("E", "C")),
        ({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}, {"e": "X", "c": "Y"},
         failed("X", "Y")),
        ({"Type": "Fail", "Error": "E",
          "CausePath": "States.Format('order {} failed', $.id)"}, {"id": 7},
         failed("E", "order 7 failed")),
        ({"Type": "Fail"}, {}, failed(None, None)),
    ],
    ids=["static", "paths", "intrinsic", "bare"],
)  # fmt: skip
def test_fail(asl_run: AslRun, state: dict[str, Any], input: Any, outcome: Any) -> None:
    assert asl_run(machine(state), input) == outcome


# ------------------------------------------------------------------ Parallel


def _branch(state: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": "B", "States": {"B": {**state, "End": True}}}


def test_parallel_returns_the_branch_outputs_in_order(asl_run: AslRun) -> None:
    state = {
        "Type": "Parallel",
        "Branches": [
            _branch({"Type": "Task", "Resource": "activity:add"}),
            _branch({"Type": "Pass", "Parameters": {"first.$": "$.a"}}),
            _branch({"Type": "Wait", "Seconds": 5}),
        ],
        "ResultPath": "$.results",
    }
    assert asl_run(machine(state), {"a": 1, "b": 2}) == succeeded(
        {"a": 1, "b": 2, "results": [3, {"first": 1}, {"a": 1, "b": 2}]}
    )


def test_a_failing_branch_fails_the_parallel_state_with_its_error(asl_run: AslRun) -> None:
    broken = {"Type": "Fail", "Error": "BranchBroke", "Cause": "b2"}
    state = {
        "Type": "Parallel",
        "Branches": [_branch({"Type": "Pass"}), {"StartAt": "B", "States": {"B": broken}}],
    }
    assert asl_run(machine(state), {}) == failed("BranchBroke", "b2")


# ------------------------------------------------------------------ Map

_DOUBLE = {"StartAt": "D", "States": {"D": {"Type": "Task", "Resource": "activity:add",
                                             "End": True}}}  # fmt: skip


@pytest.mark.parametrize("concurrency", [{}, {"MaxConcurrency": 1}, {"MaxConcurrency": 2},
                                         {"MaxConcurrencyPath": "$.c"}])  # fmt: skip
def test_map_runs_the_processor_per_item_in_order(
    asl_run: AslRun, concurrency: dict[str, Any]
) -> None:
    state = {
        "Type": "Map",
        "ItemsPath": "$.xs",
        "ItemSelector": {"a.$": "$$.Map.Item.Value", "b.$": "$$.Map.Item.Index"},
        "ItemProcessor": _DOUBLE,
        "ResultPath": "$.ys",
        **concurrency,
    }
    assert asl_run(machine(state), {"xs": [10, 20, 30], "c": 1}) == succeeded(
        {"xs": [10, 20, 30], "c": 1, "ys": [10, 21, 32]}
    )


def test_map_legacy_iterator_and_parameters(asl_run: AslRun) -> None:
    state = {"Type": "Map", "Iterator": _DOUBLE,
             "Parameters": {"a.$": "$$.Map.Item.Value", "b": 100}}  # fmt: skip
    assert asl_run(machine(state), [1, 2]) == succeeded([101, 102])


def test_map_over_an_empty_array_is_an_empty_array(asl_run: AslRun) -> None:
    assert asl_run(machine({"Type": "Map", "ItemProcessor": _DOUBLE}), []) == succeeded([])


def test_map_over_a_non_array_is_states_runtime(asl_run: AslRun) -> None:
    outcome = asl_run(machine({"Type": "Map", "ItemProcessor": _DOUBLE}), {"a": 1})
    assert outcome["error"] == "States.Runtime"


_MAYBE_FAIL = {
    "StartAt": "C",
    "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericGreaterThan": 0,
                                             "Next": "Bad"}], "Default": "Ok"},
        "Bad": {"Type": "Fail", "Error": "ItemFailed", "Cause": "positive"},
        "Ok": {"Type": "Succeed"},
    },
}  # fmt: skip


@pytest.mark.parametrize(
    ("tolerance", "items", "outcome"),
    [
        ({}, [0, 1], failed("ItemFailed", "positive")),
        ({"ToleratedFailureCount": 1}, [0, 1, 0],
         succeeded([0, {"Error": "ItemFailed", "Cause": "positive"}, 0])),
        ({"ToleratedFailureCount": 1}, [1, 1, 0], "States.ExceedToleratedFailureThreshold"),
        ({"ToleratedFailurePercentage": 50}, [1, 0], succeeded(
            [{"Error": "ItemFailed", "Cause": "positive"}, 0])),
        ({"ToleratedFailurePercentage": 50}, [1, 1, 0], "States.ExceedToleratedFailureThreshold"),
        ({"ToleratedFailureCountPath": "$[3]"}, [1, 0, 0, 1],
         "States.ExceedToleratedFailureThreshold"),
    ],
    ids=["none", "count-ok", "count-over", "pct-ok", "pct-over", "count-path"],
)  # fmt: skip
def test_map_tolerated_failures(
    asl_run: AslRun, tolerance: dict[str, Any], items: list[int], outcome: Any
) -> None:
    got = asl_run(machine({"Type": "Map", "ItemProcessor": _MAYBE_FAIL, **tolerance}), items)
    if isinstance(outcome, str):
        assert (got["status"], got["error"]) == ("FAILED", outcome)
    else:
        assert got == outcome


def test_yaml_and_json_are_the_same_document(asl_run: AslRun) -> None:
    definition = machine({"Type": "Pass", "Result": {"k": [1, "two", None]}})
    assert asl_run(definition, {}, fmt="yaml") == asl_run(definition, {}, fmt="json")
