"""The app the Python client's integration tests deploy (SAGAFLOW_APP=
tests.integration.client_app:registry): typed inputs and results, a failure with a cause, a
signal wait and a cancellable wait."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from sagaflow.workflow import (
    ActivityContext,
    ApplicationError,
    Registry,
    WorkflowContext,
)

registry = Registry()


@dataclass(frozen=True)
class Greeting:
    name: str
    times: int = 1


@dataclass(frozen=True)
class Shouted:
    text: str
    length: int


class Payment(BaseModel):
    order_id: str
    amount_cents: int


class Charged(BaseModel):
    order_id: str
    charged_cents: int
    by: str


@registry.activity(name="shout", task_queue="client-tests")
def shout(ctx: ActivityContext, greeting: Greeting) -> Shouted:
    # isinstance: the worker hands the activity its annotated type, not a dict.
    assert isinstance(greeting, Greeting), type(greeting)
    text = " ".join([f"HELLO {greeting.name.upper()}"] * greeting.times)
    return Shouted(text, len(text))


@registry.workflow(name="greet", version=1)
async def greet(ctx: WorkflowContext, greeting: Greeting) -> Shouted:
    assert isinstance(greeting, Greeting), type(greeting)
    shouted = await ctx.execute_activity(shout, greeting)
    assert isinstance(shouted, Shouted), type(shouted)  # read as shout's return annotation
    return shouted


@registry.activity(name="charge", task_queue="client-tests")
async def charge(ctx: ActivityContext, payment: Payment) -> Charged:
    assert isinstance(payment, Payment), type(payment)
    return Charged(order_id=payment.order_id, charged_cents=payment.amount_cents, by="card")


@registry.workflow(name="pay", version=1)
async def pay(ctx: WorkflowContext, payment: Payment) -> Charged:
    assert isinstance(payment, Payment), type(payment)
    charged: Charged = await ctx.execute_activity(charge, payment)
    return charged


@registry.activity(name="reserve", task_queue="client-tests")
def reserve(ctx: ActivityContext, sku: str) -> None:
    raise ApplicationError(
        f"{sku} is out of stock", type="OutOfStock", non_retryable=True, details={"sku": sku}
    )


@registry.workflow(name="doomed", version=1)
async def doomed(ctx: WorkflowContext, sku: str) -> None:
    await ctx.execute_activity(reserve, sku)


@registry.workflow(name="approval", version=1)
async def approval(ctx: WorkflowContext, order_id: str) -> dict[str, object]:
    decision = await ctx.wait_for_signal("decision")  # a cancel ends it here, cancelled
    return {"order_id": order_id, "decision": decision}
