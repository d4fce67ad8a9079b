"""The wire format: schema evolution, schema files in step with the records, clear errors."""

from __future__ import annotations

import dataclasses
import io
import json
import typing
from pathlib import Path

import fastavro
import pytest

from sagaflow import codec
from sagaflow.core import messages as m

pytestmark = pytest.mark.unit

REPO_SCHEMAS = Path(__file__).parents[2] / "schemas" / "avro"
PACKAGE_SCHEMAS = Path(codec.__file__).parent / "schemas"

# Written by sagaflow with event schema v1 (before continued_from_run_id existed). Frozen.
EVENT_V1_WORKFLOW_STARTED = bytes.fromhex(
    "f102010e6f726465722d31020a72756e2d3180a0d5edee660010636865636b6f7574022c7b226f726465725f6964"
    "223a226f726465722d31227d5406632d31"
)


def test_an_event_written_with_v1_decodes_with_todays_reader() -> None:
    event = codec.decode_event(EVENT_V1_WORKFLOW_STARTED)
    assert event == m.Event(
        "order-1",
        1,
        "run-1",
        1_767_225_600_000,
        m.WorkflowStarted("checkout", 1, b'{"order_id":"order-1"}', 42, "c-1", ""),
    )


def test_every_v1_event_body_still_decodes() -> None:
    raw = json.loads((REPO_SCHEMAS / "event.v1.avsc").read_text())
    v1 = fastavro.parse_schema(raw)
    in_v1 = [c for c in typing.get_args(m.EventBody) if _record_fields(raw, c.__name__)]
    assert m.SignalWaitStarted not in in_v1 and m.TimerFired in in_v1
    for cls in in_v1:
        fields = {f.name: _sample(f.type) for f in dataclasses.fields(cls)}
        fields.pop("continued_from_run_id", None)
        fields.pop("heartbeat_timeout_ms", None)
        if cls in (m.ActivityHeartbeatRecorded, m.ActivityCancelRequested):
            continue  # new in v3
        if cls is m.ActivityScheduled:
            fields["retry_policy"] = dataclasses.asdict(m.RetryPolicy())
        buffer = io.BytesIO()
        buffer.write(bytes([codec.MAGIC, codec.KIND_EVENT, 1]))
        datum = {"workflow_id": "w", "seq": 1, "run_id": "r", "recorded_at_ms": 5}
        datum["body"] = ("sagaflow." + cls.__name__, fields)
        fastavro.schemaless_writer(buffer, v1, datum)
        decoded = codec.decode_event(buffer.getvalue())
        assert type(decoded.body) is cls


def test_a_state_transition_round_trips_and_v2_events_decode_with_the_v8_reader() -> None:
    body = m.StateTransitioned("Charge", "Task", "failed", "Fan[2]", b"null", "Boom", "x", "Undo")
    event = m.Event("w", 7, "r", 5, body)
    assert codec.decode_event(codec.encode_event(event)) == event
    v2 = fastavro.parse_schema(json.loads((REPO_SCHEMAS / "event.v2.avsc").read_text()))
    buffer = io.BytesIO()
    buffer.write(bytes([codec.MAGIC, codec.KIND_EVENT, 2]))
    datum = {"workflow_id": "w", "seq": 1, "run_id": "r", "recorded_at_ms": 5}
    datum["body"] = ("sagaflow.TimerFired", {"timer_seq": 3})
    fastavro.schemaless_writer(buffer, v2, datum)
    assert codec.decode_event(buffer.getvalue()).body == m.TimerFired(3)


def test_a_v1_task_decodes_without_heartbeat_settings() -> None:
    v1 = fastavro.parse_schema(json.loads((REPO_SCHEMAS / "task.v1.avsc").read_text()))
    task = m.ActivityTask("w", "r", "t", 1, 2, "a", "q", b"1", "w/1", 0, 0)
    datum = dataclasses.asdict(task)
    del datum["heartbeat_timeout_ms"], datum["heartbeat_details"]
    buffer = io.BytesIO()
    buffer.write(bytes([codec.MAGIC, codec.KIND_TASK, 1]))
    fastavro.schemaless_writer(buffer, v1, datum)
    assert codec.decode_task(buffer.getvalue()) == task


def test_activity_cancellations_round_trip_and_settled_ones_are_tombstones() -> None:
    live = m.ActivityCancellation("w/3", "w", "r", 3)
    assert codec.decode_cancellation(codec.encode_cancellation(live)) == live  # type: ignore[arg-type]
    settled = m.ActivityCancellation("w/3", "w", "r", 3, active=False)
    assert codec.encode_cancellation(settled) is None


def _sample(hint: object) -> object:
    return {
        "str": "s",
        "int": 1,
        "bool": True,
        "bytes": b"null",
        "float": 1.5,
        "int | None": None,
        "tuple[str, ...]": ["x"],
    }.get(str(hint))


def test_writers_use_the_newest_schema_version() -> None:
    event = m.Event("w", 1, "r", 0, m.TimerFired(1))
    assert codec.encode_event(event)[:3] == bytes((codec.MAGIC, codec.KIND_EVENT, 8))
    command = m.CancelWorkflow("w")
    assert codec.encode_command(command)[:3] == bytes((codec.MAGIC, codec.KIND_COMMAND, 5))


def test_queries_updates_and_their_events_round_trip() -> None:
    query = m.QueryWorkflow("w", "items", b"[1]", "r2")
    assert codec.decode_command(codec.encode_command(query)) == query
    update = m.UpdateWorkflow("w", "add", b"{}", "u1", "r3", "r3")
    assert codec.decode_command(codec.encode_command(update)) == update
    for body in (m.UpdateAccepted("u1", "add", b"{}", "r1"), m.UpdateCompleted("u1", b"2")):
        event = m.Event("w", 3, "run", 5, body)
        assert codec.decode_event(codec.encode_event(event)) == event


def _record_fields(schema: object, name: str) -> set[str] | None:
    if isinstance(schema, dict):
        if schema.get("type") == "record" and schema.get("name") == name:
            return {f["name"] for f in schema["fields"]}
        values: list[object] = list(schema.values())
    elif isinstance(schema, list):
        values = list(schema)
    else:
        return None
    for value in values:
        found = _record_fields(value, name)
        if found is not None:
            return found
    return None


_V4 = json.loads((REPO_SCHEMAS / "event.v4.avsc").read_text())
_V4_BODIES = tuple(
    cls for cls in typing.get_args(m.EventBody) if _record_fields(_V4, cls.__name__) is not None
)


@pytest.mark.parametrize("cls", _V4_BODIES, ids=lambda cls: cls.__name__)
def test_every_v4_event_body_still_decodes(cls: type) -> None:
    v4 = fastavro.parse_schema(_V4)
    written = _record_fields(_V4, cls.__name__) or set()
    fields = {f.name: _sample(f.type) for f in dataclasses.fields(cls) if f.name in written}
    if cls is m.ActivityScheduled:
        fields["retry_policy"] = dataclasses.asdict(m.RetryPolicy())
    buffer = io.BytesIO()
    buffer.write(bytes([codec.MAGIC, codec.KIND_EVENT, 4]))
    datum = {"workflow_id": "w", "seq": 1, "run_id": "r", "recorded_at_ms": 5}
    datum["body"] = ("sagaflow." + cls.__name__, fields)
    fastavro.schemaless_writer(buffer, v4, datum)
    decoded = codec.decode_event(buffer.getvalue())
    assert type(decoded.body) is cls
    if cls is m.ActivityScheduled:
        assert decoded.body.heartbeat_timeout_ms == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("schema_file", "types"),
    [
        ("command.v5.avsc", typing.get_args(m.Command)),
        ("event.v8.avsc", (*typing.get_args(m.EventBody), m.Event, m.RetryPolicy)),
        ("task.v2.avsc", (m.ActivityTask,)),
        ("closed.v1.avsc", (m.ClosedWorkflow,)),
        ("reply.v1.avsc", (m.ReplyToCaller,)),
        ("cancellation.v1.avsc", (m.ActivityCancellation,)),
    ],
)
def test_current_schemas_cover_every_field_of_every_record(
    schema_file: str, types: tuple[type, ...]
) -> None:
    schema = json.loads((REPO_SCHEMAS / schema_file).read_text())
    for cls in types:
        fields = _record_fields(schema, cls.__name__)
        assert fields == {f.name for f in dataclasses.fields(cls)}, cls


def test_packaged_schemas_are_the_repo_schemas() -> None:
    repo = {p.name: p.read_bytes() for p in REPO_SCHEMAS.glob("*.avsc")}
    packaged = {p.name: p.read_bytes() for p in PACKAGE_SCHEMAS.glob("*.avsc")}
    assert repo == packaged


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "without the sagaflow header"),
        (b'{"json": 1}', "without the sagaflow header"),
        (bytes([0xF1, 1, 1]), "found a command"),
        (bytes([0xF1, 9, 1]), "unknown kind 9"),
        (bytes([0xF1, 2, 99]), "schema version 99 is unknown"),
        (bytes([0xF1, 2, 2, 0xFF]), "corrupt event"),
        (bytes([0xF1, 2, 2]) + b"\x02w\x02\x02r\x02\x7e", "corrupt event"),
    ],
)
def test_bad_bytes_raise_decode_error_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(codec.DecodeError, match=message):
        codec.decode_event(data)


def test_trailing_bytes_and_wrong_kinds_are_rejected() -> None:
    good = codec.encode_task(m.ActivityTask("w", "r", "t", 1, 1, "a", "q", b"1", "w/1", 0, 0))
    with pytest.raises(codec.DecodeError, match="trailing"):
        codec.decode_task(good + b"\x00")
    with pytest.raises(codec.DecodeError, match="found a task"):
        codec.decode_command(good)
    with pytest.raises(codec.DecodeError, match="expected bytes"):
        codec.decode_command("text")  # type: ignore[arg-type]
    assert isinstance(codec.DecodeError("x"), ValueError)


def test_a_body_of_the_wrong_family_is_rejected() -> None:
    schema = fastavro.parse_schema(json.loads((REPO_SCHEMAS / "command.v1.avsc").read_text()))
    # Craft a command envelope whose union index points past the command records.
    data = bytes([codec.MAGIC, codec.KIND_COMMAND, 1]) + b"\x20"
    with pytest.raises(codec.DecodeError):
        codec.decode_command(data)
    assert schema  # parsed fine


def test_payload_helpers() -> None:
    assert codec.loads_payload(codec.dumps_payload({"a": [1, "é"]})) == {"a": [1, "é"]}
    with pytest.raises(codec.DecodeError, match="not UTF-8 JSON"):
        codec.loads_payload(b"\xff")


def test_closed_workflow_records_round_trip_and_are_their_own_kind() -> None:
    closed = m.ClosedWorkflow("w", "r", "failed", "start:abc", 9, 1_767_225_600_000)
    data = codec.encode_closed(closed)
    assert data[:3] == bytes((codec.MAGIC, codec.KIND_CLOSED, 1))
    assert codec.decode_closed(data) == closed
    with pytest.raises(codec.DecodeError, match="found a closed"):
        codec.decode_event(data)


def test_a_command_written_with_v1_decodes_with_todays_reader() -> None:
    v1 = fastavro.parse_schema(json.loads((REPO_SCHEMAS / "command.v1.avsc").read_text()))
    buffer = io.BytesIO()
    buffer.write(bytes((codec.MAGIC, codec.KIND_COMMAND, 1)))
    body = {"workflow_id": "w", "name": "approve", "payload": b"{}", "command_id": "c"}
    fastavro.schemaless_writer(buffer, v1, {"body": ("sagaflow.SignalWorkflow", body)})
    assert codec.decode_command(buffer.getvalue()) == m.SignalWorkflow("w", "approve", b"{}", "c")


def test_new_commands_and_replies_round_trip() -> None:
    child = m.ReportChildClosed(
        "parent", "child", "run-1", "completed", b'{"ok":1}', command_id="x"
    )
    assert codec.decode_command(codec.encode_command(child)) == child
    reply = m.ReplyToCaller("caller-1", "cmd-1", False, b"null", "QueryFailed", "no such query")
    data = codec.encode_reply(reply)
    assert data[:3] == bytes((codec.MAGIC, codec.KIND_REPLY, 1))
    assert codec.decode_reply(data) == reply
    with pytest.raises(codec.DecodeError, match="found a reply"):
        codec.decode_command(data)


def _written_with(kind: int, schema_file: str, datum: dict[str, object]) -> bytes:
    schema = fastavro.parse_schema(json.loads((REPO_SCHEMAS / schema_file).read_text()))
    version = int(schema_file.split(".v")[1].split(".", maxsplit=1)[0])
    buffer = io.BytesIO()
    buffer.write(bytes((codec.MAGIC, kind, version)))
    fastavro.schemaless_writer(buffer, schema, datum)
    return buffer.getvalue()


def test_records_of_every_shipped_version_decode_with_todays_reader() -> None:
    """v2 commands and v3 events were written before the timeouts were fields: they read as 0."""
    start = {"workflow_id": "w", "workflow_type": "t", "input": b"1", "version": None}
    for schema_file in ("command.v1.avsc", "command.v2.avsc"):
        data = _written_with(
            codec.KIND_COMMAND,
            schema_file,
            {"body": ("sagaflow.StartWorkflow", {**start, "command_id": "c"})},
        )
        assert codec.decode_command(data) == m.StartWorkflow("w", "t", b"1", None, "c", 0, 0)
    started = {
        "workflow_type": "t",
        "version": 1,
        "input": b"1",
        "random_seed": 3,
        "command_id": "c",
        "continued_from_run_id": "",
    }
    wait = {"name": "approve", "timer_seq": 4, "timeout_at_ms": 9}
    for name, body, expected in [
        ("WorkflowStarted", started, m.WorkflowStarted("t", 1, b"1", 3, "c", "", 0, 0)),
        ("SignalWaitStarted", wait, m.SignalWaitStarted("approve", 4, 9)),
    ]:
        datum = {"workflow_id": "w", "seq": 1, "run_id": "r", "recorded_at_ms": 5}
        data = _written_with(
            codec.KIND_EVENT, "event.v3.avsc", {**datum, "body": (f"sagaflow.{name}", body)}
        )
        assert codec.decode_event(data).body == expected
