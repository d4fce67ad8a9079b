"""Intrinsic functions (States.Format, States.Array, ...): parsed here, evaluated here.

An expression such as `States.Format('Hello {}', $.name)` is parsed into a call tree once
(`parse_call`, used by validation too) and evaluated against the input and context object.
Randomness (States.MathRandom, States.UUID) comes from the workflow's seeded generator, so a
replay computes the same values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sagaflow.asl import paths
from sagaflow.asl.errors import INTRINSIC_FAILURE, StatesError


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]
    """Literals, Path or nested Call."""


@dataclass(frozen=True)
class Path:
    path: str


class IntrinsicSyntaxError(ValueError):
    """An intrinsic expression that does not parse, or names an unknown function."""


@dataclass(frozen=True)
class Random:
    """The workflow's deterministic randomness (ctx.random, ctx.uuid4)."""

    random: Callable[[], float]
    uuid4: Callable[[], str]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(
            f"intrinsic {self.text!r}: {what} at character {self.pos}; "
            "write e.g. States.Format('Hi {}', $.name)"
        )

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def call(self) -> Call:
        self.skip()
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] in "._"
        ):
            self.pos += 1
        name = self.text[start : self.pos]
        if name not in FUNCTIONS:
            raise IntrinsicSyntaxError(
                f"unknown intrinsic function {name!r} in {self.text!r}; known: {sorted(FUNCTIONS)}"
            )
        self.expect("(")
        args: list[Any] = []
        self.skip()
        if self.peek() == ")":
            self.pos += 1
            return Call(name, ())
        while True:
            args.append(self.argument())
            self.skip()
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect(")")
            return Call(name, tuple(args))

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        self.skip()
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def argument(self) -> Any:
        self.skip()
        char = self.peek()
        if char == "'":
            return self.string()
        if char == "$":
            return self.path()
        if self.text.startswith("States.", self.pos):
            return self.call()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",)":
            self.pos += 1
        token = self.text[start : self.pos].strip()
        if token == "null":
            return None
        if token in ("true", "false"):
            return token == "true"
        try:
            number = float(token)
        except ValueError:
            raise self.error(f"unexpected argument {token!r}") from None
        return int(number) if number.is_integer() and "." not in token else number

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == "'":
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise self.error("unterminated string")

    def path(self) -> Path:
        start = self.pos
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif char in ",)" and depth == 0:
                break
            self.pos += 1
        text = self.text[start : self.pos].strip()
        try:
            paths.compile_path(text)
        except paths.PathSyntaxError as exc:
            raise IntrinsicSyntaxError(str(exc)) from exc
        return Path(text)


def parse_call(text: str) -> Call:
    parser = _Parser(text.strip())
    call = parser.call()
    parser.skip()
    if parser.pos != len(parser.text):
        raise parser.error("unexpected text after the call")
    return call


def evaluate(text: str, data: Any, context: Any, rng: Random) -> Any:
    """The value of an intrinsic expression (States.IntrinsicFailure on bad arguments)."""
    try:
        call = parse_call(text)
    except IntrinsicSyntaxError as exc:
        raise StatesError(INTRINSIC_FAILURE, str(exc)) from exc
    return _eval(call, data, context, rng)


def _eval(node: Any, data: Any, context: Any, rng: Random) -> Any:
    if isinstance(node, Path):
        return paths.read(node.path, data, context, what="intrinsic argument")
    if not isinstance(node, Call):
        return node
    args = [_eval(arg, data, context, rng) for arg in node.args]
    try:
        return FUNCTIONS[node.name](args, rng)
    except StatesError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
        raise StatesError(
            INTRINSIC_FAILURE, f"{node.name} failed on arguments {args!r}: {exc}"
        ) from exc


def _need(args: list[Any], count: int, name: str) -> None:
    if len(args) != count:
        raise ValueError(f"{name} takes {count} argument(s), got {len(args)}")


def _format(args: list[Any], rng: Random) -> str:
    template, values = args[0], args[1:]
    if not isinstance(template, str):
        raise TypeError("the first argument must be a string")
    pieces = template.split("{}")
    if len(pieces) - 1 != len(values):
        raise ValueError(f"{len(pieces) - 1} placeholder(s) but {len(values)} value(s)")
    out = pieces[0]
    for value, piece in zip(values, pieces[1:], strict=True):
        out += (value if isinstance(value, str) else json.dumps(value)) + piece
    return out


def _partition(args: list[Any], rng: Random) -> list[Any]:
    _need(args, 2, "States.ArrayPartition")
    items, size = args
    if not isinstance(items, list) or not isinstance(size, int) or size < 1:
        raise ValueError("needs an array and a positive integer chunk size")
    return [items[i : i + size] for i in range(0, len(items), size)]


def _range(args: list[Any], rng: Random) -> list[int]:
    _need(args, 3, "States.ArrayRange")
    start, end, step = (int(a) for a in args)
    if step == 0:
        raise ValueError("step must not be 0")
    values = list(range(start, end + (1 if step > 0 else -1), step))
    if len(values) > 1000:
        raise ValueError("at most 1000 items")
    return values


def _unique(args: list[Any], rng: Random) -> list[Any]:
    _need(args, 1, "States.ArrayUnique")
    out: list[Any] = []
    for item in args[0]:
        if item not in out:
            out.append(item)
    return out


_HASHES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}


def _hash(args: list[Any], rng: Random) -> str:
    _need(args, 2, "States.Hash")
    value, algorithm = args
    if algorithm not in _HASHES:
        raise ValueError(f"algorithm must be one of {sorted(_HASHES)}")
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _merge(args: list[Any], rng: Random) -> dict[str, Any]:
    _need(args, 3, "States.JsonMerge")
    left, right, deep = args
    if deep is not False:
        raise ValueError("only shallow merge is defined (the third argument must be false)")
    if not isinstance(left, dict) or not isinstance(right, dict):
        raise TypeError("both arguments must be objects")
    return {**left, **right}


def _math_random(args: list[Any], rng: Random) -> int:
    if len(args) not in (2, 3):
        raise ValueError("States.MathRandom takes (start, end[, seed])")
    start, end = int(args[0]), int(args[1])
    # The seed argument is accepted for compatibility; the run's recorded seed decides.
    return start + math.floor(rng.random() * (end - start))


def _add(args: list[Any], rng: Random) -> Any:
    _need(args, 2, "States.MathAdd")
    a, b = args
    if isinstance(a, bool) or isinstance(b, bool):
        raise TypeError("arguments must be numbers")
    return a + b


def _get_item(args: list[Any], rng: Random) -> Any:
    _need(args, 2, "States.ArrayGetItem")
    return args[0][int(args[1])]


def _split(args: list[Any], rng: Random) -> list[str]:
    _need(args, 2, "States.StringSplit")
    text, delimiters = args
    out = [text]
    for delimiter in delimiters:
        out = [piece for part in out for piece in part.split(delimiter)]
    return [piece for piece in out if piece != ""]


FUNCTIONS: dict[str, Callable[[list[Any], Random], Any]] = {
    "States.Format": _format,
    "States.StringToJson": lambda a, r: json.loads(a[0]),
    "States.JsonToString": lambda a, r: json.dumps(a[0], separators=(",", ":")),
    "States.Array": lambda a, r: list(a),
    "States.ArrayPartition": _partition,
    "States.ArrayContains": lambda a, r: a[1] in a[0],
    "States.ArrayRange": _range,
    "States.ArrayGetItem": _get_item,
    "States.ArrayLength": lambda a, r: len(a[0]),
    "States.ArrayUnique": _unique,
    "States.Base64Encode": lambda a, r: base64.b64encode(a[0].encode()).decode(),
    "States.Base64Decode": lambda a, r: base64.b64decode(a[0].encode(), validate=True).decode(),
    "States.Hash": _hash,
    "States.JsonMerge": _merge,
    "States.MathAdd": _add,
    "States.MathRandom": _math_random,
    "States.StringSplit": _split,
    "States.UUID": lambda a, r: r.uuid4(),
}
