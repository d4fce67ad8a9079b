"""The checkout saga's outside world as a Protocol, and an in-memory implementation for tests.

Every method takes the activity's idempotency key: a second call with the same key must return
the first call's response and change nothing (that is how a payment provider is charged once
even when an attempt is repeated). `sagaflow.examples.shop_pg` implements it on Postgres.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from sagaflow.core.errors import ApplicationError

DECLINED_CARD = "tok_declined"
"""The card token the payment provider always declines."""


class Shop(Protocol):
    """Inventory, payments, shipping and email, each idempotent by key."""

    async def reserve_inventory(
        self, key: str, order_id: str, sku: str, quantity: int
    ) -> dict[str, Any]: ...

    async def release_inventory(self, key: str, order_id: str) -> dict[str, Any]: ...

    async def charge_payment(
        self, key: str, order_id: str, amount_cents: int, card: str
    ) -> dict[str, Any]:
        """Returns {"charge_id": ...}; raises ApplicationError(type="PaymentDeclined",
        non_retryable=True) when card == "tok_declined"."""
        ...

    async def refund_payment(self, key: str, order_id: str, charge_id: str) -> dict[str, Any]: ...

    async def create_shipment(self, key: str, order_id: str, address: str) -> dict[str, Any]: ...

    async def cancel_shipment(
        self, key: str, order_id: str, shipment_id: str
    ) -> dict[str, Any]: ...

    async def send_receipt_email(self, key: str, order_id: str, email: str) -> dict[str, Any]: ...


def _derived_id(prefix: str, key: str) -> str:
    return f"{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@dataclass
class InMemoryShop:
    """A Shop in a few dicts: idempotent by key, records every effect in `calls` (in order).

    `fail_times[op] = n` makes the next n calls of `op` raise a retryable error first (to test
    retries); `stock[sku]` bounds reservations when set.
    """

    calls: list[tuple[str, str]] = field(default_factory=list)
    """(operation, order_id) of every effect performed (not of replays of a key)."""
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_times: dict[str, int] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    emails: list[dict[str, Any]] = field(default_factory=list)

    def operations(self, order_id: str | None = None) -> list[str]:
        return [op for op, oid in self.calls if order_id is None or oid == order_id]

    def _once(self, op: str, key: str, order_id: str, response: dict[str, Any]) -> dict[str, Any]:
        if key in self.responses:
            return self.responses[key]
        remaining = self.fail_times.get(op, 0)
        if remaining > 0:
            self.fail_times[op] = remaining - 1
            raise ApplicationError(f"{op} temporarily unavailable", type="Unavailable")
        self.responses[key] = response
        self.calls.append((op, order_id))
        return response

    async def reserve_inventory(
        self, key: str, order_id: str, sku: str, quantity: int
    ) -> dict[str, Any]:
        if key not in self.responses and sku in self.stock:
            if self.stock[sku] < quantity:
                raise ApplicationError(
                    f"only {self.stock[sku]} of {sku} left", type="OutOfStock", non_retryable=True
                )
            self.stock[sku] -= quantity
        response = {"reservation_id": _derived_id("res", key), "sku": sku, "quantity": quantity}
        return self._once("reserve_inventory", key, order_id, response)

    async def release_inventory(self, key: str, order_id: str) -> dict[str, Any]:
        return self._once("release_inventory", key, order_id, {"released": True})

    async def charge_payment(
        self, key: str, order_id: str, amount_cents: int, card: str
    ) -> dict[str, Any]:
        if card == DECLINED_CARD:
            raise ApplicationError(
                f"card declined for order {order_id}", type="PaymentDeclined", non_retryable=True
            )
        response = {"charge_id": _derived_id("ch", key), "amount_cents": amount_cents}
        return self._once("charge_payment", key, order_id, response)

    async def refund_payment(self, key: str, order_id: str, charge_id: str) -> dict[str, Any]:
        response = {"refund_id": _derived_id("re", key), "charge_id": charge_id}
        return self._once("refund_payment", key, order_id, response)

    async def create_shipment(self, key: str, order_id: str, address: str) -> dict[str, Any]:
        return self._once("create_shipment", key, order_id, {"shipment_id": _derived_id("sh", key)})

    async def cancel_shipment(self, key: str, order_id: str, shipment_id: str) -> dict[str, Any]:
        return self._once("cancel_shipment", key, order_id, {"cancelled": shipment_id})

    async def send_receipt_email(self, key: str, order_id: str, email: str) -> dict[str, Any]:
        response = {"message_id": _derived_id("msg", key), "idempotency_key": key, "to": email}
        first = key not in self.responses
        result = self._once("send_receipt_email", key, order_id, response)
        if first:
            self.emails.append(result)
        return result
