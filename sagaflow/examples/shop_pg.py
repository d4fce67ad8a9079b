"""The checkout saga's outside world on Postgres: a payment provider, a warehouse, a carrier and
a mailer that honour idempotency keys the way real providers do.

Every method takes the activity's idempotency key. The first call with a key performs the
effect and stores its response, in one transaction; any later call with that key returns the
stored response and does nothing (`shop_idempotency`). A key reused for a different request is
refused, as a payment provider refuses it. On top of that each effect table has the key as a
UNIQUE column, so even a bug in this module could not charge twice under one key.

The payment ledger (`ledger()`) is the test oracle: one charge per order, one refund per
compensated order, whatever crashed in between. Identifiers (charge, refund, reservation,
shipment, message ids) are derived from the key, never random.

Fault points (see `sagaflow.faults`): `after_charge` and `after_refund` fire right after the
provider's transaction commits and before the caller hears of it, on the first call with a key
only (so a re-run after the crash is not killed again).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from sagaflow.config import Config
from sagaflow.db import Target, connection, migrate, open_pool
from sagaflow.faults import fault_point

DECLINED_CARD = "tok_declined"
"""The card token the provider always declines."""

Response = dict[str, Any]
_Conn = AsyncConnection[Any]


def _rejected(error_type: str, message: str) -> Exception:
    """A non-retryable application error: the workflow sees `error_type` and compensates."""
    # Imported here, not at the top: this module is the outside world and stays importable
    # without pulling in the engine's core.
    from sagaflow.core.errors import ApplicationError

    return ApplicationError(message, type=error_type, non_retryable=True)


def _derived_id(prefix: str, key: str) -> str:
    return f"{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:24]}"


Effect = Callable[[_Conn], Awaitable[Response]]


class PostgresShop:
    """The shop's providers over a connection pool; see the module doc for the guarantees."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    # ----------------------------------------------------------------------- inventory

    async def reserve_inventory(
        self, key: str, order_id: str, sku: str, quantity: int
    ) -> dict[str, Any]:
        async def effect(conn: _Conn) -> Response:
            if quantity <= 0:
                raise _rejected("InvalidQuantity", f"order {order_id}: quantity {quantity} <= 0")
            cur = await conn.execute(
                "UPDATE shop_stock SET available = available - %s, updated_at = now()"
                " WHERE sku = %s AND available >= %s RETURNING available",
                (quantity, sku, quantity),
            )
            if await cur.fetchone() is None:
                known = await conn.execute(
                    "SELECT available FROM shop_stock WHERE sku = %s", (sku,)
                )
                row = await known.fetchone()
                if row is None:
                    raise _rejected("UnknownSku", f"order {order_id}: no stock entry for {sku!r}")
                raise _rejected(
                    "OutOfStock",
                    f"order {order_id}: {quantity} x {sku!r} requested, {row[0]} available",
                )
            reservation_id = _derived_id("res", key)
            await conn.execute(
                "INSERT INTO shop_reservations"
                " (reservation_id, idempotency_key, order_id, sku, quantity, state)"
                " VALUES (%s, %s, %s, %s, %s, 'reserved')",
                (reservation_id, key, order_id, sku, quantity),
            )
            return {"reservation_id": reservation_id, "sku": sku, "quantity": quantity}

        request = {"sku": sku, "quantity": quantity}
        response, _ = await self._once(key, "reserve_inventory", order_id, request, effect)
        return response

    async def release_inventory(self, key: str, order_id: str) -> dict[str, Any]:
        """Release every reservation of the order still held; releasing nothing is a success
        (the compensation may run for an order whose reservation was already released)."""

        async def effect(conn: _Conn) -> Response:
            cur = await conn.execute(
                "UPDATE shop_reservations"
                " SET state = 'released', release_key = %s, released_at = now()"
                " WHERE order_id = %s AND state = 'reserved'"
                " RETURNING reservation_id, sku, quantity",
                (key, order_id),
            )
            released = sorted(await cur.fetchall())
            for _, sku, quantity in released:
                await conn.execute(
                    "UPDATE shop_stock SET available = available + %s, updated_at = now()"
                    " WHERE sku = %s",
                    (quantity, sku),
                )
            return {
                "released": [r[0] for r in released],
                "quantity": sum(r[2] for r in released),
            }

        response, _ = await self._once(key, "release_inventory", order_id, {}, effect)
        return response

    # ----------------------------------------------------------------------- payments

    async def charge_payment(
        self, key: str, order_id: str, amount_cents: int, card: str
    ) -> dict[str, Any]:
        async def effect(conn: _Conn) -> Response:
            if card == DECLINED_CARD:
                raise _rejected("PaymentDeclined", f"order {order_id}: card {card} was declined")
            if amount_cents <= 0:
                raise _rejected("InvalidAmount", f"order {order_id}: amount {amount_cents} <= 0")
            charge_id = _derived_id("ch", key)
            await conn.execute(
                "INSERT INTO shop_payment_ledger"
                " (idempotency_key, kind, order_id, charge_id, amount_cents, card)"
                " VALUES (%s, 'charge', %s, %s, %s, %s)",
                (key, order_id, charge_id, amount_cents, card),
            )
            return {"charge_id": charge_id, "amount_cents": amount_cents}

        request = {"amount_cents": amount_cents, "card": card}
        response, charged = await self._once(key, "charge_payment", order_id, request, effect)
        if charged:
            # The card is charged and committed; the caller has not heard of it yet. A crash
            # here is the window the idempotency key must close.
            fault_point("after_charge")
        return response

    async def refund_payment(self, key: str, order_id: str, charge_id: str) -> dict[str, Any]:
        """Refund a charge in full. A charge already refunded under another key is not refunded
        again: its refund is returned."""

        async def effect(conn: _Conn) -> Response:
            cur = await conn.execute(
                "SELECT order_id, amount_cents FROM shop_payment_ledger"
                " WHERE charge_id = %s AND kind = 'charge'",
                (charge_id,),
            )
            charge = await cur.fetchone()
            if charge is None:
                raise _rejected("ChargeNotFound", f"order {order_id}: no charge {charge_id!r}")
            if charge[0] != order_id:
                raise _rejected(
                    "ChargeMismatch",
                    f"charge {charge_id!r} belongs to order {charge[0]}, not {order_id}",
                )
            refund_id = _derived_id("re", key)
            # ON CONFLICT without a target also covers the one-refund-per-charge index, so a
            # concurrent refund under another key waits for this one and then finds it.
            await conn.execute(
                "INSERT INTO shop_payment_ledger"
                " (idempotency_key, kind, order_id, charge_id, refund_id, amount_cents)"
                " VALUES (%s, 'refund', %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (key, order_id, charge_id, refund_id, charge[1]),
            )
            cur = await conn.execute(
                "SELECT refund_id, amount_cents FROM shop_payment_ledger"
                " WHERE charge_id = %s AND kind = 'refund'",
                (charge_id,),
            )
            refund = await cur.fetchone()
            assert refund is not None, "a refund row was just inserted or found in conflict"
            return {"refund_id": refund[0], "charge_id": charge_id, "amount_cents": refund[1]}

        request = {"charge_id": charge_id}
        response, refunded = await self._once(key, "refund_payment", order_id, request, effect)
        if refunded:
            fault_point("after_refund")
        return response

    # ----------------------------------------------------------------------- shipping, mail

    async def create_shipment(self, key: str, order_id: str, address: str) -> dict[str, Any]:
        async def effect(conn: _Conn) -> Response:
            shipment_id = _derived_id("shp", key)
            await conn.execute(
                "INSERT INTO shop_shipments"
                " (shipment_id, idempotency_key, order_id, address, state)"
                " VALUES (%s, %s, %s, %s, 'created')",
                (shipment_id, key, order_id, address),
            )
            return {"shipment_id": shipment_id}

        response, _ = await self._once(
            key, "create_shipment", order_id, {"address": address}, effect
        )
        return response

    async def cancel_shipment(self, key: str, order_id: str, shipment_id: str) -> dict[str, Any]:
        async def effect(conn: _Conn) -> Response:
            cur = await conn.execute(
                "SELECT order_id, state FROM shop_shipments WHERE shipment_id = %s FOR UPDATE",
                (shipment_id,),
            )
            row = await cur.fetchone()
            if row is None or row[0] != order_id:
                raise _rejected(
                    "ShipmentNotFound", f"order {order_id}: no shipment {shipment_id!r}"
                )
            if row[1] == "created":
                await conn.execute(
                    "UPDATE shop_shipments SET state = 'cancelled', cancel_key = %s,"
                    " cancelled_at = now() WHERE shipment_id = %s",
                    (key, shipment_id),
                )
            return {"shipment_id": shipment_id, "cancelled": True}

        request = {"shipment_id": shipment_id}
        response, _ = await self._once(key, "cancel_shipment", order_id, request, effect)
        return response

    async def send_receipt_email(self, key: str, order_id: str, email: str) -> dict[str, Any]:
        async def effect(conn: _Conn) -> Response:
            message_id = _derived_id("msg", key)
            await conn.execute(
                "INSERT INTO shop_emails (message_id, idempotency_key, order_id, email)"
                " VALUES (%s, %s, %s, %s)",
                (message_id, key, order_id, email),
            )
            return {"message_id": message_id}

        response, _ = await self._once(
            key, "send_receipt_email", order_id, {"email": email}, effect
        )
        return response

    # ----------------------------------------------------------------------- the key

    async def _once(
        self, key: str, operation: str, order_id: str, request: Response, effect: Effect
    ) -> tuple[Response, bool]:
        """The stored response of `key`, or `effect`'s after running it: (response, ran).

        The key row is inserted first in the effect's transaction. A concurrent call with the
        same key blocks on that insert until this transaction ends, then finds the stored
        response; if the effect raised, nothing was stored and the other call runs it.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO shop_idempotency (idempotency_key, operation, order_id, request)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                (key, operation, order_id, Jsonb(request)),
            )
            if await cur.fetchone() is None:
                return await _stored_response(conn, key, operation, order_id, request), False
            response = await effect(conn)
            await conn.execute(
                "UPDATE shop_idempotency SET response = %s WHERE idempotency_key = %s",
                (Jsonb(response), key),
            )
            return response, True


async def _stored_response(
    conn: _Conn, key: str, operation: str, order_id: str, request: Response
) -> Response:
    cur = await conn.execute(
        "SELECT operation, order_id, request, response FROM shop_idempotency"
        " WHERE idempotency_key = %s",
        (key,),
    )
    row = await cur.fetchone()
    assert row is not None, "ON CONFLICT found the key, and keys are never deleted"
    stored_operation, stored_order, stored_request, response = row
    if (stored_operation, stored_order, stored_request) != (operation, order_id, request):
        raise _rejected(
            "IdempotencyKeyReused",
            f"key {key!r} was first used for {stored_operation} of order {stored_order} with "
            f"{stored_request}, now for {operation} of order {order_id} with {request}; "
            "derive keys from (workflow_id, activity seq) so one key means one request",
        )
    return cast(Response, response)


# --------------------------------------------------------------------------- factory, helpers


@asynccontextmanager
async def open_shop(config: Config) -> AsyncIterator[PostgresShop]:
    """A `PostgresShop` over its own pool on `config.database_url`, schema migrated; the worker
    opens it as the registry resource "shop"."""
    async with open_pool(
        config.database_url, max_size=max(2, config.worker_concurrency), name="shop"
    ) as pool:
        await migrate(pool)
        yield PostgresShop(pool)


async def seed_stock(target: Target, stock: Mapping[str, int]) -> None:
    """Set the available quantity of each SKU (inserting it when new)."""
    async with connection(target) as conn, conn.transaction():
        for sku, available in stock.items():
            await conn.execute(
                "INSERT INTO shop_stock (sku, available) VALUES (%s, %s)"
                " ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available,"
                " updated_at = now()",
                (sku, available),
            )


async def ledger(target: Target, order_id: str | None = None) -> list[dict[str, Any]]:
    """Every charge and refund, oldest first (of one order when `order_id` is given)."""
    return await _rows(
        target,
        "SELECT id, idempotency_key, kind, order_id, charge_id, refund_id, amount_cents, card,"
        " created_at FROM shop_payment_ledger"
        " WHERE %(order_id)s::text IS NULL OR order_id = %(order_id)s ORDER BY id",
        order_id,
    )


async def sent_emails(target: Target, order_id: str | None = None) -> list[dict[str, Any]]:
    """Every receipt sent, oldest first (of one order when `order_id` is given)."""
    return await _rows(
        target,
        "SELECT message_id, idempotency_key, order_id, email, sent_at FROM shop_emails"
        " WHERE %(order_id)s::text IS NULL OR order_id = %(order_id)s ORDER BY sent_at",
        order_id,
    )


async def shipments(target: Target, order_id: str | None = None) -> list[dict[str, Any]]:
    """Every shipment with its state, oldest first (of one order when `order_id` is given)."""
    return await _rows(
        target,
        "SELECT shipment_id, idempotency_key, order_id, address, state, created_at,"
        " cancelled_at FROM shop_shipments"
        " WHERE %(order_id)s::text IS NULL OR order_id = %(order_id)s ORDER BY created_at",
        order_id,
    )


async def stock(target: Target, sku: str) -> int | None:
    """Units of `sku` available, None when the SKU is unknown."""
    async with connection(target) as conn:
        cur = await conn.execute("SELECT available FROM shop_stock WHERE sku = %s", (sku,))
        row = await cur.fetchone()
        return None if row is None else int(row[0])


async def _rows(target: Target, query: str, order_id: str | None) -> list[dict[str, Any]]:
    async with connection(target) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, {"order_id": order_id})
        return list(await cur.fetchall())
