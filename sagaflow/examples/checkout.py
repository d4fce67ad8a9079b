"""The reference saga: checkout.

    reserve inventory -> charge payment -> [amount >= threshold: wait for signal "approve"]
    -> create shipment -> send receipt email

Compensations, run newest first when a step fails, the approval times out or is refused, or the
workflow is cancelled: cancel shipment, refund payment, release inventory. The receipt email is
the last step and is never compensated; it carries its idempotency key so it is sent once.

Task queues: one per provider, "inventory", "payments", "shipping" and "email" (a worker
subscribes to `registry.task_queues()`). Activities delegate to the resource "shop" (the
`Shop` protocol); the worker opens the Postgres implementation, tests pass an InMemoryShop.

Order input: {"order_id", "sku", "quantity", "amount_cents", "card", "address", "email",
optional "approval_threshold_cents" (default 100_000), optional "approval_timeout_s" (default
3600)}. Approval signal payload: {"approved": true} (false refuses the order).
"""

from __future__ import annotations

import importlib
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, NotRequired, TypedDict, cast

from sagaflow.examples.shop import Shop
from sagaflow.workflow import (
    ActivityContext,
    ApplicationError,
    ChildWorkflowError,
    ChildWorkflowHandle,
    ParentClosePolicy,
    Registry,
    RetryPolicy,
    WorkflowContext,
    WorkflowView,
)

DEFAULT_APPROVAL_THRESHOLD_CENTS = 100_000
DEFAULT_APPROVAL_TIMEOUT_S = 3600
APPROVAL_SIGNAL = "approve"

registry = Registry()


class Order(TypedDict):
    """The checkout input; the HTTP API checks a start request against it."""

    order_id: str
    sku: str
    quantity: int
    amount_cents: int
    card: str
    address: str
    email: str
    approval_threshold_cents: NotRequired[int]
    approval_timeout_s: NotRequired[float]


_RETRY = RetryPolicy(initial_interval_ms=500, backoff_coefficient=2.0, maximum_interval_ms=30_000)
_STEP_TIMEOUT = timedelta(seconds=30)


@registry.resource("shop")
def shop_resource(config: Any) -> AbstractAsyncContextManager[Shop]:
    """The Postgres shop; imported lazily so the core and the tests never import psycopg."""
    shop_pg = importlib.import_module("sagaflow.examples.shop_pg")
    return cast(AbstractAsyncContextManager[Shop], shop_pg.open_shop(config))


def _shop(ctx: ActivityContext) -> Shop:
    return cast(Shop, ctx.resources["shop"])


# --------------------------------------------------------------------------- activities


@registry.activity(
    name="reserve_inventory",
    task_queue="inventory",
    retry_policy=_RETRY,
    start_to_close_timeout=_STEP_TIMEOUT,
)
async def reserve_inventory(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    return await _shop(ctx).reserve_inventory(
        ctx.idempotency_key, req["order_id"], req["sku"], req["quantity"]
    )


@registry.activity(name="release_inventory", task_queue="inventory", retry_policy=_RETRY)
async def release_inventory(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    return await _shop(ctx).release_inventory(ctx.idempotency_key, req["order_id"])


@registry.activity(
    name="charge_payment",
    task_queue="payments",
    retry_policy=_RETRY,
    start_to_close_timeout=_STEP_TIMEOUT,
)
async def charge_payment(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    return await _shop(ctx).charge_payment(
        ctx.idempotency_key, req["order_id"], req["amount_cents"], req["card"]
    )


@registry.activity(name="refund_payment", task_queue="payments", retry_policy=_RETRY)
async def refund_payment(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    return await _shop(ctx).refund_payment(ctx.idempotency_key, req["order_id"], req["charge_id"])


@registry.activity(
    name="create_shipment",
    task_queue="shipping",
    retry_policy=_RETRY,
    start_to_close_timeout=_STEP_TIMEOUT,
)
async def create_shipment(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    return await _shop(ctx).create_shipment(ctx.idempotency_key, req["order_id"], req["address"])


@registry.activity(name="cancel_shipment", task_queue="shipping", retry_policy=_RETRY)
async def cancel_shipment(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    return await _shop(ctx).cancel_shipment(
        ctx.idempotency_key, req["order_id"], req["shipment_id"]
    )


@registry.activity(
    name="send_receipt_email",
    task_queue="email",
    retry_policy=_RETRY,
    start_to_close_timeout=_STEP_TIMEOUT,
)
async def send_receipt_email(ctx: ActivityContext, req: dict[str, Any]) -> dict[str, Any]:
    return await _shop(ctx).send_receipt_email(ctx.idempotency_key, req["order_id"], req["email"])


# --------------------------------------------------------------------------- the workflow


def _approved(payload: Any) -> bool:
    if isinstance(payload, dict):
        return bool(payload.get("approved", True))
    return payload is None or bool(payload)


@registry.workflow(name="checkout", version=1)
async def checkout(ctx: WorkflowContext, order: Order) -> dict[str, Any]:
    """Reserve, charge, (approve), ship, email; compensate in reverse on failure or cancel."""
    order_id = order["order_id"]
    threshold = order.get("approval_threshold_cents", DEFAULT_APPROVAL_THRESHOLD_CENTS)
    ctx.state["stage"] = "reserving"  # what the query "progress" answers
    async with ctx.saga() as saga:
        reservation = await ctx.execute_activity(
            reserve_inventory,
            {"order_id": order_id, "sku": order["sku"], "quantity": order["quantity"]},
        )
        ctx.state["stage"] = "charging"
        saga.add_compensation(
            release_inventory,
            {"order_id": order_id, "reservation_id": reservation["reservation_id"]},
        )
        charge = await ctx.execute_activity(
            charge_payment,
            {"order_id": order_id, "amount_cents": order["amount_cents"], "card": order["card"]},
        )
        saga.add_compensation(
            refund_payment, {"order_id": order_id, "charge_id": charge["charge_id"]}
        )
        approved_by: Any = None
        ctx.state["stage"] = "charged"
        if order["amount_cents"] >= threshold:
            ctx.state["stage"] = "awaiting approval"
            timeout = order.get("approval_timeout_s", DEFAULT_APPROVAL_TIMEOUT_S)
            approved_by = await ctx.wait_for_signal(APPROVAL_SIGNAL, timeout=float(timeout))
            if not _approved(approved_by):
                raise ApplicationError(
                    f"order {order_id} was refused by its approver",
                    type="OrderRefused",
                    details=approved_by,
                )
        ctx.state["stage"] = "shipping"
        shipment = await ctx.execute_activity(
            create_shipment, {"order_id": order_id, "address": order["address"]}
        )
        saga.add_compensation(
            cancel_shipment, {"order_id": order_id, "shipment_id": shipment["shipment_id"]}
        )
    ctx.state["stage"] = "emailing the receipt"
    receipt = await ctx.execute_activity(
        send_receipt_email, {"order_id": order_id, "email": order["email"]}
    )
    return {
        "status": "completed",
        "order_id": order_id,
        "reservation_id": reservation["reservation_id"],
        "charge_id": charge["charge_id"],
        "shipment_id": shipment["shipment_id"],
        "receipt": receipt,
        "approval": approved_by,
        "completed_at": ctx.now().isoformat(),
    }


@registry.query(workflow="checkout", name="progress")
def progress(view: WorkflowView, args: Any) -> dict[str, Any]:
    """Where the order is: its stage (kept in ctx.state) and the workflow's status."""
    return {"stage": view.state.get("stage", "started"), "workflow": view.status}


# --------------------------------------------------------------------------- child workflows


@registry.workflow(name="checkout_batch", version=1)
async def checkout_batch(ctx: WorkflowContext, batch: dict[str, Any]) -> dict[str, Any]:
    """Check out several orders, each a child `checkout` workflow with the order id as its
    workflow id (its own history, possibly on another partition and orchestrator).

    Input: {"orders": [Order, ...], optional "parent_close_policy": "terminate" (default),
    "request_cancel" or "abandon"}. Returns {order_id: {"status": "completed", "result": ...}
    or {"status": "failed" | "cancelled" | "start_failed" | ..., "error": "..."}}.
    """
    policy = ParentClosePolicy(batch.get("parent_close_policy", ParentClosePolicy.TERMINATE))
    children = [
        ctx.start_child_workflow(
            "checkout", order, id=order["order_id"], parent_close_policy=policy
        )
        for order in batch["orders"]
    ]

    async def outcome(child: ChildWorkflowHandle[Any]) -> dict[str, Any]:
        try:
            return {"status": "completed", "result": await child}
        except ChildWorkflowError as err:
            return {"status": err.status, "error": str(err)}

    results = await ctx.gather(*(outcome(child) for child in children))
    return {child.workflow_id: result for child, result in zip(children, results, strict=True)}
