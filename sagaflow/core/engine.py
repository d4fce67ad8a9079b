"""The engine: every workflow of one Kafka partition. Pure and single-threaded.

Commands decide, events change state (sagaflow.core.state appliers), and rebuilding folds
events without running workflow code. A busy workflow keeps its driver (the suspended
coroutine) so a command only runs the code from where it stopped; an idle one (waiting for a
signal or a distant timer) and every workflow after `restore` get theirs rebuilt lazily, by
replaying the run's history, the first time a command needs it. Closed workflows stay known
for ever as compact ClosedWorkflow records (returned in Decision.closed, loaded by `remember`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import assert_never

from sagaflow.core import interactions
from sagaflow.core.activities import (
    cancellation,
    cancellations_settled_by,
    reported_activity,
    task_for,
)
from sagaflow.core.admission import check_payloads, refuse_late_report, reject
from sagaflow.core.driver import (
    CodeCommand,
    ContinueAsNewCommand,
    Driver,
    LiveSink,
)
from sagaflow.core.errors import NonDeterminismError, RegistryError, WorkflowCodeError
from sagaflow.core.identity import derive_random_seed, derive_run_id
from sagaflow.core.kinds import CLOSING_STATUS, COMMAND_KINDS
from sagaflow.core.messages import (
    ActivityAttemptFailed,
    ActivityCancelRequested,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeatRecorded,
    ActivityRetried,
    ActivityScheduled,
    CancelRequested,
    CancelWorkflow,
    ClosedWorkflow,
    Command,
    CommandRejected,
    CompleteActivity,
    Decision,
    Effect,
    Event,
    EventBody,
    FailActivity,
    HeartbeatActivity,
    QueryWorkflow,
    ReplyToCaller,
    ReportChildClosed,
    SignalReceived,
    SignalWorkflow,
    StartWorkflow,
    StepView,
    TerminateWorkflow,
    TimerFired,
    TimerStarted,
    UpdateAccepted,
    UpdateWorkflow,
    WorkflowContinuedAsNew,
    WorkflowParked,
    WorkflowStarted,
    WorkflowTerminated,
    WorkflowTimedOut,
    WorkflowUnparked,
)
from sagaflow.core.payload import InputError
from sagaflow.core.registry import Registry, WorkflowDefinition
from sagaflow.core.replay import recorded_event, replay
from sagaflow.core.retry import after_failed_attempt, cancelled_between_attempts, when_due
from sagaflow.core.state import (
    CONTINUED_AS_NEW,
    PARKED,
    QUARANTINED,
    RUNNING,
    ActivityState,
    ApplyError,
    WorkflowState,
)
from sagaflow.core.status import CLOSED_STATUSES

_STEP_OUTCOMES = (ActivityAttemptFailed, ActivityRetried, ActivityCompleted, ActivityFailed)

_CLOSING_STATUS = {t: s for t, s in CLOSING_STATUS.items() if s in CLOSED_STATUSES}
"""Events that close a workflow id for good (continuing as new keeps the id open)."""


@dataclass
class _Batch:
    """What one call decides, accumulated in order."""

    events: list[Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    touched: dict[str, WorkflowState] = field(default_factory=dict)
    closed: list[ClosedWorkflow] = field(default_factory=list)
    steps: list[StepView] = field(default_factory=list)

    def decision(self) -> Decision:
        return Decision(
            tuple(self.events), tuple(self.effects), tuple(self.closed), tuple(self.steps)
        )


@dataclass(frozen=True)
class _Timeouts:
    """A workflow's own timeouts, carried from its start to every run it continues into."""

    execution_deadline_ms: int = 0
    run_timeout_ms: int = 0


class Engine:
    """All workflows of one Kafka partition; pure, single-threaded."""

    def __init__(self, registry: Registry, *, max_payload_bytes: int = 262_144) -> None:
        self._registry = registry
        self._max_payload_bytes = max_payload_bytes
        self._open: dict[str, WorkflowState] = {}
        self._closed: dict[str, ClosedWorkflow] = {}
        """Every closed workflow id this partition has seen (loaded by `remember` on rebuild,
        however long ago it closed)."""
        self._drivers: dict[str, Driver] = {}
        self._waiting: dict[tuple[str, str], list[str]] = {}
        """(workflow id, update id) -> callers that repeated an update still running; kept in
        memory only (a caller that loses its answer to a restart asks again)."""
        self._due: list[tuple[int, str]] = []
        """Heap of (due_ms, workflow_id); entries may be stale and are checked when popped."""

    # ------------------------------------------------------------------ queries

    def status(self, workflow_id: str) -> str | None:
        """'running', 'parked', 'quarantined', 'completed', 'failed', 'cancelled',
        'continued_as_new', or None if unknown."""
        state = self._open.get(workflow_id)
        if state is not None:
            return state.status
        closed = self._closed.get(workflow_id)
        return closed.status if closed is not None else None

    def closed_workflow(self, workflow_id: str) -> ClosedWorkflow | None:
        return self._closed.get(workflow_id)

    def drivers_held(self) -> int:
        """Live workflow coroutines kept between commands (idle workflows hold none)."""
        return len(self._drivers)

    def holds_driver(self, workflow_id: str) -> bool:
        return workflow_id in self._drivers

    def open_workflow_ids(self) -> frozenset[str]:
        return frozenset(self._open)

    def history(self, workflow_id: str) -> tuple[Event, ...]:
        """Current run's events (empty once the workflow is closed)."""
        state = self._open.get(workflow_id)
        return tuple(state.history) if state is not None else ()

    def state(self, workflow_id: str) -> WorkflowState | None:
        """The folded state of an open workflow (read-only by convention; for tests/tools)."""
        return self._open.get(workflow_id)

    def next_due_ms(self) -> int | None:
        while self._due:
            due, workflow_id = self._due[0]
            state = self._open.get(workflow_id)
            actual = state.next_due_ms() if state is not None else None
            if actual == due:
                return due
            heapq.heappop(self._due)
            if actual is not None:
                heapq.heappush(self._due, (actual, workflow_id))
        return None

    # ------------------------------------------------------------------ rebuild

    def remember(self, closed: ClosedWorkflow) -> None:
        """Rebuild: load one closed workflow from the durable index (before folding events).
        Its events, if the rebuild reads any, are then ignored."""
        if closed.workflow_id not in self._open:
            self._closed[closed.workflow_id] = closed

    def restore(self, event: Event) -> None:
        """Rebuild: fold one recorded event. Never runs workflow code, never raises for bad
        data: a seq gap/duplicate or an event that fails to apply quarantines that workflow.
        Rejection events (seq 0) are ignored."""
        body = event.body
        if event.seq == 0 or isinstance(body, CommandRejected):
            return
        workflow_id = event.workflow_id
        if workflow_id in self._closed:
            return
        state = self._open.get(workflow_id)
        if state is None:
            state = self._open[workflow_id] = WorkflowState(workflow_id)
            if not isinstance(body, WorkflowStarted):
                self._restore_orphan(state, event)
                return
        elif state.status == QUARANTINED:
            return
        elif event.seq != state.last_seq + 1:
            problem = "duplicate" if event.seq <= state.last_seq else "gap"
            state.quarantine(
                f"event seq {event.seq} after seq {state.last_seq} ({problem}); the events log "
                "is inconsistent: inspect it, then rebuild from a clean offset"
            )
            self._drivers.pop(workflow_id, None)
            return
        try:
            state.apply(event)
        except ApplyError as err:
            state.quarantine(f"event seq {event.seq} does not apply: {err}")
            self._drivers.pop(workflow_id, None)
            return
        self._drivers.pop(workflow_id, None)
        if isinstance(body, _ARMS_A_DEADLINE) or state.status in CLOSED_STATUSES:
            self._settle(state)

    def quarantine(self, workflow_id: str, reason: str) -> None:
        """Stop one workflow whose recorded history cannot be read (an undecodable event in the
        log). Its later events are not applied and commands to it are rejected with
        'workflow_quarantined'; no other workflow is affected."""
        self._closed.pop(workflow_id, None)
        state = self._open.setdefault(workflow_id, WorkflowState(workflow_id))
        state.quarantine(reason)
        self._drivers.pop(workflow_id, None)

    def _restore_orphan(self, state: WorkflowState, event: Event) -> None:
        """The first event seen for a workflow is not its start (rebuild began after it)."""
        body = event.body
        closing = _CLOSING_STATUS.get(type(body))
        if closing is not None:
            # Closed before the rebuild's start and not in the durable index (written by an
            # older version): what the closing event says is all there is to keep.
            del self._open[state.workflow_id]
            self._closed[state.workflow_id] = ClosedWorkflow(
                state.workflow_id, event.run_id, closing, "", event.seq, event.recorded_at_ms
            )
            return
        state.last_seq = event.seq
        if isinstance(body, WorkflowContinuedAsNew):
            state.status, state.run_id = CONTINUED_AS_NEW, event.run_id
            return
        state.quarantine(
            f"history starts at seq {event.seq} with {type(body).__name__}, not WorkflowStarted; "
            "rebuild from an earlier offset"
        )

    # ------------------------------------------------------------------ commands

    def handle(self, command: Command, now_ms: int) -> Decision:
        """Decide and apply one command. Never raises for bad commands (a rejection event with
        seq 0) nor for bugs in workflow code (WorkflowParked). Duplicates decide nothing."""
        rejected = check_payloads(command, self._max_payload_bytes, now_ms)
        if isinstance(command, QueryWorkflow | UpdateWorkflow):
            return self._interact(command, rejected, now_ms)
        if rejected is not None:
            return rejected
        if isinstance(command, StartWorkflow):
            return self._handle_start_workflow(command, now_ms)
        workflow_id = command.workflow_id
        batch = _Batch()
        state = self._open.get(workflow_id)
        if state is None:
            closed = self._closed.get(workflow_id)
            if closed is not None:
                if COMMAND_KINDS[type(command)].reports_activity:
                    return refuse_late_report(command, closed, now_ms)
                return reject(
                    command,
                    now_ms,
                    "workflow_closed",
                    f"workflow {workflow_id!r} is already {closed.status}",
                )
            return reject(
                command, now_ms, "workflow_not_found", f"no workflow {workflow_id!r} here"
            )
        if state.status == QUARANTINED:
            return reject(
                command,
                now_ms,
                "workflow_quarantined",
                f"workflow {workflow_id!r} is quarantined ({state.quarantine_reason})",
            )
        match command:
            case SignalWorkflow():
                self._handle_signal_workflow(batch, state, command, now_ms)
            case CancelWorkflow():
                self._handle_cancel_workflow(batch, state, command, now_ms)
            case TerminateWorkflow():
                self._handle_terminate_workflow(batch, state, command, now_ms)
            case CompleteActivity():
                self._handle_complete_activity(batch, state, command, now_ms)
            case FailActivity():
                self._handle_fail_activity(batch, state, command, now_ms)
            case HeartbeatActivity():
                self._handle_heartbeat_activity(batch, state, command, now_ms)
            case ReportChildClosed():
                return reject(
                    command,
                    now_ms,
                    "child_unknown",
                    f"workflow {workflow_id!r} started no child {command.child_workflow_id!r}; "
                    "only a child's own parent receives its outcome",
                )
            case _:
                assert_never(command)
        return self._finish(batch, now_ms)

    # ------------------------------------------------------------------ queries and updates

    def needs_history(self, command: Command) -> ClosedWorkflow | None:
        """The closed workflow a query or update is addressed to: the shell answers it from the
        recorded history (`interactions.answer_closed`), which the engine does not keep."""
        if isinstance(command, QueryWorkflow | UpdateWorkflow):
            return self._closed.get(command.workflow_id)
        return None

    def _interact(
        self, command: QueryWorkflow | UpdateWorkflow, rejected: Decision | None, now_ms: int
    ) -> Decision:
        """Queries and updates answer with a reply; a refusal is a reply too, never an event."""
        refusal = rejected.rejection if rejected is not None else None
        if refusal is not None:
            return _answer(interactions.rejected(command, refusal.reason, refusal.message))
        workflow_id = command.workflow_id
        state = self._open.get(workflow_id)
        if state is None:
            closed = self._closed.get(workflow_id)
            reason, message = (
                ("workflow_closed", f"workflow {workflow_id!r} is already {closed.status}")
                if closed is not None
                else ("workflow_not_found", f"no workflow {workflow_id!r} here")
            )
            return _answer(interactions.rejected(command, reason, message))
        if state.status == QUARANTINED:
            message = f"workflow {workflow_id!r} is quarantined ({state.quarantine_reason})"
            return _answer(interactions.rejected(command, "workflow_quarantined", message))
        if isinstance(command, UpdateWorkflow):
            return self._handle_update(command, state, now_ms)
        held = workflow_id in self._drivers
        driver, problem = self._driver_for(state)
        if driver is None:
            return _answer(interactions.rejected(command, "workflow_error", str(problem)))
        if not held:
            # Answered by replay: an idle workflow keeps costing no coroutine afterwards.
            self._drivers.pop(workflow_id, None)
        return _answer(interactions.answer_query(self._registry, command, driver, state.status))

    def _handle_update(
        self, command: UpdateWorkflow, state: WorkflowState, now_ms: int
    ) -> Decision:
        workflow_id = state.workflow_id
        record = state.updates.get(command.update_id)
        if record is not None:
            if record.completed is not None:
                return _answer(interactions.completed_reply(command.request_id, record.completed))
            self._waiting.setdefault((workflow_id, command.update_id), []).append(
                command.request_id
            )
            return Decision()
        if state.status != RUNNING:
            message = f"workflow {workflow_id!r} is {state.status} ({state.parked_message})"
            return _answer(interactions.rejected(command, "workflow_parked", message))
        held = workflow_id in self._drivers
        driver, problem = self._driver_for(state)
        if driver is None:
            return _answer(interactions.rejected(command, "workflow_error", str(problem)))
        refusal = interactions.validate_update(self._registry, command, driver, state.status)
        if refusal is not None:
            if not held:
                self._drivers.pop(workflow_id, None)
            return _answer(refusal)
        batch = _Batch()
        body = UpdateAccepted(command.update_id, command.name, command.args, command.request_id)
        self._activate(batch, state, body, now_ms)
        return self._finish(batch, now_ms)

    def _handle_start_workflow(self, command: StartWorkflow, now_ms: int) -> Decision:
        workflow_id = command.workflow_id
        known = self._open.get(workflow_id) or self._closed.get(workflow_id)
        if known is not None:
            if command.command_id and command.command_id == known.start_command_id:
                # The start that created this workflow, sent again (a client's retry, a
                # redelivery): it is already started, so it decides nothing.
                return Decision()
            status = self.status(workflow_id)
            return reject(
                command,
                now_ms,
                "duplicate_workflow_id",
                f"workflow {workflow_id!r} already exists ({status}); choose another id",
            )
        if not self._registry.has_workflow_type(command.workflow_type):
            return reject(
                command,
                now_ms,
                "unknown_workflow_type",
                f"no workflow type {command.workflow_type!r} is registered; deploy it first",
            )
        try:
            definition = self._registry.get_workflow(command.workflow_type, command.version)
        except RegistryError as err:
            return reject(command, now_ms, "unknown_version", str(err))
        try:
            definition.check_input(command.input)
        except InputError as err:
            return reject(
                command,
                now_ms,
                "invalid_input",
                f"{err}; fix the input to match workflow {definition.name!r} "
                f"version {definition.version}",
            )
        state = self._open[workflow_id] = WorkflowState(workflow_id)
        batch = _Batch()
        execution_deadline = (
            now_ms + command.execution_timeout_ms if command.execution_timeout_ms else 0
        )
        self._start_run(
            batch,
            state,
            definition,
            command.input,
            now_ms,
            command.command_id,
            "",
            _Timeouts(execution_deadline, command.run_timeout_ms),
        )
        return self._finish(batch, now_ms)

    def _handle_signal_workflow(
        self, batch: _Batch, state: WorkflowState, command: SignalWorkflow, now_ms: int
    ) -> None:
        if command.command_id and command.command_id in state.signal_command_ids:
            return
        body = SignalReceived(command.name, command.payload, command.command_id)
        self._activate(batch, state, body, now_ms)

    def _handle_cancel_workflow(
        self, batch: _Batch, state: WorkflowState, command: CancelWorkflow, now_ms: int
    ) -> None:
        if not state.cancel_requested:
            self._activate(batch, state, CancelRequested(command.reason), now_ms)

    def _handle_terminate_workflow(
        self, batch: _Batch, state: WorkflowState, command: TerminateWorkflow, now_ms: int
    ) -> None:
        """Close now without running the code (running or parked alike): nothing compensates,
        and the open activities and timers close with it (late reports are refused)."""
        self._drivers.pop(state.workflow_id, None)
        self._append(batch, state, WorkflowTerminated(command.reason, command.by), now_ms)

    def _handle_complete_activity(
        self, batch: _Batch, state: WorkflowState, command: CompleteActivity, now_ms: int
    ) -> None:
        activity = reported_activity(state, command.run_id, command.activity_seq)
        if activity is not None:
            # Any attempt's completion counts: its side effect happened.
            body = ActivityCompleted(activity.seq, command.attempt, command.result)
            self._activate(batch, state, body, now_ms)

    def _handle_fail_activity(
        self, batch: _Batch, state: WorkflowState, command: FailActivity, now_ms: int
    ) -> None:
        activity = reported_activity(state, command.run_id, command.activity_seq)
        if activity is None or activity.retry_at_ms is not None:
            return
        if command.attempt != activity.attempt:
            return  # a stale attempt's report; the current attempt decides
        outcome = after_failed_attempt(
            activity,
            command.error_type,
            command.message,
            command.details,
            retryable=command.retryable,
            timed_out=False,
            now_ms=now_ms,
        )
        self._record_activity_outcome(batch, state, activity, outcome, now_ms)

    def _handle_heartbeat_activity(
        self, batch: _Batch, state: WorkflowState, command: HeartbeatActivity, now_ms: int
    ) -> None:
        """A heartbeat of the running attempt is recorded: it moves the attempt's heartbeat
        deadline and keeps its details for the next attempt. Heartbeats of other attempts, or
        while the activity waits for its next attempt, are late and decide nothing."""
        activity = reported_activity(state, command.run_id, command.activity_seq)
        if activity is None or activity.retry_at_ms is not None:
            return
        if command.attempt != activity.attempt:
            return
        body = ActivityHeartbeatRecorded(activity.seq, command.attempt, command.details)
        self._append(batch, state, body, now_ms)

    # ------------------------------------------------------------------ timers

    def fire_due(self, now_ms: int) -> Decision:
        """Timers, retry backoffs, start-to-close and schedule-to-close timeouts due at or before
        now_ms."""
        batch = _Batch()
        while self._due and self._due[0][0] <= now_ms:
            _, workflow_id = heapq.heappop(self._due)
            state = self._open.get(workflow_id)
            if state is not None and state.status in (RUNNING, PARKED):
                self._fire_workflow(batch, state, now_ms)
                # A heartbeat may have moved this entry's deadline: re-arm what is next.
                batch.touched.setdefault(workflow_id, state)
        return self._finish(batch, now_ms)

    def _fire_workflow(self, batch: _Batch, state: WorkflowState, now_ms: int) -> None:
        while state.status in (RUNNING, PARKED):
            due: list[tuple[int, int, str]] = [
                (fire_at, seq, "timer")
                for seq, fire_at in state.timers.items()
                if fire_at <= now_ms
            ]
            for activity in state.activities.values():
                activity_due = activity.next_due_ms()
                if activity_due is not None and activity_due <= now_ms:
                    due.append((activity_due, activity.seq, "activity"))
            deadline = state.deadline()
            if deadline is not None and deadline[1] <= now_ms:
                due.append((deadline[1], 0, deadline[0]))
            if not due:
                return
            at, seq, kind = min(due)
            if kind in ("execution", "run"):
                # Like a terminate, by the clock: no code runs, nothing compensates.
                self._drivers.pop(state.workflow_id, None)
                self._append(batch, state, WorkflowTimedOut(kind, at), now_ms)
            elif kind == "timer":
                self._activate(batch, state, TimerFired(seq), now_ms)
            else:
                self._fire_activity(batch, state, state.activities[seq], now_ms)

    def _fire_activity(
        self, batch: _Batch, state: WorkflowState, activity: ActivityState, now_ms: int
    ) -> None:
        self._record_activity_outcome(batch, state, activity, when_due(activity, now_ms), now_ms)

    def _record_activity_outcome(
        self,
        batch: _Batch,
        state: WorkflowState,
        activity: ActivityState,
        body: ActivityFailed | ActivityAttemptFailed | ActivityRetried,
        now_ms: int,
    ) -> None:
        if isinstance(body, ActivityFailed):
            self._activate(batch, state, body, now_ms)  # the workflow's await raises
        else:
            self._append(batch, state, body, now_ms)
            if isinstance(body, ActivityRetried):
                batch.effects.append(task_for(state, activity, now_ms))

    # ------------------------------------------------------------------ parking

    def resume_parked(self, now_ms: int) -> Decision:
        """After a restart with (possibly) new code: retry parked workflows; those still failing
        the same way add no events."""
        batch = _Batch()
        for state in list(self._open.values()):
            if state.status != PARKED:
                continue
            try:
                outcome = replay(self._registry, state.history)
                problem: Exception | None = outcome.error
            except (NonDeterminismError, RegistryError) as err:
                problem = err
            if problem is not None:
                kind, message = _park_reason(problem)
                if (kind, message) != (state.parked_kind, state.parked_message):
                    self._append(batch, state, WorkflowParked(kind, message), now_ms)
                continue
            assert outcome.driver is not None
            self._append(batch, state, WorkflowUnparked(), now_ms)
            self._drivers[state.workflow_id] = outcome.driver
            for command in outcome.new_commands:
                self._record(batch, state, command, now_ms)
            self._settle_cancelled_waits(batch, state, now_ms)
        return self._finish(batch, now_ms)

    # ------------------------------------------------------------------ running code

    def _start_run(
        self,
        batch: _Batch,
        state: WorkflowState,
        definition: WorkflowDefinition,
        input: bytes,
        now_ms: int,
        command_id: str,
        continued_from_run_id: str,
        timeouts: _Timeouts,
    ) -> None:
        workflow_id = state.workflow_id
        run_id = derive_run_id(workflow_id, state.last_seq + 1)
        body = WorkflowStarted(
            workflow_type=definition.name,
            version=definition.version,
            input=input,
            random_seed=derive_random_seed(workflow_id, run_id),
            command_id=command_id,
            continued_from_run_id=continued_from_run_id,
            execution_deadline_ms=timeouts.execution_deadline_ms,
            run_timeout_ms=timeouts.run_timeout_ms,
        )
        driver = Driver(self._registry, definition, workflow_id, run_id, body)
        self._drivers[workflow_id] = driver
        self._activate(batch, state, body, now_ms, run_id=run_id, driver=driver)

    def _activate(
        self,
        batch: _Batch,
        state: WorkflowState,
        body: EventBody,
        now_ms: int,
        *,
        run_id: str | None = None,
        driver: Driver | None = None,
    ) -> None:
        """Record an event that wakes the workflow, then run its code (unless parked)."""
        problem: Exception | None = None
        if driver is None and state.status == RUNNING:
            driver, problem = self._driver_for(state)
        event = self._append(batch, state, body, now_ms, run_id=run_id)
        if state.status != RUNNING:
            return
        if driver is None:
            assert problem is not None
            self._park(batch, state, problem, now_ms)
            return
        sink = LiveSink(state.last_seq + 1)
        try:
            driver.deliver(event, sink)
        except (WorkflowCodeError, NonDeterminismError) as err:
            self._park(batch, state, err, now_ms)
            return
        for command in sink.commands:
            self._record(batch, state, command, now_ms)
        self._settle_cancelled_waits(batch, state, now_ms)

    def _settle_cancelled_waits(self, batch: _Batch, state: WorkflowState, now_ms: int) -> None:
        """An activity cancelled while it waits for its next attempt has nothing running to
        confirm the cancellation: it fails as cancelled at once (after the activation's own
        events, so replay meets it as the next activation)."""
        for activity in list(state.activities.values()):
            if state.status != RUNNING:
                return
            if state.activities.get(activity.seq) is not activity:
                continue  # settled meanwhile, by the code this loop woke
            if activity.cancel_requested and activity.retry_at_ms is not None:
                self._activate(batch, state, cancelled_between_attempts(activity), now_ms)

    def _driver_for(self, state: WorkflowState) -> tuple[Driver | None, Exception | None]:
        driver = self._drivers.get(state.workflow_id)
        if driver is not None:
            return driver, None
        try:
            outcome = replay(self._registry, state.history)
        except (NonDeterminismError, RegistryError) as err:
            return None, err
        if outcome.driver is None:
            return None, outcome.error
        self._drivers[state.workflow_id] = outcome.driver
        return outcome.driver, None

    def _park(self, batch: _Batch, state: WorkflowState, problem: Exception, now_ms: int) -> None:
        self._drivers.pop(state.workflow_id, None)
        kind, message = _park_reason(problem)
        self._append(batch, state, WorkflowParked(kind, message), now_ms)

    def _record(
        self, batch: _Batch, state: WorkflowState, command: CodeCommand, now_ms: int
    ) -> None:
        """Turn one command of the code into its event (and task)."""
        if isinstance(command, ContinueAsNewCommand):
            self._continue_as_new(batch, state, command, now_ms)
            return
        body = recorded_event(command, state.last_seq + 1)
        self._append(batch, state, body, now_ms)
        if isinstance(body, ActivityScheduled):
            batch.effects.append(task_for(state, state.activities[body.activity_seq], now_ms))
        elif isinstance(body, ActivityCancelRequested):
            activity = state.activities[body.activity_seq]
            if activity.retry_at_ms is None:  # an attempt runs: tell its worker
                batch.effects.append(cancellation(state, activity.seq, active=True))

    def _continue_as_new(
        self, batch: _Batch, state: WorkflowState, command: ContinueAsNewCommand, now_ms: int
    ) -> None:
        old_run_id = state.run_id
        new_run_id = derive_run_id(state.workflow_id, state.last_seq + 2)
        self._append(batch, state, WorkflowContinuedAsNew(new_run_id, command.input), now_ms)
        self._drivers.pop(state.workflow_id, None)
        try:
            definition = self._registry.get_workflow(state.workflow_type)
        except RegistryError as err:  # pragma: no cover - the type ran a moment ago
            state.quarantine(str(err))
            return
        self._start_run(
            batch,
            state,
            definition,
            command.input,
            now_ms,
            state.start_command_id,
            old_run_id,
            _Timeouts(state.execution_deadline_ms, state.run_timeout_ms),
        )

    # ------------------------------------------------------------------ events

    def _append(
        self,
        batch: _Batch,
        state: WorkflowState,
        body: EventBody,
        now_ms: int,
        *,
        run_id: str | None = None,
    ) -> Event:
        event = Event(
            workflow_id=state.workflow_id,
            seq=state.last_seq + 1,
            run_id=run_id if run_id is not None else state.run_id,
            recorded_at_ms=now_ms,
            body=body,
        )
        for seq in cancellations_settled_by(state, body):
            batch.effects.append(cancellation(state, seq, active=False))
        if isinstance(body, _STEP_OUTCOMES):
            # Observers learn what the step was from the decision (its events carry the seq).
            activity = state.activities.get(body.activity_seq)
            if activity is not None:
                batch.steps.append(
                    StepView(
                        state.workflow_id,
                        activity.seq,
                        activity.name,
                        activity.compensation,
                        activity.scheduled_at_ms,
                    )
                )
        state.apply(event)
        batch.events.append(event)
        batch.touched[state.workflow_id] = state
        return event

    def _finish(self, batch: _Batch, now_ms: int) -> Decision:
        batch.effects += interactions.replies_after(batch.events, batch.touched, self._waiting)
        for state in batch.touched.values():
            closed = self._settle(state)
            if closed is not None:
                batch.closed.append(closed)
            elif state.is_idle(now_ms):
                # Waiting costs no coroutine: the driver is rebuilt by replaying the run's
                # history when the next command or timer wakes the workflow.
                self._drivers.pop(state.workflow_id, None)
        return batch.decision()

    def _settle(self, state: WorkflowState) -> ClosedWorkflow | None:
        """Retire a closed workflow to the compact index (returning its record), or (re)arm
        its next due time."""
        workflow_id = state.workflow_id
        if state.status in CLOSED_STATUSES:
            self._open.pop(workflow_id, None)
            self._drivers.pop(workflow_id, None)
            closed = self._closed[workflow_id] = ClosedWorkflow(
                workflow_id,
                state.run_id,
                state.status,
                state.start_command_id,
                state.last_seq,
                state.history[-1].recorded_at_ms if state.history else 0,
            )
            return closed
        due = state.next_due_ms()
        if due is not None:
            heapq.heappush(self._due, (due, workflow_id))
        return None


_ARMS_A_DEADLINE = (
    WorkflowStarted,
    ActivityScheduled,
    ActivityAttemptFailed,
    ActivityRetried,
    ActivityHeartbeatRecorded,
    TimerStarted,
    WorkflowUnparked,
)


def _answer(reply: ReplyToCaller) -> Decision:
    return Decision(effects=(reply,))


def _park_reason(problem: Exception) -> tuple[str, str]:
    kind = "nondeterminism" if isinstance(problem, NonDeterminismError) else "workflow_error"
    return kind, str(problem)
