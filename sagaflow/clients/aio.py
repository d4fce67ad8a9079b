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
from datetime import datetime
from typing import Any

from sagaflow.client import Client as CommandClient
from sagaflow.clients.shared import (
    ListFilters,
    Shared,
    WorkflowDescription,
    WorkflowPage,
    outcome_value,
)
from sagaflow.config import Config
from sagaflow.core.messages import Event
from sagaflow.core.registry import Registry


class AsyncWorkflowHandle:
    """One workflow, by id (see sagaflow.clients.sync.WorkflowHandle): every method awaited."""

    def __init__(
        self,
        shared: Shared,
        workflow_id: str,
        *,
        result_type: Any = Any,
        start_command_id: str | None = None,
    ) -> None:
        self._shared = shared
        self.workflow_id = workflow_id
        self.result_type = result_type
        self.start_command_id = start_command_id

    async def result(self, timeout: float = 60.0, *, type: Any = None) -> Any:
        """The result once the workflow closes, as WorkflowHandle.result describes; raises
        the same errors."""
        outcome = await asyncio.to_thread(
            self._shared.wait_outcome, self.workflow_id, self.start_command_id, timeout
        )
        return outcome_value(self.workflow_id, outcome, self.result_type if type is None else type)

    async def signal(self, name: str, arg: Any = None) -> None:
        await asyncio.to_thread(self._shared.commands.signal, self.workflow_id, name, arg)

    async def cancel(self, reason: str = "") -> None:
        await asyncio.to_thread(self._shared.commands.cancel, self.workflow_id, reason)

    async def describe(self) -> WorkflowDescription:
        return await self._shared.describe(self.workflow_id)

    async def history(self, timeout: float = 30.0) -> list[Event]:
        return await asyncio.to_thread(self._shared.history, self.workflow_id, timeout)


class AsyncClient:
    """Start workflows and get handles to them; list them (see sagaflow.clients.sync.Client)."""

    def __init__(
        self,
        config: Config,
        *,
        registry: Registry | None = None,
        commands: CommandClient | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self._shared = Shared(config, commands)

    @classmethod
    def from_env(cls, *, registry: Registry | None = None) -> AsyncClient:
        return cls(Config.from_env(), registry=registry)

    async def start_workflow(
        self,
        workflow: str,
        input: Any = None,
        *,
        id: str,
        version: int | None = None,
        result_type: Any = Any,
    ) -> AsyncWorkflowHandle:
        command = self._shared.start_command(workflow, input, id, version, self.registry)
        await asyncio.to_thread(self._shared.commands.send, command)
        return AsyncWorkflowHandle(
            self._shared, id, result_type=result_type, start_command_id=command.command_id
        )

    def get_workflow_handle(
        self, workflow_id: str, *, result_type: Any = Any
    ) -> AsyncWorkflowHandle:
        return AsyncWorkflowHandle(self._shared, workflow_id, result_type=result_type)

    async def list_workflows(
        self,
        *,
        status: str | None = None,
        workflow_type: str | None = None,
        version: int | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        id_prefix: str | None = None,
        page_size: int = 50,
        cursor: str | None = None,
    ) -> AsyncIterator[WorkflowPage]:
        """Pages of workflows, newest first (`async for page in client.list_workflows(...)`)."""
        filters = ListFilters(status, workflow_type, version, created_from, created_to, id_prefix)
        while True:
            page = await self._shared.list_page(filters, page_size, cursor)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
