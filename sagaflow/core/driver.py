"""The driver: runs one workflow run's coroutine, one activation (history event) at a time.

Each event that can wake the workflow (started, activity completed or failed, timer fired,
signal received, cancel requested, update accepted) is an activation. `Driver.deliver` resolves
what the event resolves, runs the code until every task is blocked again, and reports the
commands the code issued to a Sink. The live sink turns them into new events; the replay sink
matches them against recorded events (sagaflow.core.replay). The driver never sees Kafka, a
clock or the OS.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeAlias

from sagaflow.core import payload
from sagaflow.core.errors import (
    ActivityCancelledError,
    ActivityError,
    CancelledError,
    ChildWorkflowError,
    ContinueAsNew,
    FailureError,
    NonDeterminismError,
    RegistryError,
    SignalTimeoutError,
    WorkflowCodeError,
)
from sagaflow.core.identity import SplitMix64
from sagaflow.core.messages import (
    ActivityCompleted,
    ActivityFailed,
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    Event,
    ParentClosePolicy,
    RetryPolicy,
    SignalReceived,
    TimerFired,
    UpdateAccepted,
    WorkflowStarted,
)
from sagaflow.core.payload import InputError
from sagaflow.core.registry import (
    DEFAULT_RETRY_POLICY,
    DEFAULT_START_TO_CLOSE,
    ActivityFn,
    ActivityOptions,
    Registry,
    WorkflowDefinition,
)
from sagaflow.core.tasks import Future, Scheduler, Task
from sagaflow.core.workflow import (
    ActivityHandle,
    ChildWorkflowHandle,
    WorkflowContext,
    WorkflowView,
)

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class ScheduleActivityCommand:
    """Code called start_activity / execute_activity (or a saga compensates)."""

    activity_name: str
    task_queue: str
    input: bytes
    retry_policy: RetryPolicy
    start_to_close_ms: int
    schedule_to_close_ms: int
    compensation: bool
    heartbeat_timeout_ms: int = 0


@dataclass(frozen=True)
class RequestCancelActivityCommand:
    """Code called cancel() on the handle of an activity still running."""

    activity_seq: int


@dataclass(frozen=True)
class StartTimerCommand:
    """Code called sleep, or wait_for_signal with a timeout."""

    fire_at_ms: int


@dataclass(frozen=True)
class CancelTimerCommand:
    """A timer is no longer needed (signal arrived first, or the sleeper was cancelled)."""

    timer_seq: int


@dataclass(frozen=True)
class WaitForSignalCommand:
    """Code awaits a signal that is not buffered (after starting its timeout timer, if any)."""

    name: str
    timer_seq: int
    """0 when the wait has no timeout."""
    timeout_at_ms: int


@dataclass(frozen=True)
class StartChildCommand:
    """Code called start_child_workflow / execute_child_workflow."""

    child_workflow_id: str
    """As the code asked; "" derives '<parent id>/child-<seq>' (see `child_id`)."""
    workflow_type: str
    version: int
    input: bytes
    parent_close_policy: ParentClosePolicy


def child_id(command: StartChildCommand, parent_workflow_id: str, seq: int) -> str:
    """The child's workflow id: the one asked for, or one derived from the parent's id and the
    seq of the start (unique across the parent's runs, the same on every replay)."""
    return command.child_workflow_id or f"{parent_workflow_id}/child-{seq}"


@dataclass(frozen=True)
class RecordMarkerCommand:
    """Code called patched(change_id) for the first time in a live run."""

    change_id: str


@dataclass(frozen=True)
class RecordStateCommand:
    """Code called record_state: it entered or left one of its named states."""

    state: str
    state_type: str
    transition: str
    scope: str
    output: bytes
    error: str
    cause: str
    next_state: str


@dataclass(frozen=True)
class CompleteWorkflowCommand:
    result: bytes


@dataclass(frozen=True)
class FailWorkflowCommand:
    error_type: str
    message: str
    details: bytes


@dataclass(frozen=True)
class CancelWorkflowCommand:
    """The code let CancelledError escape: the workflow ends as cancelled."""

    reason: str


@dataclass(frozen=True)
class ContinueAsNewCommand:
    input: bytes


@dataclass(frozen=True)
class CompleteUpdateCommand:
    """An update handler returned (error_type "") or raised a FailureError."""

    update_id: str
    result: bytes
    error_type: str = ""
    message: str = ""


CodeCommand: TypeAlias = (
    ScheduleActivityCommand
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
    | ContinueAsNewCommand
    | CompleteUpdateCommand
)


class Sink(Protocol):
    """Where the driver reports what the code did."""

    def emit(self, command: CodeCommand) -> int:
        """Record (or match) `command`; return the seq of its event."""

    def decide_patch(self, change_id: str) -> bool:
        """Whether patched(change_id) is True at this point of the run."""


class LiveSink:
    """Collects the commands of one live activation; their events get consecutive seqs."""

    def __init__(self, next_seq: int) -> None:
        self.commands: list[CodeCommand] = []
        self._next_seq = next_seq

    def emit(self, command: CodeCommand) -> int:
        self.commands.append(command)
        return self._next_seq + len(self.commands) - 1

    def decide_patch(self, change_id: str) -> bool:
        return True


encode_json = payload.dumps
SIBLING_FAILED = "another branch of the gather failed"
"""The reason of the CancelledError a gather with cancel_siblings throws into the others."""


def to_ms(duration: float | timedelta) -> int:
    if isinstance(duration, timedelta):
        return int(duration / timedelta(milliseconds=1))
    return int(duration * 1000)


@dataclass
class _SignalWait:
    future: Future[Any]
    timer_seq: int | None = None


class QueryMutationError(RuntimeError):
    """A query handler or an update validator tried to act on the workflow."""


class _RefusingSink:
    def emit(self, command: CodeCommand) -> int:
        raise QueryMutationError(
            f"a query handler or update validator tried to act ({type(command).__name__}); "
            "they only read: use an update to change a workflow"
        )

    def decide_patch(self, change_id: str) -> bool:
        raise QueryMutationError("patched() cannot be decided by a query handler or validator")


class ReadOnly:
    """Context manager: while held, the driver refuses every command."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._saved: Sink | None = None

    def __enter__(self) -> None:
        self._saved = self._driver._sink
        self._driver._sink = _RefusingSink()

    def __exit__(self, *exc: object) -> None:
        self._driver._sink = self._saved


# --------------------------------------------------------------------------- the driver


class Driver:
    """The live coroutine of one workflow run, plus what it is waiting for."""

    def __init__(
        self,
        registry: Registry,
        definition: WorkflowDefinition,
        workflow_id: str,
        run_id: str,
        started: WorkflowStarted,
    ) -> None:
        self.registry = registry
        self.definition = definition
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.started = started
        self.finished = False
        self.cancel_requested = False
        self.now_ms = 0
        self.ctx = WorkflowContext(self)
        self._scheduler = Scheduler()
        self._rng = SplitMix64(started.random_seed)
        self._sink: Sink | None = None
        self._root: Task | None = None
        self._activities: dict[int, ActivityHandle[Any]] = {}
        self._children: dict[int, ChildWorkflowHandle[Any]] = {}
        self._timers: dict[int, Callable[[], None]] = {}
        self._signal_buffer: dict[str, deque[bytes]] = {}
        self._signal_waiters: dict[str, deque[_SignalWait]] = {}
        self._patches: dict[str, bool] = {}
        self._updates: list[Task] = []
        self.state: dict[str, Any] = {}
        """ctx.state: what queries read and updates change."""

    # ------------------------------------------------------------------ activations

    def deliver(self, event: Event, sink: Sink) -> None:
        """Apply one activation and run the code until it blocks.

        Raises NonDeterminismError (from a replay sink) or WorkflowCodeError (a bug in the code);
        either way this driver must be dropped.
        """
        if self.finished:
            return
        self._sink = sink
        self.now_ms = event.recorded_at_ms
        try:
            self._resolve(event)
            self._scheduler.run_until_blocked()
            self._check_updates()
            self._finish_if_done()
        finally:
            self._sink = None

    def _resolve(self, event: Event) -> None:
        body = event.body
        if isinstance(body, WorkflowStarted):
            self._root = self._scheduler.spawn(self._run(body.input))
        elif isinstance(body, ActivityCompleted):
            handle = self._activities.pop(body.activity_seq, None)
            if handle is not None:
                try:
                    handle.resolve(payload.decode(body.result, handle.result_type, "result"))
                except InputError as exc:
                    # The activity returned what its own annotation refuses: a bug the
                    # workflow's await reports (the workflow parks until fixed code runs).
                    handle.fail(exc)
        elif isinstance(body, ActivityFailed):
            handle = self._activities.pop(body.activity_seq, None)
            if handle is not None:
                error_cls = ActivityCancelledError if body.reason == "cancelled" else ActivityError
                handle.fail(
                    error_cls(
                        activity_name=handle.activity_name,
                        activity_seq=body.activity_seq,
                        cause_type=body.error_type,
                        message=body.message,
                        reason=body.reason,
                        attempt=body.attempt,
                        details=json.loads(body.details),
                    )
                )
        elif isinstance(body, ChildWorkflowCompleted):
            child = self._children.pop(body.child_seq, None)
            if child is not None:
                child.resolve(json.loads(body.result))
        elif isinstance(body, ChildWorkflowFailed):
            child = self._children.pop(body.child_seq, None)
            if child is not None:
                child.fail(
                    ChildWorkflowError(
                        child_workflow_id=body.child_workflow_id,
                        workflow_type=child.workflow_type,
                        status=body.status,
                        cause_type=body.error_type,
                        message=body.message,
                    )
                )
        elif isinstance(body, TimerFired):
            on_fire = self._timers.pop(body.timer_seq, None)
            if on_fire is not None:
                on_fire()
        elif isinstance(body, SignalReceived):
            self._deliver_signal(body.name, body.payload)
        elif isinstance(body, CancelRequested):
            self.cancel_requested = True
            if self._root is not None:
                self._scheduler.cancel(self._root, CancelledError(body.reason))
        elif isinstance(body, UpdateAccepted):
            self._updates.append(self._scheduler.spawn(self._run_update(body)))

    async def _run_update(self, accepted: UpdateAccepted) -> None:
        """An update handler as a task of the workflow; its end is recorded as UpdateCompleted
        (a FailureError is the update's failure; anything else is a bug and parks the run)."""
        found = self.registry.find_update(self.definition.name, accepted.name)
        if found is None:
            self._emit(
                CompleteUpdateCommand(
                    accepted.update_id,
                    b"null",
                    "UnknownUpdate",
                    f"workflow {self.definition.name!r} has no update {accepted.name!r} any more",
                )
            )
            return
        try:
            value = await found.fn(self.ctx, json.loads(accepted.args))
        except FailureError as err:
            self._emit(CompleteUpdateCommand(accepted.update_id, b"null", err.error_type, str(err)))
            return
        try:
            result = encode_json(value)
        except (TypeError, ValueError) as exc:
            raise WorkflowCodeError(self.workflow_id, exc) from exc
        self._emit(CompleteUpdateCommand(accepted.update_id, result))

    def _check_updates(self) -> None:
        """An update handler that raised a bug parks the workflow, as its main code would."""
        for task in self._updates:
            error = task.result.error
            if error is not None:
                if isinstance(error, WorkflowCodeError | NonDeterminismError):
                    raise error
                raise WorkflowCodeError(self.workflow_id, error) from error
        self._updates = [t for t in self._updates if not t.result.done]

    def view(self, status: str) -> WorkflowView:
        """A copy of the workflow as queries and validators see it (ValueError when ctx.state
        is not JSON-able)."""
        try:
            state = json.loads(encode_json(self.state))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"ctx.state of workflow {self.workflow_id!r} is not JSON-able ({exc}); keep "
                "only JSON values in it"
            ) from exc
        return WorkflowView(
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            workflow_type=self.definition.name,
            version=self.definition.version,
            status=status,
            state=state,
            now=datetime.fromtimestamp(self.now_ms / 1000, tz=UTC),
        )

    def read_only(self) -> ReadOnly:
        """A guard for running a query handler or a validator: any command the code tries to
        issue while it is held raises QueryMutationError instead."""
        return ReadOnly(self)

    async def _run(self, data: bytes) -> Any:
        """The workflow function, given its input as the type its parameter is annotated
        with (the engine checked it fits at start)."""
        argument = payload.decode(data, payload.parameter_type(self.definition.fn))
        return await self.definition.fn(self.ctx, argument)

    def _finish_if_done(self) -> None:
        root = self._root
        if root is None or not root.result.done:
            return
        self.finished = True
        error = root.result.error
        if error is None:
            try:
                result = encode_json(root.result.value)
            except (TypeError, ValueError) as exc:
                raise WorkflowCodeError(self.workflow_id, exc) from exc
            self._emit(CompleteWorkflowCommand(result))
        elif isinstance(error, ContinueAsNew):
            self._emit(ContinueAsNewCommand(encode_json(error.input)))
        elif isinstance(error, CancelledError):
            self._emit(CancelWorkflowCommand(error.reason))
        elif isinstance(error, FailureError):
            try:
                details = encode_json(error.details)
            except (TypeError, ValueError):
                details = encode_json(repr(error.details))
            self._emit(FailWorkflowCommand(error.error_type, str(error), details))
        else:
            raise WorkflowCodeError(self.workflow_id, error) from error

    def _emit(self, command: CodeCommand) -> int:
        if self._sink is None:
            raise RuntimeError(
                "workflow context used outside its workflow run; keep ctx inside the workflow"
            )
        try:
            return self._sink.emit(command)
        except NonDeterminismError as exc:
            self._scheduler.fatal = exc
            raise

    # ------------------------------------------------------------------ used by WorkflowContext

    def random(self) -> float:
        self._refuse_when_read_only("ctx.random()")
        return self._rng.random()

    def uuid4(self) -> str:
        self._refuse_when_read_only("ctx.uuid4()")
        return self._rng.uuid4()

    def _refuse_when_read_only(self, what: str) -> None:
        # Drawing from the run's generator in a query would shift every later draw of the run.
        if isinstance(self._sink, _RefusingSink):
            raise QueryMutationError(
                f"a query handler or update validator called {what}, which would change the "
                "workflow; they only read"
            )

    def start_activity(
        self,
        activity: str | ActivityFn,
        arg: Any,
        options: ActivityOptions | None,
        *,
        compensation: bool = False,
    ) -> ActivityHandle[Any]:
        name = self.registry.activity_name(activity)
        registered = self.registry.find_activity(name)
        base = registered.options if registered is not None else ActivityOptions()
        merged = (options or ActivityOptions()).merged_over(base)
        if merged.task_queue is None:
            raise RegistryError(
                f"activity {name!r} is not registered in this registry and no task_queue was "
                "given; register it or pass ActivityOptions(task_queue=...)"
            )
        command = ScheduleActivityCommand(
            activity_name=name,
            task_queue=merged.task_queue,
            input=encode_json(arg),
            retry_policy=merged.retry_policy or DEFAULT_RETRY_POLICY,
            start_to_close_ms=to_ms(merged.start_to_close_timeout or DEFAULT_START_TO_CLOSE),
            schedule_to_close_ms=to_ms(merged.schedule_to_close_timeout or timedelta(0)),
            compensation=compensation,
            heartbeat_timeout_ms=to_ms(merged.heartbeat_timeout or timedelta(0)),
        )
        seq = self._emit(command)
        handle: ActivityHandle[Any] = ActivityHandle(self._scheduler, seq, name, self)
        # Its result is read as the registered function's return annotation, when this
        # registry has the function (a worker-only activity's result stays plain JSON).
        handle.result_type = payload.return_type(registered.fn) if registered else Any
        self._activities[seq] = handle
        return handle

    def start_child_workflow(
        self,
        workflow_type: str,
        arg: Any,
        child_workflow_id: str,
        version: int,
        policy: ParentClosePolicy,
    ) -> ChildWorkflowHandle[Any]:
        command = StartChildCommand(
            child_workflow_id, workflow_type, version, encode_json(arg), policy
        )
        seq = self._emit(command)
        handle: ChildWorkflowHandle[Any] = ChildWorkflowHandle(
            self._scheduler, seq, child_id(command, self.workflow_id, seq), workflow_type
        )
        self._children[seq] = handle
        return handle

    def cancel_activity(self, handle: ActivityHandle[Any], wait_for_cancellation: bool) -> None:
        """Record the cancellation of a running activity. Waiting, the handle settles when the
        activity reports (ActivityCancelledError, or its result if it finished anyway);
        abandoning, it fails at once and whatever the activity reports later is ignored."""
        if self._activities.get(handle.activity_seq) is not handle:
            return  # already settled, or cancelled and abandoned before
        self._emit(RequestCancelActivityCommand(handle.activity_seq))
        if not wait_for_cancellation:
            del self._activities[handle.activity_seq]
            handle.fail(
                ActivityCancelledError(
                    activity_name=handle.activity_name,
                    activity_seq=handle.activity_seq,
                    cause_type="ActivityCancelled",
                    message="cancelled by the workflow, which did not wait for the activity",
                    reason="cancelled",
                    attempt=0,
                )
            )

    def gather(
        self, awaitables: tuple[Awaitable[Any], ...], *, cancel_siblings: bool = False
    ) -> Future[list[Any]]:
        return self._scheduler.gather(
            awaitables, cancel_siblings=CancelledError(SIBLING_FAILED) if cancel_siblings else None
        )

    def record_state(
        self,
        state: str,
        state_type: str,
        transition: str,
        scope: str,
        output: Any,
        error: str,
        cause: str,
        next_state: str,
    ) -> None:
        try:
            encoded = encode_json(output)
        except (TypeError, ValueError) as exc:
            raise WorkflowCodeError(self.workflow_id, exc) from exc
        self._emit(
            RecordStateCommand(
                state, state_type, transition, scope, encoded, error, cause, next_state
            )
        )

    def sleep(self, duration: float | timedelta) -> Future[None]:
        future: Future[None] = self._scheduler.create_future()
        seq = self._start_timer(to_ms(duration), lambda: future.resolve(None))
        future.on_abandon = lambda: self._cancel_timer(seq)
        return future

    def wait_for_signal(self, name: str, timeout: float | timedelta | None) -> Future[Any]:
        future: Future[Any] = self._scheduler.create_future()
        buffered = self._signal_buffer.get(name)
        if buffered:
            future.resolve(json.loads(buffered.popleft()))
            return future
        wait = _SignalWait(future)
        self._signal_waiters.setdefault(name, deque()).append(wait)
        if timeout is not None:
            timeout_ms = to_ms(timeout)

            def timed_out() -> None:
                self._signal_waiters[name].remove(wait)
                future.fail(SignalTimeoutError(name, timeout_ms))

            wait.timer_seq = self._start_timer(timeout_ms, timed_out)
        timer_seq = wait.timer_seq or 0
        timeout_at = self.now_ms + max(0, to_ms(timeout)) if timeout is not None else 0
        self._emit(WaitForSignalCommand(name, timer_seq, timeout_at))

        def abandon() -> None:
            self._signal_waiters[name].remove(wait)
            if wait.timer_seq is not None:
                self._cancel_timer(wait.timer_seq)

        future.on_abandon = abandon
        return future

    def signal_waits(self) -> list[tuple[str, int | None]]:
        """The signals the code awaits now: (name, seq of its timeout timer or None). Histories
        recorded since event schema v3 hold the same as SignalWaitStarted events; this answers
        for older runs too, by replaying them."""
        return [(name, w.timer_seq) for name, waits in self._signal_waiters.items() for w in waits]

    def patched(self, change_id: str) -> bool:
        decided = self._patches.get(change_id)
        if decided is None:
            if self._sink is None:
                raise RuntimeError("patched() called outside the workflow run")
            decided = self._sink.decide_patch(change_id)
            if decided:
                self._emit(RecordMarkerCommand(change_id))
            self._patches[change_id] = decided
        return decided

    # ------------------------------------------------------------------ timers and signals

    def _start_timer(self, delay_ms: int, on_fire: Callable[[], None]) -> int:
        seq = self._emit(StartTimerCommand(self.now_ms + max(0, delay_ms)))
        self._timers[seq] = on_fire
        return seq

    def _cancel_timer(self, seq: int) -> None:
        if self._timers.pop(seq, None) is not None:
            self._emit(CancelTimerCommand(seq))

    def _deliver_signal(self, name: str, payload: bytes) -> None:
        waiters = self._signal_waiters.get(name)
        if not waiters:
            self._signal_buffer.setdefault(name, deque()).append(payload)
            return
        wait = waiters.popleft()
        if wait.timer_seq is not None:
            self._cancel_timer(wait.timer_seq)
        wait.future.resolve(json.loads(payload))
