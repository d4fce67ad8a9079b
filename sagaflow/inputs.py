"""Checking a workflow's JSON input against the type annotation of its input parameter, and
checking that JSON documents can be stored at all.

    async def checkout(ctx: WorkflowContext, order: Order) -> dict: ...

With `Order` a dataclass, a pydantic model or a TypedDict (or any annotation pydantic reads),
`check_input(checkout, value)` raises `InputError` naming the first offending field as a path
(`input.items[2].sku`). The check is the payload codec's own conversion
(sagaflow.core.payload.convert): what passes here is exactly what the workflow will be given.
An unannotated parameter, `Any` or `object` accepts any JSON.

Pure: no I/O. Used by the HTTP API and the engine, so that a bad input is refused at start
naming the field instead of a workflow that starts and then fails on its first line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sagaflow.core.payload import InputError, convert, parameter_type

__all__ = [
    "MAX_JSON_DEPTH",
    "InputError",
    "check",
    "check_input",
    "check_json",
    "check_text",
    "input_type",
]

input_type = parameter_type
"""The resolved annotation of a workflow function's input parameter (Any if none)."""


def check_input(fn: Callable[..., Any], value: Any) -> None:
    """Raise InputError unless `value` fits `fn`'s input annotation."""
    check(input_type(fn), value, "input")


def check(tp: Any, value: Any, path: str) -> None:
    """Raise InputError unless the JSON `value` converts to the type `tp`."""
    convert(value, tp, path)


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
