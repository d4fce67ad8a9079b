"""The one implementation under the sync and asyncio clients.

Every operation is one of three kinds, and each flavour only decides how to wait for it:
- Kafka work (sending a command, reading a workflow's events) is blocking: the sync client
  calls it, the async client runs it in a thread;
- read-model queries are coroutines (psycopg async): the async client awaits them, the sync
  client runs them on a private event loop;
- turning what was recorded into a value or an exception is pure, and shared as it is.

A workflow's events are read from the one events partition its id hashes to (the orchestrator
appends them to the partition of the command that caused them, keyed by workflow id), with
read_committed, so only what the orchestrator committed is seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self, TypedDict

from sagaflow import codec
from sagaflow.client import Client as CommandClient
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
from sagaflow.config import Config
from sagaflow.core import payload
from sagaflow.core.identity import start_command_id
from sagaflow.core.messages import (
    CLOSING_EVENTS,
    CommandRejected,
    Event,
    EventBody,
    StartWorkflow,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowTerminated,
    WorkflowTimedOut,
)
from sagaflow.core.registry import Registry
from sagaflow.kafka.clients import reader
from sagaflow.kafka.logread import partitions_of, read_partitions
from sagaflow.kafka.partition import partition_for
from sagaflow.readmodel import queries

Outcome = EventBody
"""A closing event's body, or the CommandRejected of the start."""


@dataclass(frozen=True)
class WorkflowSummary:
    """One workflow as a row of list_workflows shows it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    version: int
    status: str
    """'running', 'completed', 'failed', 'cancelled', 'parked', ... (sagaflow.core.status)."""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class WorkflowDescription(WorkflowSummary):
    """A workflow as the read model shows it (GET /workflows/{id})."""

    input: Any
    result: Any
    error: Any
    """{'type', 'message', 'details'} when it failed."""
    raw: dict[str, Any] = field(repr=False)
    """Every column the read model has (current step, pending activities and timers...)."""

    def result_as(self, tp: Any) -> Any:
        """The result converted to `tp` (a dataclass, pydantic model...)."""
        return payload.convert(self.result, tp, "result")


@dataclass(frozen=True)
class WorkflowPage:
    workflows: list[WorkflowSummary]
    next_cursor: str | None
    """Pass it back as `cursor` for the next page; None on the last page."""


class FilterArgs(TypedDict, total=False):
    """The filters of GET /workflows, as keyword arguments of list_workflows
    (sagaflow.readmodel.queries.Filters)."""

    status: str
    workflow_type: str
    version: int
    created_from: datetime
    created_to: datetime
    id_prefix: str
    """Workflow ids starting with this text."""


class Shared:
    """The state and operations both flavours share: one command sender, one config."""

    def __init__(self, config: Config, commands: CommandClient | None = None) -> None:
        self.config = config
        self.commands = commands or CommandClient(config)

    # ------------------------------------------------------------------ Kafka (blocking)

    def start_command(
        self,
        workflow_type: str,
        input: Any,
        workflow_id: str,
        version: int | None,
        registry: Registry | None,
        timeouts: Timeouts,
    ) -> StartWorkflow:
        """The StartWorkflow to send; with the app's registry at hand, InputError naming the
        field when the input does not fit the workflow's annotation (as the engine would)."""
        data = payload.dumps(input)
        if registry is not None:
            registry.get_workflow(workflow_type, version).check_input(data)
        command_id = start_command_id(workflow_id, workflow_type, version, data)
        return StartWorkflow(
            workflow_id,
            workflow_type,
            data,
            version,
            command_id,
            execution_timeout_ms=_ms(timeouts.get("execution_timeout")),
            run_timeout_ms=_ms(timeouts.get("run_timeout")),
        )

    def events(self, workflow_id: str, *, follow: bool, deadline_s: float) -> Iterator[Event]:
        """The workflow's committed events (every run, and rejections of its commands), from
        the start of its events partition: to the partition's end, or on until the deadline
        when following."""
        consumer = reader(self.config)
        try:
            topic = self.config.topics.events
            partition = partition_for(workflow_id.encode(), len(partitions_of(consumer, topic)))
            key = workflow_id.encode()
            for msg in read_partitions(
                consumer, topic, {partition: 0}, deadline_s=deadline_s, follow=follow
            ):
                if msg.key() != key:
                    continue
                try:
                    event = codec.decode_event(msg.value() or b"")
                except codec.DecodeError:
                    continue  # the orchestrator quarantines the workflow; a reader moves on
                if event.workflow_id == workflow_id:
                    yield event
        finally:
            consumer.close()

    def history(self, workflow_id: str, timeout_s: float) -> list[Event]:
        """Every recorded event of the workflow (all runs), in order; no rejections."""
        return [e for e in self.events(workflow_id, follow=False, deadline_s=timeout_s) if e.seq]

    def wait_outcome(
        self, workflow_id: str, start_command_id: str | None, timeout_s: float
    ) -> Outcome:
        """The event that ends the workflow's last run (following continue-as-new), or the
        rejection of the start `start_command_id`. WorkflowResultTimeoutError past the
        timeout.

        With a start command id, an outcome counts only once the workflow is known to be the
        one that start created (its WorkflowStarted carries the id): a start refused as a
        duplicate of an older workflow must raise its rejection, not return the older one's
        result that sits before it in the log.
        """
        deadline = time.monotonic() + timeout_s
        ended: Outcome | None = None
        ours = not start_command_id
        for event in self.events(workflow_id, follow=True, deadline_s=timeout_s):
            body = event.body
            if isinstance(body, CommandRejected):
                if start_command_id and body.command_id == start_command_id:
                    ended = body
                    break
            elif isinstance(body, WorkflowStarted):
                ours = ours or body.command_id == start_command_id
            elif isinstance(body, WorkflowContinuedAsNew):
                ended = None  # a new run goes on under the same id
            elif isinstance(body, CLOSING_EVENTS) and ours:
                ended = body
                break
            if time.monotonic() > deadline:
                break
        if ended is None:
            raise WorkflowResultTimeoutError(workflow_id, timeout_s)
        return ended

    # ------------------------------------------------------------------ read model (async)

    async def describe(self, workflow_id: str) -> WorkflowDescription:
        row = await queries.get_workflow(self.config.database_url, workflow_id)
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return WorkflowDescription(
            **_summary_fields(row),
            input=row["input"],
            result=row["result"],
            error=row["error"],
            raw=row,
        )

    async def list_page(
        self, filters: FilterArgs, page_size: int, cursor: str | None
    ) -> WorkflowPage:
        page = await queries.list_workflows(
            self.config.database_url,
            limit=page_size,
            cursor=cursor,
            filters=queries.Filters(**filters),
        )
        rows = [WorkflowSummary(**_summary_fields(r)) for r in page.workflows]
        return WorkflowPage(rows, page.next_cursor)


class Timeouts(TypedDict, total=False):
    """A start's timeouts (seconds or a timedelta; none by default). When one passes the
    workflow closes at once as timed out, running no more code (result() raises
    WorkflowTimedOutError)."""

    execution_timeout: float | timedelta
    """The whole workflow id, across continue-as-new runs."""
    run_timeout: float | timedelta
    """Each run."""


def _ms(duration: float | timedelta | None) -> int:
    if duration is None:
        return 0
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    return round(seconds * 1000)


class HandleBase:
    """What a handle is in either flavour: a workflow id and how to read its result."""

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
        """What result() converts the result to unless given a type of its own."""
        self.start_command_id = start_command_id
        """The start this handle came from, if any: its rejection is what result() raises."""

    def _value(self, outcome: Outcome, tp: Any) -> Any:
        return outcome_value(self.workflow_id, outcome, self.result_type if tp is None else tp)


class ClientBase:
    """What a client is in either flavour: the config, optionally the app's registry (to
    check inputs before sending), and the shared implementation."""

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
    def from_env(cls, *, registry: Registry | None = None) -> Self:
        """A client configured from SAGAFLOW_* environment variables (sagaflow.config)."""
        return cls(Config.from_env(), registry=registry)

    def _start_command(
        self, workflow: str, input: Any, workflow_id: str, version: int | None, timeouts: Timeouts
    ) -> StartWorkflow:
        return self._shared.start_command(
            workflow, input, workflow_id, version, self.registry, timeouts
        )


# --------------------------------------------------------------------------- pure


def _summary_fields(row: dict[str, Any]) -> dict[str, Any]:
    """WorkflowSummary's fields from a read-model row (sagaflow.readmodel.queries)."""
    return {
        "workflow_id": row["workflow_id"],
        "run_id": row["run_id"],
        "workflow_type": row["type"],
        "version": row["version"],
        "status": row["status"],
        "created_at": datetime.fromisoformat(row["created_at"]),
        "updated_at": datetime.fromisoformat(row["updated_at"]),
    }


def outcome_value(workflow_id: str, outcome: Outcome, result_type: Any) -> Any:
    """The workflow's result as `result_type`, or the exception its outcome stands for."""
    if isinstance(outcome, WorkflowCompleted):
        return payload.decode(outcome.result, result_type, "result")
    if isinstance(outcome, WorkflowFailed):
        raise WorkflowFailureError(workflow_id, outcome)
    if isinstance(outcome, WorkflowCancelled):
        raise WorkflowCancelledError(workflow_id, outcome.reason)
    if isinstance(outcome, CommandRejected):
        raise WorkflowStartRejectedError(workflow_id, outcome)
    if isinstance(outcome, WorkflowTerminated):
        raise WorkflowTerminatedError(workflow_id, outcome)
    if isinstance(outcome, WorkflowTimedOut):
        raise WorkflowTimedOutError(workflow_id, outcome)
    raise WorkflowClosedError(workflow_id, outcome)
