"""sagaflow.inputs: JSON input checked against a workflow function's input annotation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Optional, Required, TypedDict

import pytest

from sagaflow.inputs import InputError, check, check_input, input_type

pytestmark = pytest.mark.unit


class Item(TypedDict):
    sku: str
    quantity: int


class Order(TypedDict):
    order_id: str
    amount_cents: int
    items: list[Item]
    note: NotRequired[str]
    coupon: NotRequired[Optional[str]]  # noqa: UP045 - Optional must be understood too


class Partial(TypedDict, total=False):
    a: int
    b: Required[str]


@dataclass
class Refund:
    order_id: str
    amount: float
    reasons: list[str] = field(default_factory=list)
    urgent: bool = False
    meta: dict[str, int | str] = field(default_factory=dict)


async def checkout(ctx: object, order: Order) -> None: ...


async def refund(ctx: object, req: Refund) -> None: ...


async def untyped(ctx, req): ...  # type: ignore[no-untyped-def]


async def only_ctx(ctx: object) -> None: ...


async def unresolvable(ctx: object, req: NotImportedHere) -> None: ...  # type: ignore[name-defined]  # noqa: F821


GOOD = {"order_id": "o-1", "amount_cents": 1250, "items": [{"sku": "a", "quantity": 2}]}


def field_of(fn: Any, value: Any) -> str:
    with pytest.raises(InputError) as info:
        check_input(fn, value)
    return info.value.field


def test_a_valid_typeddict_input_passes() -> None:
    check_input(checkout, GOOD)
    check_input(checkout, {**GOOD, "note": "gift", "coupon": None})
    check_input(checkout, {**GOOD, "coupon": "SPRING"})


def test_missing_required_key_names_the_field() -> None:
    value = {k: v for k, v in GOOD.items() if k != "amount_cents"}
    assert field_of(checkout, value) == "input.amount_cents"


def test_wrong_type_names_the_field_and_says_what_was_expected() -> None:
    with pytest.raises(InputError) as info:
        check_input(checkout, {**GOOD, "amount_cents": "12.50"})
    assert info.value.field == "input.amount_cents"
    assert "whole number" in str(info.value)


def test_nested_errors_carry_the_full_path() -> None:
    value = {**GOOD, "items": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 1.5}]}
    assert field_of(checkout, value) == "input.items[1].quantity"


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(InputError) as info:
        check_input(checkout, {**GOOD, "amount": 3})
    assert info.value.field == "input.amount"
    assert "amount_cents" in str(info.value)  # lists the known fields


def test_bool_is_not_an_int_and_int_is_a_float() -> None:
    assert field_of(checkout, {**GOOD, "amount_cents": True}) == "input.amount_cents"
    check_input(refund, {"order_id": "o", "amount": 3})
    assert field_of(refund, {"order_id": "o", "amount": False}) == "input.amount"


def test_not_an_object_at_all() -> None:
    assert field_of(checkout, [1, 2]) == "input"
    assert field_of(checkout, None) == "input"


def test_total_false_with_required() -> None:
    check(Partial, {"b": "x"}, "input")
    with pytest.raises(InputError) as info:
        check(Partial, {"a": 1}, "input")
    assert info.value.field == "input.b"


def test_dataclass_defaults_make_fields_optional() -> None:
    check_input(refund, {"order_id": "o", "amount": 1.5})
    check_input(
        refund,
        {
            "order_id": "o",
            "amount": 1.5,
            "reasons": ["x"],
            "urgent": True,
            "meta": {"a": 1, "b": "c"},
        },
    )
    assert field_of(refund, {"amount": 1.5}) == "input.order_id"
    assert field_of(refund, {"order_id": "o", "amount": 1, "reasons": [1]}) == "input.reasons[0]"
    assert field_of(refund, {"order_id": "o", "amount": 1, "meta": {"k": []}}) == "input.meta.k"


def test_optional_and_unions() -> None:
    check(int | None, None, "input")
    check(int | str, "x", "input")
    with pytest.raises(InputError) as info:
        check(int | str, 1.5, "input.v")
    assert info.value.field == "input.v"
    assert "a whole number or a string" in str(info.value)


def test_literal() -> None:
    check(Literal["card", "invoice"], "card", "input")
    with pytest.raises(InputError):
        check(Literal["card", "invoice"], "cash", "input")


def test_unannotated_or_any_accepts_anything() -> None:
    assert input_type(untyped) is Any
    assert input_type(only_ctx) is Any
    check_input(untyped, {"whatever": [1, {"x": None}]})
    check(dict[str, Any], {"a": {"b": [1, None, "x"]}}, "input")


def test_annotation_that_cannot_be_resolved_is_not_checked() -> None:
    assert input_type(unresolvable) is Any


class Opaque:
    """A class pydantic knows nothing of."""


async def opaque(ctx: object, req: Opaque) -> None: ...


def test_an_annotation_pydantic_cannot_read_is_an_error_when_asked_and_any_as_a_parameter() -> None:
    with pytest.raises(TypeError, match="not a type sagaflow can read a payload as"):
        check(Opaque, {}, "input")
    assert input_type(opaque) is Any
