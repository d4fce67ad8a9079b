"""Schedules: a built-in workflow that starts another workflow every interval.

A schedule named NAME is the workflow `schedule:NAME` of type `sagaflow.schedule`, so its
state lives in the log like every workflow's: it sleeps on a durable timer (a signal wait with
a timeout) until the next fire time, starts the target workflow as a child with the
ABANDON policy and the id `schedule:NAME/<fire time>`, and applies its overlap policy to the
children it knows are still running:

    skip        a fire time while a child still runs starts nothing (counted as skipped)
    buffer_one  it starts when the running child closes; later ones are skipped
    allow_all   every fire time starts a child

After downtime the timer fires late; every fire time missed within `catchup_window_s` of now
is started then (older ones are counted as missed), each under the overlap policy. The control
signal `schedule.control` with {"action": "pause" | "resume" | "delete"} changes it: pause and
resume continue the schedule as a new run whose input is the new spec (so the read model's
input column shows it paused or not); delete completes it. A continued run no longer tracks the
children started before it for the overlap policy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sagaflow.core.errors import ApplicationError, SignalTimeoutError
from sagaflow.core.messages import ParentClosePolicy
from sagaflow.core.registry import Registry
from sagaflow.core.workflow import ChildWorkflowHandle, WorkflowContext

SCHEDULE_TYPE = "sagaflow.schedule"
CONTROL_SIGNAL = "schedule.control"
ID_PREFIX = "schedule:"
OVERLAP_POLICIES = ("skip", "buffer_one", "allow_all")
ACTIONS = ("pause", "resume", "delete")
FIRES_PER_RUN = 100
"""Fire times after which an idle schedule continues as new, so its history stays short."""


def schedule_id(name: str) -> str:
    return ID_PREFIX + name


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule's definition and the progress it carries from run to run (its input)."""

    name: str
    workflow_type: str
    interval_s: float
    input: Any = None
    overlap: str = "skip"
    catchup_window_s: float = 3600.0
    paused: bool = False
    next_fire_ms: int = 0
    """The next fire time; 0 before the first run chooses it."""
    started: int = 0
    skipped: int = 0
    missed: int = 0
    """Fire times older than the catch-up window when the schedule woke up."""

    @classmethod
    def parse(cls, raw: Any) -> ScheduleSpec:
        """A spec from JSON, or ApplicationError naming the field that is wrong."""
        if not isinstance(raw, dict):
            raise ApplicationError("a schedule's input is an object", type="BadSchedule")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ApplicationError(f"unknown schedule fields {unknown}", type="BadSchedule")
        try:
            spec = cls(**raw)
        except TypeError as exc:
            raise ApplicationError(f"bad schedule: {exc}", type="BadSchedule") from exc
        problem = spec.problem()
        if problem:
            raise ApplicationError(problem, type="BadSchedule")
        return spec

    def problem(self) -> str | None:
        """What is wrong with this spec, or None."""
        if not self.name or not isinstance(self.name, str):
            return "name: a non-empty text"
        if not self.workflow_type or not isinstance(self.workflow_type, str):
            return "workflow_type: a non-empty text"
        if not isinstance(self.interval_s, int | float) or self.interval_s < 1:
            return "interval_s: a number of seconds, at least 1"
        if self.overlap not in OVERLAP_POLICIES:
            return f"overlap: one of {', '.join(OVERLAP_POLICIES)}"
        if not isinstance(self.catchup_window_s, int | float) or self.catchup_window_s < 0:
            return "catchup_window_s: a number of seconds, 0 or more"
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ms(ctx: WorkflowContext) -> int:
    return int(ctx.now().timestamp() * 1000)


def _stamp(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class _Runner:
    """One run of a schedule: the children it started and the one it holds back."""

    def __init__(self, ctx: WorkflowContext, spec: ScheduleSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.running: list[ChildWorkflowHandle[Any]] = []
        self.buffered: int | None = None

    def fire(self, at_ms: int) -> None:
        self.running = [h for h in self.running if not h.done]
        if self.running and self.spec.overlap != "allow_all":
            if self.spec.overlap == "buffer_one" and self.buffered is None:
                self.buffered = at_ms
                self.running[-1].add_callback(lambda _: self._release())
            else:
                self.spec = replace(self.spec, skipped=self.spec.skipped + 1)
            return
        self._start(at_ms)

    def _release(self) -> None:
        # Runs in the activation that closed the running child: the held-back fire starts now.
        if self.buffered is not None:
            at_ms, self.buffered = self.buffered, None
            self._start(at_ms)

    def _start(self, at_ms: int) -> None:
        handle = self.ctx.start_child_workflow(
            self.spec.workflow_type,
            self.spec.input,
            id=f"{self.ctx.workflow_id}/{_stamp(at_ms)}",
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        self.running.append(handle)
        self.spec = replace(self.spec, started=self.spec.started + 1)

    def due(self, now_ms: int) -> None:
        """Start what is due at `now_ms`: every fire time up to now, within the window."""
        interval_ms = int(self.spec.interval_s * 1000)
        oldest = now_ms - int(self.spec.catchup_window_s * 1000)
        at = self.spec.next_fire_ms
        missed = 0
        while at <= now_ms:
            if at < oldest:
                missed += 1
            else:
                self.fire(at)
            at += interval_ms
        self.spec = replace(self.spec, next_fire_ms=at, missed=self.spec.missed + missed)

    @property
    def idle(self) -> bool:
        return self.buffered is None and all(h.done for h in self.running)


async def run_schedule(ctx: WorkflowContext, raw: Any) -> dict[str, Any]:
    """The body of every schedule: wait, fire, obey control signals."""
    spec = ScheduleSpec.parse(raw)
    now = _ms(ctx)
    interval_ms = int(spec.interval_s * 1000)
    if spec.next_fire_ms == 0:
        # Fire times are multiples of the interval since the epoch: the same on every replica
        # and every replay, so a child's id names its fire time.
        spec = replace(spec, next_fire_ms=(now // interval_ms + 1) * interval_ms)
    runner = _Runner(ctx, spec)
    fired_this_run = 0
    while True:
        timeout = None if runner.spec.paused else max(0, runner.spec.next_fire_ms - _ms(ctx))
        try:
            control = await ctx.wait_for_signal(
                CONTROL_SIGNAL, timeout=None if timeout is None else timeout / 1000
            )
        except SignalTimeoutError:
            runner.due(_ms(ctx))
            fired_this_run += 1
            if fired_this_run >= FIRES_PER_RUN and runner.idle:
                ctx.continue_as_new(runner.spec.to_json())
            continue
        action = control.get("action") if isinstance(control, dict) else control
        if action == "delete":
            return {"deleted": True, **runner.spec.to_json()}
        if action in ("pause", "resume"):
            paused = action == "pause"
            if paused != runner.spec.paused:
                spec = replace(runner.spec, paused=paused)
                if not paused:
                    # Fire times that passed while paused are not caught up.
                    spec = replace(spec, next_fire_ms=(_ms(ctx) // interval_ms + 1) * interval_ms)
                ctx.continue_as_new(spec.to_json())
        # Anything else is ignored: a signal cannot be refused, and a typo must not kill it.


def register(registry: Registry) -> None:
    """Make schedules available to the workflows of `registry` (the orchestrator does this for
    its app's registry)."""
    if not registry.has_workflow_type(SCHEDULE_TYPE):
        registry.workflow(name=SCHEDULE_TYPE, version=1)(run_schedule)
