"""What the CLI prints: its one error type, --json vs human output, and how events read."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from sagaflow.core.messages import (
    ActivityAttemptFailed,
    ActivityCompleted,
    ActivityFailed,
    ActivityRetried,
    ActivityScheduled,
    CancelRequested,
    CommandRejected,
    Event,
    MarkerRecorded,
    SignalReceived,
    StateTransitioned,
    TimerCancelled,
    TimerFired,
    TimerStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowParked,
    WorkflowStarted,
    WorkflowUnparked,
)

EXIT_FAILED = 1
"""The command ran, and what it reports is bad news (workflow failed, replay found a bug)."""
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
"""Kafka or Postgres could not be reached, or a topic is missing."""
EXIT_TIMEOUT = 124
"""Like timeout(1): the thing waited for did not happen in time."""


class CliError(Exception):
    """One line for stderr; the exit code says what kind of trouble it was."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    """Print `data` as JSON under --json, else the human text."""
    if wants_json(args):
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(human)


def json_line(data: Any) -> str:
    """One JSON document on one line (for streams: watch --json)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def payload_value(raw: bytes) -> Any:
    """A recorded JSON payload as a value; bytes that are not JSON stay visible as text."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"undecodable_payload_hex": raw.hex()}


def compact(raw: bytes, limit: int = 120) -> str:
    """A payload for a human line: compact JSON, cut at `limit` characters."""
    value = payload_value(raw)
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fmt_ms(epoch_ms: int | None) -> str:
    if not epoch_ms:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return payload_value(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def record_to_json(record: Any) -> dict[str, Any]:
    """A message dataclass as a JSON object; payload bytes become the JSON they hold."""
    fields = {f.name: _jsonable(getattr(record, f.name)) for f in dataclasses.fields(record)}
    return {"type": type(record).__name__, **fields}


def event_to_json(event: Event) -> dict[str, Any]:
    return {
        "workflow_id": event.workflow_id,
        "seq": event.seq,
        "run_id": event.run_id,
        "recorded_at_ms": event.recorded_at_ms,
        "event": record_to_json(event.body),
    }


def describe(event: Event) -> str:
    """What happened, in a few words."""
    b = event.body
    if isinstance(b, WorkflowStarted):
        return f"started {b.workflow_type} v{b.version} input={compact(b.input)}"
    if isinstance(b, ActivityScheduled):
        kind = "compensation" if b.compensation else "activity"
        return f"{kind} {b.activity_name} scheduled on {b.task_queue} (step {b.activity_seq})"
    if isinstance(b, ActivityAttemptFailed):
        what = "timed out" if b.timed_out else f"failed: {b.error_type}: {b.message}"
        return (
            f"activity step {b.activity_seq} attempt {b.attempt} {what}; "
            f"retry at {fmt_ms(b.retry_at_ms)}"
        )
    if isinstance(b, ActivityRetried):
        return f"activity step {b.activity_seq} attempt {b.attempt} dispatched"
    if isinstance(b, ActivityCompleted):
        return f"activity step {b.activity_seq} completed: {compact(b.result)}"
    if isinstance(b, ActivityFailed):
        return (
            f"activity step {b.activity_seq} failed for good ({b.reason}) after attempt "
            f"{b.attempt}: {b.error_type}: {b.message}"
        )
    if isinstance(b, TimerStarted):
        return f"timer {b.timer_seq} started, fires at {fmt_ms(b.fire_at_ms)}"
    if isinstance(b, TimerFired):
        return f"timer {b.timer_seq} fired"
    if isinstance(b, TimerCancelled):
        return f"timer {b.timer_seq} cancelled"
    if isinstance(b, SignalReceived):
        return f"signal {b.name} received: {compact(b.payload)}"
    if isinstance(b, CancelRequested):
        return f"cancel requested: {b.reason or '(no reason)'}"
    if isinstance(b, MarkerRecorded):
        return f"patch {b.change_id} recorded"
    if isinstance(b, StateTransitioned):
        return _describe_state(b)
    if isinstance(b, WorkflowCompleted):
        return f"COMPLETED result={compact(b.result)}"
    if isinstance(b, WorkflowFailed):
        return f"FAILED {b.error_type}: {b.message}"
    if isinstance(b, WorkflowCancelled):
        return f"CANCELLED {b.reason or '(no reason)'}"
    if isinstance(b, WorkflowContinuedAsNew):
        return f"continued as new run {b.new_run_id} input={compact(b.input)}"
    if isinstance(b, WorkflowParked):
        return f"PARKED ({b.kind}): {b.message}"
    if isinstance(b, WorkflowUnparked):
        return "unparked: newly deployed code resumed it"
    assert isinstance(b, CommandRejected)
    return f"REJECTED {b.command_type} ({b.reason}): {b.message}"


def _describe_state(b: StateTransitioned) -> str:
    where = f" in {b.scope}" if b.scope else ""
    head = f"state {b.state} ({b.state_type}){where} {b.transition}"
    if b.transition == "succeeded":
        head += f" output={compact(b.output)}"
    elif b.transition == "failed":
        head += f": {b.error}: {b.cause}" + (" (caught)" if b.next_state else "")
    return head + (f" -> {b.next_state}" if b.next_state else "")


def event_line(event: Event) -> str:
    return f"{fmt_ms(event.recorded_at_ms)}  #{event.seq:<4} {describe(event)}"
