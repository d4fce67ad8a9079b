"""Choice rules: every comparison operator, its `...Path` variant, And/Or/Not and the type
tests, with AWS's rule that a comparison against a value of the wrong type is simply false."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sagaflow.asl import paths
from sagaflow.asl.errors import runtime

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp with an uppercase T and an offset or Z, else None."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string_matches(value: str, pattern: str) -> bool:
    # '*' is the only wildcard; '\*' a literal star (and '\\' a backslash).
    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            regex += re.escape(pattern[index + 1])
            index += 2
            continue
        regex += ".*" if char == "*" else re.escape(char)
        index += 1
    return re.fullmatch(regex, value, re.DOTALL) is not None


def evaluate(rule: dict[str, Any], data: Any, context: Any) -> bool:
    """Whether one choice rule matches the (InputPath-selected) input."""
    if "And" in rule:
        return all(evaluate(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(evaluate(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not evaluate(rule["Not"], data, context)
    variable = rule["Variable"]
    exists = paths.present(variable, data, context)
    if "IsPresent" in rule:
        return exists is bool(rule["IsPresent"])
    if not exists:
        raise runtime(
            f"choice rule Variable {variable!r} matched nothing in the input; guard it with "
            "IsPresent or fix the path"
        )
    value = paths.read(variable, data, context)
    for key, operand in rule.items():
        if key in ("Variable", "Next", "Comment"):
            continue
        wanted = (
            paths.read(operand, data, context, what=f"{key} of a choice rule")
            if key.endswith("Path")
            else operand
        )
        return _compare(key.removesuffix("Path"), value, wanted)
    raise runtime(f"choice rule {rule!r} has no comparison operator")


def _compare(name: str, value: Any, wanted: Any) -> bool:
    return bool(_compare_any(name, value, wanted))


def _compare_any(name: str, value: Any, wanted: Any) -> Any:
    if name == "IsNull":
        return (value is None) == wanted
    if name == "IsNumeric":
        return _is_number(value) == wanted
    if name == "IsString":
        return isinstance(value, str) == wanted
    if name == "IsBoolean":
        return isinstance(value, bool) == wanted
    if name == "IsTimestamp":
        return (parse_timestamp(value) is not None) == wanted
    if name == "StringMatches":
        return isinstance(value, str) and isinstance(wanted, str) and _string_matches(value, wanted)
    if name == "BooleanEquals":
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    for kind in ("String", "Numeric", "Timestamp"):
        if name.startswith(kind):
            op = _OPS[name.removeprefix(kind)]
            if kind == "String":
                return (
                    isinstance(value, str) and isinstance(wanted, str) and bool(op(value, wanted))
                )
            if kind == "Numeric":
                return _is_number(value) and _is_number(wanted) and bool(op(value, wanted))
            left, right = parse_timestamp(value), parse_timestamp(wanted)
            return left is not None and right is not None and bool(op(left, right))
    raise runtime(f"unknown choice operator {name!r}")


__all__ = ["evaluate", "parse_timestamp"]
