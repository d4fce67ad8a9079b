"""Record the checkout histories that are missing: `python tests/histories/record.py`.

Recorded histories are frozen: a file that exists is never written again (delete it first to
re-record, never to make a failing replay test pass: that failure means the code broke running
workflows). Histories recorded before event schema v3 lack SignalWaitStarted and must replay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagaflow.core.messages import TerminateWorkflow
from sagaflow.examples.checkout import registry
from sagaflow.examples.shop import InMemoryShop
from sagaflow.testing import WorkflowEnvironment, history_to_json
from sagaflow.workflow import ActivityOptions, Registry, WorkflowContext

HERE = Path(__file__).parent

ORDER: dict[str, Any] = {
    "order_id": "order-1",
    "sku": "sku-1",
    "quantity": 2,
    "amount_cents": 4_999,
    "card": "tok_visa",
    "address": "1 Main St",
    "email": "buyer@example.com",
}
BIG = dict(ORDER, amount_cents=250_000, approval_timeout_s=600)


def record(name: str, env: WorkflowEnvironment, workflow_id: str) -> None:
    path = HERE / f"{name}.json"
    if not path.exists():
        path.write_text(history_to_json(env.history(workflow_id)))


def main() -> None:
    def env() -> WorkflowEnvironment:
        return WorkflowEnvironment(registry, resources={"shop": InMemoryShop()})

    e = env()
    e.start("checkout", ORDER, workflow_id="order-1")
    e.run()
    record("checkout_completed", e, "order-1")

    e = env()
    e.start("checkout", dict(ORDER, card="tok_declined"), workflow_id="order-2")
    e.run()
    record("checkout_declined", e, "order-2")

    e = env()
    e.start("checkout", BIG, workflow_id="order-3")
    e.run(advance_time=False)
    e.advance(60)
    e.signal("order-3", "approve", {"approved": True, "by": "alice"})
    e.run()
    record("checkout_approved", e, "order-3")

    e = env()
    e.start("checkout", BIG, workflow_id="order-4")
    e.run()
    record("checkout_approval_timeout", e, "order-4")

    e = env()
    e.start("checkout", BIG, workflow_id="order-5")
    e.run(advance_time=False)
    e.cancel("order-5", "customer changed their mind")
    e.run()
    record("checkout_cancelled", e, "order-5")

    # Recorded with event schema v3: the approval wait is a SignalWaitStarted event.
    e = env()
    e.start("checkout", BIG, workflow_id="order-8")
    e.run(advance_time=False)
    e.advance(60)
    e.signal("order-8", "approve", {"approved": True, "by": "carol"})
    e.run()
    record("checkout_approved_wait_recorded", e, "order-8")

    # Event schema v4: terminated while it waits for approval; nothing is compensated.
    e = env()
    e.start("checkout", BIG, workflow_id="order-9")
    e.run(advance_time=False)
    e.advance(60)
    e.send(TerminateWorkflow("order-9", "fraud suspected", "ops:dana", "terminate-1"))
    e.run()
    record("checkout_terminated", e, "order-9")

    shop = InMemoryShop(fail_times={"charge_payment": 2})
    e = WorkflowEnvironment(registry, resources={"shop": shop})
    e.start("checkout", ORDER, workflow_id="order-6")
    e.run()
    record("checkout_charge_retried", e, "order-6")

    # Code that charged before reserving, under the same type and version: replaying this
    # history against today's checkout must raise NonDeterminismError.
    old = Registry()
    inventory = ActivityOptions(task_queue="inventory")
    payments = ActivityOptions(task_queue="payments")

    @old.workflow(name="checkout", version=1)
    async def checkout_charging_first(ctx: WorkflowContext, order: dict[str, Any]) -> Any:
        await ctx.execute_activity("charge_payment", {"order_id": order["order_id"]}, payments)
        await ctx.execute_activity("reserve_inventory", {"order_id": order["order_id"]}, inventory)
        return {"status": "completed"}

    from sagaflow.testing import stub

    e = WorkflowEnvironment(
        old,
        stubs={
            "charge_payment": stub({"charge_id": "ch_1"}),
            "reserve_inventory": stub({"reservation_id": "res_1"}),
        },
    )
    e.start("checkout", ORDER, workflow_id="order-7")
    e.run()
    record("checkout_nondeterministic", e, "order-7")
    record_cart()


def record_cart() -> None:
    """A cart through the engine: a rejected update (nothing recorded), two accepted ones, a
    repeated update id (nothing recorded), a query (nothing recorded), then checkout."""
    from sagaflow.core import messages as m
    from sagaflow.core.engine import Engine
    from sagaflow.core.payload import dumps
    from sagaflow.examples.cart import registry as carts

    engine = Engine(carts)
    at = 1_767_225_600_000
    events = list(
        engine.handle(m.StartWorkflow("cart-1", "cart", dumps({"owner": "ann"})), at).events
    )
    for uid, item in (
        ("u0", {"sku": "tea", "quantity": 0}),
        ("u1", {"sku": "tea", "quantity": 2}),
        ("u2", {"sku": "jam", "quantity": 1}),
        ("u1", {"sku": "x", "quantity": 9}),
    ):
        at += 1_000
        update = m.UpdateWorkflow("cart-1", "add_item", dumps(item), uid, f"r-{uid}-{at}")
        events += engine.handle(update, at).events
    events += engine.handle(m.QueryWorkflow("cart-1", "items", b"null", "q"), at).events
    events += engine.handle(m.SignalWorkflow("cart-1", "checkout", b"null"), at + 1_000).events
    (HERE / "cart_updated.json").write_text(history_to_json(events))


if __name__ == "__main__":
    main()
