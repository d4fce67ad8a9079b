"""Commands that act on workflows: start, signal, cancel, terminate; watch follows one live.

They produce Avro commands straight to the commands topic (keyed by workflow id, murmur2), the
same way every sagaflow client does.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagaflow import telemetry
from sagaflow.cli.eventlog import Logged, Undecodable, workflow_events
from sagaflow.cli.kafkaio import open_producer, partition_count
from sagaflow.cli.output import (
    EXIT_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    emit,
    event_line,
    event_to_json,
    json_line,
    wants_json,
)
from sagaflow.client import Client, DeliveryError, payload
from sagaflow.config import Config
from sagaflow.core import kinds
from sagaflow.core.messages import (
    Command,
    CommandRejected,
    Event,
    WorkflowCompleted,
    WorkflowStarted,
)
from sagaflow.core.status import CLOSED_STATUSES

# --------------------------------------------------------------------------- arguments


def parse_json_arg(option: str, raw: str) -> Any:
    """A JSON argument given inline, as @path, or @- for stdin."""
    if raw.startswith("@"):
        source = raw[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise CliError(
                f"{option} {raw}: cannot read {source!r} ({exc.strerror}); "
                "pass an existing file as @path",
                EXIT_USAGE,
            ) from exc
    else:
        text = raw
    try:
        return json.loads(text)
    except ValueError as exc:
        where = f"file {raw[1:]!r}" if raw.startswith("@") else "the argument"
        raise CliError(
            f"{option}: {where} is not JSON ({exc}); pass a JSON document, e.g. "
            f"{option} '{{\"order_id\": 42}}', or @file.json",
            EXIT_USAGE,
        ) from exc


def generated_workflow_id(workflow_type: str) -> str:
    """The client picks ids; the type keeps them readable, the suffix keeps them unique."""
    return f"{workflow_type}-{uuid.uuid4().hex[:12]}"


def _check_size(config: Config, what: str, data: bytes) -> None:
    if len(data) > config.max_payload_bytes:
        raise CliError(
            f"{what} is {len(data)} bytes, over the {config.max_payload_bytes}-byte "
            "limit (SAGAFLOW_MAX_PAYLOAD_BYTES); the engine would reject it. Pass a "
            "reference (an id, a URL) instead of the data",
            EXIT_USAGE,
        )


# --------------------------------------------------------------------------- tracing

_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def traceparent_of(headers: Sequence[tuple[str, bytes]]) -> str | None:
    for key, value in headers:
        if key == "traceparent":
            return value.decode("ascii", "replace")
    return None


def trace_id_of(traceparent: str) -> str:
    """The trace id of a W3C traceparent ('00-<trace id>-<span id>-<flags>')."""
    return traceparent.split("-")[1]


def new_traceparent() -> str:
    """A fresh, sampled W3C traceparent: the root of a new trace."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@contextmanager
def _telemetry() -> Iterator[telemetry.Telemetry]:
    """Tracing from the OTEL_* variables when an OTLP endpoint is configured (spans are flushed
    before the CLI exits); otherwise a no-op tracer, so the CLI never waits on a collector it
    was not told about."""
    configured = any(os.environ.get(v, "").strip() for v in _OTLP_ENDPOINTS)
    try:
        tel = telemetry.from_env("sagaflow-cli") if configured else telemetry.disabled()
    except telemetry.TelemetryConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    try:
        yield tel
    finally:
        tel.shutdown()


class _TracedHeaders:
    """Client(headers=...): a producer span per command (sagaflow.telemetry), or, when tracing
    is off, a fresh traceparent, so a workflow's trace always has an id we can print."""

    def __init__(self, tel: telemetry.Telemetry, topic: str) -> None:
        self._spans = telemetry.command_headers(tel, topic)
        self.sent: list[tuple[str, bytes]] = []

    def __call__(self, command: Command) -> list[tuple[str, bytes]]:
        headers = self._spans(command)
        if traceparent_of(headers) is None:
            headers = [*headers, ("traceparent", new_traceparent().encode())]
        self.sent = headers
        return headers

    @property
    def trace_id(self) -> str:
        tp = traceparent_of(self.sent)
        return trace_id_of(tp) if tp else ""


# --------------------------------------------------------------------------- start, signal, cancel


def _client(config: Config, tel: telemetry.Telemetry) -> tuple[Client, _TracedHeaders]:
    """A client whose producer gives up quickly, and its header factory. The commands topic's
    partitions are asked for first, with a short timeout, so an unreachable broker fails fast."""
    producer = open_producer(config)
    partition_count(config, producer, config.topics.commands)
    headers = _TracedHeaders(tel, config.topics.commands)
    return Client(config, producer=producer, headers=headers), headers


def _delivery_failed(exc: DeliveryError) -> CliError:
    return CliError(
        f"{exc}; start the local stack with `make up` or check SAGAFLOW_KAFKA_BOOTSTRAP",
        EXIT_UNAVAILABLE,
    )


def cmd_start(config: Config, args: argparse.Namespace) -> None:
    value = parse_json_arg("--input", args.input)
    data = payload(value)
    _check_size(config, "--input", data)
    if args.version is not None and args.version < 1:
        raise CliError(
            f"--version {args.version}: versions start at 1; omit --version to start the newest",
            EXIT_USAGE,
        )
    workflow_id = args.id or generated_workflow_id(args.type)
    with _telemetry() as tel:
        client, headers = _client(config, tel)
        try:
            client.start(
                args.type,
                value,
                workflow_id=workflow_id,
                version=args.version,
                execution_timeout_s=args.execution_timeout or 0,
                run_timeout_s=args.run_timeout or 0,
            )
        except DeliveryError as exc:
            raise _delivery_failed(exc) from exc
    trace_id = headers.trace_id
    partition = client.partitions[workflow_id]
    emit(
        args,
        {
            "workflow_id": workflow_id,
            "workflow_type": args.type,
            "version": args.version,
            "trace_id": trace_id,
            "topic": config.topics.commands,
            "partition": partition,
        },
        f"{workflow_id}\n"
        f"  StartWorkflow {args.type}"
        f"{'' if args.version is None else f' v{args.version}'} sent to "
        f"{config.topics.commands} partition {partition}\n"
        f"  trace {trace_id}\n"
        f"  follow it with: sagaflow watch {workflow_id}",
    )


def cmd_signal(config: Config, args: argparse.Namespace) -> None:
    value = parse_json_arg("--payload", args.payload) if args.payload is not None else None
    _check_size(config, "--payload", payload(value))
    with _telemetry() as tel:
        client, _ = _client(config, tel)
        try:
            client.signal(args.id, args.name, value)
        except DeliveryError as exc:
            raise _delivery_failed(exc) from exc
    emit(
        args,
        {
            "workflow_id": args.id,
            "signal": args.name,
            "topic": config.topics.commands,
            "partition": client.partitions[args.id],
        },
        f"signal {args.name} sent to {args.id}",
    )


def cmd_cancel(config: Config, args: argparse.Namespace) -> None:
    with _telemetry() as tel:
        client, _ = _client(config, tel)
        try:
            client.cancel(args.id, args.reason)
        except DeliveryError as exc:
            raise _delivery_failed(exc) from exc
    emit(
        args,
        {
            "workflow_id": args.id,
            "reason": args.reason,
            "topic": config.topics.commands,
            "partition": client.partitions[args.id],
        },
        f"cancel requested for {args.id}",
    )


def cmd_terminate(config: Config, args: argparse.Namespace) -> None:
    by = args.by or f"cli:{getpass.getuser()}"
    with _telemetry() as tel:
        client, _ = _client(config, tel)
        try:
            client.terminate(args.id, args.reason, by)
        except DeliveryError as exc:
            raise _delivery_failed(exc) from exc
    emit(
        args,
        {
            "workflow_id": args.id,
            "reason": args.reason,
            "by": by,
            "topic": config.topics.commands,
            "partition": client.partitions[args.id],
        },
        f"terminate sent for {args.id} (by {by}); follow it with: sagaflow watch {args.id}",
    )


# --------------------------------------------------------------------------- watch


def _closes(event: Event) -> bool:
    """Ends a watch: the workflow closed for good (continue-as-new keeps the id going)."""
    return kinds.CLOSING_STATUS.get(type(event.body)) in CLOSED_STATUSES


def cmd_watch(config: Config, args: argparse.Namespace) -> int:
    as_json = wants_json(args)
    started = False
    last: Event | None = None

    def stop(event: Event) -> bool:
        # A start refused before any run began means there is nothing to wait for.
        body = event.body
        return _closes(event) or (
            isinstance(body, CommandRejected)
            and body.command_type == "StartWorkflow"
            and not started
        )

    for item in workflow_events(config, args.id, timeout_s=args.timeout, follow=True, stop=stop):
        if isinstance(item, Undecodable):
            line = {
                "undecodable": True,
                "partition": item.partition,
                "offset": item.offset,
                "reason": item.reason,
            }
            where = f"{config.topics.events}[{item.partition}]@{item.offset}"
            text = f"undecodable event at {where}: {item.reason}"
            print(json_line(line) if as_json else text, flush=True)
            continue
        assert isinstance(item, Logged)
        event = item.event
        started = started or isinstance(event.body, WorkflowStarted)
        last = event
        print(json_line(event_to_json(event)) if as_json else event_line(event), flush=True)
        if stop(event):
            break
    if last is None or not stop(last):
        hint = (
            "no event yet: was it started? check `sagaflow show " + args.id + "`"
            if last is None
            else "it is still running"
        )
        raise CliError(
            f"workflow {args.id} did not end within {args.timeout:g}s ({hint}); "
            "watch again with a larger --timeout",
            EXIT_TIMEOUT,
        )
    return 0 if isinstance(last.body, WorkflowCompleted) else EXIT_FAILED
