"""Which commands the engine accepts at all: payload limits, JSON payloads, rejection records.

A rejection is an Event with seq 0 carrying CommandRejected: visible to the caller, never part
of a history.
"""

from __future__ import annotations

import json

from sagaflow.core.kinds import COMMAND_KINDS
from sagaflow.core.messages import ClosedWorkflow, Command, CommandRejected, Decision, Event
from sagaflow.core.status import WorkflowStatus


def reject(command: Command, now_ms: int, reason: str, message: str) -> Decision:
    """The decision for a command that makes no sense: one rejection event, seq 0."""
    body = CommandRejected(command.command_id, type(command).__name__, reason, message)
    return Decision((Event(command.workflow_id, 0, "", now_ms, body),))


def check_payloads(command: Command, max_payload_bytes: int, now_ms: int) -> Decision | None:
    """A rejection if a payload is over the limit or not UTF-8 JSON; None if acceptable."""
    kind = type(command).__name__
    for name in COMMAND_KINDS[type(command)].payload_fields:
        if len(getattr(command, name)) > max_payload_bytes:
            return reject(
                command,
                now_ms,
                "payload_too_large",
                f"{kind}.{name} is larger than {max_payload_bytes} bytes; store large data "
                "elsewhere and pass a reference",
            )
    for name in COMMAND_KINDS[type(command)].payload_fields:
        try:
            json.loads(getattr(command, name))
        except ValueError:
            return reject(
                command,
                now_ms,
                "invalid_payload",
                f"{kind}.{name} is not UTF-8 JSON; encode payloads as JSON",
            )
    return None


def refuse_late_report(command: Command, closed: ClosedWorkflow, now_ms: int) -> Decision:
    """A worker's report for a closed workflow. After a normal close it is a harmless duplicate
    (nothing was pending) and decides nothing; after a terminate or a timeout the attempt was
    abandoned mid-flight, so its result is refused on the record."""
    if closed.status not in (WorkflowStatus.TERMINATED, WorkflowStatus.TIMED_OUT):
        return Decision()
    return reject(
        command,
        now_ms,
        "workflow_closed",
        f"workflow {closed.workflow_id!r} was {closed.status.replace('_', ' ')}; the result of "
        "its abandoned activity is discarded (nothing else to do)",
    )
