"""Conformance: every intrinsic function, through a Pass state's Parameters."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import pytest

from tests.asl.conftest import AslRun, machine

pytestmark = pytest.mark.unit

INPUT = {"name": "Ann", "n": 3, "xs": [1, 2, 2, 3], "obj": {"a": 1}, "s": "a,b;c"}

CASES: list[tuple[str, Any]] = [
    ("States.Format('Hello {}, you are {}', $.name, $.n)", "Hello Ann, you are 3"),
    ("States.Format('it\\'s {}', $.name)", "it's Ann"),
    ("States.StringToJson('{\"k\": [1]}')", {"k": [1]}),
    ("States.JsonToString($.obj)", '{"a":1}'),
    ("States.Array($.n, 'x', true, null)", [3, "x", True, None]),
    ("States.ArrayPartition($.xs, 3)", [[1, 2, 2], [3]]),
    ("States.ArrayContains($.xs, 2)", True),
    ("States.ArrayContains($.xs, 9)", False),
    ("States.ArrayRange(1, 9, 2)", [1, 3, 5, 7, 9]),
    ("States.ArrayGetItem($.xs, 3)", 3),
    ("States.ArrayLength($.xs)", 4),
    ("States.ArrayUnique($.xs)", [1, 2, 3]),
    ("States.Base64Encode($.name)", base64.b64encode(b"Ann").decode()),
    ("States.Base64Decode('QW5u')", "Ann"),
    ("States.Hash($.name, 'SHA-256')", hashlib.sha256(b"Ann").hexdigest()),
    ("States.Hash($.name, 'MD5')", hashlib.md5(b"Ann").hexdigest()),
    ("States.JsonMerge($.obj, States.StringToJson('{\"b\": 2}'), false)", {"a": 1, "b": 2}),
    ("States.MathAdd($.n, -5)", -2),
    ("States.StringSplit($.s, ',;')", ["a", "b", "c"]),
    ("States.ArrayLength(States.Array(1, 2))", 2),
]


@pytest.mark.parametrize(("expression", "value"), CASES, ids=[c[0][:40] for c in CASES])
def test_intrinsic(asl_run: AslRun, expression: str, value: Any) -> None:
    outcome = asl_run(machine({"Type": "Pass", "Parameters": {"r.$": expression}}), INPUT)
    assert outcome == {"status": "SUCCEEDED", "output": {"r": value}}


def test_random_and_uuid_are_deterministic_per_execution(asl_run: AslRun) -> None:
    state = {"Type": "Pass", "Parameters": {"r.$": "States.MathRandom(10, 20)",
                                            "u.$": "States.UUID()"}}  # fmt: skip
    first = asl_run(machine(state), {})
    assert first == asl_run(machine(state), {})
    assert 10 <= first["output"]["r"] < 20
    assert uuid.UUID(first["output"]["u"]).version == 4


@pytest.mark.parametrize(
    "expression",
    ["States.Format('{} {}', $.n)", "States.ArrayRange(1, 5, 0)", "States.Base64Decode('%%')",
     "States.JsonMerge($.obj, $.obj, true)", "States.Hash($.name, 'SHA-3')",
     "States.StringToJson('{')"],
)  # fmt: skip
def test_bad_arguments_are_intrinsic_failure(asl_run: AslRun, expression: str) -> None:
    outcome = asl_run(machine({"Type": "Pass", "Parameters": {"r.$": expression}}), INPUT)
    assert (outcome["status"], outcome["error"]) == ("FAILED", "States.IntrinsicFailure")
