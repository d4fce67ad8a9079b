"""Avro encoding of every message that crosses Kafka: commands, events, activity tasks.

Wire format: a 3-byte header, then the fastavro schemaless body.

    byte 0  MAGIC (0xF1)
    byte 1  kind: 1 command, 2 event, 3 activity task, 4 closed workflow, 5 reply,
            6 activity cancellation
    byte 2  schema version of that kind (the writer schema)

The writer schemas of every version ever shipped live in schemas/avro/<kind>.v<N>.avsc (also
packaged as sagaflow/schemas/), so a record written by any earlier version decodes with today's
reader schema (full transitive compatibility: new fields carry defaults). Bytes that are not a
message of the expected kind raise DecodeError, never anything else.

History of versions: event v1 -> v2 added WorkflowStarted.continued_from_run_id (default "");
closed v1 (the closed-workflows index) is new; command v1 -> v2 added ReportChildClosed;
reply v1 (answers to waiting callers) is new; event v2 -> v3 added SignalWaitStarted; command
v2 -> v3 added TerminateWorkflow and StartWorkflow's execution_timeout_ms/run_timeout_ms; event
v3 -> v4 added WorkflowTerminated, WorkflowTimedOut and WorkflowStarted's
execution_deadline_ms/run_timeout_ms; event v4 -> v5 added ActivityScheduled.heartbeat_timeout_ms
(default 0), ActivityHeartbeatRecorded and ActivityCancelRequested; task v1 -> v2 added
heartbeat_timeout_ms (default 0) and heartbeat_details (default JSON null); cancellation v1 (the
activity-cancels topic) is new; command v3 -> v4 added QueryWorkflow and UpdateWorkflow; event
v5 -> v6 added UpdateAccepted and UpdateCompleted; command v4 -> v5 added StartWorkflow's parent
reference and event v6 -> v7 WorkflowStarted's, with ChildWorkflowStarted,
ChildWorkflowCompleted and ChildWorkflowFailed (child workflows); event v7 -> v8 added
StateTransitioned (a state machine's state entered or left).
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import fastavro

from sagaflow.core import messages as m
from sagaflow.core import payload
from sagaflow.core.errors import DecodeError

__all__ = [
    "DecodeError",
    "decode_cancellation",
    "decode_closed",
    "decode_command",
    "decode_event",
    "decode_reply",
    "decode_task",
    "dumps_payload",
    "encode_cancellation",
    "encode_closed",
    "encode_command",
    "encode_event",
    "encode_reply",
    "encode_task",
    "loads_payload",
]

MAGIC = 0xF1
KIND_COMMAND, KIND_EVENT, KIND_TASK, KIND_CLOSED, KIND_REPLY = 1, 2, 3, 4, 5
KIND_CANCELLATION = 6
_KIND_NAMES = {
    KIND_COMMAND: "command",
    KIND_EVENT: "event",
    KIND_TASK: "task",
    KIND_CLOSED: "closed",
    KIND_REPLY: "reply",
    KIND_CANCELLATION: "cancellation",
}
CURRENT_VERSIONS = {
    KIND_COMMAND: 5,
    KIND_EVENT: 8,
    KIND_TASK: 2,
    KIND_CLOSED: 1,
    KIND_REPLY: 1,
    KIND_CANCELLATION: 1,
}
_NAMESPACE = "sagaflow."

_DECODE_FAILURES = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    OverflowError,
    MemoryError,
    struct.error,
)
"""What fastavro and the record constructors raise on malformed input."""


def _load_schemas() -> dict[tuple[int, int], Any]:
    folder = resources.files("sagaflow.schemas")
    schemas: dict[tuple[int, int], Any] = {}
    for kind, name in _KIND_NAMES.items():
        for version in range(1, CURRENT_VERSIONS[kind] + 1):
            text = (folder / f"{name}.v{version}.avsc").read_text()
            schemas[kind, version] = fastavro.parse_schema(json.loads(text))
    return schemas


_SCHEMAS = _load_schemas()

# --------------------------------------------------------------------------- record <-> dict


@dataclass(frozen=True)
class _Field:
    name: str
    from_avro: Callable[[Any], Any] | None
    to_avro: Callable[[Any], Any] | None


def _identity(value: Any) -> Any:
    return value


def _fields_of(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is m.RetryPolicy:
            out.append(_Field(f.name, _retry_policy_from_avro, _to_dict))
        elif hint == tuple[str, ...]:
            out.append(_Field(f.name, tuple, list))
        elif hint is bytes:
            out.append(_Field(f.name, _bytes_from_avro, None))
        else:
            out.append(_Field(f.name, None, None))
    return tuple(out)


def _bytes_from_avro(value: Any) -> bytes:
    # fastavro hands a bytes field's schema default (a field newer than the writer) over as
    # the JSON string of the schema, whose characters are the bytes (Avro spec: ISO-8859-1).
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)


def _to_dict(record: Any) -> dict[str, Any]:
    out = {}
    for f in _RECORDS[type(record)]:
        value = getattr(record, f.name)
        out[f.name] = f.to_avro(value) if f.to_avro is not None else value
    return out


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    for f in _RECORDS[cls]:
        value = data[f.name]
        kwargs[f.name] = f.from_avro(value) if f.from_avro is not None else value
    return cls(**kwargs)


def _retry_policy_from_avro(data: dict[str, Any]) -> m.RetryPolicy:
    return typing.cast(m.RetryPolicy, _from_dict(m.RetryPolicy, data))


_RECORDS: dict[type, tuple[_Field, ...]] = {
    cls: _fields_of(cls)
    for cls in (
        *typing.get_args(m.Command),
        *typing.get_args(m.EventBody),
        m.ActivityTask,
        m.RetryPolicy,
        m.ClosedWorkflow,
        m.ActivityCancellation,
        m.ReplyToCaller,
    )
}
_BY_NAME: dict[str, type] = {_NAMESPACE + cls.__name__: cls for cls in _RECORDS}


def _branch(record: Any) -> tuple[str, dict[str, Any]]:
    return _NAMESPACE + type(record).__name__, _to_dict(record)


def _unbranch(value: Any, allowed: tuple[type, ...]) -> Any:
    name, data = value
    cls = _BY_NAME.get(name)
    if cls is None or cls not in allowed:
        raise DecodeError(f"record type {name!r} is not allowed here")
    return _from_dict(cls, data)


# --------------------------------------------------------------------------- framing


def _encode(kind: int, datum: dict[str, Any]) -> bytes:
    version = CURRENT_VERSIONS[kind]
    buffer = io.BytesIO()
    buffer.write(bytes((MAGIC, kind, version)))
    fastavro.schemaless_writer(buffer, _SCHEMAS[kind, version], datum)
    return buffer.getvalue()


def _decode(kind: int, data: bytes) -> Any:
    expected = _KIND_NAMES[kind]
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes for a {expected}, got {type(data).__name__}")
    if len(data) < 3 or data[0] != MAGIC:
        raise DecodeError(
            f"not a sagaflow {expected}: {len(data)} bytes without the sagaflow header "
            f"(magic 0x{MAGIC:02X}); was it produced by another application?"
        )
    if data[1] != kind:
        found = _KIND_NAMES.get(data[1], f"unknown kind {data[1]}")
        raise DecodeError(f"expected a sagaflow {expected}, found a {found}; wrong topic?")
    version = data[2]
    writer = _SCHEMAS.get((kind, version))
    if writer is None:
        raise DecodeError(
            f"{expected} schema version {version} is unknown (this sagaflow knows up to "
            f"v{CURRENT_VERSIONS[kind]}); upgrade sagaflow to read records from newer writers"
        )
    reader = _SCHEMAS[kind, CURRENT_VERSIONS[kind]]
    buffer = io.BytesIO(data[3:])
    try:
        datum = fastavro.schemaless_reader(
            buffer, writer, None if writer is reader else reader, return_record_name=True
        )
    except _DECODE_FAILURES as exc:
        raise DecodeError(
            f"corrupt {expected} (schema v{version}, {len(data)} bytes): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if buffer.tell() != len(data) - 3:
        raise DecodeError(
            f"corrupt {expected}: {len(data) - 3 - buffer.tell()} trailing bytes after the record"
        )
    return datum


def _guarded(build: Callable[[], Any], expected: str) -> Any:
    try:
        return build()
    except DecodeError:
        raise
    except _DECODE_FAILURES as exc:
        raise DecodeError(f"corrupt {expected}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- public API

_COMMAND_TYPES = typing.get_args(m.Command)
_BODY_TYPES = typing.get_args(m.EventBody)


def encode_command(command: m.Command) -> bytes:
    return _encode(KIND_COMMAND, {"body": _branch(command)})


def decode_command(data: bytes) -> m.Command:
    datum = _decode(KIND_COMMAND, data)
    command = _guarded(lambda: _unbranch(datum["body"], _COMMAND_TYPES), "command")
    return typing.cast(m.Command, command)


def encode_event(event: m.Event) -> bytes:
    return _encode(
        KIND_EVENT,
        {
            "workflow_id": event.workflow_id,
            "seq": event.seq,
            "run_id": event.run_id,
            "recorded_at_ms": event.recorded_at_ms,
            "body": _branch(event.body),
        },
    )


def decode_event(data: bytes) -> m.Event:
    datum = _decode(KIND_EVENT, data)

    def build() -> m.Event:
        return m.Event(
            workflow_id=datum["workflow_id"],
            seq=datum["seq"],
            run_id=datum["run_id"],
            recorded_at_ms=datum["recorded_at_ms"],
            body=_unbranch(datum["body"], _BODY_TYPES),
        )

    return typing.cast(m.Event, _guarded(build, "event"))


def encode_task(task: m.ActivityTask) -> bytes:
    return _encode(KIND_TASK, _to_dict(task))


def decode_task(data: bytes) -> m.ActivityTask:
    datum = _decode(KIND_TASK, data)
    return typing.cast(m.ActivityTask, _guarded(lambda: _from_dict(m.ActivityTask, datum), "task"))


def encode_closed(closed: m.ClosedWorkflow) -> bytes:
    return _encode(KIND_CLOSED, _to_dict(closed))


def decode_closed(data: bytes) -> m.ClosedWorkflow:
    datum = _decode(KIND_CLOSED, data)
    return typing.cast(
        m.ClosedWorkflow, _guarded(lambda: _from_dict(m.ClosedWorkflow, datum), "closed")
    )


def encode_cancellation(cancellation: m.ActivityCancellation) -> bytes | None:
    """The record value for the activity-cancels topic: None (a tombstone) once settled."""
    if not cancellation.active:
        return None
    return _encode(KIND_CANCELLATION, _to_dict(cancellation))


def decode_cancellation(data: bytes) -> m.ActivityCancellation:
    datum = _decode(KIND_CANCELLATION, data)
    return typing.cast(
        m.ActivityCancellation,
        _guarded(lambda: _from_dict(m.ActivityCancellation, datum), "cancellation"),
    )


def encode_reply(reply: m.ReplyToCaller) -> bytes:
    return _encode(KIND_REPLY, _to_dict(reply))


def decode_reply(data: bytes) -> m.ReplyToCaller:
    datum = _decode(KIND_REPLY, data)
    return typing.cast(
        m.ReplyToCaller, _guarded(lambda: _from_dict(m.ReplyToCaller, datum), "reply")
    )


def dumps_payload(value: Any) -> bytes:
    """A payload (workflow input, activity argument/result, signal) as UTF-8 JSON bytes."""
    return payload.dumps(value)


def loads_payload(data: bytes) -> Any:
    """The value of a payload; DecodeError if it is not UTF-8 JSON."""
    try:
        return payload.loads(data)
    except ValueError as exc:
        raise DecodeError(f"payload is not UTF-8 JSON: {exc}") from exc
