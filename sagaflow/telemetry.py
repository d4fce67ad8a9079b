"""Tracing: a TracerProvider built from the standard OTEL_* variables, and W3C trace context in
Kafka headers.

One `Telemetry` object per process, built once in `__main__` and handed to whoever makes spans
(the hooks, the client's header factory). We deliberately do not install it as OpenTelemetry's
global provider: every span sagaflow makes goes through the tracer it was given, which keeps
tests free to build as many providers as they like (each with an in-memory exporter) without
one test's provider leaking into the next.

Variables read (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
OTEL_SDK_DISABLED (true -> a no-op tracer, nothing exported), OTEL_TRACES_SAMPLER and
OTEL_TRACES_SAMPLER_ARG (see `sampler_from_env`; sagaflow's default samples 10 % of workflows,
decided once where the trace starts and carried in the traceparent flags to every hop),
OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL (http/protobuf by default, or
grpc), OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT. The exporters and the batch processor read their
other variables (headers, timeouts, OTEL_BSP_*) themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sagaflow.core.messages import (
    CancelWorkflow,
    Command,
    QueryWorkflow,
    SignalWorkflow,
    StartWorkflow,
    UpdateWorkflow,
)

if TYPE_CHECKING:
    # Only the alias: the client pulls in the codec and Kafka, which span-making code in the
    # services and tests does not need.
    from sagaflow.client import HeaderFactory

KafkaHeaders = list[tuple[str, bytes]]
"""What confluent-kafka takes as `headers=` (and, with None values allowed, gives back)."""

INSTRUMENTATION = "sagaflow"
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = frozenset(_PROPAGATOR.fields)  # traceparent, tracestate


class TelemetryConfigError(ValueError):
    """An OTEL_* variable has a value sagaflow cannot use."""


@dataclass
class Telemetry:
    """The process's tracer and the provider behind it (None when tracing is disabled)."""

    tracer: Tracer
    provider: TracerProvider | None = None
    service_name: str = ""
    _closed: bool = field(default=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def shutdown(self) -> None:
        """Export what is still buffered and stop; idempotent."""
        if self.provider is not None and not self._closed:
            self._closed = True
            self.provider.shutdown()

    def force_flush(self, timeout_ms: int = 10_000) -> bool:
        return self.provider.force_flush(timeout_ms) if self.provider is not None else True


def disabled() -> Telemetry:
    """A tracer whose spans are never recorded (and inject nothing)."""
    return Telemetry(trace.NoOpTracerProvider().get_tracer(INSTRUMENTATION))


def with_processor(processor: SpanProcessor, service_name: str = "sagaflow") -> Telemetry:
    """A Telemetry that hands finished spans to `processor` (tests: an in-memory exporter)."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
    )
    provider.add_span_processor(processor)
    return Telemetry(provider.get_tracer(INSTRUMENTATION), provider, service_name)


def from_env(default_service_name: str, env: Mapping[str, str] | None = None) -> Telemetry:
    """Build tracing from the OTEL_* variables; `default_service_name` when none is set."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return disabled()
    service_name = env.get("OTEL_SERVICE_NAME", "").strip() or default_service_name
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES; the explicit name wins over it.
    resource = Resource.create({"service.name": service_name})
    provider = TracerProvider(resource=resource, sampler=sampler_from_env(env))
    provider.add_span_processor(BatchSpanProcessor(_exporter(env)))
    return Telemetry(provider.get_tracer(INSTRUMENTATION), provider, service_name)


DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_SAMPLER_ARG = 0.1


def sampler_from_env(env: Mapping[str, str]) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names (the specification's values), with
    OTEL_TRACES_SAMPLER_ARG as the ratio of the ratio samplers.

    Unset, sagaflow samples 10 % of new traces and follows the parent everywhere else
    (`parentbased_traceidratio`, 0.1): a workflow's start decides, and the decision travels in
    the traceparent flags through every Kafka hop, so a workflow is traced whole or not at all.
    Each traced step costs roughly 0.7 ms of CPU across the services (docs/scaling.md)."""
    name = (env.get("OTEL_TRACES_SAMPLER") or DEFAULT_SAMPLER).strip().lower()
    raw_arg = (env.get("OTEL_TRACES_SAMPLER_ARG") or "").strip()
    ratio = DEFAULT_SAMPLER_ARG if name == DEFAULT_SAMPLER and not raw_arg else 1.0
    if raw_arg:
        try:
            ratio = float(raw_arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise TelemetryConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={raw_arg!r} is not a ratio between 0 and 1; set e.g. "
                "0.1 to trace one workflow in ten"
            )
    samplers: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(TraceIdRatioBased(ratio)),
    }
    sampler = samplers.get(name)
    if sampler is None:
        raise TelemetryConfigError(
            f"OTEL_TRACES_SAMPLER={name!r} is not supported; use one of {', '.join(samplers)}"
        )
    return sampler


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    signal_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        # The spec: a signal-specific endpoint is used as is; the base endpoint gets the
        # signal's path appended.
        endpoint = signal_endpoint or f"{(base or 'http://localhost:4318').rstrip('/')}/v1/traces"
        return HttpExporter(endpoint=endpoint)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=signal_endpoint or base or "http://localhost:4317")
    raise TelemetryConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; use 'http/protobuf' "
        "(Jaeger's port 4318) or 'grpc' (port 4317)"
    )


# --------------------------------------------------------------------------- propagation


def inject(span_context: SpanContext | None) -> KafkaHeaders:
    """traceparent (and tracestate) headers naming `span_context`; [] when it is invalid."""
    if span_context is None or not span_context.is_valid:
        return []
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(NonRecordingSpan(span_context)))
    return [(k, v.encode()) for k, v in carrier.items()]


def extract(
    headers: Mapping[str, str | bytes | None] | Iterable[tuple[str, str | bytes | None]] | None,
) -> SpanContext | None:
    """The remote span context in Kafka headers (as `Message.headers()` gives them), or None
    when there is none (or it is malformed)."""
    carrier: dict[str, str] = {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, value in pairs:
        if key in _TRACE_HEADERS and value is not None:
            carrier[key] = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if "traceparent" not in carrier:
        return None
    span_context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return span_context if span_context.is_valid else None


def parent(span_context: SpanContext | None) -> Context:
    """A context whose current span is `span_context`; an empty one starts a new trace."""
    if span_context is None or not span_context.is_valid:
        return Context()
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


def links(*span_contexts: SpanContext | None) -> list[Link]:
    return [Link(sc) for sc in span_contexts if sc is not None and sc.is_valid]


def trace_id_hex(span_context: SpanContext) -> str:
    return trace.format_trace_id(span_context.trace_id)


# --------------------------------------------------------------------------- the client side


def command_headers(telemetry: Telemetry, topic: str) -> HeaderFactory:
    """A `Client(headers=...)` factory: a producer span per command, its context in headers.

    StartWorkflow gets "sagaflow start <type>", which becomes the parent of the workflow run's
    trace. Signals and cancellations get their own short spans; the orchestrator links them
    into the workflow's trace (their sender does not know that trace). Each span is a child of
    whatever span is current in the caller (an HTTP request, a CLI invocation), if any.
    """

    def headers(command: Command) -> KafkaHeaders:
        if isinstance(command, StartWorkflow):
            name = f"sagaflow start {command.workflow_type}"
            extra = {"sagaflow.workflow.type": command.workflow_type}
        elif isinstance(command, SignalWorkflow):
            name, extra = f"sagaflow signal {command.name}", {"sagaflow.signal.name": command.name}
        elif isinstance(command, CancelWorkflow):
            name, extra = "sagaflow cancel", {}
        elif isinstance(command, QueryWorkflow):
            name, extra = f"sagaflow query {command.name}", {"sagaflow.query.name": command.name}
        elif isinstance(command, UpdateWorkflow):
            name = f"sagaflow update {command.name}"
            extra = {"sagaflow.update.name": command.name, "sagaflow.update.id": command.update_id}
        else:
            # Workers' commands carry their execution span (sagaflow_worker.observe).
            return inject(trace.get_current_span().get_span_context())
        span = telemetry.tracer.start_span(
            name,
            kind=SpanKind.PRODUCER,
            attributes={
                **producer_attributes(topic, command.workflow_id),
                "sagaflow.workflow.id": command.workflow_id,
                **extra,
            },
        )
        try:
            return inject(span.get_span_context())
        finally:
            # The send itself is the client's business (it may retry); the span marks the
            # point the trace begins.
            span.end()

    return headers


def producer_attributes(topic: str, key: str, partition: int | None = None) -> dict[str, str | int]:
    """OpenTelemetry messaging attributes of a record sagaflow sends to Kafka."""
    attrs: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": key,
    }
    if partition is not None:
        attrs["messaging.kafka.destination.partition"] = partition
    return attrs


def consumer_attributes(
    topic: str | None,
    partition: int | None,
    offset: int | None,
    key: bytes | str | None,
    group: str | None = None,
) -> dict[str, str | int]:
    """OpenTelemetry messaging attributes of a record sagaflow processes."""
    attrs: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
    }
    if topic is not None:
        attrs["messaging.destination.name"] = topic
    if partition is not None:
        attrs["messaging.kafka.destination.partition"] = partition
    if offset is not None:
        attrs["messaging.kafka.message.offset"] = offset
    if key is not None:
        attrs["messaging.kafka.message.key"] = (
            key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        )
    if group:
        attrs["messaging.consumer.group.name"] = group
    return attrs


__all__ = [
    "KafkaHeaders",
    "Telemetry",
    "TelemetryConfigError",
    "command_headers",
    "consumer_attributes",
    "disabled",
    "extract",
    "from_env",
    "inject",
    "links",
    "parent",
    "producer_attributes",
    "trace_id_hex",
    "with_processor",
]
