"""Queries and updates: asking a workflow something and getting an answer back.

A query runs a registered handler against a copy of the workflow's `ctx.state` (from its live
driver, or one rebuilt by replay) and records nothing. An update runs its validator the same
way; a rejection records nothing, an accepted update becomes UpdateAccepted, its handler runs
as workflow code, and its end is UpdateCompleted. Every answer is a ReplyToCaller effect for the
caller waiting on the replies topic (reply_to and command_id: the caller's request id). A
not-ok answer whose error_type is one of REJECTIONS ran nothing and recorded nothing; any other
error_type is the handler's own error. Pure, like the rest of the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sagaflow.core import payload
from sagaflow.core.driver import Driver, QueryMutationError
from sagaflow.core.errors import NonDeterminismError, RegistryError
from sagaflow.core.messages import (
    ClosedWorkflow,
    Event,
    QueryWorkflow,
    ReplyToCaller,
    UpdateCompleted,
    UpdateWorkflow,
    WorkflowStarted,
)
from sagaflow.core.registry import Registry
from sagaflow.core.replay import replay
from sagaflow.core.state import WorkflowState

Ask = QueryWorkflow | UpdateWorkflow

REJECTIONS = frozenset(
    {
        "unknown_query",
        "unknown_update",
        "workflow_not_found",
        "workflow_closed",
        "workflow_parked",
        "workflow_quarantined",
        "workflow_error",
        "validator_rejected",
        "payload_too_large",
        "invalid_payload",
    }
)
"""Reason codes of answers that ran nothing and recorded nothing."""


def answer(
    request_id: str,
    ok: bool,
    *,
    result: bytes = b"null",
    error_type: str = "",
    message: str = "",
) -> ReplyToCaller:
    """The answer for the caller `request_id` (its reply key and the command id it matches)."""
    return ReplyToCaller(request_id, request_id, ok, result, error_type, message)


def reply(
    command: Ask,
    ok: bool,
    *,
    result: bytes = b"null",
    error_type: str = "",
    message: str = "",
) -> ReplyToCaller:
    return answer(command.request_id, ok, result=result, error_type=error_type, message=message)


def rejected(command: Ask, reason: str, message: str) -> ReplyToCaller:
    return reply(command, False, error_type=reason, message=message)


def answer_query(
    registry: Registry, command: QueryWorkflow, driver: Driver, status: str
) -> ReplyToCaller:
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
) -> ReplyToCaller | None:
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
    verdict = _run_reader(command, driver, status, validator)
    if verdict.ok:
        return None
    return rejected(command, "validator_rejected", f"{verdict.error_type}: {verdict.message}")


def _run_reader(command: Ask, driver: Driver, status: str, fn: Any) -> ReplyToCaller:
    try:
        view = driver.view(status)
    except ValueError as exc:
        return reply(command, False, error_type="StateNotJson", message=str(exc))
    try:
        args = payload.loads(command.args)
        with driver.read_only():
            value = fn(view, args)
        result = payload.dumps(value)
    except QueryMutationError as exc:
        return reply(command, False, error_type="QueryMutationError", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - user code's failure is the caller's answer
        return reply(command, False, error_type=type(exc).__name__, message=str(exc))
    return reply(command, True, result=result)


def completed_reply(request_id: str, done: UpdateCompleted) -> ReplyToCaller:
    """The recorded outcome of an update, for the caller `request_id`."""
    return answer(
        request_id,
        not done.error_type,
        result=done.result,
        error_type=done.error_type,
        message=done.message,
    )


def replies_after(
    events: Iterable[Event],
    states: dict[str, WorkflowState],
    waiting: dict[tuple[str, str], list[str]],
) -> list[ReplyToCaller]:
    """Answers owed after a batch: each update completed in it (to its caller and to every
    caller that repeated its update id meanwhile), and a failure for each update a workflow
    left unfinished when it closed."""
    out: list[ReplyToCaller] = []
    for event in events:
        body = event.body
        if not isinstance(body, UpdateCompleted):
            continue
        state = states.get(event.workflow_id)
        record = state.updates.get(body.update_id) if state is not None else None
        if record is None:
            continue
        callers = [record.request_id, *waiting.pop((event.workflow_id, body.update_id), [])]
        out += [completed_reply(rid, body) for rid in callers]
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
                out += [completed_reply(rid, closed) for rid in callers]
    return out


def answer_closed(
    registry: Registry, command: Ask, closed: ClosedWorkflow, history: Sequence[Event]
) -> ReplyToCaller:
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
            return completed_reply(command.request_id, accepted)
        return rejected(
            command,
            "workflow_closed",
            f"workflow {command.workflow_id!r} is already {closed.status}; an update only "
            "reaches a running workflow",
        )
    if not history or not isinstance(history[0].body, WorkflowStarted):
        return reply(
            command,
            False,
            error_type="HistoryUnavailable",
            message=f"the history of closed workflow {command.workflow_id!r} (run "
            f"{closed.run_id}) is no longer in the events log, so its final state cannot be "
            "replayed",
        )
    try:
        outcome = replay(registry, history)
    except (NonDeterminismError, RegistryError) as exc:
        return reply(command, False, error_type=type(exc).__name__, message=str(exc))
    if outcome.driver is None:
        problem = outcome.error
        return reply(command, False, error_type="WorkflowCodeError", message=str(problem))
    return answer_query(registry, command, outcome.driver, closed.status)
