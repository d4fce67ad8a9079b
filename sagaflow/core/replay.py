"""Replay: run workflow code against a recorded history and check it takes the same path.

Events that wake the workflow (activations) are delivered in order; every command the code issues
must match the next recorded command event that belongs to the same activation, or replay raises
NonDeterminismError naming the workflow, the seq, what the code did and what history recorded.

A parked stretch (WorkflowParked ... WorkflowUnparked) is special: activations recorded while
the code could not run were delivered to newer code at once on resume, so the commands the code
issues there belong after the WorkflowUnparked. A history that ends parked yields the commands
newer code would add on resume (`ReplayOutcome.new_commands`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import assert_never

from sagaflow.core.driver import (
    CancelTimerCommand,
    CancelWorkflowCommand,
    CodeCommand,
    CompleteUpdateCommand,
    CompleteWorkflowCommand,
    ContinueAsNewCommand,
    Driver,
    FailWorkflowCommand,
    RecordMarkerCommand,
    RecordStateCommand,
    RequestCancelActivityCommand,
    ScheduleActivityCommand,
    StartChildCommand,
    StartTimerCommand,
    WaitForSignalCommand,
    child_id,
)
from sagaflow.core.errors import NonDeterminismError, WorkflowCodeError
from sagaflow.core.kinds import ACTIVATIONS, COMMAND_EVENTS
from sagaflow.core.messages import (
    ActivityCancelRequested,
    ActivityScheduled,
    ChildWorkflowStarted,
    Event,
    EventBody,
    MarkerRecorded,
    SignalWaitStarted,
    StateTransitioned,
    TimerCancelled,
    TimerStarted,
    UpdateCompleted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowParked,
    WorkflowStarted,
    WorkflowUnparked,
)
from sagaflow.core.registry import Registry


def describe_command(command: CodeCommand) -> str:
    match command:
        case ScheduleActivityCommand():
            kind = "compensation" if command.compensation else "activity"
            return f"scheduled {kind} {command.activity_name!r}"
        case RequestCancelActivityCommand():
            return f"cancelled activity seq {command.activity_seq}"
        case StartTimerCommand():
            return "started a timer"
        case CancelTimerCommand():
            return f"cancelled timer {command.timer_seq}"
        case WaitForSignalCommand():
            return f"waited for signal {command.name!r}"
        case StartChildCommand():
            return f"started child workflow {command.workflow_type!r}"
        case RecordMarkerCommand():
            return f"recorded patch {command.change_id!r}"
        case RecordStateCommand():
            return f"recorded state {command.state!r} {command.transition}"
        case CompleteWorkflowCommand():
            return "completed the workflow"
        case FailWorkflowCommand():
            return f"failed the workflow ({command.error_type})"
        case CancelWorkflowCommand():
            return "ended the workflow as cancelled"
        case ContinueAsNewCommand():
            return "continued as new"
        case CompleteUpdateCommand():
            return f"completed update {command.update_id!r}"
        case _:
            assert_never(command)


def describe_event(event: Event) -> str:
    body = event.body
    if isinstance(body, ActivityScheduled):
        kind = "compensation" if body.compensation else "activity"
        return f"{kind} {body.activity_name!r} scheduled (seq {event.seq})"
    if isinstance(body, ActivityCancelRequested):
        return f"cancellation of activity seq {body.activity_seq} (seq {event.seq})"
    if isinstance(body, TimerCancelled):
        return f"timer {body.timer_seq} cancelled (seq {event.seq})"
    if isinstance(body, MarkerRecorded):
        return f"patch {body.change_id!r} (seq {event.seq})"
    if isinstance(body, StateTransitioned):
        return f"state {body.state!r} {body.transition} (seq {event.seq})"
    if isinstance(body, UpdateCompleted):
        return f"update {body.update_id!r} completed (seq {event.seq})"
    if isinstance(body, ChildWorkflowStarted):
        return (
            f"child workflow {body.workflow_type!r} {body.child_workflow_id!r} started "
            f"(seq {event.seq})"
        )
    return f"{type(body).__name__} (seq {event.seq})"


def command_matches(command: CodeCommand, body: EventBody) -> bool:
    """Whether recorded `body` records `command` (a derived child id is checked by the caller,
    which knows the seq)."""
    match command:
        case ScheduleActivityCommand():
            return (
                isinstance(body, ActivityScheduled) and body.activity_name == command.activity_name
            )
        case RequestCancelActivityCommand():
            return (
                isinstance(body, ActivityCancelRequested)
                and body.activity_seq == command.activity_seq
            )
        case StartTimerCommand():
            return isinstance(body, TimerStarted)
        case CancelTimerCommand():
            return isinstance(body, TimerCancelled) and body.timer_seq == command.timer_seq
        case WaitForSignalCommand():
            return (
                isinstance(body, SignalWaitStarted)
                and body.name == command.name
                and body.timer_seq == command.timer_seq
            )
        case StartChildCommand():
            return (
                isinstance(body, ChildWorkflowStarted)
                and body.workflow_type == command.workflow_type
                and command.child_workflow_id in ("", body.child_workflow_id)
            )
        case RecordMarkerCommand():
            return isinstance(body, MarkerRecorded) and body.change_id == command.change_id
        case RecordStateCommand():
            return isinstance(body, StateTransitioned) and body == _state_transitioned(command)
        case CompleteWorkflowCommand():
            return isinstance(body, WorkflowCompleted)
        case FailWorkflowCommand():
            return isinstance(body, WorkflowFailed)
        case CancelWorkflowCommand():
            return isinstance(body, WorkflowCancelled)
        case ContinueAsNewCommand():
            return isinstance(body, WorkflowContinuedAsNew)
        case CompleteUpdateCommand():
            return isinstance(body, UpdateCompleted) and body.update_id == command.update_id
        case _:
            assert_never(command)


def recorded_event(
    command: ScheduleActivityCommand
    | RequestCancelActivityCommand
    | StartTimerCommand
    | CancelTimerCommand
    | WaitForSignalCommand
    | StartChildCommand
    | RecordMarkerCommand
    | RecordStateCommand
    | CompleteWorkflowCommand
    | FailWorkflowCommand
    | CancelWorkflowCommand
    | CompleteUpdateCommand,
    seq: int,
    workflow_id: str,
) -> EventBody:
    """The event that records a command of the code (continue-as-new starts a run instead)."""
    if isinstance(command, ScheduleActivityCommand):
        return ActivityScheduled(
            activity_seq=seq,
            activity_name=command.activity_name,
            task_queue=command.task_queue,
            input=command.input,
            retry_policy=command.retry_policy,
            start_to_close_ms=command.start_to_close_ms,
            schedule_to_close_ms=command.schedule_to_close_ms,
            compensation=command.compensation,
            heartbeat_timeout_ms=command.heartbeat_timeout_ms,
        )
    if isinstance(command, RequestCancelActivityCommand):
        return ActivityCancelRequested(command.activity_seq)
    if isinstance(command, StartTimerCommand):
        return TimerStarted(seq, command.fire_at_ms)
    if isinstance(command, CancelTimerCommand):
        return TimerCancelled(command.timer_seq)
    if isinstance(command, WaitForSignalCommand):
        return SignalWaitStarted(command.name, command.timer_seq, command.timeout_at_ms)
    if isinstance(command, StartChildCommand):
        return ChildWorkflowStarted(
            child_seq=seq,
            child_workflow_id=child_id(command, workflow_id, seq),
            workflow_type=command.workflow_type,
            version=command.version,
            input=command.input,
            parent_close_policy=command.parent_close_policy,
        )
    if isinstance(command, RecordMarkerCommand):
        return MarkerRecorded(command.change_id)
    if isinstance(command, RecordStateCommand):
        return _state_transitioned(command)
    if isinstance(command, CompleteWorkflowCommand):
        return WorkflowCompleted(command.result)
    if isinstance(command, FailWorkflowCommand):
        return WorkflowFailed(command.error_type, command.message, command.details)
    if isinstance(command, CancelWorkflowCommand):
        return WorkflowCancelled(command.reason)
    if isinstance(command, CompleteUpdateCommand):
        return UpdateCompleted(
            command.update_id, command.result, command.error_type, command.message
        )
    assert_never(command)


def _state_transitioned(command: RecordStateCommand) -> StateTransitioned:
    return StateTransitioned(
        state=command.state,
        state_type=command.state_type,
        transition=command.transition,
        scope=command.scope,
        output=command.output,
        error=command.error,
        cause=command.cause,
        next_state=command.next_state,
    )


class ReplaySink:
    """Matches the code's commands against the recorded command events of a history."""

    def __init__(self, workflow_id: str, history: Sequence[Event], next_new_seq: int) -> None:
        self.workflow_id = workflow_id
        self._recorded = [
            (index, event)
            for index, event in enumerate(history)
            if isinstance(event.body, COMMAND_EVENTS)
        ]
        self._position = 0
        self._next_new_seq = next_new_seq
        self.bound = 0
        """History index before which the current activation's commands must be recorded."""
        self.new_commands: list[CodeCommand] = []
        self.parked = False
        """Whether the current activation was recorded while the workflow was parked (then
        commands beyond history are what resuming adds)."""

    def _next_recorded(self) -> Event | None:
        if self._position < len(self._recorded):
            index, event = self._recorded[self._position]
            if index < self.bound:
                return event
        return None

    def emit(self, command: CodeCommand) -> int:
        recorded = self._next_recorded()
        if isinstance(command, WaitForSignalCommand) and (
            (recorded is None and not self.parked)
            or (recorded is not None and not isinstance(recorded.body, SignalWaitStarted))
        ):
            # Recorded before waits were (event schema v3): a wait changes no state, so the
            # history is accepted without it (its seq is never used). Only a wait that newer
            # code adds when a parked run resumes is recorded late.
            return 0
        if recorded is None:
            self.new_commands.append(command)
            return self._next_new_seq + len(self.new_commands) - 1
        if not command_matches(command, recorded.body):
            raise NonDeterminismError(
                workflow_id=self.workflow_id,
                seq=recorded.seq,
                code_did=describe_command(command),
                history_recorded=describe_event(recorded),
            )
        self._position += 1
        return recorded.seq

    def decide_patch(self, change_id: str) -> bool:
        recorded = self._next_recorded()
        return (
            recorded is not None
            and isinstance(recorded.body, MarkerRecorded)
            and recorded.body.change_id == change_id
        )

    def unmatched_before(self, index: int) -> Event | None:
        if self._position < len(self._recorded):
            recorded_index, event = self._recorded[self._position]
            if recorded_index < index:
                return event
        return None


@dataclass
class ReplayOutcome:
    """Where replay left the workflow."""

    driver: Driver | None
    """The driver, caught up with history; None when the code raised a bug (see `error`)."""
    error: WorkflowCodeError | None = None
    new_commands: list[CodeCommand] = field(default_factory=list)
    """Commands beyond history: only for a history that ends parked (what resuming adds)."""


def _activation_bound(history: Sequence[Event], index: int, parked: bool) -> int:
    for later in range(index + 1, len(history)):
        body = history[later].body
        if isinstance(body, WorkflowParked):
            parked = True
        elif isinstance(body, WorkflowUnparked):
            parked = False
        elif isinstance(body, ACTIVATIONS) and not parked:
            return later
    return len(history)


def replay(registry: Registry, history: Sequence[Event]) -> ReplayOutcome:
    """Run the registered code for this run's history (current run only, first event
    WorkflowStarted). Raises NonDeterminismError if the code takes another path, RegistryError
    if the workflow's type or version is not registered."""
    if not history or not isinstance(history[0].body, WorkflowStarted):
        raise ValueError("a run's history starts with WorkflowStarted")
    first = history[0]
    started = first.body
    assert isinstance(started, WorkflowStarted)
    definition = registry.get_workflow(started.workflow_type, started.version)
    driver = Driver(registry, definition, first.workflow_id, first.run_id, started)
    sink = ReplaySink(first.workflow_id, history, next_new_seq=history[-1].seq + 2)
    parked = False
    for index, event in enumerate(history):
        body = event.body
        if isinstance(body, WorkflowParked):
            parked = True
            continue
        if isinstance(body, WorkflowUnparked):
            parked = False
            continue
        if not isinstance(body, ACTIVATIONS):
            continue
        _check_caught_up(sink, index, event, parked)
        sink.bound = _activation_bound(history, index, parked)
        sink.parked = parked
        try:
            driver.deliver(event, sink)
        except WorkflowCodeError as err:
            return ReplayOutcome(driver=None, error=err)
    end = Event(first.workflow_id, history[-1].seq, first.run_id, 0, WorkflowUnparked())
    _check_caught_up(sink, len(history), end, parked, at_end=True)
    return ReplayOutcome(driver=driver, new_commands=sink.new_commands if parked else [])


def _check_caught_up(
    sink: ReplaySink, index: int, event: Event, parked: bool, *, at_end: bool = False
) -> None:
    missed = sink.unmatched_before(index)
    if missed is not None:
        raise NonDeterminismError(
            workflow_id=sink.workflow_id,
            seq=missed.seq,
            code_did="did not do it (it was waiting for something else)",
            history_recorded=describe_event(missed),
        )
    if sink.new_commands and not parked:
        recorded = (
            f"nothing more (history ends at seq {event.seq})"
            if at_end
            else describe_event(event) + " next"
        )
        raise NonDeterminismError(
            workflow_id=sink.workflow_id,
            seq=event.seq if not at_end else event.seq + 1,
            code_did=describe_command(sink.new_commands[0]),
            history_recorded=recorded,
        )
