"""The blocking client, for scripts, web handlers in threads and tests.

    client = Client.from_env()
    handle = client.start_workflow("checkout", Order(...), id="order-1", result_type=Receipt)
    receipt = handle.result(timeout=60)

Not for code running inside an event loop: use sagaflow.clients.AsyncClient there (the
read-model calls here run a private event loop of their own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
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


class WorkflowHandle(HandleBase):
    """One workflow, by id: wait for its result, signal it, cancel it, read it."""

    def result(self, timeout: float = 60.0, *, type: Any = None) -> Any:
        """Wait for the workflow to close and return its result, converted to `type` (or the
        handle's result_type). A failed workflow raises WorkflowFailureError whose cause is
        the engine's error (ApplicationError, ActivityError...), a cancelled one
        WorkflowCancelledError, a refused start WorkflowStartRejectedError; no outcome within
        `timeout` seconds raises WorkflowResultTimeoutError (a TimeoutError)."""
        return self._value(
            self._shared.wait_outcome(self.workflow_id, self.start_command_id, timeout), type
        )

    def signal(self, name: str, arg: Any = None) -> None:
        """Send signal `name` with `arg` (a JSON value, dataclass or pydantic model)."""
        self._shared.commands.signal(self.workflow_id, name, arg)

    def cancel(self, reason: str = "") -> None:
        """Ask the workflow to cancel; it may clean up (compensate) before it ends."""
        self._shared.commands.cancel(self.workflow_id, reason)

    def terminate(self, reason: str, by: str = "") -> None:
        """Stop the workflow now: no more of its code runs, so nothing is compensated (cancel
        asks the code instead). result() then raises WorkflowTerminatedError with who and why."""
        self._shared.commands.terminate(self.workflow_id, reason, by)

    def describe(self) -> WorkflowDescription:
        """The workflow as the read model shows it now; WorkflowNotFoundError if it has none."""
        return asyncio.run(self._shared.describe(self.workflow_id))

    def history(self, timeout: float = 30.0) -> list[Event]:
        """Every event recorded for the workflow (all runs), decoded, read from the log."""
        return self._shared.history(self.workflow_id, timeout)


class Client(ClientBase):
    """Start workflows and get handles to them; list them. One per application.

    With `registry`, an input is checked against the workflow's input annotation before it is
    sent (InputError naming the field); the engine checks it in any case, and result() raises
    WorkflowStartRejectedError for a start it refused.
    """

    def start_workflow(
        self,
        workflow: str,
        input: Any = None,
        *,
        id: str,
        version: int | None = None,
        result_type: Any = Any,
        **timeouts: Unpack[Timeouts],
    ) -> WorkflowHandle:
        """Start workflow type `workflow` with `input` under workflow id `id` (the newest
        version unless `version`), with `execution_timeout` / `run_timeout` if given. Safe to
        repeat: the same start is the same command."""
        command = self._start_command(workflow, input, id, version, timeouts)
        self._shared.commands.send(command)
        return WorkflowHandle(
            self._shared, id, result_type=result_type, start_command_id=command.command_id
        )

    def get_workflow_handle(self, workflow_id: str, *, result_type: Any = Any) -> WorkflowHandle:
        """A handle to a workflow started elsewhere."""
        return WorkflowHandle(self._shared, workflow_id, result_type=result_type)

    def list_workflows(
        self, *, page_size: int = 50, cursor: str | None = None, **filters: Unpack[FilterArgs]
    ) -> Iterator[WorkflowPage]:
        """Pages of workflows, newest first, under the filters GET /workflows has (status,
        workflow_type, version, created_from, created_to, id_prefix); each page is fetched
        when the iteration reaches it, from `cursor` on if given."""
        while True:
            page = asyncio.run(self._shared.list_page(filters, page_size, cursor))
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
