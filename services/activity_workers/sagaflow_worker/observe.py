"""The worker's observer: one execution span per task, and Prometheus metrics.

    schedule charge_card                 (orchestrator; named by the task's traceparent)
    └─ execute charge_card               consumer span; ERROR when the activity failed
       ├─ event "idempotency claim"      outcome Acquired / AlreadyCompleted / LeasedElsewhere
       ├─ run charge_card                the activity itself (ERROR + exception when it failed)
       ├─ publish FailActivity           producing the result command
       └─ complete charge_card           (orchestrator; the command's traceparent names
                                          the execution span)

Claims are span events rather than spans: a batch is claimed in one statement, and a claim that
waits out another worker's lease is claimed again, so only the moments are known precisely. The
run's span is placed from its measured duration. The execution span ends when Kafka has
acknowledged the result (the publish stage), or when the task leaves the pipeline without one.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from sagaflow.config import Config
from sagaflow.metrics import WorkerMetrics
from sagaflow.telemetry import (
    Telemetry,
    consumer_attributes,
    extract,
    inject,
    parent,
    producer_attributes,
)
from sagaflow_worker.hooks import ConsumedTask, TaskTrace, WorkerHooks
from sagaflow_worker.idempotency import Failed, Outcome, Succeeded

_IDEMPOTENCY_HITS = frozenset({"AlreadyCompleted", "LeasedElsewhere"})


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

    def begin(self, consumed: ConsumedTask) -> TaskTrace:
        trace = TaskTrace(consumed)
        if self._telemetry is None:
            return trace
        upstream = extract(list(consumed.headers))
        if upstream is not None and not upstream.trace_flags.sampled:
            return trace  # the workflow's trace was not sampled: no span at any hop
        task = consumed.task
        attrs: dict[str, Any] = {
            **consumer_attributes(
                consumed.topic, consumed.partition, consumed.offset, consumed.key, consumed.group
            ),
            "sagaflow.workflow.id": task.workflow_id,
            "sagaflow.workflow.type": task.workflow_type,
            "sagaflow.run.id": task.run_id,
            "sagaflow.activity.name": task.activity_name,
            "sagaflow.activity.seq": task.activity_seq,
            "sagaflow.activity.attempt": task.attempt,
            "sagaflow.idempotency.key": task.idempotency_key,
        }
        trace.span = self._telemetry.tracer.start_span(
            f"execute {task.activity_name}", parent(upstream), SpanKind.CONSUMER, attributes=attrs
        )
        return trace

    def claimed(self, trace: TaskTrace, outcome: str) -> None:
        if trace.span is not None:
            trace.span.add_event("idempotency claim", {"sagaflow.idempotency.outcome": outcome})
            trace.span.set_attribute("sagaflow.idempotency.outcome", outcome)
        if self._metrics is not None and outcome in _IDEMPOTENCY_HITS:
            name = trace.consumed.task.activity_name
            self._metrics.idempotency_hits.labels(name, outcome).inc()

    def executed(self, trace: TaskTrace, outcome: Outcome, seconds: float) -> None:
        task = trace.consumed.task
        result = "Succeeded" if isinstance(outcome, Succeeded) else "Failed"
        if self._metrics is not None:
            self._metrics.activity_executions.labels(task.activity_name, result).inc()
            self._metrics.activity_seconds.labels(task.activity_name, result).observe(seconds)
        if trace.span is None or self._telemetry is None:
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
        run.end(end_ns)

    def result_headers(self, trace: TaskTrace) -> list[tuple[str, bytes]]:
        if trace.span is None or self._telemetry is None:
            return []
        task = trace.consumed.task
        # Ended with the execution span, once the command is acknowledged.
        trace.children.append(
            self._telemetry.tracer.start_span(
                f"publish result {task.activity_name}",
                set_span_in_context(trace.span),
                SpanKind.PRODUCER,
                attributes=producer_attributes(self._config.topics.commands, task.workflow_id),
            )
        )
        return inject(trace.span.get_span_context())

    def end(self, trace: TaskTrace, error: str | None) -> None:
        for child in trace.children:
            child.end()
        if trace.span is None:
            return
        if error is not None:
            trace.span.set_attribute("sagaflow.task.dropped", error)
        trace.span.end()

    def dead_lettered(self, stage: str) -> None:
        if self._metrics is not None:
            self._metrics.dlq_records.labels(stage).inc()
