"""The one payload codec: how every value a workflow sees (start input, activity argument and
result, signal, error details) becomes bytes, wherever it is encoded — the API, the CLI, the
client, the workflow driver, the worker and the test kit all call `dumps`, so the same value is
the same bytes everywhere (and a start retried through another door is the same command).

Compact UTF-8 JSON, keys in the order given. This is the encoding recorded histories were
written with; it is frozen (changing it would change the bytes replay compares).

Typed values go through the same two functions. `dumps` writes a dataclass as an object of its
fields in declaration order and a pydantic model as `model_dump(mode="json")`; both are plain
JSON, so a dataclass and the dict of its fields are the same bytes. `decode(data, tp)` reads
bytes back as the type `tp` (a dataclass, a pydantic model, a TypedDict, or any annotation
pydantic understands), validated strictly as JSON: "12" is not an int, true is not a number,
and a key the type does not have is refused. A value that does not fit raises `InputError`
naming the field as a path (`input.items[2].sku`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NotRequired, Required, get_args, get_origin

if TYPE_CHECKING:
    from pydantic import TypeAdapter


class InputError(ValueError):
    """A payload does not fit the type it is read as. `field` is the path of the offending
    value (`input.items[1].quantity`); the message says what was expected."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def dumps(value: Any) -> bytes:
    """`value` as payload bytes; TypeError when it is not JSON-serialisable."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_plain).encode()


def loads(data: bytes | str) -> Any:
    """The value of payload bytes; ValueError when they are not UTF-8 JSON."""
    return json.loads(data)


def decode(data: bytes | str, tp: Any, root: str = "input") -> Any:
    """The payload as an instance of `tp`; InputError naming the field when it does not fit.
    `Any` (or `object`) gives the plain JSON value, exactly what `loads` gives."""
    if tp is Any or tp is object:
        return loads(data)
    from pydantic import ValidationError

    raw = data.encode() if isinstance(data, str) else data
    try:
        # A one-item tuple around the type, so the strict, closed config applies to a
        # dataclass or TypedDict at the top too (pydantic takes no config for those directly).
        return _adapter(tp).validate_json(b"[" + raw + b"]", strict=True)[0]
    except ValidationError as exc:
        raise _input_error(exc, loads(raw), root, tp) from None


def convert(value: Any, tp: Any, root: str = "input") -> Any:
    """`value` (plain JSON, or already typed) as an instance of `tp`, by way of its payload
    bytes: what a workflow or activity annotated with `tp` will receive."""
    if tp is Any or tp is object:
        return value
    return decode(dumps(value), tp, root)


@functools.lru_cache(maxsize=1024)
def parameter_type(fn: Callable[..., Any]) -> Any:
    """The annotation of `fn`'s input parameter (the one after ctx), resolved; Any if none.

    Annotations are resolved in the function's module. One that cannot be resolved (a name
    imported only under TYPE_CHECKING) or read (a class pydantic knows nothing of) counts as
    Any: the input is then passed as plain JSON, as to an unannotated function.
    """
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2 or params[1].annotation is inspect.Parameter.empty:
        return Any
    return _readable(fn, params[1].annotation)


@functools.lru_cache(maxsize=1024)
def return_type(fn: Callable[..., Any]) -> Any:
    """The resolved return annotation of `fn`; Any if none, None, unresolvable or unreadable."""
    annotation = inspect.signature(fn).return_annotation
    if annotation in (inspect.Signature.empty, None, "None"):
        return Any
    resolved = _readable(fn, annotation)
    return Any if resolved is type(None) else resolved


def _readable(fn: Callable[..., Any], annotation: Any) -> Any:
    holder = types.SimpleNamespace(__annotations__={"value": annotation})
    try:
        hints = typing.get_type_hints(
            holder, globalns=getattr(fn, "__globals__", {}), include_extras=True
        )
        tp = hints["value"]
        if tp is not Any and tp is not object:
            _adapter(tp)
    except (NameError, TypeError):
        return Any
    return tp


def _plain(value: Any) -> Any:
    """json's fallback for what is not plain JSON: typed values become their JSON form."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # One level at a time (json recurses), so a field holding a model or a set is
        # converted here too, and fields keep their declaration order.
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, set | frozenset):
        # A set's iteration order differs between processes (hash seeds): sorted, so the same
        # set is the same bytes everywhere.
        try:
            return sorted(value)
        except TypeError:
            raise TypeError(
                f"a set of {sorted({type(v).__name__ for v in value})} has no order to encode "
                "it in; pass a list"
            ) from None
    from pydantic import BaseModel
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        # datetime, date, UUID, Enum, Decimal, Path...: their standard JSON form.
        return to_jsonable_python(value)
    except PydanticSerializationError:
        raise TypeError(
            f"Object of type {type(value).__name__} is not JSON serializable; use JSON values, "
            "a dataclass or a pydantic model"
        ) from None


@functools.lru_cache(maxsize=512)
def _adapter(tp: Any) -> TypeAdapter[tuple[Any]]:
    from pydantic import ConfigDict, PydanticUserError, TypeAdapter

    try:
        return TypeAdapter(
            tuple[_compatible(tp)],  # type: ignore[misc,arg-type]
            config=ConfigDict(strict=True, extra="forbid"),
        )
    except PydanticUserError as exc:
        # A class pydantic has no schema for, or (Python 3.11) a typing.TypedDict inside a
        # dataclass or model, which pydantic reads only as typing_extensions.TypedDict.
        raise TypeError(
            f"{tp!r} is not a type sagaflow can read a payload as ({exc}); use JSON types, a "
            "dataclass, a TypedDict or a pydantic model"
        ) from None


def _compatible(tp: Any) -> Any:
    """`tp` with every typing.TypedDict remade as a typing_extensions one: pydantic reads only
    those on Python 3.11 (from 3.12 on, typing's own is accepted as it is)."""
    if sys.version_info >= (3, 12):
        return tp
    if typing.is_typeddict(tp):
        if type(tp).__module__ == "typing_extensions":
            return tp
        return _remade_typeddict(tp)
    args = get_args(tp)
    if not args:
        return tp
    new_args = tuple(a if isinstance(a, list) else _compatible(a) for a in args)
    if new_args == args:
        return tp
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return typing.Annotated[(new_args[0], *tp.__metadata__)]
    if origin is types.UnionType or origin is typing.Union:
        return typing.Union[new_args]  # noqa: UP007 - built from a tuple of types
    if origin in (Required, NotRequired):
        return origin[new_args[0]]
    if origin is typing.Literal:
        return tp
    return origin[new_args] if origin is not None else tp


@functools.lru_cache(maxsize=256)
def _remade_typeddict(tp: Any) -> Any:
    import typing_extensions

    hints = typing.get_type_hints(tp, include_extras=True)
    fields: dict[str, Any] = {}
    for key, hint in hints.items():
        origin = get_origin(hint)
        if origin in (Required, NotRequired):
            # typing's Required/NotRequired are other objects than typing_extensions' on 3.11.
            wrapper = (
                typing_extensions.Required if origin is Required else typing_extensions.NotRequired
            )
            fields[key] = wrapper[_compatible(get_args(hint)[0])]
        elif key in tp.__required_keys__:
            fields[key] = typing_extensions.Required[_compatible(hint)]
        else:
            fields[key] = typing_extensions.NotRequired[_compatible(hint)]
    return typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[operator]


_EXPECTED = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "none_required": "null",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dataclass_type": "an object",
    "dataclass_exact_type": "an object",
    "typed_dict_type": "an object",
}


_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
"""What pydantic calls a key the type has no field for (TypedDicts and models; dataclasses)."""


def _input_error(exc: Any, value: Any, root: str, tp: Any) -> InputError:
    """The first problem pydantic found, as an InputError whose field is a path into `value`.

    pydantic's locations also name the union member that was tried; only the steps that are
    keys or indexes of the value itself make the path. When several members of a union were
    tried at the same place, the message lists what each expected.
    """
    found: list[tuple[str, str, dict[str, Any]]] = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])[1:]  # [0] is the index into the one-item wrapper
        path, parent = _path(value, loc, root, error["type"])
        found.append((path, error["type"], {**error, "parent": parent}))
    deepest = max(len(p) for p, _, _ in found)
    here = [(p, kind, e) for p, kind, e in found if len(p) == deepest]
    path, kind, error = here[0]
    got = _show(error.get("input"))
    if kind == "missing":
        return InputError(path, "is required")
    if kind in _UNKNOWN_KEY:
        known = _known_fields(tp, error["parent"])
        hint = f"; known fields: {known}" if known else "; remove it"
        return InputError(path, f"is not a field of the type{hint}")
    if kind == "literal_error":
        return InputError(path, f"must be {error['ctx']['expected']}, got {got}")
    expected = [_EXPECTED[k] for _, k, _ in here if k in _EXPECTED]
    if expected:
        unique = list(dict.fromkeys(expected))
        return InputError(path, f"must be {' or '.join(unique)}, got {got}")
    return InputError(path, f"{error['msg']}, got {got}")


def _path(value: Any, loc: list[Any], root: str, kind: str) -> tuple[str, list[Any]]:
    """The path of `loc` in `value`, skipping the steps that name a union member; with the
    steps that were keys (for finding the type that refused an extra key)."""
    path, here = root, value
    keys: list[Any] = []
    for i, step in enumerate(loc):
        last = i == len(loc) - 1
        missing_here = last and kind == "missing"
        if isinstance(here, dict) and isinstance(step, str) and (step in here or missing_here):
            path += f".{step}"
            keys.append(step)
            here = here.get(step)
        elif isinstance(here, list) and isinstance(step, int) and 0 <= step < len(here):
            path += f"[{step}]"
            keys.append(step)
            here = here[step]
    parent = keys[:-1] if kind in _UNKNOWN_KEY else keys
    return path, parent


def _known_fields(tp: Any, keys: list[Any]) -> list[str]:
    """The field names of the object type found at `keys` under `tp` (empty if unknown)."""
    for key in keys:
        tp = _field_type(tp, key)
        if tp is None:
            return []
    tp = _unwrap(tp)
    if typing.is_typeddict(tp):
        return sorted(typing.get_type_hints(tp))
    if dataclasses.is_dataclass(tp):
        return sorted(f.name for f in dataclasses.fields(tp) if f.init)
    fields = getattr(tp, "model_fields", None)
    return sorted(fields) if isinstance(fields, dict) else []


def _field_type(tp: Any, key: Any) -> Any:
    tp = _unwrap(tp)
    if isinstance(key, int):
        args = get_args(tp)
        return args[0] if args else None
    if typing.is_typeddict(tp) or dataclasses.is_dataclass(tp):
        return typing.get_type_hints(tp, include_extras=True).get(key)
    fields = getattr(tp, "model_fields", None)
    if isinstance(fields, dict) and key in fields:
        return fields[key].annotation
    if get_origin(tp) is dict:
        args = get_args(tp)
        return args[1] if len(args) == 2 else None
    return None


def _unwrap(tp: Any) -> Any:
    """Required[X], NotRequired[X], Annotated[X, ...], X | None -> X."""
    while True:
        origin = get_origin(tp)
        if origin in (Required, NotRequired, typing.Annotated):
            tp = get_args(tp)[0]
        elif origin is typing.Union or origin is types.UnionType:
            options = [a for a in get_args(tp) if a is not type(None)]
            if len(options) != 1:
                return tp
            tp = options[0]
        else:
            return tp


def _show(value: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    kind = type(value)
    if value is None:
        return "null"
    if kind in names:
        return f"{names[kind]} ({value!r})"[:80] if kind is not bool else json.dumps(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return repr(value)[:80]
