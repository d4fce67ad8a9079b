"""Validation before anything runs: every problem names the state and the field and says what
to do; `sagaflow asl validate` exits 1 with them. The JSON Schema ships with the package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sagaflow.asl import model
from sagaflow.cli.main import main

pytestmark = pytest.mark.unit


def problems(document: Any) -> list[str]:
    return [str(p) for p in model.validate(document)]


def two(first: dict[str, Any], second: dict[str, Any] | None = None) -> dict[str, Any]:
    states = {"A": first}
    if second is not None:
        states["B"] = second
    return {"StartAt": "A", "States": states}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (two({"Type": "Pass", "Next": "Nowhere"}),
         "state 'A', field 'Next': names no state ('Nowhere')"),
        (two({"Type": "Pass", "End": True}, {"Type": "Pass", "End": True}),
         "state 'B': is unreachable from StartAt"),
        (two({"Type": "Pass", "Next": "B"}, {"Type": "Pass", "Next": "A"}),
         "document, field 'States': has no terminal state"),
        (two({"Type": "Pass", "Next": "B", "End": True}, {"Type": "Succeed"}),
         "state 'A', field 'End': a state has either 'Next' or 'End: true', not both"),
        (two({"Type": "Pass"}), "state 'A', field 'Next': is missing"),
        (two({"Type": "Pass", "InputPath": "$.[bad", "End": True}),
         "state 'A', field 'InputPath': path '$.[bad' is not valid JSONPath"),
        (two({"Type": "Pass", "ResultPath": "$.items[*]", "End": True}),
         "state 'A', field 'ResultPath': '$.items[*]' must be a reference path"),
        (two({"Type": "Wait", "Seconds": "10", "End": True}),
         "state 'A', field 'Seconds': '10' is not of type 'integer'"),
        (two({"Type": "Task", "Resource": "activity:x", "TimeoutSeconds": 0, "End": True}),
         "state 'A', field 'TimeoutSeconds': 0 is less than the minimum of 1"),
        (two({"Type": "Pass", "Resource": "activity:x", "End": True}),
         "state 'A', field 'Resource': is not a field of a Pass state"),
        (two({"Type": "Pass", "Parameters": {"x.$": "States.Nope($.a)"}, "End": True}),
         "state 'A', field 'Parameters.x.$': unknown intrinsic function 'States.Nope'"),
        (two({"Type": "Task", "Resource": "http://x", "End": True}),
         "state 'A', field 'Resource': 'http://x' is not a resource sagaflow can run"),
        (two({"Type": "Chose", "End": True}), "state 'A', field 'Type': 'Chose' is not one of"),
        ({"StartAt": "Z", "States": {"A": {"Type": "Succeed"}}},
         "document, field 'StartAt': names no state ('Z')"),
        ({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "Extra": 1},
         "document: Additional properties are not allowed ('Extra' was unexpected)"),
        (two({"Type": "Choice", "Choices": [{"Variable": "$.a", "Next": "B"}]},
             {"Type": "Succeed"}),
         "state 'A', field 'Choices[0]': needs exactly one comparison operator"),
        (two({"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1}],
              "Default": "B"}, {"Type": "Succeed"}),
         "state 'A', field 'Choices[0].Next': is missing"),
        (two({"Type": "Task", "Resource": "activity:x", "End": True,
              "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}),
         "state 'A', field 'Retry[0].ErrorEquals': 'States.ALL' must appear alone and in the last"),
        (two({"Type": "Task", "Resource": "activity:x", "End": True,
              "Catch": [{"ErrorEquals": ["X"], "Next": "Gone"}]}),
         "state 'A', field 'Catch[0].Next': names no state ('Gone')"),
        (two({"Type": "Wait", "Seconds": 1, "Timestamp": "2026-01-01T00:00:00Z", "End": True}),
         "state 'A', field 'Seconds': a Wait state needs exactly one of"),
        (two({"Type": "Parallel", "End": True, "Branches": [
            {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}]}),
         "state 'A' > branch 0 > state 'X', field 'Next': names no state ('Y')"),
        (two({"Type": "Map", "End": True, "ItemProcessor": {
            "StartAt": "X", "States": {"X": {"Type": "Pass", "End": True, "Bogus": 1}}}}),
         "state 'A' > ItemProcessor > state 'X', field 'Bogus': is not a field of a Pass state"),
        (two({"Type": "Map", "End": True}), "state 'A', field 'ItemProcessor': is missing"),
        (two({"Type": "Map", "End": True, "ItemReader": {}, "ItemProcessor": {
            "StartAt": "X", "States": {"X": {"Type": "Succeed"}}}}),
         "state 'A', field 'ItemReader': belongs to a distributed Map"),
        (two({"Type": "Pass", "Assign": {"x": 1}, "End": True}),
         "state 'A', field 'Assign': belongs to the JSONata query language"),
    ],
    ids=["unknown-next", "unreachable", "no-terminal", "end-and-next", "no-next", "bad-path",
         "result-path-not-reference", "wrong-type", "minimum", "unknown-field",
         "unknown-intrinsic", "unknown-resource", "unknown-type", "unknown-start",
         "top-level-field", "choice-no-operator", "choice-no-next", "retry-all-not-last",
         "catch-next", "wait-two-fields", "parallel-branch", "map-processor", "map-missing",
         "distributed-map", "jsonata"],
)  # fmt: skip
def test_problem_names_state_and_field(document: dict[str, Any], expected: str) -> None:
    found = problems(document)
    assert any(p.startswith(expected) for p in found), found


def test_a_valid_document_has_no_problems_and_loads() -> None:
    document = two({"Type": "Pass", "Next": "B"}, {"Type": "Succeed"})
    assert problems(document) == []
    assert model.load(json.dumps(document)) == document


def test_the_schema_ships_with_the_package_and_is_a_valid_schema() -> None:
    schema = model.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["StartAt", "States"]


def test_load_raises_with_every_problem() -> None:
    with pytest.raises(model.DefinitionError) as info:
        model.load('{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Q", "X": 1}}}')
    assert len(info.value.problems) >= 2
    assert "sagaflow asl validate" in str(info.value)


def test_not_yaml_is_a_problem_not_a_crash() -> None:
    with pytest.raises(model.DefinitionError, match="neither YAML nor JSON"):
        model.load("StartAt: [unclosed")


def test_cli_validate_exits_1_with_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("StartAt: A\nStates:\n  A:\n    Type: Pass\n    Next: Nowhere\n")
    assert main(["asl", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "state 'A', field 'Next': names no state ('Nowhere')" in out
    assert main(["asl", "validate", str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert {"where": "state 'A'", "field": "Next"}.items() <= report["problems"][0].items()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(two({"Type": "Succeed"})))
    assert main(["asl", "validate", str(good)]) == 0
    assert "valid" in capsys.readouterr().out


def test_cli_run_refuses_an_invalid_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(two({"Type": "Pass", "Next": "Nowhere"})))
    assert main(["asl", "run", str(bad), "--json"]) == 1
    assert "names no state" in capsys.readouterr().err
