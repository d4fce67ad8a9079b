"""Child workflows: the commands that pass between a parent and its children.

A parent's ChildWorkflowStarted event becomes a StartWorkflow for the child carrying the
parent reference; a child's close (or the rejection of its start) becomes a ReportChildClosed
for the parent; a parent's close becomes, per child still running, what its parent close
policy asks. All of them are CommandToWorkflow effects, produced in the transaction of the
event that caused them and keyed by the target's workflow id, so they reach the partition (and
the orchestrator) that owns the target, and their command ids are derived from what they are
about, so a redelivery is recognised by the receiver.
"""

from __future__ import annotations

from sagaflow.core.kinds import describe
from sagaflow.core.messages import (
    CancelWorkflow,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    CommandRejected,
    CommandToWorkflow,
    EventBody,
    ParentClosePolicy,
    ReportChildClosed,
    StartWorkflow,
    TerminateWorkflow,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowTerminated,
    WorkflowTimedOut,
)
from sagaflow.core.state import ChildState, WorkflowState

START_FAILED = "start_failed"


def start_child(parent: WorkflowState, body: ChildWorkflowStarted) -> CommandToWorkflow:
    """The StartWorkflow for a child the parent's code just started."""
    return CommandToWorkflow(
        StartWorkflow(
            workflow_id=body.child_workflow_id,
            workflow_type=body.workflow_type,
            input=body.input,
            version=body.version or None,
            command_id=f"start-child:{parent.workflow_id}/{body.child_seq}",
            parent_workflow_id=parent.workflow_id,
            parent_run_id=parent.run_id,
            parent_child_seq=body.child_seq,
        )
    )


def report_start_failed(start: StartWorkflow, rejection: CommandRejected) -> CommandToWorkflow:
    """Tell the parent its child could not be started (the rejection says why)."""
    return CommandToWorkflow(
        ReportChildClosed(
            workflow_id=start.parent_workflow_id,
            child_workflow_id=start.workflow_id,
            child_run_id="",
            status=START_FAILED,
            error_type=rejection.reason,
            message=rejection.message,
            command_id=f"child-start-failed:{start.command_id}",
        )
    )


def report_closed(child: WorkflowState, closing: EventBody) -> CommandToWorkflow:
    """Tell the parent its child closed, with the child's outcome."""
    result = b"null"
    error_type = message = ""
    if isinstance(closing, WorkflowCompleted):
        result = closing.result
    elif isinstance(closing, WorkflowFailed):
        error_type, message = closing.error_type, closing.message
    elif isinstance(closing, WorkflowCancelled):
        error_type, message = "CancelledError", closing.reason or "cancelled"
    elif isinstance(closing, WorkflowTerminated):
        by = f" by {closing.by}" if closing.by else ""
        error_type, message = "Terminated", f"terminated{by}: {closing.reason}"
    elif isinstance(closing, WorkflowTimedOut):
        error_type, message = "TimedOut", f"its {closing.timeout} timeout passed"
    else:
        # A closing event added later (terminated, ...): its description says what happened.
        error_type, message = type(closing).__name__, describe(closing)
    return CommandToWorkflow(
        ReportChildClosed(
            workflow_id=child.parent_workflow_id,
            child_workflow_id=child.workflow_id,
            child_run_id=child.run_id,
            status=child.status,
            result=result,
            error_type=error_type,
            message=message,
            command_id=f"child-closed:{child.workflow_id}/{child.run_id}",
        )
    )


def apply_close_policy(parent: WorkflowState, status: str) -> list[CommandToWorkflow]:
    """What the parent's close asks of each child still running, in the order they started."""
    out: list[CommandToWorkflow] = []
    for child in sorted(parent.children.values(), key=lambda c: c.seq):
        command = _policy_command(parent, child, status)
        if command is not None:
            out.append(CommandToWorkflow(command))
    return out


def _policy_command(
    parent: WorkflowState, child: ChildState, status: str
) -> CancelWorkflow | TerminateWorkflow | None:
    reason = f"parent {parent.workflow_id!r} closed ({status}); parent close policy "
    command_id = f"parent-closed:{parent.workflow_id}/{child.seq}"
    match child.parent_close_policy:
        case ParentClosePolicy.ABANDON:
            return None
        case ParentClosePolicy.REQUEST_CANCEL:
            return CancelWorkflow(child.workflow_id, reason + "request_cancel", command_id)
        case _:
            return TerminateWorkflow(
                child.workflow_id,
                reason + "terminate",
                f"parent {parent.workflow_id}",
                command_id,
            )


def child_outcome(
    parent: WorkflowState, child: ChildState, report: ReportChildClosed
) -> ChildWorkflowCompleted | ChildWorkflowFailed:
    """The parent's event recording its child's report."""
    if report.status == "completed":
        return ChildWorkflowCompleted(
            child.seq, child.workflow_id, report.child_run_id, report.result
        )
    return ChildWorkflowFailed(
        child.seq,
        child.workflow_id,
        report.child_run_id,
        report.status,
        report.error_type,
        report.message,
    )
