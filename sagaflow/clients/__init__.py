"""A client in the shape Temporal users know, in two flavours sharing one implementation.

    from sagaflow.clients import Client          # blocking
    from sagaflow.clients import AsyncClient     # asyncio

    handle = client.start_workflow("checkout", order, id="order-1", result_type=Receipt)
    handle.signal("approve", {"approved": True})
    receipt = handle.result(timeout=60)          # WorkflowFailureError, WorkflowCancelledError...
    handle.describe(); handle.history(); handle.cancel("changed my mind")
    for page in client.list_workflows(status="running", workflow_type="checkout"): ...

Inputs and results are JSON values, dataclasses, pydantic models or TypedDicts, converted by
the one payload codec (sagaflow.core.payload). sagaflow.client.Client stays the low-level
command sender underneath.
"""

from sagaflow.clients.aio import AsyncClient, AsyncWorkflowHandle
from sagaflow.clients.errors import (
    WorkflowCancelledError,
    WorkflowClosedError,
    WorkflowFailureError,
    WorkflowNotFoundError,
    WorkflowResultTimeoutError,
    WorkflowStartRejectedError,
    WorkflowTerminatedError,
    WorkflowTimedOutError,
)
from sagaflow.clients.shared import (
    FilterArgs,
    Timeouts,
    WorkflowDescription,
    WorkflowPage,
    WorkflowSummary,
)
from sagaflow.clients.sync import Client, WorkflowHandle
from sagaflow.core.payload import InputError

__all__ = [
    "AsyncClient",
    "AsyncWorkflowHandle",
    "Client",
    "FilterArgs",
    "InputError",
    "Timeouts",
    "WorkflowCancelledError",
    "WorkflowClosedError",
    "WorkflowDescription",
    "WorkflowFailureError",
    "WorkflowHandle",
    "WorkflowNotFoundError",
    "WorkflowPage",
    "WorkflowResultTimeoutError",
    "WorkflowStartRejectedError",
    "WorkflowSummary",
    "WorkflowTerminatedError",
    "WorkflowTimedOutError",
]
