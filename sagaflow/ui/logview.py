"""A workflow's events as the log has them, for the workflow page.

The read model says where each event sits (partition, offset), so the page reads just that range
of the events topic instead of scanning the partition. From the records it takes the timeline
(with the CLI's descriptions) and the trace id (the first event's traceparent).

The signals the workflow waits for now come from the read model, which projects the engine's
recorded signal waits. Runs recorded before the engine recorded them have none, so for those
only the code knows: the current run is replayed with the registered code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sagaflow import codec
from sagaflow.cli.commands import trace_id_of, traceparent_of
from sagaflow.cli.kafkaio import headers_of, open_reader, position, read_partitions
from sagaflow.cli.output import CliError, describe
from sagaflow.config import Config
from sagaflow.core.errors import NonDeterminismError, RegistryError
from sagaflow.core.messages import (
    ActivityAttemptFailed,
    ActivityCompleted,
    ActivityFailed,
    ActivityRetried,
    ActivityScheduled,
    Event,
    SignalReceived,
    SignalWaitStarted,
    TimerCancelled,
    TimerFired,
    TimerStarted,
    UpdateAccepted,
    UpdateCompleted,
    WorkflowStarted,
)
from sagaflow.core.registry import Registry
from sagaflow.core.replay import replay


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    run_id: str
    type: str
    recorded_at_ms: int
    step: str
    attempt: int | None
    description: str
    partition: int
    offset: int


@dataclass(frozen=True)
class SignalWait:
    name: str
    timeout_timer_seq: int | None
    due_ms: int | None


@dataclass
class LogView:
    events: list[Event] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    trace_id: str | None = None
    signal_waits: list[SignalWait] = field(default_factory=list)
    signal_waits_known: bool = False
    signal_waits_source: str = ""
    """"read model" or "replayed" (a run recorded before signal waits were events)."""
    problem: str | None = None
    """Why part of the view is missing (the broker, the code), for the page to say."""


def _step_of(event: Event) -> tuple[str, int | None]:
    b = event.body
    if isinstance(b, ActivityScheduled):
        return f"activity {b.activity_seq}", 1
    if isinstance(b, ActivityAttemptFailed | ActivityRetried | ActivityCompleted | ActivityFailed):
        return f"activity {b.activity_seq}", b.attempt
    if isinstance(b, TimerStarted | TimerFired | TimerCancelled):
        return f"timer {b.timer_seq}", None
    return "", None


def read_workflow_log(
    config: Config,
    workflow_id: str,
    partition: int,
    first_offset: int,
    last_offset: int,
    registry: Registry | None,
    *,
    running: bool,
    recorded_waits: list[dict[str, Any]] | None = None,
    timeout_s: float = 10.0,
) -> LogView:
    """Blocking (call it in a thread): the events of `workflow_id` between two offsets.
    `recorded_waits` is the read model's signal_waits of the workflow (None: it has none)."""
    view = LogView()
    consumer = open_reader(config)
    try:
        for msg in read_partitions(
            config,
            consumer,
            config.topics.events,
            {partition: first_offset},
            timeout_s=timeout_s,
            stop=lambda m: position(m)[1] >= last_offset,
        ):
            if msg.key() != workflow_id.encode():
                continue
            try:
                event = codec.decode_event(msg.value() or b"")
            except codec.DecodeError:
                continue  # the orchestrator quarantined it; the timeline shows what decodes
            if event.workflow_id != workflow_id or event.seq <= 0:
                continue
            if view.trace_id is None:
                parent = traceparent_of(headers_of(msg))
                view.trace_id = trace_id_of(parent) if parent else None
            view.events.append(event)
            step, attempt = _step_of(event)
            view.timeline.append(
                TimelineEntry(
                    event.seq,
                    event.run_id,
                    type(event.body).__name__,
                    event.recorded_at_ms,
                    step,
                    attempt,
                    describe(event),
                    *position(msg),
                )
            )
    except CliError as exc:
        view.problem = str(exc)
    finally:
        consumer.close()
    if running and view.events:
        find_signal_waits(view, registry, recorded_waits)
    return view


def find_signal_waits(
    view: LogView, registry: Registry | None, recorded_waits: list[dict[str, Any]] | None
) -> None:
    """Fill in what the running workflow of `view` waits for: the read model's record, or
    for a run from before waits were recorded, a replay with `registry` (if there is one)."""
    if _waits_recorded(view.events, recorded_waits):
        assert recorded_waits is not None
        view.signal_waits = [
            SignalWait(w["name"], w["timer_seq"] or None, w["timeout_at_ms"] or None)
            for w in recorded_waits
        ]
        view.signal_waits_known = True
        view.signal_waits_source = "read model"
    elif registry is not None:
        _replay_signal_waits(view, registry)


def _waits_recorded(events: list[Event], recorded: list[dict[str, Any]] | None) -> bool:
    """Whether the read model's waits are the whole story: it has some, or the current run
    recorded its waits as events (then none recorded means none). Only a run from before
    signal waits were recorded has neither and needs a replay."""
    if recorded is None:
        return False
    if recorded:
        return True
    starts = [i for i, e in enumerate(events) if isinstance(e.body, WorkflowStarted)]
    run = events[starts[-1] :] if starts else events
    return any(isinstance(e.body, SignalWaitStarted) for e in run)


def _replay_signal_waits(view: LogView, registry: Registry) -> None:
    starts = [i for i, e in enumerate(view.events) if isinstance(e.body, WorkflowStarted)]
    if not starts:
        return
    run = view.events[starts[-1] :]
    try:
        outcome = replay(registry, run)
    except (NonDeterminismError, RegistryError) as exc:
        view.problem = f"signal waits unknown: the deployed code cannot replay this run ({exc})"
        return
    if outcome.driver is None:
        return
    due: dict[int, int] = {
        e.body.timer_seq: e.body.fire_at_ms for e in run if isinstance(e.body, TimerStarted)
    }
    view.signal_waits = [
        SignalWait(name, seq, due.get(seq) if seq is not None else None)
        for name, seq in outcome.driver.signal_waits()
    ]
    view.signal_waits_known = True
    view.signal_waits_source = "replayed"


def compensations(view: LogView) -> list[TimelineEntry]:
    """The timeline entries that scheduled a compensation, in order."""
    return [
        entry
        for event, entry in zip(view.events, view.timeline, strict=True)
        if isinstance(event.body, ActivityScheduled) and event.body.compensation
    ]


def graph_steps(events: list[Event]) -> list[dict[str, Any]]:
    """The path a code workflow took so far: activities, timers and signals, in order."""
    steps: list[dict[str, Any]] = []
    by_activity: dict[int, dict[str, Any]] = {}
    by_timer: dict[int, dict[str, Any]] = {}
    by_update: dict[str, dict[str, Any]] = {}
    for e in events:
        b = e.body
        if isinstance(b, ActivityScheduled):
            node = {
                "kind": "compensation" if b.compensation else "activity",
                "label": b.activity_name,
                "state": "running",
            }
            by_activity[b.activity_seq] = node
            steps.append(node)
        elif isinstance(b, ActivityCompleted | ActivityFailed) and b.activity_seq in by_activity:
            by_activity[b.activity_seq]["state"] = (
                "completed" if isinstance(b, ActivityCompleted) else "failed"
            )
        elif isinstance(b, TimerStarted):
            node = {"kind": "timer", "label": f"timer {b.timer_seq}", "state": "running"}
            by_timer[b.timer_seq] = node
            steps.append(node)
        elif isinstance(b, TimerFired | TimerCancelled) and b.timer_seq in by_timer:
            by_timer[b.timer_seq]["state"] = (
                "completed" if isinstance(b, TimerFired) else "cancelled"
            )
        elif isinstance(b, SignalReceived):
            steps.append({"kind": "signal", "label": f"signal {b.name}", "state": "completed"})
        elif isinstance(b, UpdateAccepted):
            node = {"kind": "update", "label": f"update {b.name}", "state": "running"}
            by_update[b.update_id] = node
            steps.append(node)
        elif isinstance(b, UpdateCompleted) and b.update_id in by_update:
            by_update[b.update_id]["state"] = "failed" if b.error_type else "completed"
    return steps
