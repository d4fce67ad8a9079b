"""Typed payloads through the one codec (sagaflow.core.payload): dataclasses, pydantic models and
TypedDicts encode to plain, deterministic JSON and decode back to the annotated type, strictly,
with errors naming the field."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NotRequired, TypedDict
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from sagaflow import codec, testing
from sagaflow.client import payload
from sagaflow.core.driver import encode_json
from sagaflow.core.payload import (
    InputError,
    convert,
    decode,
    dumps,
    loads,
    parameter_type,
    return_type,
)

pytestmark = pytest.mark.unit


class Tier(Enum):
    GOLD = "gold"
    SILVER = "silver"


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int = 1


@dataclass(frozen=True)
class Order:
    order_id: str
    lines: list[Line]
    placed_at: datetime
    tier: Tier = Tier.SILVER
    tags: frozenset[str] = frozenset()
    note: str | None = None


class Receipt(BaseModel):
    order_id: str
    total_cents: int
    lines: list[Line] = []


class Address(TypedDict):
    street: str
    zip: NotRequired[str]


ORDER = Order(
    "o-1",
    [Line("a", 2), Line("b")],
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    Tier.GOLD,
    frozenset({"z", "a", "m"}),
)


def test_a_dataclass_is_the_json_of_its_fields_in_declaration_order() -> None:
    assert dumps(ORDER) == (
        b'{"order_id":"o-1","lines":[{"sku":"a","quantity":2},{"sku":"b","quantity":1}],'
        b'"placed_at":"2026-01-02T03:04:05Z","tier":"gold","tags":["a","m","z"],"note":null}'
    )
    # The same value as a plain dict, keys in the same order, is the same bytes.
    assert dumps(loads(dumps(ORDER))) == dumps(ORDER)


def test_a_dataclass_round_trips_to_its_type() -> None:
    assert decode(dumps(ORDER), Order) == ORDER


def test_a_pydantic_model_round_trips_and_is_model_dump_json() -> None:
    receipt = Receipt(order_id="o-1", total_cents=1250, lines=[Line("a")])
    assert (
        dumps(receipt)
        == b'{"order_id":"o-1","total_cents":1250,"lines":[{"sku":"a","quantity":1}]}'
    )
    assert decode(dumps(receipt), Receipt) == receipt


def test_typeddicts_are_read_as_dicts_and_checked() -> None:
    # typing.TypedDict, even on Python 3.11 where pydantic itself wants typing_extensions'.
    value = [{"street": "1 Road"}, {"street": "2 Road", "zip": "12345"}]
    assert convert(value, list[Address]) == value
    assert error_of([{"street": "1 Road", "zip": 12345}], list[Address]).field == "input[0].zip"


def test_uuid_enum_and_datetime_use_their_standard_json_form() -> None:
    uid = UUID("12345678-1234-5678-1234-567812345678")
    assert dumps({"id": uid, "tier": Tier.GOLD}) == (
        b'{"id":"12345678-1234-5678-1234-567812345678","tier":"gold"}'
    )
    assert convert(str(uid), UUID) == uid


def test_sets_encode_sorted_so_the_bytes_do_not_depend_on_hash_seeds() -> None:
    script = "from sagaflow.core.payload import dumps; print(dumps({'s': {'x', 'y', 'z', 'w'}}))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
            timeout=60,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert outputs == {b"""b'{"s":["w","x","y","z"]}'\n"""}


def test_a_value_that_is_not_json_says_what_to_use() -> None:
    with pytest.raises(TypeError, match="dataclass or a pydantic model"):
        dumps(object())


@given(
    st.builds(
        Line,
        sku=st.text(max_size=8),
        quantity=st.integers(min_value=-(2**53), max_value=2**53),
    )
)
def test_every_door_encodes_a_dataclass_to_the_same_bytes(line: Line) -> None:
    doors = (payload, codec.dumps_payload, encode_json, testing.encode)
    assert len({door(line) for door in doors}) == 1
    assert decode(payload(line), Line) == line


def error_of(value: Any, tp: Any) -> InputError:
    with pytest.raises(InputError) as info:
        convert(value, tp)
    return info.value


def test_decoding_is_strict_json_and_names_the_field() -> None:
    good = loads(dumps(ORDER))
    bad = {**good, "lines": [{"sku": "a", "quantity": "2"}]}
    err = error_of(bad, Order)
    assert err.field == "input.lines[0].quantity"
    assert "whole number" in err.message
    assert error_of({**good, "placed_at": "yesterday"}, Order).field == "input.placed_at"
    assert error_of({**good, "tier": "bronze"}, Order).field == "input.tier"
    missing = {k: v for k, v in good.items() if k != "order_id"}
    assert (error_of(missing, Order).field, error_of(missing, Order).message) == (
        "input.order_id",
        "is required",
    )


def test_an_unknown_key_in_a_nested_dataclass_lists_the_known_fields() -> None:
    good = loads(dumps(ORDER))
    err = error_of({**good, "lines": [{"sku": "a", "qty": 2}]}, Order)
    assert err.field == "input.lines[0].qty"
    assert "['quantity', 'sku']" in err.message


def test_a_model_field_error_is_named_too() -> None:
    err = error_of({"order_id": "o", "total_cents": 1.5}, Receipt)
    assert err.field == "input.total_cents"


def test_any_gives_plain_json() -> None:
    assert decode(b'{"a":[1]}', Any) == {"a": [1]}
    assert convert(ORDER, Any) is ORDER


async def workflow(ctx: object, order: Order) -> Receipt: ...


def activity(ctx: object, line: Line) -> None: ...


def test_parameter_and_return_types_are_read_from_annotations() -> None:
    assert parameter_type(workflow) is Order
    assert return_type(workflow) is Receipt
    assert parameter_type(activity) is Line
    assert return_type(activity) is Any


@dataclass
class WithDefaults:
    names: list[str] = field(default_factory=list)


def test_dataclass_defaults_fill_missing_fields() -> None:
    assert convert({}, WithDefaults) == WithDefaults([])


@dataclass
class HoldsTypedDict:
    address: Address


async def holds(ctx: object, value: HoldsTypedDict) -> None: ...


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="pydantic reads these from 3.12 on")
def test_what_pydantic_cannot_read_is_a_type_error_and_an_unchecked_parameter() -> None:
    # Python 3.11: a typing.TypedDict inside a dataclass (pydantic wants typing_extensions').
    with pytest.raises(TypeError, match="typing_extensions"):
        convert({"address": {"street": "x"}}, HoldsTypedDict)
    assert parameter_type(holds) is Any
