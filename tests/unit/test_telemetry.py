"""Tracing and metrics through the hooks, with in-memory span exporters (no services).

A synthetic compensated checkout goes through the orchestrator's and the worker's observers the
way the loops call them: StartWorkflow -> reserve (ok) -> charge (declined, for good) ->
compensate release (ok) -> workflow failed. The spans must form one trace whose parents cross
the Kafka hops through the headers the hooks wrote, and a rebuild must create no span.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Message
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags

from sagaflow import telemetry
from sagaflow.config import Config
from sagaflow.core.messages import (
    ActivityAttemptFailed,
    ActivityCancelRequested,
    ActivityCompleted,
    ActivityFailed,
    ActivityHeartbeatRecorded,
    ActivityScheduled,
    ActivityTask,
    Command,
    CompleteActivity,
    Decision,
    Event,
    EventBody,
    FailActivity,
    HeartbeatActivity,
    RetryPolicy,
    SignalReceived,
    SignalWorkflow,
    StartWorkflow,
    StateTransitioned,
    StepView,
    WorkflowFailed,
    WorkflowStarted,
)
from sagaflow.metrics import OrchestratorMetrics, WorkerMetrics, metrics_handler
from sagaflow_orchestrator.hooks import ConsumedCommand, Decided, DecisionHeaders, Fired
from sagaflow_orchestrator.observe import Observer
from sagaflow_worker.hooks import ConsumedTask, TaskTrace
from sagaflow_worker.idempotency import Failed, Succeeded
from sagaflow_worker.observe import WorkerObserver

pytestmark = pytest.mark.unit

WID, RUN = "order-1", "run-1"
CONFIG = Config.from_env({})


# --------------------------------------------------------------------------- propagation


def test_inject_extract_round_trip() -> None:
    context = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(1),
    )
    headers = telemetry.inject(context)
    assert headers == [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    for form in (headers, dict(headers), [("other", None), *headers]):
        back = telemetry.extract(form)
        assert back is not None
        assert (back.trace_id, back.span_id, back.is_remote) == (
            context.trace_id,
            context.span_id,
            True,
        )


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("traceparent", b"garbage")],
        [("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01")],
    ],
)
def test_extract_without_a_valid_context_gives_none(headers: object) -> None:
    assert telemetry.extract(headers) is None  # type: ignore[arg-type]
    assert telemetry.inject(None) == []


def test_from_env() -> None:
    off = telemetry.from_env("svc", {"OTEL_SDK_DISABLED": "true"})
    assert not off.enabled
    assert telemetry.inject(off.tracer.start_span("x").get_span_context()) == []
    on = telemetry.from_env(
        "svc", {"OTEL_SERVICE_NAME": "orch-a", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/"}
    )
    try:
        assert on.enabled and on.service_name == "orch-a"
        assert on.provider is not None
        assert on.provider.resource.attributes["service.name"] == "orch-a"
    finally:
        on.shutdown()
        on.shutdown()  # idempotent
    with pytest.raises(telemetry.TelemetryConfigError, match="http/json"):
        telemetry.from_env("svc", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_command_headers_start_a_producer_span() -> None:
    exporter = InMemorySpanExporter()
    client = telemetry.with_processor(SimpleSpanProcessor(exporter), "client")
    factory = telemetry.command_headers(client, "p.commands")
    headers = factory(StartWorkflow(WID, "checkout", b"{}"))
    (span,) = exporter.get_finished_spans()
    assert span.name == "sagaflow start checkout"
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None
    assert span.attributes["messaging.destination.name"] == "p.commands"
    assert span.attributes["sagaflow.workflow.id"] == WID
    assert telemetry.extract(headers) is not None
    assert telemetry.extract(headers).span_id == span.context.span_id  # type: ignore[union-attr]
    assert factory(CompleteActivity(WID, RUN, 1, 1, b"null")) == []  # no current span


# --------------------------------------------------------------------------- the saga


@dataclass
class Saga:
    """The three processes of a checkout, each with its own provider, one exporter."""

    exporter: InMemorySpanExporter
    client: telemetry.Telemetry
    orchestrator: Observer
    worker: WorkerObserver
    orchestrator_metrics: OrchestratorMetrics
    worker_metrics: WorkerMetrics
    offset: int = 0
    seq: int = 0
    scheduled: dict[int, StepView] = field(default_factory=dict)
    """What the core would hand the observer with each outcome (Decision.steps)."""

    def spans(self) -> dict[str, ReadableSpan]:
        spans = self.exporter.get_finished_spans()
        by_name = {s.name: s for s in spans}
        assert len(by_name) == len(spans), [s.name for s in spans]
        return by_name

    def message(self, topic: str, value: object, headers: list[tuple[str, bytes]]) -> Message:
        self.offset += 1
        record_headers: list[tuple[str, str | bytes | None]] = list(headers)
        return Message(
            topic=topic,
            partition=0,
            offset=self.offset,
            key=WID.encode(),
            value=b"",
            headers=record_headers,
        )

    def event(self, body: EventBody, at_ms: int) -> Event:
        self.seq += 1
        if isinstance(body, ActivityScheduled):
            self.scheduled[body.activity_seq] = StepView(
                WID, body.activity_seq, body.activity_name, body.compensation, at_ms
            )
        return Event(WID, self.seq, RUN, at_ms, body)

    def with_steps(self, decision: Decision) -> Decision:
        seqs = [
            e.body.activity_seq
            for e in decision.events
            if isinstance(e.body, ActivityCompleted | ActivityFailed | ActivityAttemptFailed)
        ]
        return replace(decision, steps=tuple(self.scheduled[seq] for seq in seqs))

    def decide(
        self, command: Command | None, source: Message | None, decision: Decision
    ) -> tuple[list[list[tuple[str, bytes]]], list[list[tuple[str, bytes]]]]:
        """What the loop does for one command: decide, emit, produce (headers), commit."""
        headers = observe(self.orchestrator, command, source, self.with_steps(decision))
        self.orchestrator.committed(1, len(headers.events), len(headers.effects), 0, 0.004)
        return list(headers.events), list(headers.effects)

    def work(
        self, task: ActivityTask, headers: list[tuple[str, bytes]], outcome: Succeeded | Failed
    ) -> list[tuple[str, bytes]]:
        """What the worker does for one task; returns the result command's headers."""
        self.offset += 1
        consumed = ConsumedTask(
            task,
            CONFIG.topics.tasks(task.task_queue),
            0,
            self.offset,
            WID.encode(),
            tuple(headers),
            CONFIG.worker_group_prefix + task.task_queue,
        )
        trace = self.worker.begin(consumed)
        self.worker.claimed(trace, "Acquired")
        self.worker.executed(trace, outcome, 0.02)
        out = self.worker.result_headers(trace)
        self.worker.end(trace, None)
        return out


def observe(
    hooks: Observer, command: Command | None, source: Message | None, decision: Decision
) -> DecisionHeaders:
    """What the loop hands the observer for one decision, and the headers it gets back."""
    cause: ConsumedCommand | Fired = Fired("due", 0)
    if command is not None:
        raw = source.headers() if source is not None else None
        cause = ConsumedCommand(
            command,
            source.topic() or "" if source is not None else CONFIG.topics.commands,
            source.partition() or 0 if source is not None else 0,
            source.offset() or 0 if source is not None else 0,
            source.key() if source is not None else None,
            tuple((k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in raw or []),
        )
    (headers,) = hooks.batch([Decided(0, decision, cause, 0.001)]) or [
        DecisionHeaders(tuple([] for _ in decision.events), tuple([] for _ in decision.effects))
    ]
    return headers


def scheduled(seq: int, name: str, compensation: bool = False) -> ActivityScheduled:
    return ActivityScheduled(seq, name, "default", b"{}", RetryPolicy(), 0, 0, compensation)


def task(seq: int, name: str) -> ActivityTask:
    return ActivityTask(WID, RUN, "checkout", seq, 1, name, "default", b"{}", f"{WID}/{seq}", 0, 0)


@pytest.fixture
def saga() -> Iterator[Saga]:
    exporter = InMemorySpanExporter()
    providers = [
        telemetry.with_processor(SimpleSpanProcessor(exporter), name)
        for name in ("client", "orchestrator", "worker")
    ]
    om, wm = OrchestratorMetrics(), WorkerMetrics()
    yield Saga(
        exporter,
        providers[0],
        Observer(CONFIG, providers[1], om),
        WorkerObserver(CONFIG, providers[2], wm),
        om,
        wm,
    )
    for p in providers:
        p.shutdown()


def run_compensated_checkout(saga: Saga) -> list[list[tuple[str, bytes]]]:
    """Returns the headers of every event record, in order."""
    commands = CONFIG.topics.commands
    start = StartWorkflow(WID, "checkout", b"{}")
    start_msg = saga.message(
        commands, start, telemetry.command_headers(saga.client, commands)(start)
    )
    d = Decision(
        (
            saga.event(WorkflowStarted("checkout", 1, b"{}", 7), 1_000),
            saga.event(scheduled(1, "reserve_inventory"), 1_000),
        ),
        (task(1, "reserve_inventory"),),
    )
    recorded, (reserve_headers,) = saga.decide(start, start_msg, d)

    done = saga.work(task(1, "reserve_inventory"), reserve_headers, Succeeded(b"{}"))
    complete = CompleteActivity(WID, RUN, 1, 1, b"{}")
    d = Decision(
        (
            saga.event(ActivityCompleted(1, 1, b"{}"), 1_200),
            saga.event(scheduled(2, "charge_card"), 1_200),
        ),
        (task(2, "charge_card"),),
    )
    events, (charge_headers,) = saga.decide(complete, saga.message(commands, complete, done), d)
    recorded += events

    declined = saga.work(
        task(2, "charge_card"),
        charge_headers,
        Failed("CardDeclined", "card tok_declined was declined", False),
    )
    fail = FailActivity(WID, RUN, 2, 1, "CardDeclined", "declined", False)
    d = Decision(
        (
            saga.event(
                ActivityFailed(2, 1, "CardDeclined", "declined", b"null", "non_retryable"), 1_700
            ),
            saga.event(scheduled(3, "release_inventory", compensation=True), 1_700),
        ),
        (task(3, "release_inventory"),),
    )
    events, (release_headers,) = saga.decide(fail, saga.message(commands, fail, declined), d)
    recorded += events

    released = saga.work(task(3, "release_inventory"), release_headers, Succeeded(b"{}"))
    complete = CompleteActivity(WID, RUN, 3, 1, b"{}")
    d = Decision(
        (
            saga.event(ActivityCompleted(3, 1, b"{}"), 1_900),
            saga.event(WorkflowFailed("CardDeclined", "declined", b"null"), 1_900),
        )
    )
    events, _ = saga.decide(complete, saga.message(commands, complete, released), d)
    return recorded + events


def test_a_state_left_is_a_span_in_the_runs_trace(saga: Saga) -> None:
    start = StartWorkflow(WID, "machine", b"{}")
    d = Decision(
        (
            saga.event(WorkflowStarted("machine", 1, b"{}", 7), 1_000),
            saga.event(StateTransitioned("Init", "Pass", "entered"), 1_000),
            saga.event(StateTransitioned("Init", "Pass", "succeeded", next_state="Go"), 1_000),
            saga.event(StateTransitioned("Go", "Fail", "entered"), 1_000),
            saga.event(StateTransitioned("Go", "Fail", "failed", error="E", cause="c"), 1_000),
            saga.event(WorkflowFailed("E", "c", b"null"), 1_000),
        )
    )
    saga.decide(start, None, d)
    spans = saga.spans()
    assert "state Init" in spans and "state Go" in spans
    assert len([name for name in spans if name.startswith("state ")]) == 2  # none for entering
    init, go = spans["state Init"], spans["state Go"]
    assert init.attributes is not None and init.attributes["sagaflow.state.next"] == "Go"
    assert init.context.trace_id == spans["start machine"].context.trace_id
    assert go.status.status_code is StatusCode.ERROR and go.status.description == "E: c"


def test_compensated_saga_is_one_trace_across_the_hops(saga: Saga) -> None:
    run_compensated_checkout(saga)
    spans = saga.spans()
    assert len({s.context.trace_id for s in spans.values()}) == 1

    def parent_of(name: str) -> str:
        p = spans[name].parent
        assert p is not None, f"{name} has no parent"
        (found,) = [s.name for s in spans.values() if s.context.span_id == p.span_id]
        return found

    expected = {
        "start checkout": "sagaflow start checkout",
        "schedule reserve_inventory": "start checkout",
        "execute reserve_inventory": "schedule reserve_inventory",
        "run reserve_inventory": "execute reserve_inventory",
        "publish result reserve_inventory": "execute reserve_inventory",
        "complete reserve_inventory": "execute reserve_inventory",
        "schedule charge_card": "complete reserve_inventory",
        "execute charge_card": "schedule charge_card",
        "complete charge_card": "execute charge_card",
        "compensate release_inventory": "complete charge_card",
        "execute release_inventory": "compensate release_inventory",
        "complete release_inventory": "execute release_inventory",
        "workflow failed": "complete release_inventory",
    }
    for child, parent in expected.items():
        assert parent_of(child) == parent, child
    assert spans["sagaflow start checkout"].parent is None
    services = {n: s.resource.attributes["service.name"] for n, s in spans.items()}
    assert services["start checkout"] == "orchestrator"
    assert services["execute charge_card"] == "worker"

    errors = {n for n, s in spans.items() if s.status.status_code is StatusCode.ERROR}
    assert errors == {
        "execute charge_card",
        "run charge_card",
        "complete charge_card",
        "workflow failed",
    }
    execute = spans["execute charge_card"]
    assert [e.name for e in execute.events] == ["idempotency claim", "exception"]
    assert execute.events[1].attributes == {
        "exception.type": "CardDeclined",
        "exception.message": "card tok_declined was declined",
        "sagaflow.activity.retryable": False,
    }
    assert execute.kind is SpanKind.CONSUMER
    attrs = execute.attributes or {}
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.destination.name"] == CONFIG.topics.tasks("default")
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.kafka.message.key"] == WID
    assert (
        attrs["sagaflow.activity.name"],
        attrs["sagaflow.activity.seq"],
        attrs["sagaflow.activity.attempt"],
    ) == ("charge_card", 2, 1)
    assert attrs["sagaflow.idempotency.outcome"] == "Acquired"
    compensate = spans["compensate release_inventory"].attributes or {}
    assert compensate["sagaflow.activity.compensation"] is True
    assert compensate["sagaflow.workflow.type"] == "checkout"
    complete = spans["complete charge_card"].attributes or {}
    assert complete["messaging.destination.name"] == CONFIG.topics.commands
    assert isinstance(complete["messaging.kafka.message.offset"], int)


def test_every_event_record_names_the_span_that_recorded_it(saga: Saga) -> None:
    recorded = run_compensated_checkout(saga)
    spans = saga.spans()
    names = [
        "start checkout",
        "schedule reserve_inventory",
        "complete reserve_inventory",
        "schedule charge_card",
        "complete charge_card",
        "compensate release_inventory",
        "complete release_inventory",
        "workflow failed",
    ]
    for headers, name in zip(recorded, names, strict=True):
        context = telemetry.extract(headers)
        assert context is not None and context.span_id == spans[name].context.span_id, name


def test_a_rebuild_recovers_the_trace_without_spans(saga: Saga) -> None:
    commands = CONFIG.topics.commands
    start = StartWorkflow(WID, "checkout", b"{}")
    start_msg = saga.message(
        commands, start, telemetry.command_headers(saga.client, commands)(start)
    )
    events = (
        saga.event(WorkflowStarted("checkout", 1, b"{}", 7), 1_000),
        saga.event(scheduled(1, "charge_card"), 1_000),
    )
    recorded, (task_headers,) = saga.decide(
        start, start_msg, Decision(events, (task(1, "charge_card"),))
    )
    spans_before = len(saga.exporter.get_finished_spans())

    # A new process: rebuild hands it the committed events with their headers.
    exporter = InMemorySpanExporter()
    fresh = telemetry.with_processor(SimpleSpanProcessor(exporter), "orchestrator-2")
    metrics = OrchestratorMetrics()
    restarted = Observer(CONFIG, fresh, metrics)
    for event, headers in zip(events, recorded, strict=True):
        restarted.restored(event, headers)
    restarted.rebuilt(0, len(events), 0.25)
    restarted.committed(0, 0, 0, 0, 0.001)  # ends whatever spans are open: there are none
    assert exporter.get_finished_spans() == ()

    done = saga.work(task(1, "charge_card"), task_headers, Succeeded(b"{}"))
    complete = CompleteActivity(WID, RUN, 1, 1, b"{}")
    msg = saga.message(commands, complete, done)
    decision = Decision((saga.event(ActivityCompleted(1, 1, b"{}"), 1_500),))
    (headers,) = observe(restarted, complete, msg, saga.with_steps(decision)).events
    restarted.committed(1, 1, 0, 0, 0.002)

    (span,) = exporter.get_finished_spans()
    (worker,) = [
        s
        for s in saga.exporter.get_finished_spans()[spans_before:]
        if s.name == "execute charge_card"
    ]
    assert span.name == "complete charge_card"
    assert span.context.trace_id == worker.context.trace_id
    assert span.parent is not None and span.parent.span_id == worker.context.span_id
    assert telemetry.extract(headers).trace_id == worker.context.trace_id  # type: ignore[union-attr]
    # Step latency comes from the events' own timestamps, across the restart.
    assert metrics.registry.get_sample_value(
        "sagaflow_step_latency_seconds_sum", {"activity": "charge_card", "outcome": "completed"}
    ) == pytest.approx(0.5)
    assert metrics.registry.get_sample_value("sagaflow_rebuild_seconds_count") == 1


def test_an_aborted_batch_exports_nothing_and_counts_nothing(saga: Saga) -> None:
    start = StartWorkflow(WID, "checkout", b"{}")
    decision = Decision((saga.event(WorkflowStarted("checkout", 1, b"{}", 7), 1_000),))
    observe(saga.orchestrator, start, None, decision)
    saga.orchestrator.aborted()
    saga.orchestrator.committed(0, 0, 0, 0, 0.001)
    assert saga.exporter.get_finished_spans() == ()
    sample = saga.orchestrator_metrics.registry.get_sample_value
    assert sample("sagaflow_transactions_aborted_total") == 1
    assert not sample("sagaflow_commands_processed_total", {"type": "StartWorkflow"})


def test_metrics(saga: Saga) -> None:
    run_compensated_checkout(saga)
    om = saga.orchestrator_metrics.registry.get_sample_value
    assert om("sagaflow_commands_processed_total", {"type": "CompleteActivity"}) == 2
    assert om("sagaflow_commands_processed_total", {"type": "FailActivity"}) == 1
    assert om("sagaflow_events_appended_total", {"type": "ActivityScheduled"}) == 3
    assert om("sagaflow_transactions_committed_total") == 4
    assert om("sagaflow_transaction_commit_seconds_count") == 4
    assert om("sagaflow_tasks_produced_total") == 3
    assert om(
        "sagaflow_step_latency_seconds_sum", {"activity": "charge_card", "outcome": "failed"}
    ) == pytest.approx(0.5)
    wm = saga.worker_metrics.registry.get_sample_value
    assert (
        wm("sagaflow_activity_executions_total", {"activity": "charge_card", "outcome": "Failed"})
        == 1
    )
    assert (
        wm(
            "sagaflow_activity_duration_seconds_count",
            {"activity": "release_inventory", "outcome": "Succeeded"},
        )
        == 1
    )
    t = task(9, "charge_card")
    saga.worker.claimed(TaskTrace(ConsumedTask(t, "t", 0, 1, None, (), "g")), "AlreadyCompleted")
    saga.worker.dead_lettered("worker.decode")
    assert (
        wm(
            "sagaflow_idempotency_hits_total",
            {"activity": "charge_card", "outcome": "AlreadyCompleted"},
        )
        == 1
    )
    assert wm("sagaflow_dlq_records_total", {"stage": "worker.decode"}) == 1


def test_metrics_handler_serves_the_registry_and_lag() -> None:
    metrics = OrchestratorMetrics()
    metrics.commands_processed.labels("StartWorkflow").inc()
    metrics.add_lag_source("orchestrator", lambda: {0: 3, 1: 0})

    async def scrape() -> tuple[int, str, str]:
        app = web.Application()
        app.router.add_get("/metrics", metrics_handler(metrics))
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/metrics")
            return response.status, response.headers["Content-Type"], await response.text()

    status, content_type, body = asyncio.run(scrape())
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    assert 'sagaflow_commands_processed_total{type="StartWorkflow"} 1.0' in body
    assert 'sagaflow_consumer_lag{consumer="orchestrator",partition="0"} 3.0' in body
    assert 'sagaflow_consumer_lag_unknown{consumer="orchestrator"} 0.0' in body


def test_an_unsampled_workflow_makes_no_span_at_any_hop_but_carries_the_decision() -> None:
    """The client's sampler said no: the orchestrator and the worker follow it (parent-based),
    make no spans, and every record still carries the unsampled traceparent."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

    exporter = InMemorySpanExporter()
    providers = []
    for name, sampler in (("client", ALWAYS_OFF), ("orchestrator", None), ("worker", None)):
        provider = TracerProvider(
            resource=Resource.create({"service.name": name}),
            sampler=sampler or ParentBased(ALWAYS_ON),
            shutdown_on_exit=False,
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(
            telemetry.Telemetry(provider.get_tracer(telemetry.INSTRUMENTATION), provider, name)
        )
    om, wm = OrchestratorMetrics(), WorkerMetrics()
    saga = Saga(
        exporter,
        providers[0],
        Observer(CONFIG, providers[1], om),
        WorkerObserver(CONFIG, providers[2], wm),
        om,
        wm,
    )
    try:
        headers = run_compensated_checkout(saga)
    finally:
        for p in providers:
            p.shutdown()
    assert exporter.get_finished_spans() == ()
    assert headers and all(headers), "every event record carries a traceparent"
    for record in headers:
        parent = telemetry.extract(record)
        assert parent is not None and not parent.trace_flags.sampled


def test_an_activity_cancellation_has_a_span_and_heartbeats_have_none(saga: Saga) -> None:
    commands = CONFIG.topics.commands
    start = StartWorkflow(WID, "checkout", b"{}")
    start_msg = saga.message(
        commands, start, telemetry.command_headers(saga.client, commands)(start)
    )
    d = Decision(
        (
            saga.event(WorkflowStarted("checkout", 1, b"{}", 7), 1_000),
            saga.event(scheduled(1, "crunch"), 1_000),
        ),
        (task(1, "crunch"),),
    )
    saga.decide(start, start_msg, d)
    beat = HeartbeatActivity(WID, RUN, 1, 1, b"5")
    d = Decision((saga.event(ActivityHeartbeatRecorded(1, 1, b"5"), 1_100),))
    saga.decide(beat, saga.message(commands, beat, []), d)
    signal = SignalWorkflow(WID, "stop", b"null")
    d = Decision(
        (
            saga.event(SignalReceived("stop", b"null"), 1_200),
            saga.event(ActivityCancelRequested(1), 1_200),
        )
    )
    saga.decide(signal, saga.message(commands, signal, []), d)
    spans = saga.spans()
    cancel = spans["request cancel step 1"]
    assert cancel.attributes is not None and cancel.attributes["sagaflow.activity.seq"] == 1
    assert cancel.parent is not None
    assert cancel.parent.span_id == spans["signal stop"].context.span_id
    assert not [name for name in spans if "heartbeat" in name]
