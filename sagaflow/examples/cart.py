"""A shopping cart that shows queries and updates.

The workflow keeps its items in `ctx.state`; the query "items" reads them, the update
"add_item" adds one and answers with the new count (its validator refuses a quantity below 1
or a cart that is checked out, recording nothing), and the signal "checkout" ends the cart.
With {"hold": true} in the input the cart first runs the activity "hold_cart" (queue "carts"),
so it stays busy while no worker serves that queue.

    sagaflow start cart '{"owner": "ann"}' --id cart-1
    sagaflow update cart-1 add_item '{"sku": "tea", "quantity": 2}'
    sagaflow query cart-1 items
"""

from __future__ import annotations

from typing import Any

from sagaflow.workflow import ActivityContext, Registry, WorkflowContext, WorkflowView

registry = Registry()


@registry.activity(name="hold_cart", task_queue="carts")
def hold_cart(ctx: ActivityContext, owner: Any) -> bool:
    return True


@registry.workflow(name="cart", version=1)
async def cart(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    ctx.state.update(owner=order.get("owner"), items=[], status="open")
    if order.get("hold"):
        await ctx.execute_activity("hold_cart", order.get("owner"))
    await ctx.wait_for_signal("checkout")
    ctx.state["status"] = "checked_out"
    return {"owner": ctx.state["owner"], "items": ctx.state["items"]}


@registry.query(workflow="cart", name="items")
def items(view: WorkflowView, args: Any) -> list[Any]:
    return list(view.state["items"])


@registry.query(workflow="cart", name="status")
def status(view: WorkflowView, args: Any) -> dict[str, Any]:
    return {
        "cart": view.state["status"],
        "workflow": view.status,
        "count": len(view.state["items"]),
    }


def check_item(view: WorkflowView, item: Any) -> None:
    if view.state["status"] != "open":
        raise ValueError("the cart is checked out; start a new cart")
    if not isinstance(item, dict) or not isinstance(item.get("quantity"), int):
        raise ValueError('an item is {"sku": str, "quantity": int}')
    if item["quantity"] < 1:
        raise ValueError(f"quantity must be at least 1, got {item['quantity']}")


@registry.update(workflow="cart", name="add_item", validator=check_item)
async def add_item(ctx: WorkflowContext, item: dict[str, Any]) -> int:
    ctx.state["items"].append(item)
    return len(ctx.state["items"])
