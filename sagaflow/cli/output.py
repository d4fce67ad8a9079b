"""What the CLI prints: its one error type, --json vs human output, and how events read."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from sagaflow.core import kinds
from sagaflow.core.messages import Event

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


fmt_ms = kinds.when


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
    """What happened, in a few words (the same words everywhere: sagaflow.core.kinds)."""
    return kinds.describe(event.body)


def event_line(event: Event) -> str:
    return f"{fmt_ms(event.recorded_at_ms)}  #{event.seq:<4} {describe(event)}"
