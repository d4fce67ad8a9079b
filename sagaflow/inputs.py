"""Checking a workflow's JSON input against the type annotation of its input parameter.

    async def checkout(ctx: WorkflowContext, order: Order) -> dict: ...

With `Order` a TypedDict (Required/NotRequired keys) or a dataclass whose fields are str, int,
float, bool, None, list[...], dict[str, ...], Optional/unions, Literal or nested TypedDicts and
dataclasses, `check_input(checkout, value)` raises `InputError` naming the first offending field
as a path (`input.items[2].sku`). An unannotated parameter, `Any` or `object` accepts any JSON.

Pure: no I/O. Used by the HTTP API so that a bad input is a 400 naming the field instead of a
workflow that starts and then fails on its first line.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

_JSON_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
    list: "a list",
    dict: "an object",
}


class InputError(ValueError):
    """The input does not match the workflow's input type. `field` is the path of the value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def input_type(fn: Callable[..., Any]) -> Any:
    """The annotation of `fn`'s input parameter (the one after ctx), resolved; Any if none.

    Annotations are resolved in the function's module. One that cannot be resolved (a name
    imported only under TYPE_CHECKING) counts as Any: the input is then not checked, which is
    what the workflow author gets today without an annotation.
    """
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2 or params[1].annotation is inspect.Parameter.empty:
        return Any
    holder = types.SimpleNamespace(__annotations__={"input": params[1].annotation})
    try:
        hints = typing.get_type_hints(
            holder, globalns=getattr(fn, "__globals__", {}), include_extras=True
        )
    except NameError:
        return Any
    return hints["input"]


def check_input(fn: Callable[..., Any], value: Any) -> None:
    """Raise InputError unless `value` fits `fn`'s input annotation."""
    check(input_type(fn), value, "input")


def check(tp: Any, value: Any, path: str) -> None:
    """Raise InputError unless the JSON `value` fits the type `tp`."""
    tp = _strip(tp)
    if tp is Any or tp is object:
        return
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        _check_union(tp, value, path)
    elif origin is Literal:
        allowed = get_args(tp)
        # type() as well as ==, or True would pass for Literal[1]
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise InputError(path, f"must be one of {list(allowed)}, got {_show(value)}")
    elif origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        _check_list(tp, value, path)
    elif origin in (dict, Mapping) or tp in (dict, Mapping):
        _check_dict(tp, value, path)
    elif typing.is_typeddict(tp):
        _check_typeddict(tp, value, path)
    elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
        _check_dataclass(tp, value, path)
    elif tp in _JSON_NAMES:
        _check_scalar(tp, value, path)
    else:
        raise TypeError(
            f"{path}: the input annotation {tp!r} is not a JSON type sagaflow can "
            "check; use str, int, float, bool, list, dict, a TypedDict or a "
            "dataclass"
        )


def _strip(tp: Any) -> Any:
    """Required[X], NotRequired[X], Annotated[X, ...] -> X."""
    while True:
        origin = get_origin(tp)
        if origin in (Required, NotRequired):
            tp = get_args(tp)[0]
        elif origin is typing.Annotated:
            tp = tp.__origin__
        else:
            return tp


def _show(value: Any) -> str:
    for t, name in _JSON_NAMES.items():
        if type(value) is t:
            return name if t not in (str, int, float) else f"{name} ({value!r})"[:80]
    return repr(value)[:80]


def _check_scalar(tp: type, value: Any, path: str) -> None:
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
        or (tp is type(None) and value is None)
        or (tp is list and isinstance(value, list))
        or (tp is dict and isinstance(value, dict))
    )
    if not ok:
        raise InputError(path, f"must be {_JSON_NAMES[tp]}, got {_show(value)}")


def _check_union(tp: Any, value: Any, path: str) -> None:
    options = get_args(tp)
    first: InputError | None = None
    for option in options:
        try:
            check(option, value, path)
            return
        except InputError as exc:
            # A nested error (inside an object that otherwise matched) explains more than
            # "none of the types matched"; keep the deepest.
            if first is None or len(exc.field) > len(first.field):
                first = exc
    assert first is not None
    if first.field != path:
        raise first
    names = " or ".join(_describe(o) for o in options)
    raise InputError(path, f"must be {names}, got {_show(value)}")


def _describe(tp: Any) -> str:
    tp = _strip(tp)
    if tp in _JSON_NAMES:
        return _JSON_NAMES[tp]
    if typing.is_typeddict(tp) or dataclasses.is_dataclass(tp):
        return f"an object ({tp.__name__})"
    origin = get_origin(tp)
    if origin is not None and origin in _JSON_NAMES:
        return _JSON_NAMES[origin]
    return str(tp)


def _check_list(tp: Any, value: Any, path: str) -> None:
    if not isinstance(value, list):
        raise InputError(path, f"must be a list, got {_show(value)}")
    args = get_args(tp)
    if get_origin(tp) is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise InputError(path, f"must have exactly {len(args)} items, got {len(value)}")
        for i, (item_tp, item) in enumerate(zip(args, value, strict=True)):
            check(item_tp, item, f"{path}[{i}]")
        return
    item_tp = args[0] if args else Any
    for i, item in enumerate(value):
        check(item_tp, item, f"{path}[{i}]")


def _check_dict(tp: Any, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise InputError(path, f"must be an object, got {_show(value)}")
    args = get_args(tp)
    value_tp = args[1] if len(args) == 2 else Any
    for key, item in value.items():
        check(value_tp, item, f"{path}.{key}")


def _check_object(fields: Mapping[str, tuple[Any, bool]], name: str, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise InputError(path, f"must be an object ({name}), got {_show(value)}")
    for key in value:
        if key not in fields:
            raise InputError(
                f"{path}.{key}", f"is not a field of {name}; known fields: {sorted(fields)}"
            )
    for key, (field_tp, required) in fields.items():
        if key not in value:
            if required:
                raise InputError(f"{path}.{key}", f"is required ({_describe(field_tp)})")
            continue
        check(field_tp, value[key], f"{path}.{key}")


def _check_typeddict(tp: Any, value: Any, path: str) -> None:
    hints = typing.get_type_hints(tp, include_extras=True)
    # __required_keys__ misses Required/NotRequired written as strings (from __future__ import
    # annotations) on Python 3.11; the resolved hints carry them, so they decide.
    required_keys: frozenset[str] = tp.__required_keys__
    fields: dict[str, tuple[Any, bool]] = {}
    for key, hint in hints.items():
        origin = get_origin(hint)
        if origin is NotRequired:
            required = False
        elif origin is Required:
            required = True
        else:
            required = key in required_keys
        fields[key] = (hint, required)
    _check_object(fields, tp.__name__, value, path)


def _check_dataclass(tp: type, value: Any, path: str) -> None:
    hints = typing.get_type_hints(tp, include_extras=True)
    fields = {
        f.name: (
            hints.get(f.name, Any),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(tp)
        if f.init
    }
    _check_object(fields, tp.__name__, value, path)


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects the API accepts in a JSON document."""


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which the read model cannot store"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "contains a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def check_text(text: str, field: str) -> None:
    """Raise InputError unless `text` can be stored and encoded (no NUL, no lone surrogate)."""
    problem = _text_problem(text)
    if problem is not None:
        raise InputError(field, problem)


def check_json(value: Any, root: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise InputError naming the first string (or key) under `value` that Postgres or UTF-8
    cannot hold, or the first value nested deeper than `max_depth`.

    Iterative on purpose: a document nested 100,000 deep must be refused, not recurse.
    `root` is the path of `value` itself ("" for a request body whose keys are fields).
    """
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        here = path or "body"
        if isinstance(item, str):
            check_text(item, here)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                # The path down there is as long as the nesting; name the top-level field.
                top = re.split(r"[.\[]", path, maxsplit=1)[0] if path else "body"
                raise InputError(
                    top or root or "body",
                    f"is nested more than {max_depth} levels deep; flatten the document",
                )
            if isinstance(item, dict):
                # Pushed in reverse so that the first offending value in document order is named.
                for key, child in reversed(item.items()):
                    child_path = f"{path}.{key}" if path else str(key)
                    if isinstance(key, str):
                        problem = _text_problem(key)
                        if problem is not None:
                            raise InputError(f"{here} (a key)", f"has a key that {problem}")
                    stack.append((child, child_path, depth + 1))
            else:
                stack.extend(
                    (item[i], f"{here}[{i}]", depth + 1) for i in reversed(range(len(item)))
                )
