"""Queries and updates: asking a workflow something and getting an answer back.

A query runs a registered handler against a copy of the workflow's `ctx.state` (from its live
driver, or one rebuilt by replay) and records nothing. An update runs its validator the same
way; a rejection records nothing, an accepted update becomes UpdateAccepted, its handler runs
as workflow code, and its end is UpdateCompleted. Every answer is a Reply effect for the caller
waiting on the replies topic. Pure, like the rest of the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sagaflow.core import payload
from sagaflow.core.driver import Driver, QueryMutationError
from sagaflow.core.errors import NonDeterminismError, RegistryError
from sagaflow.core.messages import (
    REPLY_FAILED,
    REPLY_OK,
    REPLY_REJECTED,
    ClosedWorkflow,
    Event,
    QueryWorkflow,
    Reply,
    UpdateCompleted,
    UpdateWorkflow,
    WorkflowStarted,
)
from sagaflow.core.registry import Registry
from sagaflow.core.replay import replay
from sagaflow.core.state import UpdateRecord, WorkflowState

Ask = QueryWorkflow | UpdateWorkflow


def reply(
    command: Ask,
    outcome: str,
    *,
    result: bytes = b"null",
    error_type: str = "",
    message: str = "",
) -> Reply:
    """The answer to `command`; for a rejection, `error_type` is the reason code."""
    return Reply(
        request_id=command.request_id,
        workflow_id=command.workflow_id,
        kind=_kind(command),
        name=command.name,
        outcome=outcome,
        result=result,
        error_type=error_type,
        message=message,
        update_id=command.update_id if isinstance(command, UpdateWorkflow) else "",
    )


def rejected(command: Ask, reason: str, message: str) -> Reply:
    return reply(command, REPLY_REJECTED, error_type=reason, message=message)


def answer_query(registry: Registry, command: QueryWorkflow, driver: Driver, status: str) -> Reply:
    """Run the query handler against a copy of the workflow's state; nothing can change."""
    workflow_type = driver.definition.name
    definition = registry.find_query(workflow_type, command.name)
    if definition is None:
        return rejected(
            command,
            "unknown_query",
            f"workflow type {workflow_type!r} has no query {command.name!r}; its queries: "
            f"{registry.query_names(workflow_type)}",
        )
    return _run_reader(command, driver, status, definition.fn)


def validate_update(
    registry: Registry, command: UpdateWorkflow, driver: Driver, status: str
) -> Reply | None:
    """None when the update may be recorded; else the rejection (nothing is recorded)."""
    workflow_type = driver.definition.name
    definition = registry.find_update(workflow_type, command.name)
    if definition is None:
        return rejected(
            command,
            "unknown_update",
            f"workflow type {workflow_type!r} has no update {command.name!r}; its updates: "
            f"{registry.update_names(workflow_type)}",
        )
    validator = definition.validator
    if validator is None:
        return None
    answer = _run_reader(command, driver, status, validator)
    if answer.outcome == REPLY_OK:
        return None
    return rejected(command, "validator_rejected", f"{answer.error_type}: {answer.message}")


def _run_reader(command: Ask, driver: Driver, status: str, fn: Any) -> Reply:
    try:
        view = driver.view(status)
    except ValueError as exc:
        return reply(command, REPLY_FAILED, error_type="StateNotJson", message=str(exc))
    try:
        args = payload.loads(command.args)
        with driver.read_only():
            value = fn(view, args)
        result = payload.dumps(value)
    except QueryMutationError as exc:
        return reply(command, REPLY_FAILED, error_type="QueryMutationError", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - user code's failure is the caller's answer
        return reply(command, REPLY_FAILED, error_type=type(exc).__name__, message=str(exc))
    return reply(command, REPLY_OK, result=result)


def completed_reply(
    workflow_id: str, record: UpdateRecord, request_id: str, done: UpdateCompleted
) -> Reply:
    """The recorded outcome of an update, for the caller `request_id`."""
    return Reply(
        request_id=request_id,
        workflow_id=workflow_id,
        kind="update",
        name=record.name,
        outcome=REPLY_OK if not done.error_type else REPLY_FAILED,
        result=done.result,
        error_type=done.error_type,
        message=done.message,
        update_id=done.update_id,
    )


def replies_after(
    events: Iterable[Event],
    states: dict[str, WorkflowState],
    waiting: dict[tuple[str, str], list[str]],
) -> list[Reply]:
    """Answers owed after a batch: each update completed in it (to its caller and to every
    caller that repeated its update id meanwhile), and a failure for each update a workflow
    left unfinished when it closed."""
    out: list[Reply] = []
    for event in events:
        body = event.body
        if not isinstance(body, UpdateCompleted):
            continue
        state = states.get(event.workflow_id)
        record = state.updates.get(body.update_id) if state is not None else None
        if record is None:
            continue
        callers = [record.request_id, *waiting.pop((event.workflow_id, body.update_id), [])]
        out += [completed_reply(event.workflow_id, record, rid, body) for rid in callers]
    for state in states.values():
        if state.is_open:
            continue
        for update_id, record in state.updates.items():
            if record.completed is None:
                callers = [record.request_id, *waiting.pop((state.workflow_id, update_id), [])]
                closed = UpdateCompleted(
                    update_id,
                    b"null",
                    "WorkflowClosed",
                    f"workflow {state.workflow_id!r} ended ({state.status}) before the update "
                    "finished",
                )
                out += [completed_reply(state.workflow_id, record, rid, closed) for rid in callers]
    return out


def answer_closed(
    registry: Registry, command: Ask, closed: ClosedWorkflow, history: Sequence[Event]
) -> Reply:
    """The answer for a closed workflow from its last run's recorded history: a query runs
    against the final state (the run replayed); an update is answered only for an update id
    it already recorded."""
    if isinstance(command, UpdateWorkflow):
        accepted = None
        for event in history:
            body = event.body
            if isinstance(body, UpdateCompleted) and body.update_id == command.update_id:
                accepted = body
        if accepted is not None:
            record = UpdateRecord(command.name, command.request_id, accepted)
            return completed_reply(command.workflow_id, record, command.request_id, accepted)
        return rejected(
            command,
            "workflow_closed",
            f"workflow {command.workflow_id!r} is already {closed.status}; an update only "
            "reaches a running workflow",
        )
    if not history or not isinstance(history[0].body, WorkflowStarted):
        return reply(
            command,
            REPLY_FAILED,
            error_type="HistoryUnavailable",
            message=f"the history of closed workflow {command.workflow_id!r} (run "
            f"{closed.run_id}) is no longer in the events log, so its final state cannot be "
            "replayed",
        )
    try:
        outcome = replay(registry, history)
    except (NonDeterminismError, RegistryError) as exc:
        return reply(command, REPLY_FAILED, error_type=type(exc).__name__, message=str(exc))
    if outcome.driver is None:
        problem = outcome.error
        return reply(command, REPLY_FAILED, error_type="WorkflowCodeError", message=str(problem))
    return answer_query(registry, command, outcome.driver, closed.status)


def _kind(command: Ask) -> str:
    return "query" if isinstance(command, QueryWorkflow) else "update"
