"""Paths (JSONPath through jsonpath-ng), payload templates and ResultPath, as ASL defines them.

A path starting `$$` reads the context object; any other reads the state's input. A definite
path (no wildcard, slice, filter or union) yields one value; an indefinite one yields the list of
matches. A definite path that matches nothing is a States.Runtime error where AWS raises one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse

from sagaflow.asl.errors import RESULT_PATH_MATCH_FAILURE, StatesError, runtime

_INDEFINITE = re.compile(r"\*|\.\.|\?\(|\[[^\]]*[,:][^\]]*\]|@")
_MISSING = object()

IntrinsicEval = Callable[[str, Any, Any], Any]
"""(expression, input, context) -> value; supplied by the interpreter (intrinsics.evaluate)."""


class PathSyntaxError(ValueError):
    """A path that is not valid JSONPath; the message says where."""


@lru_cache(maxsize=1024)
def compile_path(path: str) -> JSONPath:
    """The parsed JSONPath (cached). Raises PathSyntaxError."""
    if not path.startswith("$"):
        raise PathSyntaxError(f"path {path!r} must start with '$'")
    try:
        return parse(path[1:] if path.startswith("$$") else path)
    except (JsonPathLexerError, JsonPathParserError, ValueError, AttributeError) as exc:
        raise PathSyntaxError(f"path {path!r} is not valid JSONPath: {exc}") from exc


def is_definite(path: str) -> bool:
    return _INDEFINITE.search(path) is None


def is_reference_path(path: str) -> bool:
    """A reference path (ResultPath, Variable, ...): definite, no context object."""
    return is_definite(path) and not path.startswith("$$")


def _lookup(path: str, data: Any, context: Any) -> Any:
    source = context if path.startswith("$$") else data
    matches = compile_path(path).find(source)
    if is_definite(path):
        return matches[0].value if matches else _MISSING
    return [match.value for match in matches]


def read(path: str, data: Any, context: Any = None, *, what: str = "path") -> Any:
    """The value at `path`; States.Runtime when a definite path matches nothing."""
    value = _lookup(path, data, context)
    if value is _MISSING:
        raise runtime(
            f"the {what} {path!r} matched nothing in the input; fix the path or the input "
            f"(input: {_preview(context if path.startswith('$$') else data)})"
        )
    return value


def present(path: str, data: Any, context: Any = None) -> bool:
    return _lookup(path, data, context) is not _MISSING


def select(path: str | None, data: Any, context: Any, *, field: str) -> Any:
    """InputPath / OutputPath / ItemsPath: null gives {}, `$` the whole value."""
    if path is None:
        return {}
    if path == "$":
        return data
    return read(path, data, context, what=field)


def render(template: Any, data: Any, context: Any, intrinsic: IntrinsicEval) -> Any:
    """A payload template (Parameters, ResultSelector, ItemSelector): keys ending `.$` take
    the value of a path or an intrinsic function call; everything else is copied."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                name = key[:-2]
                if value.startswith("$"):
                    out[name] = read(value, data, context, what=f"path of field {key!r}")
                else:
                    out[name] = intrinsic(value, data, context)
            else:
                out[key] = render(value, data, context, intrinsic)
        return out
    if isinstance(template, list):
        return [render(v, data, context, intrinsic) for v in template]
    return template


def apply_result(data: Any, result_path: str | None, result: Any, *, default: bool) -> Any:
    """ResultPath: where the result goes in the state's input (`default` = field absent)."""
    if default or result_path == "$":
        return result
    if result_path is None:
        return data
    target = copy.deepcopy(data)
    if not isinstance(target, dict):
        raise StatesError(
            RESULT_PATH_MATCH_FAILURE,
            f"ResultPath {result_path!r} cannot be applied to a {type(data).__name__} input; "
            "the input must be an object",
        )
    try:
        return compile_path(result_path).update_or_create(target, result)
    except (TypeError, AttributeError, IndexError, KeyError) as exc:
        raise StatesError(
            RESULT_PATH_MATCH_FAILURE,
            f"ResultPath {result_path!r} cannot be applied to the input: {exc}",
        ) from exc


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
