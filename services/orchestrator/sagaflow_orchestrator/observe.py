"""The orchestrator's observer: spans into the workflow run's trace, and Prometheus metrics.

One trace per workflow run. Its root is the client's "sagaflow start <type>" span when the
StartWorkflow command carried a traceparent (else our own "start <type>" span). Every span of
a decision is a child of the span of what caused it:

    sagaflow start checkout                     (client)
    └─ start checkout                           StartWorkflow processed
       └─ schedule reserve_inventory            task produced -> its traceparent names this span
          └─ execute reserve_inventory          (worker)
             └─ complete reserve_inventory      CompleteActivity processed
                └─ schedule charge_card ...
                   └─ execute charge_card       (worker, ERROR)
                      └─ complete charge_card   (ERROR: the step failed for good)
                         └─ compensate release_inventory -> execute -> complete
                            └─ workflow failed

Timers ("timer started" -> "timer fired"), signals ("signal <name>") and cancellations
("cancel requested") hang off the run's start span; the sender's own span is linked. A state
machine's state left ("state <name>", ERROR when it failed) is a child of what caused it.

Spans are opened while a batch is decided and ended when its transaction commits, so a span
covers decide + commit, and the spans of an aborted transaction are never exported.

What the observer remembers is span contexts only, keyed by (workflow id, seq): the run's
start span, and the span that dispatched each open step (keyed by its activity seq) or started
each pending timer (its timer seq). What a step is (its name, whether it compensates, when it
was scheduled) comes with each decision from the core (Decision.steps), so the observer keeps no
copy of the workflow's state.

What survives a restart: every event record carries the traceparent of the span that recorded
it (the headers `batch` returns). Rebuild hands each restored event and its headers to
`restored`, which takes back those contexts, without creating any span.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import assert_never

from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode

from sagaflow.config import Config
from sagaflow.core import kinds
from sagaflow.core.messages import (
    CLOSING_EVENTS,
    ActivityAttemptFailed,
    ActivityCancelRequested,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeatRecorded,
    ActivityRetried,
    ActivityScheduled,
    ActivityTask,
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Command,
    CommandRejected,
    CompleteActivity,
    Effect,
    Event,
    EventBody,
    FailActivity,
    MarkerRecorded,
    QueryWorkflow,
    ReplyToCaller,
    SignalReceived,
    SignalWaitStarted,
    StateTransitioned,
    StepView,
    TimerCancelled,
    TimerFired,
    TimerStarted,
    UpdateAccepted,
    UpdateCompleted,
    UpdateWorkflow,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowParked,
    WorkflowStarted,
    WorkflowTerminated,
    WorkflowUnparked,
)
from sagaflow.metrics import OrchestratorMetrics
from sagaflow.telemetry import (
    KafkaHeaders,
    Telemetry,
    consumer_attributes,
    extract,
    inject,
    links,
    parent,
    producer_attributes,
)
from sagaflow_orchestrator.hooks import (
    ConsumedCommand,
    Decided,
    DecisionHeaders,
    Hooks,
    RecordHeaders,
)

Attributes = dict[str, str | int | bool]


def _name(body: EventBody) -> str:
    """The span name of an event that gets a span (sagaflow.core.kinds names them all)."""
    name = kinds.span_name(body)
    if name is None:
        raise ValueError(f"{type(body).__name__} has no span in sagaflow.core.kinds")
    return name


@dataclass
class _Run:
    workflow_type: str
    context: SpanContext | None
    """The run's start span; the parent of what is not caused by a particular step."""
    contexts: dict[int, SpanContext | None] = field(default_factory=dict)
    """seq -> the span that dispatched an open step's latest attempt (schedule or retry: the
    worker's parent), or that started a pending timer."""
    unsampled: KafkaHeaders | None = None
    """The run's traceparent when its trace was not sampled: every record of the run carries
    it (so each hop follows the decision) and nothing else is tracked for the run."""

    def note_sampling(self) -> None:
        if self.context is not None and not self.context.trace_flags.sampled:
            self.unsampled = inject(self.context)


@dataclass
class _Batch:
    """What becomes true only when the batch's transaction commits."""

    spans: list[Span] = field(default_factory=list)
    metrics: list[Callable[[], None]] = field(default_factory=list)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(metric, label, label) -> how much to add when the batch commits; one inc per label set
    per batch instead of one per command."""
    continued: dict[str, SpanContext | None] = field(default_factory=dict)
    """workflow_id -> context of the run that continued as new, for the next run's link."""


class Observer(Hooks):
    """Tracing and metrics for the orchestrator loop; either may be left out."""

    def __init__(
        self,
        config: Config,
        telemetry: Telemetry | None = None,
        metrics: OrchestratorMetrics | None = None,
    ) -> None:
        self._config = config
        # A disabled Telemetry (OTEL_SDK_DISABLED) means no spans: skip the bookkeeping too.
        self._telemetry = telemetry if telemetry is not None and telemetry.enabled else None
        self._metrics = metrics
        self._runs: dict[str, _Run] = {}
        self._batch = _Batch()

    # ------------------------------------------------------------------ rebuild (no spans)

    def rebuilt(self, partition: int, events: int, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.rebuild_seconds.observe(seconds)
            self._metrics.rebuild_events.inc(events)

    def restored(self, event: Event, headers: RecordHeaders) -> None:
        if self._telemetry is None:
            return
        context = extract(headers)
        body = event.body
        if isinstance(body, WorkflowStarted):
            self._runs[event.workflow_id] = restored = _Run(body.workflow_type, context)
            restored.note_sampling()
            return
        run = self._runs.get(event.workflow_id)
        if run is None:
            return
        if run.unsampled is not None:
            if isinstance(body, CLOSING_EVENTS):
                del self._runs[event.workflow_id]
            return
        if isinstance(body, ActivityScheduled):
            run.contexts[body.activity_seq] = context
        elif isinstance(body, ActivityRetried):
            run.contexts[body.activity_seq] = context or run.contexts.get(body.activity_seq)
        elif isinstance(body, TimerStarted):
            run.contexts[body.timer_seq] = context
        elif isinstance(body, ActivityCompleted | ActivityFailed):
            run.contexts.pop(body.activity_seq, None)
        elif isinstance(body, TimerFired | TimerCancelled):
            run.contexts.pop(body.timer_seq, None)
        elif isinstance(body, CLOSING_EVENTS):
            self._runs.pop(event.workflow_id, None)

    # ------------------------------------------------------------------ deciding

    def batch(self, decided: Sequence[Decided]) -> Sequence[DecisionHeaders] | None:
        for d in decided:
            self._count_decision(d)
        if self._telemetry is None:
            if self._metrics is not None:
                for d in decided:
                    steps = _steps(d)
                    for event in d.decision.events:
                        self._count_untraced(event, steps)
            return None
        return [self._trace_decision(d) for d in decided]

    def _count_decision(self, d: Decided) -> None:
        m = self._metrics
        if m is None or not isinstance(d.cause, ConsumedCommand):
            return
        kind = type(d.cause.command).__name__
        m.decide_seconds.observe(d.seconds)
        self._batch.counts["processed", kind, ""] += 1
        rejection = d.decision.rejection
        if rejection is not None:
            self._batch.counts["rejected", kind, rejection.reason] += 1

    def _trace_decision(self, d: Decided) -> DecisionHeaders:
        cause = d.cause if isinstance(d.cause, ConsumedCommand) else None
        command = cause.command if cause is not None else None
        sender = extract(list(cause.headers)) if cause is not None else None
        received: Attributes = {}
        if cause is not None:
            received.update(
                consumer_attributes(
                    cause.topic,
                    cause.partition,
                    cause.offset,
                    cause.key,
                    self._config.orchestrator_group,
                )
            )
        caused_by: SpanContext | None = None
        event_headers: list[KafkaHeaders] = []
        steps = _steps(d)
        for event in d.decision.events:
            run = self._runs.get(event.workflow_id)
            if run is not None and run.unsampled is not None:
                # Not sampled: count it, carry the decision on, make no spans.
                event_headers.append(run.unsampled)
                if self._metrics is not None:
                    self._count_untraced(event, steps)
                if isinstance(event.body, CLOSING_EVENTS):
                    del self._runs[event.workflow_id]
                continue
            recorded_by, caused = self._observe(event, steps, command, sender, caused_by, received)
            if caused:
                caused_by = recorded_by
            run = self._runs.get(event.workflow_id)
            fallback = run.context if run is not None else None
            event_headers.append(inject(recorded_by or fallback))
            if self._metrics is not None:
                self._batch.counts["appended", type(event.body).__name__, ""] += 1
        if isinstance(command, QueryWorkflow | UpdateWorkflow) and not d.decision.events:
            for effect in d.decision.effects:
                if isinstance(effect, ReplyToCaller):
                    self._answer_span(command, effect, sender, received)
        return DecisionHeaders(
            tuple(event_headers), tuple(self._effect_headers(e) for e in d.decision.effects)
        )

    def _answer_span(
        self,
        command: QueryWorkflow | UpdateWorkflow,
        reply: ReplyToCaller,
        sender: SpanContext | None,
        received: Attributes,
    ) -> None:
        """One span for an answer that recorded nothing (a query, a rejected or repeated
        update), under the run's start span when the run is known, else the sender's."""
        if self._telemetry is None:
            return
        run = self._runs.get(command.workflow_id)
        if run is not None and run.unsampled is not None:
            return
        kind = "query" if isinstance(command, QueryWorkflow) else "update"
        attrs: Attributes = {
            **received,
            "sagaflow.workflow.id": command.workflow_id,
            f"sagaflow.{kind}.name": command.name,
            "sagaflow.reply.ok": reply.ok,
        }
        if run is not None:
            attrs["sagaflow.workflow.type"] = run.workflow_type
        parent_context = run.context if run is not None and run.context else sender
        span = self._telemetry.tracer.start_span(
            f"{kind} {command.name}",
            parent(parent_context),
            SpanKind.CONSUMER,
            attributes=attrs,
            links=links(sender if parent_context is not sender else None),
        )
        if not reply.ok:
            _error(span, reply.error_type, reply.message)
        self._batch.spans.append(span)

    def _effect_headers(self, effect: Effect) -> KafkaHeaders:
        """A task carries its dispatch span (the worker's parent). Commands to other workflows
        and replies carry no trace context yet: no decision emits them so far, and the work
        that does (children, queries) decides which span they continue."""
        if not isinstance(effect, ActivityTask):
            return []
        run = self._runs.get(effect.workflow_id)
        if run is None:
            return []
        if run.unsampled is not None:
            return run.unsampled
        return inject(run.contexts.get(effect.activity_seq) or run.context)

    def _count_untraced(self, event: Event, steps: _Steps) -> None:
        """Metrics without tracing: event counts, and step latency."""
        body = event.body
        self._batch.counts["appended", type(body).__name__, ""] += 1
        if isinstance(body, ActivityCompleted | ActivityFailed):
            step = steps.get((event.workflow_id, body.activity_seq))
            if step is not None:
                self._step_latency(event, body, step)

    def _step_latency(
        self, event: Event, body: ActivityCompleted | ActivityFailed, step: StepView
    ) -> None:
        if self._metrics is None:
            return
        outcome = "completed" if isinstance(body, ActivityCompleted) else "failed"
        histogram = self._metrics.step_seconds.labels(step.name, outcome)
        seconds = max(0, event.recorded_at_ms - step.scheduled_at_ms) / 1000
        self._batch.metrics.append(lambda: histogram.observe(seconds))

    # ------------------------------------------------------------------ the transaction

    def committed(self, commands: int, events: int, tasks: int, dead: int, seconds: float) -> None:
        batch, self._batch = self._batch, _Batch()
        for span in batch.spans:
            span.end()
        m = self._metrics
        if m is None:
            return
        for update in batch.metrics:
            update()
        for (metric, a, b), n in batch.counts.items():
            if metric == "processed":
                m.commands_processed.labels(a).inc(n)
            elif metric == "rejected":
                m.commands_rejected.labels(a, b).inc(n)
            else:
                m.events_appended.labels(a).inc(n)
        m.transaction_seconds.observe(seconds)
        m.transactions_committed.inc()
        m.tasks_produced.inc(tasks)

    def aborted(self) -> None:
        # Nothing of the batch happened: its spans are dropped unended (never exported), and
        # what we remember per run is forgotten because the rebuild that follows restores it
        # from the log as committed.
        self._batch = _Batch()
        self._runs.clear()
        if self._metrics is not None:
            self._metrics.transactions_aborted.inc()

    def dead_lettered(self, stage: str) -> None:
        if self._metrics is not None:
            self._metrics.dlq_records.labels(stage).inc()

    # ------------------------------------------------------------------ one event

    def _observe(
        self,
        event: Event,
        steps: _Steps,
        command: Command | None,
        sender: SpanContext | None,
        cause: SpanContext | None,
        received: Attributes,
    ) -> tuple[SpanContext | None, bool]:
        """Open the event's span if it gets one: (its context, whether it causes what follows
        in the decision)."""
        body = event.body
        wid = event.workflow_id
        if isinstance(body, CommandRejected):
            # Not part of any run; the sender's trace shows why its command did nothing.
            span = self._span(
                _name(body),
                event,
                None,
                sender,
                SpanKind.CONSUMER,
                {**received, "sagaflow.rejection.reason": body.reason},
            )
            _error(span, body.reason, body.message)
            return _context(span), True
        if isinstance(body, WorkflowStarted):
            self._runs[wid] = started = _Run(body.workflow_type, None)
            # A continued run is a new run, so a new trace, linked to the one it continues.
            continued = bool(body.continued_from_run_id)
            span = self._span(
                _name(body),
                event,
                started,
                None if continued else sender,
                SpanKind.CONSUMER,
                {**received, "sagaflow.workflow.version": body.version},
                linked=self._batch.continued.pop(wid, None) if continued else None,
            )
            started.context = _context(span)
            started.note_sampling()
            return started.context, True
        run = self._runs.get(wid)
        if run is None:
            return None, False  # tracing began after this run did, and it left no context
        if isinstance(body, ActivityScheduled):
            scheduled = StepView(
                wid, body.activity_seq, body.activity_name, body.compensation, event.recorded_at_ms
            )
            span = self._span(
                _name(body),
                event,
                run,
                cause or run.context,
                SpanKind.PRODUCER,
                {
                    **producer_attributes(self._config.topics.tasks(body.task_queue), wid),
                    **_step_attributes(scheduled, body.activity_seq, 1),
                },
            )
            run.contexts[body.activity_seq] = _context(span)
            return run.contexts[body.activity_seq], False
        if isinstance(body, ActivityRetried):
            step = steps.get((wid, body.activity_seq))
            if step is None:
                return None, False
            dispatched = run.contexts.get(body.activity_seq)
            span = self._span(
                f"retry {step.name}",
                event,
                run,
                dispatched,
                SpanKind.PRODUCER,
                _step_attributes(step, body.activity_seq, body.attempt),
            )
            run.contexts[body.activity_seq] = _context(span) or dispatched
            return run.contexts[body.activity_seq], False
        if isinstance(body, ActivityCompleted | ActivityFailed | ActivityAttemptFailed):
            step = steps.get((wid, body.activity_seq))
            if step is None:
                return None, True
            return self._step_outcome(event, body, step, run, command, sender, received), True
        if isinstance(body, TimerStarted):
            span = self._span(
                _name(body),
                event,
                run,
                cause or run.context,
                SpanKind.INTERNAL,
                {
                    "sagaflow.timer.seq": body.timer_seq,
                    "sagaflow.timer.fire_at_ms": body.fire_at_ms,
                },
            )
            run.contexts[body.timer_seq] = _context(span)
            return _context(span), False
        if isinstance(body, TimerFired):
            timer = run.contexts.pop(body.timer_seq, None)
            span = self._span(
                _name(body),
                event,
                run,
                timer or run.context,
                SpanKind.INTERNAL,
                {"sagaflow.timer.seq": body.timer_seq},
            )
            return _context(span), True
        if isinstance(body, TimerCancelled):
            run.contexts.pop(body.timer_seq, None)
            return None, False
        if isinstance(body, SignalReceived):
            span = self._span(
                _name(body),
                event,
                run,
                run.context,
                SpanKind.CONSUMER,
                {**received, "sagaflow.signal.name": body.name},
                linked=sender,
            )
            return _context(span), True
        if isinstance(body, ActivityCancelRequested):
            # The notice to the worker is produced in this transaction.
            span = self._span(
                _name(body),
                event,
                run,
                cause or run.context,
                SpanKind.PRODUCER,
                {"sagaflow.activity.seq": body.activity_seq},
            )
            return _context(span), False
        if isinstance(body, SignalWaitStarted):
            attrs: Attributes = {"sagaflow.signal.name": body.name}
            if body.timeout_at_ms:
                attrs["sagaflow.signal.timeout_at_ms"] = body.timeout_at_ms
                attrs["sagaflow.timer.seq"] = body.timer_seq
            span = self._span(
                _name(body), event, run, cause or run.context, SpanKind.INTERNAL, attrs
            )
            return _context(span), False
        if isinstance(body, CancelRequested):
            span = self._span(
                _name(body),
                event,
                run,
                run.context,
                SpanKind.CONSUMER,
                {**received, "sagaflow.cancel.reason": body.reason},
                linked=sender,
            )
            return _context(span), True
        if isinstance(body, StateTransitioned):
            if body.transition == "entered":
                return None, False  # the state's span is made when it is left
            span = self._span(
                _name(body),
                event,
                run,
                cause or run.context,
                SpanKind.INTERNAL,
                {
                    "sagaflow.state.name": body.state,
                    "sagaflow.state.type": body.state_type,
                    "sagaflow.state.transition": body.transition,
                    "sagaflow.state.scope": body.scope,
                    "sagaflow.state.next": body.next_state,
                },
            )
            if body.transition == "failed":
                _error(span, body.error, body.cause)
            return _context(span), False
        if isinstance(body, WorkflowParked):
            span = self._span(
                _name(body),
                event,
                run,
                cause or run.context,
                SpanKind.INTERNAL,
                {"sagaflow.parked.kind": body.kind},
            )
            _error(span, body.kind, body.message)
            return _context(span), False
        if isinstance(body, WorkflowUnparked):
            span = self._span(_name(body), event, run, run.context, SpanKind.INTERNAL, {})
            return _context(span), True
        if isinstance(body, WorkflowTerminated):
            # Decided by an operator's command, not by the code: the sender's span is linked.
            span = self._span(
                _name(body),
                event,
                run,
                run.context,
                SpanKind.CONSUMER,
                {
                    **received,
                    "sagaflow.terminate.reason": body.reason,
                    "sagaflow.terminate.by": body.by,
                },
                linked=sender,
            )
            del self._runs[wid]
            return _context(span), False
        if isinstance(body, CLOSING_EVENTS):
            span = self._span(_name(body), event, run, cause or run.context, SpanKind.INTERNAL, {})
            if isinstance(body, WorkflowFailed):
                _error(span, body.error_type, body.message)
            if isinstance(body, WorkflowContinuedAsNew):
                self._batch.continued[wid] = run.context
            del self._runs[wid]
            return _context(span), False
        if isinstance(body, UpdateAccepted):
            span = self._span(
                _name(body),
                event,
                run,
                run.context,
                SpanKind.CONSUMER,
                {
                    **received,
                    "sagaflow.update.name": body.name,
                    "sagaflow.update.id": body.update_id,
                },
                linked=sender,
            )
            return _context(span), True
        if isinstance(body, UpdateCompleted):
            span = self._span(
                _name(body),
                event,
                run,
                cause or run.context,
                SpanKind.INTERNAL,
                {"sagaflow.update.id": body.update_id},
            )
            if body.error_type:
                _error(span, body.error_type, body.message)
            return _context(span), False
        if isinstance(body, MarkerRecorded | ActivityHeartbeatRecorded):
            return None, False  # no span of its own: recorded under the run's context
        if isinstance(body, ChildWorkflowStarted):
            span = self._span(
                _name(body),
                event,
                run,
                cause or run.context,
                SpanKind.PRODUCER,
                {
                    **producer_attributes(self._config.topics.commands, body.child_workflow_id),
                    "sagaflow.child.workflow_id": body.child_workflow_id,
                    "sagaflow.child.seq": body.child_seq,
                    "sagaflow.child.parent_close_policy": body.parent_close_policy,
                },
            )
            run.contexts[body.child_seq] = _context(span)
            return _context(span), False
        if isinstance(body, ChildWorkflowCompleted | ChildWorkflowFailed):
            child_started = run.contexts.pop(body.child_seq, None)
            span = self._span(
                _name(body),
                event,
                run,
                child_started or run.context,
                SpanKind.CONSUMER,
                {
                    **received,
                    "sagaflow.child.workflow_id": body.child_workflow_id,
                    "sagaflow.child.seq": body.child_seq,
                },
                linked=sender,
            )
            if isinstance(body, ChildWorkflowFailed):
                _error(span, body.error_type or body.status, body.message)
            return _context(span), True
        assert_never(body)

    def _step_outcome(
        self,
        event: Event,
        body: ActivityCompleted | ActivityFailed | ActivityAttemptFailed,
        step: StepView,
        run: _Run,
        command: Command | None,
        sender: SpanContext | None,
        received: Attributes,
    ) -> SpanContext | None:
        from_worker = isinstance(command, CompleteActivity | FailActivity)
        if isinstance(body, ActivityCompleted):
            verb, outcome = "complete", "completed"
        elif isinstance(body, ActivityAttemptFailed):
            verb = "timeout" if body.timed_out else "complete"
            outcome = "attempt_timed_out" if body.timed_out else "attempt_failed"
        else:
            verb = (
                "complete"
                if from_worker
                else ("cancel" if body.reason == "cancelled" else "timeout")
            )
            outcome = f"failed_{body.reason}"
        attrs: Attributes = {
            **_step_attributes(step, body.activity_seq, body.attempt),
            "sagaflow.activity.outcome": outcome,
        }
        if from_worker:
            attrs.update(received)
        # The worker's span is the parent when its command carried one; else the dispatch.
        span = self._span(
            f"{verb} {step.name}",
            event,
            run,
            (sender if from_worker else None) or run.contexts.get(body.activity_seq) or run.context,
            SpanKind.CONSUMER if from_worker else SpanKind.INTERNAL,
            attrs,
        )
        if isinstance(body, ActivityFailed | ActivityAttemptFailed):
            if span is not None:
                span.add_event(
                    "exception",
                    {"exception.type": body.error_type, "exception.message": body.message},
                )
            if isinstance(body, ActivityFailed):
                _error(span, body.error_type, body.message)
        if isinstance(body, ActivityCompleted | ActivityFailed):
            run.contexts.pop(body.activity_seq, None)
            self._step_latency(event, body, step)
        return _context(span)

    def _span(
        self,
        name: str,
        event: Event,
        run: _Run | None,
        parent_context: SpanContext | None,
        kind: SpanKind,
        attributes: Attributes,
        linked: SpanContext | None = None,
    ) -> Span | None:
        if self._telemetry is None:
            return None
        attrs: Attributes = {
            "sagaflow.workflow.id": event.workflow_id,
            "sagaflow.run.id": event.run_id,
            "sagaflow.event.seq": event.seq,
            "sagaflow.event.type": type(event.body).__name__,
        }
        if run is not None:
            attrs["sagaflow.workflow.type"] = run.workflow_type
        attrs.update(attributes)
        span = self._telemetry.tracer.start_span(
            name, parent(parent_context), kind, attributes=attrs, links=links(linked)
        )
        self._batch.spans.append(span)
        if run is not None and run.context is None and span.get_span_context().is_valid:
            # A run restored without a context (traced only since now) keeps one trace from
            # here on instead of one root per span.
            run.context = span.get_span_context()
        return span


def _context(span: Span | None) -> SpanContext | None:
    if span is None:
        return None
    context = span.get_span_context()
    return context if context.is_valid else None


def _error(span: Span | None, kind: str, message: str) -> None:
    if span is not None:
        span.set_status(Status(StatusCode.ERROR, f"{kind}: {message}"))


_Steps = dict[tuple[str, int], StepView]


def _steps(d: Decided) -> _Steps:
    """The decision's steps by (workflow id, activity seq)."""
    return {(s.workflow_id, s.activity_seq): s for s in d.decision.steps}


def _step_attributes(step: StepView, seq: int, attempt: int) -> Attributes:
    return {
        "sagaflow.activity.name": step.name,
        "sagaflow.activity.seq": seq,
        "sagaflow.activity.attempt": attempt,
        "sagaflow.activity.compensation": step.compensation,
    }
