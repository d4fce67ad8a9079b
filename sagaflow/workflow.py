"""The public API for writing workflows and activities.

    from sagaflow.workflow import Registry, WorkflowContext, ActivityContext, ActivityOptions

    registry = Registry()

    @registry.activity(name="charge_payment", task_queue="payments")
    async def charge_payment(ctx: ActivityContext, req: dict) -> dict: ...

    @registry.workflow(name="checkout", version=1)
    async def checkout(ctx: WorkflowContext, order: dict) -> dict:
        async with ctx.saga() as saga:
            charge = await ctx.execute_activity(charge_payment, order)
            saga.add_compensation("refund_payment", charge)
            ...

Workflow code must be deterministic (use ctx.now(), ctx.random(), ctx.uuid4(), ctx.sleep(),
never the clock, `random`, `uuid` or asyncio). Activities must be idempotent: pass
`ctx.idempotency_key` to whatever they change. Long activities call `ctx.heartbeat(details)`
(scheduled with a heartbeat_timeout, silence times the attempt out; a retry reads
`ctx.heartbeat_details`) and stop when `ctx.is_cancelled()` (ActivityHandle.cancel).
"""

from sagaflow.core.errors import (
    ActivityCancelled,
    ActivityCancelledError,
    ActivityError,
    ApplicationError,
    CancelledError,
    CompensationError,
    FailureError,
    NonDeterminismError,
    RegistryError,
    SagaflowError,
    SignalTimeoutError,
    WorkflowCodeError,
)
from sagaflow.core.messages import RetryPolicy
from sagaflow.core.registry import (
    ActivityContext,
    ActivityDefinition,
    ActivityOptions,
    Registry,
    WorkflowDefinition,
)
from sagaflow.core.workflow import ActivityHandle, Saga, WorkflowContext, WorkflowView

__all__ = [
    "ActivityCancelled",
    "ActivityCancelledError",
    "ActivityContext",
    "ActivityDefinition",
    "ActivityError",
    "ActivityHandle",
    "ActivityOptions",
    "ApplicationError",
    "CancelledError",
    "CompensationError",
    "FailureError",
    "NonDeterminismError",
    "Registry",
    "RegistryError",
    "RetryPolicy",
    "Saga",
    "SagaflowError",
    "SignalTimeoutError",
    "WorkflowCodeError",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowView",
]
