"""The `sagaflow` CLI against real Kafka and Postgres, in-process (capsys) and as a process."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from sagaflow import codec
from sagaflow.cli import main
from sagaflow.cli.kafkaio import headers_of
from sagaflow.core.messages import (
    CancelWorkflow,
    Event,
    SignalWorkflow,
    StartWorkflow,
    TerminateWorkflow,
)
from sagaflow.kafka.dlq import DLQ_HEADERS, H_REASON, H_TOPIC, dead_letter
from sagaflow.kafka.partition import partition_for
from sagaflow.readmodel.store import Located, store_batch
from sagaflow.testing import history_from_json
from tests.support import create_topics, delete_topics, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PARTITIONS = 3
HISTORIES = Path(__file__).parents[1] / "histories"
APP = "sagaflow.examples.checkout:registry"


@pytest.fixture
def prefix(
    kafka_bootstrap: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    prefix = unique_prefix("cli")
    create_topics(kafka_bootstrap, prefix, partitions=PARTITIONS)
    monkeypatch.setenv("SAGAFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("SAGAFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("SAGAFLOW_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("SAGAFLOW_APP", APP)
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    yield prefix
    delete_topics(kafka_bootstrap, prefix)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str], expect: int = 0) -> Any:
    code, out, err = run(["--json", *argv], capsys)
    assert code == expect, err
    return json.loads(out)


def read_all(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> list[Message]:
    """Every committed record of `topic`, from the start to the current end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "cli-test",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    out: list[Message] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        open_parts = set(range(partitions))
        while open_parts:
            msg = consumer.poll(10)
            assert msg is not None, f"reading {topic} stalled"
            err = msg.error()
            if err is not None:
                assert err.code() == err._PARTITION_EOF, err
                open_parts.discard(msg.partition())
                continue
            out.append(msg)
    finally:
        consumer.close()
    return out


def produce_events(bootstrap: str, topic: str, events: list[Event]) -> None:
    """Events as the orchestrator appends them: keyed by workflow id, murmur2 partition."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for event in events:
        producer.produce(topic, codec.encode_event(event), event.workflow_id.encode())
    assert producer.flush(10) == 0


def history(name: str, workflow_id: str) -> list[Event]:
    events = history_from_json((HISTORIES / f"{name}.json").read_text())
    return [dataclasses.replace(e, workflow_id=workflow_id) for e in events]


# --------------------------------------------------------------------------- commands


def test_start_produces_a_decodable_start_with_traceparent_on_the_murmur2_partition(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    out = run_json(
        ["start", "checkout", "--input", '{"order_id": 42}', "--id", wid, "--version", "1"],
        capsys,
    )
    assert out["workflow_id"] == wid
    assert out["partition"] == partition_for(wid.encode(), PARTITIONS)
    generated = run_json(["start", "checkout", "--input", "{}"], capsys)
    assert generated["workflow_id"].startswith("checkout-")

    records = {m.key(): m for m in read_all(kafka_bootstrap, f"{prefix}commands")}
    msg = records[wid.encode()]
    # librdkafka's murmur2_random put it where our murmur2 says it is.
    assert msg.partition() == out["partition"]
    command = codec.decode_command(msg.value() or b"")
    assert isinstance(command, StartWorkflow)
    assert (command.workflow_id, command.workflow_type, command.version) == (wid, "checkout", 1)
    assert json.loads(command.input) == {"order_id": 42}
    headers = dict(headers_of(msg))
    version, trace_id, span_id, flags = headers["traceparent"].decode().split("-")
    assert (version, len(span_id), flags) == ("00", 16, "01")
    assert trace_id == out["trace_id"]
    assert records[generated["workflow_id"].encode()].partition() == generated["partition"]


def test_human_start_prints_the_id_first_then_where_and_the_trace(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["start", "checkout", "--input", "{}", "--id", "wf-human"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "wf-human"
    assert any(line.strip().startswith("trace ") for line in lines)


def test_signals_and_cancels_land_on_each_workflows_partition(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [f"wf-{i}-{uuid.uuid4().hex[:6]}" for i in range(12)]
    for wid in ids:
        run_json(["signal", wid, "approve", "--payload", '{"by": "ops"}'], capsys)
    run_json(["cancel", ids[0], "--reason", "customer asked"], capsys)
    commands = [
        (m.partition(), codec.decode_command(m.value() or b""))
        for m in read_all(kafka_bootstrap, f"{prefix}commands")
    ]
    signals = {c.workflow_id: p for p, c in commands if isinstance(c, SignalWorkflow)}
    assert signals == {wid: partition_for(wid.encode(), PARTITIONS) for wid in ids}
    assert len(set(signals.values())) > 1  # the ids really spread over partitions
    (cancel,) = [c for _, c in commands if isinstance(c, CancelWorkflow)]
    assert (cancel.workflow_id, cancel.reason) == (ids[0], "customer asked")


def test_terminate_sends_who_and_why(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wid = f"wf-t-{uuid.uuid4().hex[:6]}"
    out = run_json(["terminate", wid, "--reason", "stuck", "--by", "ops:ann"], capsys)
    assert (out["workflow_id"], out["reason"], out["by"]) == (wid, "stuck", "ops:ann")
    assert out["partition"] == partition_for(wid.encode(), PARTITIONS)
    records = read_all(kafka_bootstrap, f"{prefix}commands")
    sent = [codec.decode_command(m.value() or b"") for m in records]
    terminates = [dataclasses.replace(c, command_id="") for c in sent]
    assert TerminateWorkflow(wid, "stuck", "ops:ann") in terminates


# --------------------------------------------------------------------------- unreachable


def test_unreachable_broker_is_one_line_and_a_nonzero_exit(
    prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAGAFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    for argv in (
        ["start", "checkout", "--input", "{}"],
        ["dlq", "list"],
        ["history", "wf-1", "--from-log"],
        ["topics", "describe"],
    ):
        code, out, err = run(argv, capsys)
        assert code == 3, argv
        assert out == ""
        assert err.count("\n") == 1 and "127.0.0.1:1" in err and "make up" in err, err


def test_unreachable_broker_and_database_as_a_process_print_exactly_one_line() -> None:
    """librdkafka writes its own log lines from C; the CLI must keep them off stderr."""
    cases = [
        ({"SAGAFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, ["start", "checkout", "--input", "{}"]),
        ({"SAGAFLOW_DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db"}, ["show", "wf-1"]),
    ]
    for env, argv in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "sagaflow.cli", *argv],
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 3, proc
        assert proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- dlq


def _dead_letter_from_commands(
    bootstrap: str, prefix: str, key: bytes, value: bytes, reason: str
) -> None:
    """Put a record on commands, read it back and dead-letter it the way the services do."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    producer.produce(f"{prefix}commands", value, key, headers=[("traceparent", b"00-ab-cd-01")])
    assert producer.flush(10) == 0
    (msg,) = [m for m in read_all(bootstrap, f"{prefix}commands") if m.key() == key]
    dl = dead_letter(msg, reason, "orchestrator.decode")
    producer.produce(f"{prefix}dlq", dl.value, dl.key, headers=list(dl.headers))
    assert producer.flush(10) == 0


def test_dlq_list_inspect_and_redrive_round_trip(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["dlq", "list"], capsys)
    assert code == 0 and "no dead letters" in out, err
    good = codec.encode_command(SignalWorkflow("wf-dl-1", "approve", b"true"))
    _dead_letter_from_commands(kafka_bootstrap, prefix, b"wf-dl-1", good, "consumer lagged")
    _dead_letter_from_commands(kafka_bootstrap, prefix, b"wf-dl-2", b"\x00\xffjunk", "bad magic")

    listed = run_json(["dlq", "list"], capsys)["dead_letters"]
    assert [(d["offset"], d["key"], d["reason"]) for d in listed] == [
        (0, "wf-dl-1", "consumer lagged"),
        (1, "wf-dl-2", "bad magic"),
    ]
    assert listed[0]["source"]["topic"] == f"{prefix}commands"
    assert [
        d["offset"] for d in run_json(["dlq", "list", "--limit", "1"], capsys)["dead_letters"]
    ] == [1]

    decoded = run_json(["dlq", "inspect", "0"], capsys)
    assert decoded["reason"] == "consumer lagged"
    assert decoded["payload"]["format"] == "avro"
    assert decoded["payload"]["message"]["type"] == "SignalWorkflow"
    assert decoded["payload"]["message"]["payload"] is True
    raw = run_json(["dlq", "inspect", "1"], capsys)
    assert raw["payload"]["format"] == "hex"
    assert raw["payload"]["value"] == b"\x00\xffjunk".hex()
    assert "avro_error" in raw["payload"]
    code, out, err = run(["dlq", "inspect", "1"], capsys)
    assert code == 0 and "bad magic" in out and "00ff" in out
    code, _, err = run(["dlq", "inspect", "7"], capsys)
    assert code == 1 and "valid offsets are 0..1" in err

    moved = run_json(["dlq", "redrive", "0"], capsys)
    assert moved["to"]["topic"] == f"{prefix}commands"
    assert moved["to"]["partition"] == partition_for(b"wf-dl-1", PARTITIONS)
    again = [
        m
        for m in read_all(kafka_bootstrap, f"{prefix}commands")
        if m.key() == b"wf-dl-1" and m.offset() == moved["to"]["offset"]
    ]
    (redriven,) = again
    assert redriven.value() == good
    names = [k for k, _ in headers_of(redriven)]
    assert "traceparent" in names
    assert not set(names) & set(DLQ_HEADERS)


def test_redrive_refuses_records_from_the_orchestrators_own_log(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(
        f"{prefix}dlq",
        b"junk",
        b"wf-x",
        headers=[(H_REASON, b"undecodable"), (H_TOPIC, f"{prefix}events".encode())],
    )
    assert producer.flush(10) == 0
    code, _, err = run(["dlq", "redrive", "0"], capsys)
    assert code == 2 and "only the orchestrator writes" in err


# --------------------------------------------------------------------------- log reading


def test_history_from_log_and_watch_read_one_workflows_partition(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    done, declined = "order-done", "order-declined"
    produce_events(
        kafka_bootstrap,
        f"{prefix}events",
        history("checkout_completed", done) + history("checkout_declined", declined),
    )
    events = run_json(["history", done, "--from-log"], capsys)["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["partition"] for e in events} == {partition_for(done.encode(), PARTITIONS)}
    assert events[-1]["event"]["type"] == "WorkflowCompleted"

    code, out, _ = run(["watch", done, "--timeout", "20"], capsys)
    assert code == 0 and "COMPLETED" in out.splitlines()[-1]
    code, out, _ = run(["--json", "watch", declined, "--timeout", "20"], capsys)
    assert code == 1
    assert json.loads(out.splitlines()[-1])["event"]["type"] == "WorkflowFailed"
    code, out, err = run(["watch", "order-never", "--timeout", "1"], capsys)
    assert code == 124 and "did not end within 1s" in err


# --------------------------------------------------------------------------- replay


def test_replay_reports_ok_for_a_recorded_history_and_nondeterminism_for_a_bad_one(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = history("checkout_completed", "order-good") + history(
        "checkout_charge_retried", "order-retried"
    )
    bad = history("checkout_nondeterministic", "order-bad")
    produce_events(kafka_bootstrap, f"{prefix}events", good + bad)

    report = run_json(["replay", "checkout", "--app", APP], capsys, expect=1)
    outcomes = {r["workflow_id"]: r for r in report["runs"]}
    assert {k: r["outcome"] for k, r in outcomes.items()} == {
        "order-good": "ok",
        "order-retried": "ok",
        "order-bad": "nondeterminism",
    }
    assert "seq 2" in outcomes["order-bad"]["message"]
    assert report["ok"] is False

    ok = run_json(["replay", "checkout", "--workflow-id", "order-good"], capsys)
    assert ok["ok"] is True and len(ok["runs"]) == 1
    code, out, _ = run(["replay", "checkout"], capsys)
    assert code == 1
    assert "NONDETERMINISM" in out and "2 ok, 1 failed" in out


# --------------------------------------------------------------------------- read model


def test_show_list_and_history_read_the_read_model(
    prefix: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["db", "migrate"], capsys)[0] == 0
    tag = uuid.uuid4().hex[:8]
    done, declined = f"cli-{tag}-done", f"cli-{tag}-declined"
    events = history("checkout_completed", done) + history("checkout_declined", declined)
    with psycopg.connect(database_url) as conn:
        store_batch(conn, [Located(e, 0, i) for i, e in enumerate(events)])

    shown = run_json(["show", done], capsys)["workflow"]
    assert (shown["status"], shown["type"]) == ("completed", "checkout")
    code, out, _ = run(["show", declined], capsys)
    assert code == 0 and "status    failed" in out and "error" in out
    code, _, err = run(["show", f"cli-{tag}-missing"], capsys)
    # Neither the read model nor the log knows it: never started (not merely not projected yet).
    assert code == 1 and "neither the read model nor the events log" in err, err

    rows = run_json(["history", done], capsys)["events"]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))

    first = run_json(["list", "--type", "checkout", "--limit", "1"], capsys)
    assert len(first["workflows"]) == 1 and first["next_cursor"]
    second = run_json(
        ["list", "--type", "checkout", "--limit", "1", "--cursor", first["next_cursor"]], capsys
    )
    assert second["workflows"][0]["workflow_id"] != first["workflows"][0]["workflow_id"]
    # Other tests' workflows share this read model (and are newer than these recorded
    # histories): page through every failed one.
    failed: set[str] = set()
    cursor: list[str] = []
    for _ in range(100):
        page = run_json(["list", "--status", "failed", "--limit", "500", *cursor], capsys)
        failed |= {w["workflow_id"] for w in page["workflows"]}
        if not page["next_cursor"]:
            break
        cursor = ["--cursor", page["next_cursor"]]
    assert declined in failed
    assert done not in failed
