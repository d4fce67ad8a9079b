"""A benchmark app: the checkout saga's shape (five steps) with instant activities, and a
workflow that only waits (for measuring what open workflows cost and how long rebuilding them
takes)."""

from __future__ import annotations

from typing import Any

from sagaflow.core.registry import ActivityContext, Registry
from sagaflow.core.workflow import WorkflowContext

registry = Registry()
QUEUE = "bench"
STEPS = (
    "reserve_inventory",
    "charge_payment",
    "create_shipment",
    "capture_payment",
    "send_receipt_email",
)


@registry.workflow(name="bench_saga", version=1)
async def bench_saga(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    results = [await ctx.execute_activity(step, order) for step in STEPS]
    return {"steps": len(results)}


@registry.workflow(name="bench_wait", version=1)
async def bench_wait(ctx: WorkflowContext, arg: Any) -> Any:
    return await ctx.wait_for_signal("go")


@registry.activity(name="reserve_inventory", task_queue=QUEUE)
async def reserve_inventory(ctx: ActivityContext, order: Any) -> str:
    return ctx.idempotency_key


@registry.activity(name="charge_payment", task_queue=QUEUE)
async def charge_payment(ctx: ActivityContext, order: Any) -> str:
    return ctx.idempotency_key


@registry.activity(name="create_shipment", task_queue=QUEUE)
async def create_shipment(ctx: ActivityContext, order: Any) -> str:
    return ctx.idempotency_key


@registry.activity(name="capture_payment", task_queue=QUEUE)
async def capture_payment(ctx: ActivityContext, order: Any) -> str:
    return ctx.idempotency_key


@registry.activity(name="send_receipt_email", task_queue=QUEUE)
async def send_receipt_email(ctx: ActivityContext, order: Any) -> str:
    return ctx.idempotency_key
