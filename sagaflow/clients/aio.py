"""The asyncio client: the same operations as sagaflow.clients.sync, awaited.

    client = AsyncClient.from_env()
    handle = await client.start_workflow("checkout", order, id="order-1", result_type=Receipt)
    receipt = await handle.result(timeout=60)

Kafka work runs in a worker thread (confluent-kafka blocks), read-model queries on the
caller's loop; both are the shared implementation (sagaflow.clients.shared).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Unpack

from sagaflow.clients.shared import (
    ClientBase,
    FilterArgs,
    HandleBase,
    Timeouts,
    WorkflowDescription,
    WorkflowPage,
)
from sagaflow.core.messages import Event


class AsyncWorkflowHandle(HandleBase):
    """One workflow, by id (see sagaflow.clients.sync.WorkflowHandle): every method awaited."""

    async def result(self, timeout: float = 60.0, *, type: Any = None) -> Any:
        """The result once the workflow closes, as WorkflowHandle.result describes; raises
        the same errors."""
        outcome = await asyncio.to_thread(
            self._shared.wait_outcome, self.workflow_id, self.start_command_id, timeout
        )
        return self._value(outcome, type)

    async def signal(self, name: str, arg: Any = None) -> None:
        await asyncio.to_thread(self._shared.commands.signal, self.workflow_id, name, arg)

    async def cancel(self, reason: str = "") -> None:
        await asyncio.to_thread(self._shared.commands.cancel, self.workflow_id, reason)

    async def terminate(self, reason: str, by: str = "") -> None:
        await asyncio.to_thread(self._shared.commands.terminate, self.workflow_id, reason, by)

    async def describe(self) -> WorkflowDescription:
        return await self._shared.describe(self.workflow_id)

    async def history(self, timeout: float = 30.0) -> list[Event]:
        return await asyncio.to_thread(self._shared.history, self.workflow_id, timeout)


class AsyncClient(ClientBase):
    """Start workflows and get handles to them; list them (see sagaflow.clients.sync.Client)."""

    async def start_workflow(
        self,
        workflow: str,
        input: Any = None,
        *,
        id: str,
        version: int | None = None,
        result_type: Any = Any,
        **timeouts: Unpack[Timeouts],
    ) -> AsyncWorkflowHandle:
        command = self._start_command(workflow, input, id, version, timeouts)
        await asyncio.to_thread(self._shared.commands.send, command)
        return AsyncWorkflowHandle(
            self._shared, id, result_type=result_type, start_command_id=command.command_id
        )

    def get_workflow_handle(
        self, workflow_id: str, *, result_type: Any = Any
    ) -> AsyncWorkflowHandle:
        return AsyncWorkflowHandle(self._shared, workflow_id, result_type=result_type)

    async def list_workflows(
        self, *, page_size: int = 50, cursor: str | None = None, **filters: Unpack[FilterArgs]
    ) -> AsyncIterator[WorkflowPage]:
        """Pages of workflows, newest first (`async for page in client.list_workflows(...)`)."""
        while True:
            page = await self._shared.list_page(filters, page_size, cursor)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
