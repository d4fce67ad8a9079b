"""The services are real: Kafka transactions, a Postgres round trip, a span in Jaeger."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Consumer, Message, Producer
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.support import assert_eventually, create_topics, delete_topics, unique_prefix

# Each smoke test takes seconds; a minute means a service is stuck.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    prefix = unique_prefix("smoke")
    yield prefix
    delete_topics(kafka_bootstrap, prefix)


def _consumer(bootstrap: str, topic: str, isolation: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.{isolation}",
            "isolation.level": isolation,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    return consumer


def _drain(consumer: Consumer, seen: list[bytes]) -> list[bytes]:
    """Appends what the consumer has ready to `seen` and returns `seen`."""
    while (msg := consumer.poll(0.2)) is not None:
        assert isinstance(msg, Message)
        assert msg.error() is None, f"consumer error: {msg.error()}"
        seen.append(msg.value() or b"")
    return seen


def test_read_committed_sees_committed_transactions_only(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = create_topics(kafka_bootstrap, topic_prefix, partitions=1).commands
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": f"{topic_prefix}producer",
            "transaction.timeout.ms": 10000,
        }
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"wf-1", value=b"aborted-1")
    producer.produce(topic, key=b"wf-1", value=b"aborted-2")
    producer.flush(10)
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"wf-1", value=b"committed-1")
    producer.commit_transaction(30)
    # A marker that arrives after everything above, so "not seen" below means "skipped".
    producer.begin_transaction()
    producer.produce(topic, key=b"wf-1", value=b"committed-2")
    producer.commit_transaction(30)

    committed_reader = _consumer(kafka_bootstrap, topic, "read_committed")
    uncommitted_reader = _consumer(kafka_bootstrap, topic, "read_uncommitted")
    try:
        committed: list[bytes] = []
        assert_eventually(
            lambda: b"committed-2" in _drain(committed_reader, committed),
            timeout=30,
            message="read_committed consumer did not receive the committed records",
        )
        assert committed == [b"committed-1", b"committed-2"]

        # The aborted records were written to the log: only the isolation level hides them.
        everything: list[bytes] = []
        assert_eventually(
            lambda: b"committed-2" in _drain(uncommitted_reader, everything),
            timeout=30,
            message="read_uncommitted consumer did not reach the end of the log",
        )
        assert everything == [b"aborted-1", b"aborted-2", b"committed-1", b"committed-2"]
    finally:
        committed_reader.close()
        uncommitted_reader.close()


def test_postgres_round_trip(database_url: str) -> None:
    token = uuid.uuid4().hex
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        conn.execute("CREATE TEMPORARY TABLE smoke (id serial PRIMARY KEY, token text NOT NULL)")
        conn.execute("INSERT INTO smoke (token) VALUES (%s)", (token,))
        rows = conn.execute("SELECT token FROM smoke").fetchall()
        version = conn.execute("SHOW server_version_num").fetchone()
    assert rows == [(token,)]
    assert version is not None
    assert int(str(version[0])) >= 160000, f"expected Postgres >= 16, got {version[0]}"


def _fetch_trace(query_url: str, trace_id: str) -> list[str]:
    """Span names of the trace, or [] while Jaeger does not have it yet (404)."""
    try:
        with urllib.request.urlopen(f"{query_url}/api/traces/{trace_id}", timeout=5) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return [span["operationName"] for trace in body.get("data") or [] for span in trace["spans"]]


def test_span_exported_over_otlp_is_queryable_in_jaeger(
    otlp_endpoint: str, jaeger_query_url: str
) -> None:
    service = f"sagaflow-smoke-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces", timeout=10))
    )
    tracer = provider.get_tracer("tests.smoke")
    with tracer.start_as_current_span("smoke-parent") as parent:
        with tracer.start_as_current_span("smoke-child"):
            pass
        trace_id = f"{parent.get_span_context().trace_id:032x}"
    provider.shutdown()

    # The two spans arrive in separate OTLP requests: wait for both, not just the first.
    spans = assert_eventually(
        lambda: (names := _fetch_trace(jaeger_query_url, trace_id)) and len(names) >= 2 and names,
        timeout=30,
        interval=0.2,
        message=f"trace {trace_id} never appeared in Jaeger at {jaeger_query_url}",
    )
    assert sorted(spans) == ["smoke-child", "smoke-parent"]
