"""Conformance: Choice, operator by operator (and each `...Path` variant), And/Or/Not, the type
tests, StringMatches, Default, States.NoChoiceMatched and a missing Variable."""

from __future__ import annotations

from typing import Any

import pytest

from tests.asl.conftest import AslRun

pytestmark = pytest.mark.unit


def choose(rule: dict[str, Any], default: bool = True) -> dict[str, Any]:
    choice: dict[str, Any] = {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}]}
    states = {"C": choice, "Yes": {"Type": "Pass", "Result": "yes", "End": True}}
    if default:
        choice["Default"] = "No"
        states["No"] = {"Type": "Pass", "Result": "no", "End": True}
    return {"StartAt": "C", "States": states}


# (operator, value at $.v, operand, expected match)
COMPARISONS: list[tuple[str, Any, Any, bool]] = [
    ("StringEquals", "abc", "abc", True),
    ("StringEquals", "abc", "abd", False),
    ("StringEquals", 1, "1", False),
    ("StringLessThan", "abc", "abd", True),
    ("StringLessThan", "abd", "abc", False),
    ("StringGreaterThan", "b", "a", True),
    ("StringGreaterThan", "a", "a", False),
    ("StringLessThanEquals", "a", "a", True),
    ("StringLessThanEquals", "b", "a", False),
    ("StringGreaterThanEquals", "a", "a", True),
    ("StringGreaterThanEquals", "a", "b", False),
    ("NumericEquals", 3, 3.0, True),
    ("NumericEquals", 3, 4, False),
    ("NumericEquals", "3", 3, False),
    ("NumericEquals", True, 1, False),
    ("NumericLessThan", 1, 2, True),
    ("NumericLessThan", 2, 2, False),
    ("NumericGreaterThan", 2.5, 2, True),
    ("NumericGreaterThan", 2, 2, False),
    ("NumericLessThanEquals", 2, 2, True),
    ("NumericLessThanEquals", 3, 2, False),
    ("NumericGreaterThanEquals", 2, 2, True),
    ("NumericGreaterThanEquals", 1, 2, False),
    ("BooleanEquals", True, True, True),
    ("BooleanEquals", False, True, False),
    ("BooleanEquals", 1, True, False),
    ("TimestampEquals", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", True),
    ("TimestampEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", False),
    ("TimestampEquals", "not a time", "2026-01-01T00:00:00Z", False),
    ("TimestampLessThan", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", True),
    ("TimestampLessThan", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", False),
    ("TimestampGreaterThan", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("TimestampGreaterThan", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", False),
    ("TimestampLessThanEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("TimestampLessThanEquals", "2026-01-03T00:00:00Z", "2026-01-01T00:00:00Z", False),
    ("TimestampGreaterThanEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("TimestampGreaterThanEquals", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", False),
    ("StringMatches", "log-2026.txt", "log-*.txt", True),
    ("StringMatches", "log-2026.csv", "log-*.txt", False),
    ("StringMatches", "a*b", "a\\*b", True),
    ("StringMatches", "axb", "a\\*b", False),
    ("StringMatches", "anything", "*", True),
]


@pytest.mark.parametrize(("op", "value", "operand", "match"), COMPARISONS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(COMPARISONS)])  # fmt: skip
def test_comparison(asl_run: AslRun, op: str, value: Any, operand: Any, match: bool) -> None:
    outcome = asl_run(choose({"Variable": "$.v", op: operand}), {"v": value})
    assert outcome == {"status": "SUCCEEDED", "output": "yes" if match else "no"}


@pytest.mark.parametrize(("op", "value", "operand", "match"),
                         [c for c in COMPARISONS if c[0] != "StringMatches"],
                         ids=[f"{c[0]}Path-{i}" for i, c in enumerate(COMPARISONS)
                              if c[0] != "StringMatches"])  # fmt: skip
def test_path_variant_compares_with_the_value_at_the_path(
    asl_run: AslRun, op: str, value: Any, operand: Any, match: bool
) -> None:
    outcome = asl_run(choose({"Variable": "$.v", f"{op}Path": "$.w"}), {"v": value, "w": operand})
    assert outcome["output"] == ("yes" if match else "no")


TYPE_TESTS: list[tuple[str, Any, bool]] = [
    ("IsNull", None, True),
    ("IsNull", 0, False),
    ("IsNumeric", 1.5, True),
    ("IsNumeric", "1.5", False),
    ("IsNumeric", False, False),
    ("IsString", "s", True),
    ("IsString", 1, False),
    ("IsBoolean", False, True),
    ("IsBoolean", "false", False),
    ("IsTimestamp", "2026-03-14T01:59:00Z", True),
    ("IsTimestamp", "2026-03-14", False),
]


@pytest.mark.parametrize(("op", "value", "holds"), TYPE_TESTS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TYPE_TESTS)])  # fmt: skip
def test_type_tests_true_and_false(asl_run: AslRun, op: str, value: Any, holds: bool) -> None:
    assert asl_run(choose({"Variable": "$.v", op: True}), {"v": value})["output"] == (
        "yes" if holds else "no"
    )
    assert asl_run(choose({"Variable": "$.v", op: False}), {"v": value})["output"] == (
        "no" if holds else "yes"
    )


def test_is_present(asl_run: AslRun) -> None:
    rule = {"Variable": "$.v", "IsPresent": True}
    assert asl_run(choose(rule), {"v": None})["output"] == "yes"
    assert asl_run(choose(rule), {})["output"] == "no"
    absent = {"Variable": "$.v", "IsPresent": False}
    assert asl_run(choose(absent), {})["output"] == "yes"


@pytest.mark.parametrize(
    ("rule", "input", "match"),
    [
        ({"And": [{"Variable": "$.a", "NumericGreaterThan": 1},
                  {"Variable": "$.b", "StringEquals": "x"}]}, {"a": 2, "b": "x"}, True),
        ({"And": [{"Variable": "$.a", "NumericGreaterThan": 1},
                  {"Variable": "$.b", "StringEquals": "x"}]}, {"a": 2, "b": "y"}, False),
        ({"Or": [{"Variable": "$.a", "NumericEquals": 1},
                 {"Variable": "$.a", "NumericEquals": 2}]}, {"a": 2}, True),
        ({"Or": [{"Variable": "$.a", "NumericEquals": 1},
                 {"Variable": "$.a", "NumericEquals": 2}]}, {"a": 3}, False),
        ({"Not": {"Variable": "$.a", "StringEquals": "x"}}, {"a": "y"}, True),
        ({"Not": {"Variable": "$.a", "StringEquals": "x"}}, {"a": "x"}, False),
        ({"And": [{"Variable": "$.a", "IsPresent": True},
                  {"Not": {"Variable": "$.a", "IsNull": True}}]}, {"a": None}, False),
        ({"Variable": "$$.Execution.Name", "StringEquals": "asl-run"}, {}, True),
        ({"Variable": "$.xs[1].k", "NumericEquals": 5}, {"xs": [{}, {"k": 5}]}, True),
    ],
    ids=["and-true", "and-false", "or-true", "or-false", "not-true", "not-false", "nested",
         "context-object", "array-index"],
)  # fmt: skip
def test_combinators(asl_run: AslRun, rule: dict[str, Any], input: Any, match: bool) -> None:
    assert asl_run(choose(rule), input)["output"] == ("yes" if match else "no")


def test_first_matching_rule_wins_and_input_passes_through(asl_run: AslRun) -> None:
    definition = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "OutputPath": "$.keep", "Choices": [
                {"Variable": "$.n", "NumericGreaterThan": 0, "Next": "A"},
                {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "B"},
            ]},
            "A": {"Type": "Pass", "Parameters": {"from": "A", "in.$": "$"}, "End": True},
            "B": {"Type": "Pass", "Parameters": {"from": "B"}, "End": True},
        },
    }  # fmt: skip
    outcome = asl_run(definition, {"n": 5, "keep": {"k": 1}})
    assert outcome == {"status": "SUCCEEDED", "output": {"from": "A", "in": {"k": 1}}}


def test_no_match_without_default_is_no_choice_matched(asl_run: AslRun) -> None:
    outcome = asl_run(choose({"Variable": "$.v", "NumericEquals": 1}, default=False), {"v": 2})
    assert (outcome["status"], outcome["error"]) == ("FAILED", "States.NoChoiceMatched")


def test_a_missing_variable_is_states_runtime(asl_run: AslRun) -> None:
    outcome = asl_run(choose({"Variable": "$.absent", "NumericEquals": 1}), {"v": 2})
    assert (outcome["status"], outcome["error"]) == ("FAILED", "States.Runtime")
    assert "$.absent" in outcome["cause"] and "IsPresent" in outcome["cause"]
