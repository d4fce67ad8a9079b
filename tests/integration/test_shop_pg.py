"""The checkout example's Postgres providers: every effect happens once per idempotency key."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sagaflow.config import Config
from sagaflow.core.errors import ApplicationError
from sagaflow.db import migrate, open_pool
from sagaflow.db.testing import run_in_scratch_schema
from sagaflow.examples.shop_pg import (
    PostgresShop,
    ledger,
    open_shop,
    seed_stock,
    sent_emails,
    shipments,
    stock,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _with_shop(
    database_url: str, body: Callable[[PostgresShop, str], Awaitable[None]], pool_size: int = 4
) -> None:
    async def run(url: str) -> None:
        await migrate(url)
        async with open_pool(url, min_size=pool_size, max_size=pool_size) as pool:
            await body(PostgresShop(pool), url)

    run_in_scratch_schema(database_url, run)


def _non_retryable(exc: ApplicationError, error_type: str) -> bool:
    return exc.type == error_type and exc.non_retryable


def test_same_key_charges_once(database_url: str) -> None:
    async def body(shop: PostgresShop, url: str) -> None:
        first = await shop.charge_payment("o1/2", "o1", 4200, "tok_visa")
        assert first["charge_id"].startswith("ch_")
        assert await shop.charge_payment("o1/2", "o1", 4200, "tok_visa") == first
        racing = await asyncio.gather(
            *(shop.charge_payment("o2/2", "o2", 100, "tok_visa") for _ in range(6))
        )
        assert all(r == racing[0] for r in racing)
        rows = await ledger(url)
        assert [(r["order_id"], r["kind"], r["amount_cents"]) for r in rows] == [
            ("o1", "charge", 4200),
            ("o2", "charge", 100),
        ]
        assert [r["charge_id"] for r in await ledger(url, "o1")] == [first["charge_id"]]

    _with_shop(database_url, body)


def test_declined_card_is_a_non_retryable_failure_and_charges_nothing(database_url: str) -> None:
    async def body(shop: PostgresShop, url: str) -> None:
        for _ in range(2):
            with pytest.raises(ApplicationError) as caught:
                await shop.charge_payment("o1/2", "o1", 4200, "tok_declined")
            assert _non_retryable(caught.value, "PaymentDeclined"), caught.value
        assert await ledger(url) == []

    _with_shop(database_url, body)


def test_reused_key_for_another_request_is_refused(database_url: str) -> None:
    async def body(shop: PostgresShop, url: str) -> None:
        await shop.charge_payment("o1/2", "o1", 4200, "tok_visa")
        with pytest.raises(ApplicationError) as caught:
            await shop.charge_payment("o1/2", "o1", 9999, "tok_visa")
        assert _non_retryable(caught.value, "IdempotencyKeyReused"), caught.value
        assert len(await ledger(url)) == 1

    _with_shop(database_url, body)


def test_refund_once_per_charge(database_url: str) -> None:
    async def body(shop: PostgresShop, url: str) -> None:
        charge = await shop.charge_payment("o1/2", "o1", 4200, "tok_visa")
        refund = await shop.refund_payment("o1/5", "o1", charge["charge_id"])
        assert refund["amount_cents"] == 4200
        assert await shop.refund_payment("o1/5", "o1", charge["charge_id"]) == refund
        # Another key for the same charge (a buggy second compensation) refunds nothing more.
        again = await shop.refund_payment("o1/9", "o1", charge["charge_id"])
        assert again["refund_id"] == refund["refund_id"]
        kinds = [(r["kind"], r["amount_cents"]) for r in await ledger(url, "o1")]
        assert kinds == [("charge", 4200), ("refund", 4200)]
        with pytest.raises(ApplicationError) as caught:
            await shop.refund_payment("o3/5", "o3", "ch_nonexistent")
        assert _non_retryable(caught.value, "ChargeNotFound"), caught.value

    _with_shop(database_url, body)


def test_inventory_reserve_and_release_once(database_url: str) -> None:
    async def body(shop: PostgresShop, url: str) -> None:
        await seed_stock(url, {"sku-1": 5})
        reserved = await shop.reserve_inventory("o1/1", "o1", "sku-1", 2)
        assert await shop.reserve_inventory("o1/1", "o1", "sku-1", 2) == reserved
        assert await stock(url, "sku-1") == 3
        with pytest.raises(ApplicationError) as caught:
            await shop.reserve_inventory("o2/1", "o2", "sku-1", 4)
        assert _non_retryable(caught.value, "OutOfStock"), caught.value
        released = await shop.release_inventory("o1/6", "o1")
        assert released == {"released": [reserved["reservation_id"]], "quantity": 2}
        assert await shop.release_inventory("o1/6", "o1") == released
        assert await shop.release_inventory("o1/7", "o1") == {"released": [], "quantity": 0}
        assert await stock(url, "sku-1") == 5

    _with_shop(database_url, body)


def test_shipment_and_email_once(database_url: str) -> None:
    async def body(shop: PostgresShop, url: str) -> None:
        shipment = await shop.create_shipment("o1/3", "o1", "1 Main St")
        assert await shop.create_shipment("o1/3", "o1", "1 Main St") == shipment
        cancelled = await shop.cancel_shipment("o1/7", "o1", shipment["shipment_id"])
        assert await shop.cancel_shipment("o1/7", "o1", shipment["shipment_id"]) == cancelled
        assert [s["state"] for s in await shipments(url, "o1")] == ["cancelled"]
        sent = await shop.send_receipt_email("o1/4", "o1", "a@example.com")
        assert await shop.send_receipt_email("o1/4", "o1", "a@example.com") == sent
        assert [e["message_id"] for e in await sent_emails(url)] == [sent["message_id"]]

    _with_shop(database_url, body)


def test_open_shop_migrates_and_serves(database_url: str) -> None:
    async def body(url: str) -> None:
        async with open_shop(Config.from_env({"SAGAFLOW_DATABASE_URL": url})) as shop:
            await shop.send_receipt_email("o1/4", "o1", "a@example.com")
        assert len(await sent_emails(url)) == 1

    run_in_scratch_schema(database_url, body)


_CHARGE_ONCE = """
import asyncio, sys
from sagaflow.config import Config
from sagaflow.core.errors import ApplicationError
from sagaflow.examples.shop_pg import open_shop

async def main() -> None:
    async with open_shop(Config.from_env({"SAGAFLOW_DATABASE_URL": sys.argv[1]})) as shop:
        print(await shop.charge_payment("o1/2", "o1", 4200, "tok_visa"))

asyncio.run(main())
"""


def test_crash_after_charge_then_rerun_charges_once(database_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SAGAFLOW_FAULT": "after_charge",
        "SAGAFLOW_FAULT_MARKER": str(marker),
    }

    async def charge(url: str) -> tuple[int | None, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHARGE_ONCE,
            url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return proc.returncode, out, err

    async def body(url: str) -> None:
        code, out, err = await charge(url)
        assert code == -signal.SIGKILL, (code, out, err)
        assert marker.read_text() == "after_charge\n", "the fault point never fired"
        assert out == b"", "the caller must not have heard of the charge"
        charged: list[dict[str, Any]] = await ledger(url)
        assert [r["kind"] for r in charged] == ["charge"]
        # The re-run, fault still armed: it gets the original charge and makes none (so the
        # fault point, which fires only after a new charge, stays quiet).
        code, out, err = await charge(url)
        assert code == 0, err.decode()
        assert charged[0]["charge_id"] in out.decode()
        assert len(await ledger(url)) == 1
        assert marker.read_text() == "after_charge\n"

    run_in_scratch_schema(database_url, body)
