"""The worker's observer: one execution span per task, and Prometheus metrics.

    schedule charge_card                 (orchestrator; named by the task's traceparent)
    └─ execute charge_card               consumer span; ERROR when the activity failed
       ├─ event "idempotency claim"      outcome Acquired / AlreadyCompleted / LeasedElsewhere
       ├─ run charge_card                the activity itself (ERROR + exception when it failed)
       ├─ publish FailActivity           producing the result command
       └─ complete charge_card           (orchestrator; the command's traceparent names
                                          the execution span)

Claims are span events rather than spans: the runner reports a claim only once it answered,
and a claim that waits out another worker's lease is claimed again, so only the moments are
known precisely. The run's span is placed from its measured duration.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from sagaflow.config import Config
from sagaflow.core.messages import ActivityTask
from sagaflow.metrics import WorkerMetrics
from sagaflow.telemetry import (
    Telemetry,
    consumer_attributes,
    extract,
    inject,
    parent,
    producer_attributes,
)
from sagaflow_worker.hooks import WorkerHooks
from sagaflow_worker.idempotency import Failed, Succeeded

_IDEMPOTENCY_HITS = frozenset({"AlreadyCompleted", "LeasedElsewhere"})


@dataclass
class TaskTrace:
    """What the runner hands back to the hooks as `span` for one task."""

    task: ActivityTask
    span: Span | None
    publish: list[Span] = field(default_factory=list)


class WorkerObserver(WorkerHooks):
    """Tracing and metrics for the worker; either may be left out."""

    def __init__(
        self,
        config: Config,
        telemetry: Telemetry | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._config = config
        self._telemetry = telemetry
        self._metrics = metrics
        # The runner reports claims by task; each task is being handled inside its task_span.
        self._active: dict[int, TaskTrace] = {}

    @contextlib.contextmanager
    def task_span(self, task: ActivityTask, msg: Message) -> Iterator[TaskTrace]:
        span = None
        if self._telemetry is not None:
            attrs: dict[str, Any] = {
                **consumer_attributes(
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    msg.key(),
                    self._config.worker_group_prefix + task.task_queue,
                ),
                "sagaflow.workflow.id": task.workflow_id,
                "sagaflow.workflow.type": task.workflow_type,
                "sagaflow.run.id": task.run_id,
                "sagaflow.activity.name": task.activity_name,
                "sagaflow.activity.seq": task.activity_seq,
                "sagaflow.activity.attempt": task.attempt,
                "sagaflow.idempotency.key": task.idempotency_key,
            }
            span = self._telemetry.tracer.start_span(
                f"execute {task.activity_name}",
                parent(extract(msg.headers())),
                SpanKind.CONSUMER,
                attributes=attrs,
            )
        trace = TaskTrace(task, span)
        self._active[id(task)] = trace
        try:
            yield trace
        except Exception as exc:
            # The task stays uncommitted and comes back; the span says why this attempt did not
            # finish. The exception goes on to the runner unchanged.
            if span is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            self._active.pop(id(task), None)
            for child in trace.publish:
                child.end()
            if span is not None:
                span.end()

    def claimed(self, task: ActivityTask, outcome: str) -> None:
        trace = self._active.get(id(task))
        if trace is not None and trace.span is not None:
            trace.span.add_event("idempotency claim", {"sagaflow.idempotency.outcome": outcome})
            trace.span.set_attribute("sagaflow.idempotency.outcome", outcome)
        if self._metrics is not None and outcome in _IDEMPOTENCY_HITS:
            self._metrics.idempotency_hits.labels(task.activity_name, outcome).inc()

    def executed(self, task: ActivityTask, outcome: Any, seconds: float, span: Any) -> None:
        result = type(outcome).__name__
        if self._metrics is not None:
            self._metrics.activity_executions.labels(task.activity_name, result).inc()
            self._metrics.activity_seconds.labels(task.activity_name, result).observe(seconds)
        trace = span if isinstance(span, TaskTrace) else None
        if trace is None or trace.span is None or self._telemetry is None:
            return
        end_ns = time.time_ns()
        run = self._telemetry.tracer.start_span(
            f"run {task.activity_name}",
            set_span_in_context(trace.span),
            SpanKind.INTERNAL,
            attributes={
                "sagaflow.activity.name": task.activity_name,
                "sagaflow.activity.outcome": result,
            },
            start_time=end_ns - int(seconds * 1e9),
        )
        if isinstance(outcome, Failed):
            for s in (run, trace.span):
                s.add_event(
                    "exception",
                    {
                        "exception.type": outcome.error_type,
                        "exception.message": outcome.message,
                        "sagaflow.activity.retryable": outcome.retryable,
                    },
                )
                s.set_status(Status(StatusCode.ERROR, f"{outcome.error_type}: {outcome.message}"))
        elif not isinstance(outcome, Succeeded):
            run.set_attribute("sagaflow.activity.outcome.unknown", repr(outcome)[:200])
        run.end(end_ns)

    def command_headers(self, span: Any) -> list[tuple[str, bytes]]:
        trace = span if isinstance(span, TaskTrace) else None
        if trace is None or trace.span is None or self._telemetry is None:
            return []
        task = trace.task
        # Ended with the execution span, once the command is delivered.
        trace.publish.append(
            self._telemetry.tracer.start_span(
                f"publish result {task.activity_name}",
                set_span_in_context(trace.span),
                SpanKind.PRODUCER,
                attributes=producer_attributes(self._config.topics.commands, task.workflow_id),
            )
        )
        return inject(trace.span.get_span_context())

    def dead_lettered(self, stage: str) -> None:
        if self._metrics is not None:
            self._metrics.dlq_records.labels(stage).inc()
