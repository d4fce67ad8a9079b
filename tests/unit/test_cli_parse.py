"""The CLI without services: argument errors, the murmur2 partitioner, output, replay grouping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sagaflow import telemetry
from sagaflow.cli import main
from sagaflow.cli.commands import _TracedHeaders, new_traceparent, trace_id_of
from sagaflow.cli.main import build_parser
from sagaflow.cli.output import EXIT_USAGE, event_line, event_to_json
from sagaflow.cli.replay import collect_runs
from sagaflow.core.messages import StartWorkflow
from sagaflow.kafka.partition import murmur2, partition_for
from sagaflow.readmodel.queries import decode_cursor, encode_cursor
from sagaflow.testing import history_from_json

pytestmark = pytest.mark.unit

HISTORIES = Path(__file__).parents[1] / "histories"

# Computed with Kafka's own Java client (kafka-clients 4.1.2, the broker's version):
#   Utils.murmur2(s.getBytes(UTF_8)), Utils.toPositive(h) % 6, Utils.toPositive(h) % 3
# The first six are also the vectors of Kafka's UtilsTest.
JAVA_VECTORS = [
    ("21", -973932308, 0, 0),
    ("foobar", -790332482, 0, 0),
    ("a-little-bit-long-string", -985981536, 2, 2),
    ("a-little-bit-longer-string", -1486304829, 5, 2),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, 5, 2),
    ("abc", 479470107, 3, 0),
    ("", 275646681, 3, 0),
    ("order-42", 501153024, 0, 0),
    ("checkout-7f3a9c", -981280733, 3, 0),
    ("ünïcödé", 201421315, 1, 1),
]


@pytest.mark.parametrize(("key", "java_hash", "p6", "p3"), JAVA_VECTORS)
def test_murmur2_matches_kafkas_java_client(key: str, java_hash: int, p6: int, p3: int) -> None:
    data = key.encode()
    assert murmur2(data) == java_hash
    assert partition_for(data, 6) == p6
    assert partition_for(data, 3) == p3
    assert partition_for(data, 6) == (java_hash & 0x7FFFFFFF) % 6


def test_partition_for_needs_a_partition() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"x", 0)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sagaflow: ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "required"),
        (["start"], "required"),
        (["start", "checkout"], "--input"),
        (["start", "checkout", "--input", "{bad"], "not JSON"),
        (["start", "checkout", "--input", "@/nonexistent/order.json"], "cannot read"),
        (["start", "checkout", "--input", "{}", "--version", "0"], "versions start at 1"),
        (["start", "checkout", "--input", "{}", "--version", "two"], "invalid int"),
        (["signal", "wf-1"], "required"),
        (["signal", "wf-1", "go", "--payload", "nope"], "not JSON"),
        (["watch", "wf-1", "--timeout", "-3"], "more than 0"),
        (["list", "--status", "sleeping"], "invalid choice"),
        (["list", "--limit", "0"], "at least 1"),
        (["list", "--cursor", "not-a-cursor"], "not a cursor"),
        (["dlq"], "required"),
        (["dlq", "inspect", "x"], "invalid int"),
        (["dlq", "inspect", "-1"], "0 or more"),
        (["replay", "checkout", "--app", "no.such.module:registry"], "cannot import"),
        (["replay", "checkout", "--app", "sagaflow.config:SETTINGS"], "not a sagaflow Registry"),
        (
            ["replay", "nosuchtype", "--app", "sagaflow.examples.checkout:registry"],
            "not registered",
        ),
        (["terminate", "wf-1"], "--reason"),
        (["bogus"], "invalid choice"),
    ],
)
def test_a_bad_argument_is_one_line_on_stderr_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    assert fragment in _one_error_line(capsys)


def test_a_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAGAFLOW_PARTITIONS", "many")
    assert main(["dlq", "list"]) == EXIT_USAGE
    assert "SAGAFLOW_PARTITIONS" in _one_error_line(capsys)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "replay" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["--json", "show", "wf"], ["show", "wf", "--json"], ["dlq", "list", "--json"]]
)
def test_json_is_accepted_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).json is True


def test_json_defaults_to_human_output() -> None:
    assert getattr(build_parser().parse_args(["show", "wf"]), "json", False) is False


def test_list_cursor_round_trips() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "order-1")) == (at, "order-1")


def test_a_fresh_traceparent_is_valid_w3c() -> None:
    tp = new_traceparent()
    version, trace_id, span_id, flags = tp.split("-")
    assert (version, flags) == ("00", "01")
    assert len(trace_id) == 32 and int(trace_id, 16) != 0
    assert len(span_id) == 16 and int(span_id, 16) != 0
    assert trace_id_of(tp) == trace_id


def test_without_tracing_a_start_still_carries_a_traceparent() -> None:
    headers = _TracedHeaders(telemetry.disabled(), "p.commands")
    sent = headers(StartWorkflow("wf-1", "checkout", b"{}"))
    assert [k for k, _ in sent] == ["traceparent"]
    assert len(headers.trace_id) == 32


def test_with_tracing_a_start_is_a_producer_span_whose_context_is_sent() -> None:
    exporter = InMemorySpanExporter()
    tel = telemetry.with_processor(SimpleSpanProcessor(exporter), "sagaflow-cli")
    headers = _TracedHeaders(tel, "p.commands")
    headers(StartWorkflow("wf-1", "checkout", b"{}"))
    tel.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.name.startswith("sagaflow start")
    assert span.context is not None
    assert headers.trace_id == f"{span.context.trace_id:032x}"


def _history(name: str) -> list:  # type: ignore[type-arg]
    return history_from_json((HISTORIES / f"{name}.json").read_text())


def test_replay_groups_runs_by_workflow_and_type_and_limits_workflows() -> None:
    events = _history("checkout_completed") + _history("checkout_declined")
    events += events[:3]  # a re-delivered copy changes nothing
    runs = collect_runs(events, "checkout", None, None)
    assert [r.workflow_id for r in runs] == ["order-1", "order-2"]
    assert len(runs[0].events) == len(_history("checkout_completed"))
    assert [r.workflow_id for r in collect_runs(events, "checkout", None, 1)] == ["order-1"]
    assert [r.workflow_id for r in collect_runs(events, "checkout", "order-2", None)] == ["order-2"]
    assert collect_runs(events, "refund", None, None) == []


def test_events_read_as_lines_and_json() -> None:
    for event in _history("checkout_declined"):
        line = event_line(event)
        assert f"#{event.seq}" in line
        doc = event_to_json(event)
        json.dumps(doc)
        assert doc["event"]["type"] == type(event.body).__name__
    last = _history("checkout_declined")[-1]
    assert "FAILED" in event_line(last)
