"""One compensated checkout is one trace in Jaeger, across the client, orchestrator and worker.

Real Kafka, Postgres and Jaeger; both services run as processes exporting OTLP/HTTP. The card
is declined, so the trace must show: the client's start span as root, every worker execution
as the child of the orchestrator span that produced its task, every orchestrator completion as
the child of the worker span whose command carried it, the declined charge in error, and the
compensation that follows it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.trace import SpanContext

from sagaflow import telemetry
from sagaflow.client import Client, Recorded, wait_closed
from sagaflow.core.messages import Command, TimerStarted, WorkflowFailed, WorkflowStarted
from tests.sagas import Deployment, order, prepare
from tests.support import assert_eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@dataclass(frozen=True)
class JaegerSpan:
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_us: int
    tags: dict[str, Any]

    @property
    def error(self) -> bool:
        return self.tags.get("error") is True or self.tags.get("otel.status_code") == "ERROR"


def fetch_trace(query_url: str, trace_id: str) -> list[JaegerSpan]:
    """The trace as Jaeger's query API (v1 JSON) has it so far; [] while it has none."""
    try:
        with urllib.request.urlopen(f"{query_url}/api/traces/{trace_id}", timeout=5) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # not (yet) stored
            return []
        raise
    spans: list[JaegerSpan] = []
    for trace in body.get("data") or []:
        services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
        for s in trace["spans"]:
            parents = [r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
            spans.append(
                JaegerSpan(
                    s["spanID"],
                    parents[0] if parents else None,
                    s["operationName"],
                    services[s["processID"]],
                    s["startTime"],
                    {t["key"]: t["value"] for t in s.get("tags", [])},
                )
            )
    return spans


def test_compensated_checkout_is_one_trace(
    kafka_bootstrap: str, database_url: str, otlp_endpoint: str, jaeger_query_url: str
) -> None:
    run = uuid.uuid4().hex[:8]
    names = {
        "client": f"e2e-client-{run}",
        "orchestrator": f"e2e-orchestrator-{run}",
        "worker": f"e2e-worker-{run}",
    }
    otel = {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export soon, so the poll below is short
    }
    d = prepare(kafka_bootstrap, database_url, "trace", 3, **otel)
    client_tracing = telemetry.from_env(
        "e2e-client", {**otel, "OTEL_SERVICE_NAME": names["client"]}
    )
    try:
        d.orchestrator(OTEL_SERVICE_NAME=names["orchestrator"])
        d.worker(OTEL_SERVICE_NAME=names["worker"])
        trace_id, started = _run_declined_checkout(d, client_tracing, f"trace-{run}")
        # The workflow's first event names the same trace: that is what a restart rebuilds from.
        started_context = telemetry.extract(started.headers)
        assert started_context is not None
        assert telemetry.trace_id_hex(started_context) == trace_id
        # A clean stop flushes what the services still buffer.
        for service in d.services:
            assert service.terminate() == 0, service.tail()
    finally:
        client_tracing.shutdown()
        d.stop()

    spans = assert_eventually(
        lambda: _complete(fetch_trace(jaeger_query_url, trace_id)),
        timeout=60,
        interval=0.5,
        message=f"trace {trace_id} complete in Jaeger at {jaeger_query_url}",
    )
    assert spans is not None
    _assert_tree(spans, names)


def _run_declined_checkout(
    d: Deployment, tracing: telemetry.Telemetry, workflow_id: str
) -> tuple[str, Recorded]:
    factory = telemetry.command_headers(tracing, d.config.topics.commands)
    sent: list[list[tuple[str, bytes]]] = []

    def headers(command: Command) -> list[tuple[str, bytes]]:
        sent.append(factory(command))
        return sent[-1]

    client = Client(d.config, headers=headers)
    client.start("checkout", order(workflow_id, card="tok_declined"), workflow_id=workflow_id)
    tracing.force_flush()
    context = telemetry.extract(sent[0])
    assert context is not None, f"the start command carried no traceparent: {sent[0]}"

    recorded: list[Recorded] = []
    try:
        closed = wait_closed(d.config, [workflow_id], 120, on_event=recorded.append)
    except TimeoutError as exc:
        logs = "\n".join(f"--- {s.name} (alive={s.alive()})\n{s.tail()}" for s in d.services)
        raise AssertionError(f"{exc}\n{logs}") from exc
    assert isinstance(closed[workflow_id].body, WorkflowFailed), closed[workflow_id]
    (started,) = [r for r in recorded if isinstance(r.event.body, WorkflowStarted)]
    return telemetry.trace_id_hex(context), started


def _complete(spans: list[JaegerSpan]) -> list[JaegerSpan] | None:
    """The spans once the last ones of the saga (both sides of the compensation) are in."""
    have = {s.name for s in spans}
    wanted = {"workflow failed", "execute release_inventory", "complete release_inventory"}
    return spans if wanted <= have else None


def _assert_tree(spans: list[JaegerSpan], names: dict[str, str]) -> None:
    by_id = {s.span_id: s for s in spans}

    def one(name: str) -> JaegerSpan:
        found = [s for s in spans if s.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {sorted(by_id_names())}"
        return found[0]

    def by_id_names() -> list[str]:
        return [f"{s.service}:{s.name}" for s in spans]

    def parent(span: JaegerSpan) -> JaegerSpan:
        assert span.parent_id in by_id, f"{span.name}: parent {span.parent_id} not in the trace"
        return by_id[span.parent_id]

    assert {s.service for s in spans} == set(names.values()), by_id_names()

    root = one("sagaflow start checkout")
    assert root.parent_id is None and root.service == names["client"]
    start = one("start checkout")
    assert start.service == names["orchestrator"] and parent(start) is root

    # Kafka hop orchestrator -> worker: the task's traceparent names the dispatching span.
    executions = [s for s in spans if s.name.startswith("execute ")]
    assert {s.name for s in executions} >= {
        "execute reserve_inventory",
        "execute charge_payment",
        "execute release_inventory",
    }
    for ex in executions:
        activity = ex.name.removeprefix("execute ")
        assert ex.service == names["worker"]
        assert ex.tags["messaging.system"] == "kafka"
        assert ex.tags["sagaflow.activity.name"] == activity
        assert parent(ex).service == names["orchestrator"]
        assert parent(ex).name in {
            f"schedule {activity}",
            f"compensate {activity}",
            f"retry {activity}",
        }

    # Kafka hop worker -> orchestrator: the result command's traceparent names the execution.
    for done in (s for s in spans if s.name.startswith("complete ")):
        activity = done.name.removeprefix("complete ")
        assert done.service == names["orchestrator"]
        assert parent(done).name == f"execute {activity}"
        assert parent(done).service == names["worker"]

    # The declined charge is the failed step, on both sides.
    charge = one("execute charge_payment")
    assert charge.error, charge.tags
    failed_step = one("complete charge_payment")
    assert failed_step.error and parent(failed_step) is charge
    assert not one("execute reserve_inventory").error

    # The compensation comes after, caused by the failed step; nothing was charged to refund.
    compensate = one("compensate release_inventory")
    assert compensate.tags["sagaflow.activity.compensation"] is True
    assert parent(compensate) is failed_step
    assert compensate.start_us >= failed_step.start_us
    assert not one("execute release_inventory").error
    assert not any(s.name.endswith("refund_payment") for s in spans)

    closed = one("workflow failed")
    assert closed.error and closed.start_us >= compensate.start_us


def test_the_trace_survives_an_orchestrator_restart(
    kafka_bootstrap: str, database_url: str, otlp_endpoint: str, jaeger_query_url: str
) -> None:
    """kill -9 while the approval timer is pending: the new process rebuilds the run's trace
    context from the events' headers, so the timeout, refund and release join the same trace."""
    run = uuid.uuid4().hex[:8]
    names = {"orchestrator": f"e2e-orchestrator-{run}", "worker": f"e2e-worker-{run}"}
    otel = {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    d = prepare(kafka_bootstrap, database_url, "trace-restart", 3, **otel)
    wid = f"trace-restart-{run}"
    try:
        first = d.orchestrator("orchestrator-1", OTEL_SERVICE_NAME=names["orchestrator"])
        d.worker(OTEL_SERVICE_NAME=names["worker"])
        Client(d.config).start(
            "checkout",
            order(wid, amount_cents=500_000, approval_timeout_s=6),
            workflow_id=wid,
        )
        recorded: list[Recorded] = []

        def on_event(rec: Recorded) -> None:
            recorded.append(rec)
            if isinstance(rec.event.body, TimerStarted) and first.alive():
                # kill -9 loses what the batch processor still buffers; wait until the spans
                # made so far are in Jaeger, so the whole tree can be checked afterwards.
                trace_id = telemetry.trace_id_hex(_context_of(recorded[0]))
                assert_eventually(
                    lambda: (
                        "timer started" in {s.name for s in fetch_trace(jaeger_query_url, trace_id)}
                    ),
                    timeout=30,
                    interval=0.2,
                    message="the first orchestrator's spans reached Jaeger",
                )
                first.kill()
                d.orchestrator("orchestrator-2", OTEL_SERVICE_NAME=names["orchestrator"])

        closed = wait_closed(d.config, [wid], 120, on_event=on_event)
        assert isinstance(closed[wid].body, WorkflowFailed), closed[wid]
        assert not first.alive()
        for service in d.services:
            if service.alive():
                assert service.terminate() == 0, service.tail()
    finally:
        d.stop()
    assert isinstance(recorded[0].event.body, WorkflowStarted)
    trace_id = telemetry.trace_id_hex(_context_of(recorded[0]))

    def complete(spans: list[JaegerSpan]) -> list[JaegerSpan] | None:
        wanted = {"timer fired", "complete refund_payment", "workflow failed"}
        return spans if wanted <= {s.name for s in spans} else None

    spans = assert_eventually(
        lambda: complete(fetch_trace(jaeger_query_url, trace_id)),
        timeout=60,
        interval=0.5,
        message=f"trace {trace_id} has the spans made after the restart",
    )
    assert spans is not None
    # No client span this time: the orchestrator's start span is the root.
    (start,) = [s for s in spans if s.name == "start checkout"]
    assert start.parent_id is None
    # The new process found the timer's span in the TimerStarted event's headers.
    (timer,) = [r for r in recorded if isinstance(r.event.body, TimerStarted)]
    (timer_started,) = [s for s in spans if s.name == "timer started"]
    assert timer_started.span_id == format(_context_of(timer).span_id, "016x")
    (fired,) = [s for s in spans if s.name == "timer fired"]
    assert fired.parent_id == timer_started.span_id
    assert fired.tags["sagaflow.timer.seq"] == timer_started.tags["sagaflow.timer.seq"]
    refund = next(s for s in spans if s.name == "compensate refund_payment")
    execute = next(s for s in spans if s.name == "execute refund_payment")
    assert execute.parent_id == refund.span_id
    # Rebuild created nothing: no span of the replayed history appears twice.
    for name in ("start checkout", "schedule reserve_inventory", "schedule charge_payment"):
        assert sum(s.name == name for s in spans) == 1, name


def _context_of(rec: Recorded) -> SpanContext:
    context = telemetry.extract(rec.headers)
    assert context is not None, f"event {rec.event.seq} of {rec.event.workflow_id} has no trace"
    return context
