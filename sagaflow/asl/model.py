"""The document model: load a state machine (YAML or JSON, one model) and validate it.

Validation runs before anything executes. It checks the shipped JSON Schema (schema.json) and
what a schema cannot say: unknown fields per state type, unknown `Next` targets, unreachable
states, no terminal state, `End` together with `Next`, JSONPath syntax, intrinsic functions and
Task resources. Every problem names the state and the field and says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

from sagaflow.asl import intrinsics, paths
from sagaflow.workflow import SagaflowError

COMMON = frozenset({"Type", "Comment", "QueryLanguage"})
_FLOW = frozenset({"Next", "End"})
_IO = frozenset({"InputPath", "OutputPath"})
FIELDS: dict[str, frozenset[str]] = {
    "Task": COMMON | _FLOW | _IO | {"Resource", "Parameters", "ResultSelector", "ResultPath",
        "Retry", "Catch", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
        "HeartbeatSecondsPath"},
    "Pass": COMMON | _FLOW | _IO | {"Result", "ResultPath", "Parameters"},
    "Choice": COMMON | _IO | {"Choices", "Default"},
    "Wait": COMMON | _FLOW | _IO | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": COMMON | _IO,
    "Fail": COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": COMMON | _FLOW | _IO | {"Branches", "Parameters", "ResultSelector", "ResultPath",
        "Retry", "Catch"},
    "Map": COMMON | _FLOW | _IO | {"ItemProcessor", "Iterator", "ItemsPath", "ItemSelector",
        "Parameters", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailureCount",
        "ToleratedFailureCountPath", "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath", "ResultSelector", "ResultPath", "Retry", "Catch",
        "Label"},
}  # fmt: skip
_DISTRIBUTED = (
    "belongs to a distributed Map, which sagaflow does not run; use an inline Map "
    "(ItemsPath over an array in the input)"
)
_JSONATA = (
    "belongs to the JSONata query language, which sagaflow does not run; use the JSONPath "
    "fields (InputPath, Parameters, ResultSelector, ResultPath, OutputPath)"
)
UNSUPPORTED = {
    "ItemReader": _DISTRIBUTED,
    "ItemBatcher": _DISTRIBUTED,
    "ResultWriter": _DISTRIBUTED,
    "Arguments": _JSONATA,
    "Output": _JSONATA,
    "Assign": _JSONATA,
    "Items": _JSONATA,
    "Condition": _JSONATA,
    "Credentials": "cross-account credentials do not apply to sagaflow activities; remove it",
}
_NEEDS_FLOW = frozenset({"Task", "Pass", "Wait", "Parallel", "Map"})
COMPARISONS = frozenset(
    f"{kind}{op}{suffix}"
    for kind in ("String", "Numeric", "Timestamp")
    for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    for suffix in ("", "Path")
) | {"BooleanEquals", "BooleanEqualsPath", "StringMatches", "IsNull", "IsPresent", "IsNumeric",
     "IsString", "IsBoolean", "IsTimestamp"}  # fmt: skip
_PATH_FIELDS = (
    "InputPath", "OutputPath", "ResultPath", "ItemsPath", "SecondsPath", "TimestampPath",
    "TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath",
    "ToleratedFailureCountPath", "ToleratedFailurePercentagePath", "ErrorPath", "CausePath",
)  # fmt: skip
TASK_RESOURCE_HINT = (
    "use 'activity:<name>', 'arn:aws:lambda:<region>:<account>:function:<name>' or "
    "'arn:aws:states:::lambda:invoke' (optionally ending in '.waitForTaskToken')"
)


@dataclass(frozen=True)
class Problem:
    """One validation problem: where (state path and field) and what to do."""

    where: str
    field: str | None
    message: str

    def __str__(self) -> str:
        field = f", field {self.field!r}" if self.field else ""
        return f"{self.where}{field}: {self.message}"


class DefinitionError(SagaflowError):
    """The document is not a valid state machine; `problems` lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{source}: {len(problems)} problem(s) in the state machine; fix them and "
            f"validate again ('sagaflow asl validate'):\n{lines}"
        )
        self.problems = problems


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the document, shipped with the package (sagaflow/asl/schema.json)."""
    text = resources.files("sagaflow.asl").joinpath("schema.json").read_text()
    return dict(json.loads(text))


def parse_document(text: str, source: str = "<definition>") -> Any:
    """YAML or JSON (YAML is a superset) into plain Python values."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(
            source, [Problem("document", None, f"is neither YAML nor JSON: {exc}")]
        ) from exc


def load(text: str, source: str = "<definition>") -> dict[str, Any]:
    """Parse and validate; raises DefinitionError listing every problem."""
    document = parse_document(text, source)
    problems = validate(document)
    if problems:
        raise DefinitionError(source, problems)
    assert isinstance(document, dict)
    return document


def load_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return load(handle.read(), path)


def validate(document: Any) -> list[Problem]:
    """Every problem of the document (empty when it is valid)."""
    problems = [_schema_problem(e) for e in _schema_errors(document)]
    if isinstance(document, dict) and isinstance(document.get("States"), dict):
        problems += _check_machine(document, "")
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            unique.append(problem)
    return unique


def _schema_errors(document: Any) -> Iterator[jsonschema.ValidationError]:
    validator = jsonschema.Draft202012Validator(schema())
    yield from sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))


def _schema_problem(error: jsonschema.ValidationError) -> Problem:
    where, field = _locate(list(error.absolute_path))
    return Problem(where, field, f"{error.message} (JSON Schema: {error.validator})")


def _locate(path: list[Any]) -> tuple[str, str | None]:
    """A schema error path as 'state X' (nested: 'state P > branch 0 > state X') and field."""
    parts: list[str] = []
    field: str | None = None
    index = 0
    while index < len(path):
        item = path[index]
        if item == "States" and index + 1 < len(path):
            parts.append(f"state {path[index + 1]!r}")
            index += 2
            field = None
            continue
        if item == "Branches" and index + 1 < len(path):
            parts.append(f"branch {path[index + 1]}")
            index += 2
            continue
        if item in ("ItemProcessor", "Iterator"):
            parts.append(str(item))
            index += 1
            continue
        field = (
            str(item)
            if field is None
            else f"{field}[{item}]"
            if isinstance(item, int)
            else f"{field}.{item}"
        )
        index += 1
    return (" > ".join(parts) or "document"), field


def _check_machine(machine: dict[str, Any], prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    states: dict[str, Any] = machine["States"]
    names = set(states)
    where_top = prefix.rstrip(" >") or "document"
    start = machine.get("StartAt")
    if isinstance(start, str) and start not in names:
        problems.append(
            Problem(where_top, "StartAt", f"names no state ({start!r}); states: {sorted(names)}")
        )
    edges: dict[str, list[str]] = {}
    terminal = False
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        where = f"{prefix}state {name!r}"
        kind = state.get("Type")
        targets, found = _check_state(state, kind, where, names, prefix)
        problems += found
        edges[name] = targets
        terminal = terminal or kind in ("Succeed", "Fail") or state.get("End") is True
    if not terminal:
        problems.append(
            Problem(
                where_top,
                "States",
                "has no terminal state; end one state with "
                "'End: true' or add a Succeed or Fail state",
            )
        )
    if isinstance(start, str) and start in names:
        reached = {start}
        todo = [start]
        while todo:
            for target in edges.get(todo.pop(), []):
                if target in names and target not in reached:
                    reached.add(target)
                    todo.append(target)
        for name in states:
            if name not in reached:
                problems.append(
                    Problem(
                        f"{prefix}state {name!r}",
                        None,
                        "is unreachable from StartAt; link it with Next or delete it",
                    )
                )
    return problems


def _check_state(
    state: dict[str, Any], kind: Any, where: str, names: set[str], prefix: str
) -> tuple[list[str], list[Problem]]:
    problems: list[Problem] = []
    targets: list[str] = []
    if kind not in FIELDS:
        return targets, problems  # the schema reports the bad Type
    for field in state:
        if field in UNSUPPORTED:
            problems.append(Problem(where, field, UNSUPPORTED[field]))
        elif field not in FIELDS[kind]:
            problems.append(
                Problem(
                    where,
                    field,
                    f"is not a field of a {kind} state; remove it "
                    f"(allowed: {', '.join(sorted(FIELDS[kind]))})",
                )
            )
    if "Next" in state and "End" in state:
        problems.append(Problem(where, "End", "a state has either 'Next' or 'End: true', not both"))
    elif kind in _NEEDS_FLOW and "Next" not in state and "End" not in state:
        problems.append(Problem(where, "Next", "is missing; add 'Next: <state>' or 'End: true'"))

    def target(field: str, value: Any) -> None:
        if isinstance(value, str):
            targets.append(value)
            if value not in names:
                problems.append(
                    Problem(
                        where, field, f"names no state ({value!r}); states here: {sorted(names)}"
                    )
                )

    target("Next", state.get("Next"))
    for i, catcher in enumerate(_dicts(state.get("Catch"))):
        target(f"Catch[{i}].Next", catcher.get("Next"))
    for i, retrier in enumerate(_dicts(state.get("Retry"))):
        errors = retrier.get("ErrorEquals") or []
        if "States.ALL" in errors and (len(errors) > 1 or i != len(state["Retry"]) - 1):
            problems.append(
                Problem(
                    where,
                    f"Retry[{i}].ErrorEquals",
                    "'States.ALL' must appear alone and in the last retrier",
                )
            )
    for field in _PATH_FIELDS:
        problems += _check_path(state.get(field), where, field)
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        problems += _check_template(state.get(field), where, field)
    if kind == "Task":
        resource = state.get("Resource")
        if isinstance(resource, str) and not _known_resource(resource):
            problems.append(
                Problem(
                    where,
                    "Resource",
                    f"{resource!r} is not a resource sagaflow can run; {TASK_RESOURCE_HINT}",
                )
            )
    elif kind == "Choice":
        target("Default", state.get("Default"))
        for i, rule in enumerate(_dicts(state.get("Choices"))):
            field = f"Choices[{i}]"
            if "Next" not in rule:
                problems.append(
                    Problem(
                        where,
                        f"{field}.Next",
                        "is missing; every top-level choice rule says which state comes next",
                    )
                )
            target(f"{field}.Next", rule.get("Next"))
            problems += _check_rule(rule, where, field, top=True)
    elif kind == "Wait":
        given = [f for f in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if f in state]
        if len(given) != 1:
            problems.append(
                Problem(
                    where,
                    "Seconds",
                    "a Wait state needs exactly one of "
                    f"Seconds, SecondsPath, Timestamp, TimestampPath (has {given})",
                )
            )
    elif kind == "Fail":
        for plain in ("Error", "Cause"):
            if plain in state and f"{plain}Path" in state:
                problems.append(
                    Problem(where, f"{plain}Path", f"give {plain} or {plain}Path, not both")
                )
    elif kind == "Parallel":
        for i, branch in enumerate(_dicts(state.get("Branches"))):
            if isinstance(branch.get("States"), dict):
                problems += _check_machine(branch, f"{where} > branch {i} > ")
    elif kind == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if processor is None:
            problems.append(
                Problem(
                    where,
                    "ItemProcessor",
                    "is missing; a Map state runs its "
                    "ItemProcessor (StartAt, States) for every item",
                )
            )
        elif isinstance(processor, dict) and isinstance(processor.get("States"), dict):
            problems += _check_machine(processor, f"{where} > ItemProcessor > ")
    return targets, problems


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _known_resource(resource: str) -> bool:
    base = resource.removesuffix(".waitForTaskToken")
    if base.startswith("activity:") and len(base) > len("activity:"):
        return True
    if base == "arn:aws:states:::lambda:invoke":
        return True
    parts = base.split(":")
    return len(parts) >= 7 and parts[:3] == ["arn", "aws", "lambda"] and parts[5] == "function"


def _check_path(value: Any, where: str, field: str) -> list[Problem]:
    if not isinstance(value, str):
        return []
    if field in ("ErrorPath", "CausePath") and not value.startswith("$"):
        try:
            intrinsics.parse_call(value)
        except intrinsics.IntrinsicSyntaxError as exc:
            return [Problem(where, field, f"is neither a path nor an intrinsic function: {exc}")]
        return []
    try:
        paths.compile_path(value)
    except paths.PathSyntaxError as exc:
        return [Problem(where, field, f"{exc}; write e.g. '$.order.id'")]
    if field in ("ResultPath",) and not paths.is_reference_path(value):
        return [
            Problem(
                where, field, f"{value!r} must be a reference path (no wildcards, filters or '$$')"
            )
        ]
    return []


def _check_template(value: Any, where: str, field: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith(".$"):
                sub = f"{field}.{key}"
                if not isinstance(item, str):
                    problems.append(
                        Problem(
                            where,
                            sub,
                            "a '.$' field takes a path or an intrinsic function as a string",
                        )
                    )
                elif item.startswith("$"):
                    problems += _check_path(item, where, sub)
                else:
                    try:
                        intrinsics.parse_call(item)
                    except intrinsics.IntrinsicSyntaxError as exc:
                        problems.append(Problem(where, sub, str(exc)))
            else:
                problems += _check_template(item, where, f"{field}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _check_template(item, where, f"{field}[{i}]")
    return problems


def _check_rule(rule: dict[str, Any], where: str, field: str, *, top: bool) -> list[Problem]:
    problems: list[Problem] = []
    if not top and "Next" in rule:
        problems.append(Problem(where, f"{field}.Next", "only a top-level choice rule has Next"))
    combinators = [k for k in ("And", "Or", "Not") if k in rule]
    comparisons = [k for k in rule if k in COMPARISONS]
    if combinators:
        if comparisons or "Variable" in rule or len(combinators) > 1:
            problems.append(
                Problem(
                    where,
                    field,
                    "a rule is either one of And/Or/Not or a Variable with one comparison",
                )
            )
        for combinator in combinators:
            subs = [rule[combinator]] if combinator == "Not" else rule[combinator]
            for i, sub in enumerate(_dicts(subs)):
                label = f"{field}.Not" if combinator == "Not" else f"{field}.{combinator}[{i}]"
                problems += _check_rule(sub, where, label, top=False)
        return problems
    if "Variable" not in rule:
        problems.append(
            Problem(
                where,
                f"{field}.Variable",
                "is missing; a comparison reads the value at Variable (e.g. '$.amount')",
            )
        )
    else:
        problems += _check_path(rule["Variable"], where, f"{field}.Variable")
    if len(comparisons) != 1:
        problems.append(
            Problem(
                where,
                field,
                f"needs exactly one comparison operator, has "
                f"{comparisons or 'none'} (e.g. NumericGreaterThan)",
            )
        )
    for name in comparisons:
        if name.endswith("Path"):
            problems += _check_path(rule[name], where, f"{field}.{name}")
    return problems
