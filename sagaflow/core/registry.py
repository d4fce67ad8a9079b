"""The Registry: the user's workflows (by type and version), activities and resources.

Users create one Registry object (no global) and decorate their functions with it:

    registry = Registry()

    @registry.workflow(name="checkout", version=1)
    async def checkout(ctx: WorkflowContext, order: dict) -> dict: ...

    @registry.activity(name="charge_payment", task_queue="payments")
    async def charge_payment(ctx: ActivityContext, req: dict) -> dict: ...

    @registry.resource("shop")
    def shop(config: Any) -> AbstractAsyncContextManager[Shop]: ...

Queries and updates are declared for a workflow type (every version of it) and read or change
what the workflow keeps in `ctx.state`:

    @registry.query(workflow="cart", name="items")
    def items(view: WorkflowView, args: None) -> list: return view.state["items"]

    @registry.update(workflow="cart", name="add", validator=check_item)
    async def add(ctx: WorkflowContext, item: dict) -> int: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sagaflow.core import payload
from sagaflow.core.errors import ActivityCancelled, ApplicationError, RegistryError
from sagaflow.core.messages import RetryPolicy

if TYPE_CHECKING:
    from sagaflow.core.workflow import WorkflowContext, WorkflowView

WorkflowFn = Callable[["WorkflowContext", Any], Coroutine[Any, Any, Any]]
ActivityFn = Callable[["ActivityContext", Any], Any]
"""A sync function or an `async def`; takes (ctx, arg) and returns a JSON-able value."""
ResourceFactory = Callable[[Any], AbstractAsyncContextManager[Any]]
"""Takes the sagaflow Config; the worker enters it at start and exits it at shutdown."""

QueryFn = Callable[["WorkflowView", Any], Any]
"""A plain (not async) function reading the workflow: (view, args) -> JSON-able answer."""
ValidatorFn = Callable[["WorkflowView", Any], None]
"""Raises (any exception) to reject an update before anything is recorded."""
UpdateFn = Callable[["WorkflowContext", Any], Coroutine[Any, Any, Any]]
"""Workflow code: `async def (ctx, args)`, may change ctx.state and await activities."""

W = TypeVar("W", bound=WorkflowFn)
Q = TypeVar("Q", bound=QueryFn)
U = TypeVar("U", bound=UpdateFn)
A = TypeVar("A", bound=ActivityFn)
R = TypeVar("R", bound=ResourceFactory)

DEFAULT_RETRY_POLICY = RetryPolicy()
DEFAULT_START_TO_CLOSE = timedelta(minutes=5)


@dataclass(frozen=True)
class ActivityOptions:
    """How to run one activity. Unset fields fall back to the activity's registered options,
    then to the defaults (retry forever with backoff, 5 minute start-to-close)."""

    task_queue: str | None = None
    """Queue the task is produced to (tasks.<queue>); defaults to the registered queue."""
    retry_policy: RetryPolicy | None = None
    """Initial interval, backoff coefficient, max interval, max attempts, non-retryable types."""
    start_to_close_timeout: timedelta | None = None
    """Deadline of one attempt; an attempt that overruns is failed and retried."""
    schedule_to_close_timeout: timedelta | None = None
    """Deadline over all attempts; past it the activity fails for good."""
    heartbeat_timeout: timedelta | None = None
    """An attempt that goes this long without ActivityContext.heartbeat() fails with
    HeartbeatTimeout and is retried per the policy; unset = no heartbeat deadline."""

    def merged_over(self, base: ActivityOptions) -> ActivityOptions:
        """These options, with unset fields taken from `base`."""
        return ActivityOptions(
            task_queue=self.task_queue or base.task_queue,
            retry_policy=self.retry_policy or base.retry_policy,
            start_to_close_timeout=self.start_to_close_timeout or base.start_to_close_timeout,
            schedule_to_close_timeout=(
                self.schedule_to_close_timeout or base.schedule_to_close_timeout
            ),
            heartbeat_timeout=self.heartbeat_timeout or base.heartbeat_timeout,
        )


class ActivityControl(Protocol):
    """How a running attempt talks back to whoever runs it (the worker, the test kit)."""

    def heartbeat(self, details: Any) -> None:
        """Report progress (thread-safe; throttled by the runner)."""

    def is_cancelled(self) -> bool:
        """Whether the workflow cancelled this step."""


class _Unattended:
    """Nobody listens: heartbeats go nowhere and nothing cancels."""

    def heartbeat(self, details: Any) -> None:
        pass

    def is_cancelled(self) -> bool:
        return False


@dataclass(frozen=True)
class ActivityContext:
    """What an activity attempt knows about itself. Pass `idempotency_key` to the outside world
    (e.g. a payment provider) so a repeated attempt cannot repeat the effect.

    A long activity calls `heartbeat(details)` as it makes progress: with a heartbeat timeout
    that keeps the attempt alive, and a retry finds the last details in `heartbeat_details`
    so it can resume there. When the workflow cancels the step, `is_cancelled()` turns true
    (an async activity is also cancelled at its current await); `raise_if_cancelled()` stops
    a sync one."""

    workflow_id: str
    run_id: str
    activity_seq: int
    attempt: int
    activity_name: str
    idempotency_key: str
    """'{workflow_id}/{activity_seq}': the logical step, the same for every attempt."""
    resources: Mapping[str, Any] = field(default_factory=dict)
    """Opened resources by name (see Registry.resource)."""
    heartbeat_details: Any = None
    """What an earlier attempt of this step last heartbeated (None if nothing)."""
    control: ActivityControl = field(default_factory=_Unattended, repr=False)

    def heartbeat(self, details: Any = None) -> None:
        """Report progress; `details` (JSON-able) reach the next attempt if this one fails."""
        self.control.heartbeat(details)

    def is_cancelled(self) -> bool:
        """True once the workflow cancelled this step: stop, and undo what must be undone."""
        return self.control.is_cancelled()

    def raise_if_cancelled(self) -> None:
        """Raise ActivityCancelled if the workflow cancelled this step (the attempt is then
        reported as cancelled, never retried)."""
        if self.control.is_cancelled():
            raise ActivityCancelled(self.idempotency_key)


@dataclass(frozen=True)
class WorkflowDefinition:
    """One version of a workflow type."""

    name: str
    version: int
    fn: WorkflowFn

    def check_input(self, data: bytes) -> None:
        """InputError naming the field unless the start input fits the annotation of the
        function's input parameter (a dataclass, pydantic model, TypedDict...; see
        sagaflow.core.payload). Unannotated, any JSON fits."""
        payload.decode(data, payload.parameter_type(self.fn), "input")


@dataclass(frozen=True)
class ActivityDefinition:
    """A registered activity and its default options."""

    name: str
    task_queue: str
    fn: ActivityFn
    options: ActivityOptions

    def read_input(self, data: bytes) -> Any:
        """A task's argument as the type the function's parameter is annotated with (plain JSON
        if unannotated). One that does not fit fails the activity for good: no retry of the
        same argument can make it fit (ApplicationError 'InvalidActivityInput')."""
        try:
            return payload.decode(data, payload.parameter_type(self.fn), "arg")
        except payload.InputError as exc:
            raise ApplicationError(
                f"activity {self.name!r}: {exc}; the workflow must pass an argument of the "
                "activity's parameter type",
                type="InvalidActivityInput",
                non_retryable=True,
            ) from exc


@dataclass(frozen=True)
class QueryDefinition:
    """A query handler of a workflow type."""

    workflow: str
    name: str
    fn: QueryFn


@dataclass(frozen=True)
class UpdateDefinition:
    """An update handler of a workflow type, with its optional validator."""

    workflow: str
    name: str
    fn: UpdateFn
    validator: ValidatorFn | None


class Registry:
    """The user's workflows, activities and resources. Create one per application."""

    def __init__(self) -> None:
        self._queries: dict[tuple[str, str], QueryDefinition] = {}
        self._updates: dict[tuple[str, str], UpdateDefinition] = {}
        self._workflows: dict[str, dict[int, WorkflowDefinition]] = {}
        self._activities: dict[str, ActivityDefinition] = {}
        self._activity_names: dict[int, str] = {}
        self._resources: dict[str, ResourceFactory] = {}

    # ------------------------------------------------------------------ registration

    def workflow(self, *, name: str, version: int = 1) -> Callable[[W], W]:
        """Register an `async def wf(ctx, input)` as version `version` of type `name`.

        New starts take the newest version; a running workflow finishes on its own version.
        """

        def register(fn: W) -> W:
            if not inspect.iscoroutinefunction(fn):
                raise RegistryError(f"workflow {name!r} must be an `async def` function")
            versions = self._workflows.setdefault(name, {})
            if version in versions:
                raise RegistryError(
                    f"workflow {name!r} version {version} is registered twice; "
                    "give the new code a new version number"
                )
            if version < 1:
                raise RegistryError(f"workflow {name!r}: version must be >= 1, got {version}")
            versions[version] = WorkflowDefinition(name, version, fn)
            return fn

        return register

    def activity(
        self,
        *,
        name: str,
        task_queue: str,
        retry_policy: RetryPolicy | None = None,
        start_to_close_timeout: timedelta | None = None,
        schedule_to_close_timeout: timedelta | None = None,
        heartbeat_timeout: timedelta | None = None,
    ) -> Callable[[A], A]:
        """Register a sync or async `fn(ctx: ActivityContext, arg)` run on `task_queue`."""

        def register(fn: A) -> A:
            if name in self._activities:
                raise RegistryError(f"activity {name!r} is registered twice; rename one")
            options = ActivityOptions(
                task_queue=task_queue,
                retry_policy=retry_policy,
                start_to_close_timeout=start_to_close_timeout,
                schedule_to_close_timeout=schedule_to_close_timeout,
                heartbeat_timeout=heartbeat_timeout,
            )
            self._activities[name] = ActivityDefinition(name, task_queue, fn, options)
            self._activity_names[id(fn)] = name
            return fn

        return register

    def query(self, *, workflow: str, name: str) -> Callable[[Q], Q]:
        """Register `fn(view: WorkflowView, args) -> answer` as query `name` of every version of
        workflow type `workflow`. It reads a copy of the workflow's `ctx.state` and can change
        nothing: no events, no commands."""

        def register(fn: Q) -> Q:
            if inspect.iscoroutinefunction(fn):
                raise RegistryError(
                    f"query {name!r} of workflow {workflow!r} must be a plain function, not "
                    "`async def`: a query answers from state at once and awaits nothing"
                )
            if (workflow, name) in self._queries:
                raise RegistryError(f"query {name!r} of workflow {workflow!r} is registered twice")
            self._queries[workflow, name] = QueryDefinition(workflow, name, fn)
            return fn

        return register

    def update(
        self, *, workflow: str, name: str, validator: ValidatorFn | None = None
    ) -> Callable[[U], U]:
        """Register `async def fn(ctx, args) -> result` as update `name` of workflow type
        `workflow`. `validator(view, args)` runs first and raises to reject the update, in
        which case nothing is recorded."""

        def register(fn: U) -> U:
            if not inspect.iscoroutinefunction(fn):
                raise RegistryError(
                    f"update {name!r} of workflow {workflow!r} must be an `async def` function "
                    "(it runs as workflow code)"
                )
            if validator is not None and inspect.iscoroutinefunction(validator):
                raise RegistryError(
                    f"the validator of update {name!r} must be a plain function, not `async def`"
                )
            if (workflow, name) in self._updates:
                raise RegistryError(f"update {name!r} of workflow {workflow!r} is registered twice")
            self._updates[workflow, name] = UpdateDefinition(workflow, name, fn, validator)
            return fn

        return register

    def resource(self, name: str) -> Callable[[R], R]:
        """Register a factory `(config) -> async context manager` opened by the worker."""

        def register(factory: R) -> R:
            if name in self._resources:
                raise RegistryError(f"resource {name!r} is registered twice")
            self._resources[name] = factory
            return factory

        return register

    # ------------------------------------------------------------------ lookup

    def get_workflow(self, name: str, version: int | None = None) -> WorkflowDefinition:
        """The definition for (name, version); the newest version when `version` is None."""
        versions = self._workflows.get(name)
        if not versions:
            raise RegistryError(
                f"unknown workflow type {name!r}; registered: {sorted(self._workflows)}"
            )
        if version is None:
            return versions[max(versions)]
        found = versions.get(version)
        if found is None:
            raise RegistryError(
                f"workflow {name!r} has no version {version}; registered versions: "
                f"{sorted(versions)}. Keep old versions registered until their workflows finish."
            )
        return found

    def has_workflow_type(self, name: str) -> bool:
        return name in self._workflows

    def get_activity(self, name: str) -> ActivityDefinition:
        found = self._activities.get(name)
        if found is None:
            raise RegistryError(
                f"unknown activity {name!r}; registered: {sorted(self._activities)}"
            )
        return found

    def find_activity(self, name: str) -> ActivityDefinition | None:
        return self._activities.get(name)

    def find_query(self, workflow: str, name: str) -> QueryDefinition | None:
        return self._queries.get((workflow, name))

    def find_update(self, workflow: str, name: str) -> UpdateDefinition | None:
        return self._updates.get((workflow, name))

    def query_names(self, workflow: str) -> list[str]:
        return sorted(n for w, n in self._queries if w == workflow)

    def update_names(self, workflow: str) -> list[str]:
        return sorted(n for w, n in self._updates if w == workflow)

    def activity_name(self, name_or_fn: str | ActivityFn) -> str:
        """The registered name of an activity given by name or by its function."""
        if isinstance(name_or_fn, str):
            return name_or_fn
        found = self._activity_names.get(id(name_or_fn))
        if found is None:
            raise RegistryError(
                f"{getattr(name_or_fn, '__qualname__', name_or_fn)!r} is not a registered "
                "activity; decorate it with @registry.activity(name=..., task_queue=...)"
            )
        return found

    @property
    def workflows(self) -> Mapping[str, Mapping[int, WorkflowDefinition]]:
        return self._workflows

    @property
    def activities(self) -> Mapping[str, ActivityDefinition]:
        return self._activities

    @property
    def resources(self) -> Mapping[str, ResourceFactory]:
        return self._resources

    def task_queues(self) -> frozenset[str]:
        """Every queue some registered activity runs on (what a worker subscribes to)."""
        return frozenset(a.task_queue for a in self._activities.values())
