"""The test kit: run workflows in-process against the real Engine, on virtual time.

    env = WorkflowEnvironment(registry, resources={"shop": InMemoryShop()})
    env.start("checkout", order, workflow_id="order-1")
    env.run()                              # activities run; time jumps when nothing else moves
    assert env.status("order-1") == "completed"
    assert env.result("order-1")["status"] == "completed"

Activities are the registered functions (sync or async) unless `stubs` replaces them by name.
`run()` executes queued activity tasks, and when nothing else can move jumps the clock to the
next timer, backoff or timeout; `run(advance_time=False)` stops instead (e.g. to send a signal
while the workflow waits). Every event is kept in `env.events` across runs and after close.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import inspect
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, assert_never

from sagaflow.core import messages as m
from sagaflow.core import payload
from sagaflow.core.engine import Engine
from sagaflow.core.errors import ApplicationError, activity_failure
from sagaflow.core.registry import ActivityContext, ActivityFn, Registry

DEFAULT_START_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: virtual time starts here unless told otherwise."""


encode = payload.dumps
"""A payload as the engine records it (sagaflow.core.payload)."""


class WorkflowEnvironment:
    """An Engine, a clock you control, and an in-process activity runner."""

    def __init__(
        self,
        registry: Registry,
        *,
        resources: Mapping[str, Any] | None = None,
        stubs: Mapping[str, ActivityFn] | None = None,
        start_ms: int = DEFAULT_START_MS,
        max_payload_bytes: int = 262_144,
    ) -> None:
        self.registry = registry
        self.engine = Engine(registry, max_payload_bytes=max_payload_bytes)
        self.resources: Mapping[str, Any] = dict(resources or {})
        self.stubs: dict[str, ActivityFn] = dict(stubs or {})
        self.now_ms = start_ms
        self.events: list[m.Event] = []
        self.rejections: list[m.CommandRejected] = []
        self.tasks: deque[m.ActivityTask] = deque()
        self.sent: deque[m.WorkflowCommand] = deque()
        """Commands workflows sent each other, delivered by `run()` in order."""
        self.replies: list[m.ReplyToCaller] = []
        """Replies to waiting callers, in order."""
        self.executed: list[m.ActivityTask] = []
        """Every task the kit ran, in order (attempts included)."""
        self.cancelled: set[str] = set()
        """Idempotency keys of steps their workflow cancelled, still open (what a worker's
        activity-cancels reader would hold)."""
        self._loop = asyncio.new_event_loop()
        self._commands = 0

    def close(self) -> None:
        self._loop.close()

    def __enter__(self) -> WorkflowEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ inputs

    def send(self, command: m.Command) -> m.Decision:
        """Hand one command to the engine at the current virtual time."""
        return self._take(self.engine.handle(command, self.now_ms))

    def _command_id(self) -> str:
        self._commands += 1
        return f"test-{self._commands}"

    def start(
        self,
        workflow_type: str,
        input: Any,
        *,
        workflow_id: str,
        version: int | None = None,
    ) -> m.Decision:
        return self.send(
            m.StartWorkflow(workflow_id, workflow_type, encode(input), version, self._command_id())
        )

    def signal(self, workflow_id: str, name: str, payload: Any = None) -> m.Decision:
        return self.send(m.SignalWorkflow(workflow_id, name, encode(payload), self._command_id()))

    def cancel(self, workflow_id: str, reason: str = "") -> m.Decision:
        return self.send(m.CancelWorkflow(workflow_id, reason, self._command_id()))

    def advance(self, seconds: float) -> m.Decision:
        """Move the clock forward, firing everything due on the way (in order)."""
        target = self.now_ms + int(seconds * 1000)
        decision = m.Decision()
        while (due := self.engine.next_due_ms()) is not None and due <= target:
            self.now_ms = max(self.now_ms, due)
            decision += self._take(self.engine.fire_due(self.now_ms))
        self.now_ms = target
        return decision + self._take(self.engine.fire_due(self.now_ms))

    def _take(self, decision: m.Decision) -> m.Decision:
        for event in decision.events:
            if isinstance(event.body, m.CommandRejected):
                self.rejections.append(event.body)
            else:
                self.events.append(event)
        for effect in decision.effects:
            match effect:
                case m.ActivityTask():
                    self.tasks.append(effect)
                case m.CommandToWorkflow():
                    self.sent.append(effect.command)
                case m.ReplyToCaller():
                    self.replies.append(effect)
                case m.ActivityCancellation():
                    if effect.active:
                        self.cancelled.add(effect.idempotency_key)
                    else:
                        self.cancelled.discard(effect.idempotency_key)
                case _:
                    assert_never(effect)
        return decision

    # ------------------------------------------------------------------ running

    def run(self, *, advance_time: bool = True, max_steps: int = 10_000) -> None:
        """Run activity tasks until none is left; then, if `advance_time`, jump the clock to the
        next due time and go on, until nothing is due and no task is queued."""
        for _ in range(max_steps):
            if self.sent:
                self.send(self.sent.popleft())
                continue
            if self.tasks:
                self.run_task(self.tasks.popleft())
                continue
            due = self.engine.next_due_ms() if advance_time else None
            if due is None:
                return
            self.now_ms = max(self.now_ms, due)
            self._take(self.engine.fire_due(self.now_ms))
        raise RuntimeError(f"still moving after {max_steps} steps; is a workflow looping?")

    def run_task(self, task: m.ActivityTask) -> m.Decision:
        """Run one activity attempt in-process and report its outcome to the engine."""
        self.executed.append(task)
        stub = self.stubs.get(task.activity_name)
        definition = self.registry.get_activity(task.activity_name) if stub is None else None
        ctx = ActivityContext(
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            activity_seq=task.activity_seq,
            attempt=task.attempt,
            activity_name=task.activity_name,
            idempotency_key=task.idempotency_key,
            resources=self.resources,
            heartbeat_details=json.loads(task.heartbeat_details),
            control=_KitControl(self, task),
        )
        try:
            if definition is not None:
                outcome = definition.fn(ctx, definition.read_input(task.input))
            else:
                assert stub is not None
                outcome = stub(ctx, payload.loads(task.input))
            if inspect.isawaitable(outcome):
                outcome = self._loop.run_until_complete(_awaited(outcome))
        except Exception as err:  # noqa: BLE001 - reported as the worker reports it
            failure = activity_failure(err)
            return self.send(
                m.FailActivity(
                    task.workflow_id,
                    task.run_id,
                    task.activity_seq,
                    task.attempt,
                    failure.error_type,
                    failure.message,
                    retryable=failure.retryable,
                    details=failure.details,
                )
            )
        return self.send(
            m.CompleteActivity(
                task.workflow_id, task.run_id, task.activity_seq, task.attempt, encode(outcome)
            )
        )

    # ------------------------------------------------------------------ inspecting

    def status(self, workflow_id: str) -> str | None:
        return self.engine.status(workflow_id)

    def history(self, workflow_id: str) -> list[m.Event]:
        """Every event of the workflow id, all runs, including after it closed."""
        return [e for e in self.events if e.workflow_id == workflow_id]

    def result(self, workflow_id: str) -> Any:
        """The result of the workflow's last run; raises if it did not complete."""
        for event in reversed(self.history(workflow_id)):
            if isinstance(event.body, m.WorkflowCompleted):
                return json.loads(event.body.result)
            if isinstance(event.body, (*m.CLOSING_EVENTS, m.WorkflowParked)):
                break
        raise AssertionError(
            f"workflow {workflow_id!r} did not complete: {self.status(workflow_id)}"
        )

    def failure(self, workflow_id: str) -> m.WorkflowFailed:
        for event in reversed(self.history(workflow_id)):
            if isinstance(event.body, m.WorkflowFailed):
                return event.body
        raise AssertionError(f"workflow {workflow_id!r} did not fail: {self.status(workflow_id)}")

    def scheduled(self, workflow_id: str, *, compensation: bool | None = None) -> list[str]:
        """Names of the activities the workflow scheduled, in order."""
        return [
            e.body.activity_name
            for e in self.history(workflow_id)
            if isinstance(e.body, m.ActivityScheduled)
            and (compensation is None or e.body.compensation == compensation)
        ]


class _KitControl:
    """Heartbeats go straight to the engine at the current virtual time (no throttling)."""

    def __init__(self, env: WorkflowEnvironment, task: m.ActivityTask) -> None:
        self._env = env
        self._task = task

    def heartbeat(self, details: Any) -> None:
        t = self._task
        self._env.send(
            m.HeartbeatActivity(t.workflow_id, t.run_id, t.activity_seq, t.attempt, encode(details))
        )

    def is_cancelled(self) -> bool:
        return self._task.idempotency_key in self._env.cancelled


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


# --------------------------------------------------------------------------- histories as JSON


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = _to_jsonable(getattr(value, f.name))
        return out
    if isinstance(value, bytes):
        try:
            return {"json": json.loads(value)}
        except ValueError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return [_to_jsonable(v) for v in value]
    return value


_BODY_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        *m.EventBody.__args__,
        m.RetryPolicy,
    )
}


def _from_jsonable(cls: type, data: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, dict) and "json" in value and len(value) == 1:
            value = encode(value["json"])
        elif isinstance(value, dict) and "base64" in value and len(value) == 1:
            value = base64.b64decode(value["base64"])
        elif isinstance(value, dict) and "type" in value:
            value = _from_jsonable(_BODY_TYPES[value["type"]], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def history_to_json(events: Iterable[m.Event]) -> str:
    """Events as readable JSON (payloads inline as JSON), for tests/histories/*.json."""
    return json.dumps([_to_jsonable(e) for e in events], indent=1) + "\n"


def history_from_json(text: str) -> list[m.Event]:
    return [
        m.Event(
            workflow_id=item["workflow_id"],
            seq=item["seq"],
            run_id=item["run_id"],
            recorded_at_ms=item["recorded_at_ms"],
            body=_from_jsonable(_BODY_TYPES[item["body"]["type"]], item["body"]),
        )
        for item in json.loads(text)
    ]


def stub(result: Any = None, *, error: ApplicationError | None = None) -> Callable[..., Any]:
    """An activity stub returning `result` (or raising `error`)."""

    def run(ctx: ActivityContext, arg: Any) -> Any:
        if error is not None:
            raise error
        return result

    return run
