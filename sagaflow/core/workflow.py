"""What workflow code sees: WorkflowContext, activity handles and the Saga helper.

Workflow code must be deterministic: it may only await what the context gives it, and must read
time, randomness and ids from the context. Each await either finds its answer in history
(replay) or becomes a new event (schedule an activity, start a timer, wait for a signal).

    async def checkout(ctx: WorkflowContext, order: dict) -> dict:
        async with ctx.saga() as saga:
            res = await ctx.execute_activity("reserve_inventory", order)
            saga.add_compensation("release_inventory", res)
            ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from sagaflow.core.errors import (
    ActivityError,
    CancelledError,
    CompensationError,
    ContinueAsNew,
    FailureError,
)
from sagaflow.core.messages import ParentClosePolicy
from sagaflow.core.registry import ActivityOptions
from sagaflow.core.tasks import Future, Scheduler

if TYPE_CHECKING:
    from sagaflow.core.driver import Driver
    from sagaflow.core.registry import ActivityFn

T = TypeVar("T")
TRANSITIONS = ("entered", "succeeded", "failed", "cancelled")
"""What `record_state` can record about a state."""


class ActivityHandle(Future[T]):
    """A scheduled activity; await it for its result (raises ActivityError if it failed)."""

    __slots__ = ("_driver", "activity_name", "activity_seq", "result_type")

    def __init__(
        self, scheduler: Scheduler, activity_seq: int, activity_name: str, driver: Driver
    ) -> None:
        super().__init__(scheduler)
        self.activity_seq = activity_seq
        self.activity_name = activity_name
        self.result_type: Any = Any
        """What the result is read as (sagaflow.core.payload.decode)."""
        self._driver = driver

    def cancel(self, *, wait_for_cancellation: bool = True) -> None:
        """Ask the running activity to stop: its ActivityContext's cancel signal fires (an async
        activity is cancelled at its await; a sync one sees `is_cancelled()`).

        With `wait_for_cancellation` (the default), awaiting the handle raises
        ActivityCancelledError once the activity confirmed it stopped (or returns its result if
        it finished first). Without, the handle raises ActivityCancelledError at once and the
        workflow goes on; the activity is still told to stop. No effect on a settled handle."""
        self._driver.cancel_activity(self, wait_for_cancellation)


@dataclass(frozen=True)
class WorkflowView:
    """What a query handler or an update validator sees: a copy of the workflow's state, taken
    when it is asked. Changing it changes nothing; it offers no way to act."""

    workflow_id: str
    run_id: str
    workflow_type: str
    version: int
    status: str
    """'running', 'parked', 'completed', 'failed', 'cancelled', ..."""
    state: Mapping[str, Any]
    """A copy of `ctx.state` as the workflow left it after its last event."""
    now: datetime
    """The recorded time of the workflow's last event."""


class ChildWorkflowHandle(Future[T]):
    """A started child workflow; await it for its result (raises ChildWorkflowError if the
    child failed, was cancelled or terminated, or could not be started)."""

    __slots__ = ("child_seq", "workflow_id", "workflow_type")

    def __init__(
        self, scheduler: Scheduler, child_seq: int, workflow_id: str, workflow_type: str
    ) -> None:
        super().__init__(scheduler)
        self.child_seq = child_seq
        self.workflow_id = workflow_id
        """The child's workflow id (its own history, its own row)."""
        self.workflow_type = workflow_type


class WorkflowContext:
    """The workflow's only door to the world. Everything here is replay-safe."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    # ------------------------------------------------------------------ identity

    @property
    def workflow_id(self) -> str:
        return self._driver.workflow_id

    @property
    def run_id(self) -> str:
        return self._driver.run_id

    @property
    def workflow_type(self) -> str:
        return self._driver.definition.name

    @property
    def version(self) -> int:
        """The version of the workflow type this run started on (and finishes on)."""
        return self._driver.definition.version

    @property
    def state(self) -> dict[str, Any]:
        """What queries read (as a copy) and updates may change: keep it JSON-able. It is
        rebuilt by replay like every other value of the workflow, never stored on its own."""
        return self._driver.state

    @property
    def cancel_requested(self) -> bool:
        """True once a cancellation was delivered (useful after catching CancelledError)."""
        return self._driver.cancel_requested

    # ------------------------------------------------------------------ deterministic values

    def now(self) -> datetime:
        """The recorded time of the event the workflow is reacting to (UTC, tz-aware)."""
        return datetime.fromtimestamp(self._driver.now_ms / 1000, tz=UTC)

    def random(self) -> float:
        """A float in [0, 1) from the run's own seeded generator (same on every replay)."""
        return self._driver.random()

    def uuid4(self) -> str:
        """A version-4 UUID string from the run's own seeded generator."""
        return self._driver.uuid4()

    # ------------------------------------------------------------------ activities

    def start_activity(
        self,
        activity: str | ActivityFn,
        arg: Any = None,
        options: ActivityOptions | None = None,
        *,
        heartbeat_timeout: float | timedelta | None = None,
    ) -> ActivityHandle[Any]:
        """Schedule an activity now; await the handle later (e.g. through gather), or cancel
        it (ActivityHandle.cancel)."""
        return self._driver.start_activity(activity, arg, _with(options, heartbeat_timeout))

    async def execute_activity(
        self,
        activity: str | ActivityFn,
        arg: Any = None,
        options: ActivityOptions | None = None,
        *,
        heartbeat_timeout: float | timedelta | None = None,
    ) -> Any:
        """Run an activity (by registered name or function) and return its result: plain JSON,
        or the type the activity function's return is annotated with (a dataclass, a pydantic
        model...) when this registry has the function.

        Retries follow the options' RetryPolicy; raises ActivityError when it fails for good.
        `heartbeat_timeout` (seconds or a timedelta; also ActivityOptions.heartbeat_timeout):
        an attempt that goes that long without `ActivityContext.heartbeat()` fails with
        HeartbeatTimeout and is retried per the policy.
        """
        return await self._driver.start_activity(activity, arg, _with(options, heartbeat_timeout))

    def gather(
        self, *awaitables: Awaitable[Any], cancel_siblings: bool = False
    ) -> Future[list[Any]]:
        """Await several activities/coroutines together; results in argument order. The first
        failure is raised; the others keep running, unless `cancel_siblings`: then the others
        get CancelledError at their await (their timers are cancelled, their signal waits
        abandoned, their running activities left unobserved), and the first failure is raised
        once all of them have finished."""
        return self._driver.gather(awaitables, cancel_siblings=cancel_siblings)

    def record_state(
        self,
        state: str,
        state_type: str,
        transition: str,
        *,
        scope: str = "",
        output: Any = None,
        error: str = "",
        cause: str = "",
        next_state: str = "",
    ) -> None:
        """Record that the code entered or left one of its named states ('entered',
        'succeeded', 'failed' or 'cancelled'), as an event of its own (StateTransitioned) that
        views show; the record is a decision of the code, so replay checks it is made again."""
        if transition not in TRANSITIONS:
            raise ValueError(f"transition must be one of {TRANSITIONS}, got {transition!r}")
        self._driver.record_state(
            state, state_type, transition, scope, output, error, cause, next_state
        )

    # ------------------------------------------------------------------ child workflows

    def start_child_workflow(
        self,
        workflow_type: str,
        input: Any = None,
        *,
        id: str | None = None,
        version: int | None = None,
        parent_close_policy: ParentClosePolicy = ParentClosePolicy.TERMINATE,
    ) -> ChildWorkflowHandle[Any]:
        """Start another workflow as this one's child; await the handle for its result.

        `id` defaults to '<this workflow id>/child-<seq>' (deterministic). `version` None starts
        the newest registered version. When this run closes while the child still runs, the
        policy decides: TERMINATE stops it, REQUEST_CANCEL cancels it, ABANDON leaves it be.
        """
        return self._driver.start_child_workflow(
            workflow_type, input, id or "", version or 0, ParentClosePolicy(parent_close_policy)
        )

    async def execute_child_workflow(
        self,
        workflow_type: str,
        input: Any = None,
        *,
        id: str | None = None,
        version: int | None = None,
        parent_close_policy: ParentClosePolicy = ParentClosePolicy.TERMINATE,
    ) -> Any:
        """Start a child workflow and return its result (raises ChildWorkflowError)."""
        return await self.start_child_workflow(
            workflow_type,
            input,
            id=id,
            version=version,
            parent_close_policy=parent_close_policy,
        )

    # ------------------------------------------------------------------ time and signals

    def sleep(self, duration: float | timedelta) -> Future[None]:
        """A durable timer: seconds (float) or a timedelta. Survives restarts."""
        return self._driver.sleep(duration)

    def wait_for_signal(self, name: str, timeout: float | timedelta | None = None) -> Future[Any]:
        """The payload of the next signal `name` (signals that arrived earlier are buffered).

        With a timeout, raises SignalTimeoutError if none arrives in time.
        """
        return self._driver.wait_for_signal(name, timeout)

    # ------------------------------------------------------------------ versioning and runs

    def patched(self, change_id: str) -> bool:
        """True on runs that reached this point with the change deployed; False on runs that
        passed it with older code. The answer is recorded, so replay takes the same branch."""
        return self._driver.patched(change_id)

    def continue_as_new(self, input: Any) -> NoReturn:
        """End this run and start a fresh one (same workflow id, empty history) with `input`."""
        raise ContinueAsNew(input)

    def saga(self) -> Saga:
        """A new saga: register a compensation after each step that succeeded."""
        return Saga(self)


def _with(
    options: ActivityOptions | None, heartbeat_timeout: float | timedelta | None
) -> ActivityOptions | None:
    if heartbeat_timeout is None:
        return options
    if not isinstance(heartbeat_timeout, timedelta):
        heartbeat_timeout = timedelta(seconds=heartbeat_timeout)
    return replace(options or ActivityOptions(), heartbeat_timeout=heartbeat_timeout)


@dataclass(frozen=True)
class _Compensation:
    activity: str | ActivityFn
    arg: Any
    options: ActivityOptions | None


class Saga:
    """Compensations for the steps done so far, run in reverse order on failure.

    As an async context manager it compensates when the block raises a FailureError
    (ApplicationError, ActivityError, SignalTimeoutError) or CancelledError, then re-raises.
    Bugs (any other exception) do not compensate: the workflow parks until fixed code arrives.
    """

    def __init__(self, ctx: WorkflowContext) -> None:
        self._ctx = ctx
        self._compensations: list[_Compensation] = []

    def add_compensation(
        self,
        activity: str | ActivityFn,
        arg: Any = None,
        options: ActivityOptions | None = None,
    ) -> None:
        """Undo the step that just succeeded by running this activity, if the saga fails."""
        self._compensations.append(_Compensation(activity, arg, options))

    @property
    def pending(self) -> int:
        """How many compensations would run."""
        return len(self._compensations)

    async def compensate(self) -> None:
        """Run every registered compensation, newest first, each a retried activity.

        A compensation that fails for good does not stop the others; CompensationError lists
        them at the end.
        """
        failures: list[dict[str, Any]] = []
        while self._compensations:
            step = self._compensations.pop()
            handle = self._ctx._driver.start_activity(
                step.activity, step.arg, step.options, compensation=True
            )
            try:
                await handle
            except ActivityError as err:
                failures.append({"activity": err.activity_name, "error": str(err)})
        if failures:
            raise CompensationError(
                f"{len(failures)} compensation(s) failed for good; repair by hand: {failures}",
                type="CompensationFailed",
                details=failures,
            )

    async def __aenter__(self) -> Saga:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if isinstance(exc, FailureError | CancelledError):
            await self.compensate()
        return False
