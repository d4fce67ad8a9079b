"""`check`: proves each service is real by using it the way sagaflow will."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import psycopg
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sagaflow.devstack.common import StackError

DEADLINE = 30.0


def check_kafka(bootstrap: str) -> str:
    """A committed transaction's record arrives at a read_committed consumer."""
    began = time.monotonic()
    topic = f"sagaflow.devstack-check.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=DEADLINE)
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "transactional.id": topic,
                "transaction.timeout.ms": 10000,
            }
        )
        producer.init_transactions(DEADLINE)
        producer.begin_transaction()
        payload = uuid.uuid4().hex.encode()
        producer.produce(topic, key=b"check", value=payload)
        producer.commit_transaction(DEADLINE)
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": topic,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    raise StackError(f"Kafka check: consumer error {msg.error()}")
                if msg.value() == payload:
                    break
            else:
                raise StackError(
                    f"Kafka check: the committed record did not arrive within "
                    f"{DEADLINE:.0f}s; see .stack/logs/kafka.log"
                )
        finally:
            consumer.close()
    except KafkaException as exc:
        raise StackError(f"Kafka check failed: {exc}; see .stack/logs/kafka.log") from exc
    finally:
        admin.delete_topics([topic])
    return f"transactional produce + read_committed consume in {time.monotonic() - began:.2f}s"


def check_postgres(database_url: str) -> str:
    """A write and a read in a real database."""
    began = time.monotonic()
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            conn.execute("CREATE TEMPORARY TABLE devstack_check (v text)")
            token = uuid.uuid4().hex
            conn.execute("INSERT INTO devstack_check VALUES (%s)", (token,))
            row = conn.execute("SELECT v, version() FROM devstack_check").fetchone()
    except psycopg.Error as exc:
        raise StackError(f"Postgres check failed: {exc}; see .stack/logs/postgres.log") from exc
    if row is None or row[0] != token:
        raise StackError(f"Postgres check: wrote {token!r} but read back {row!r}")
    version = str(row[1]).split(" on ")[0]
    return f"insert + select in {time.monotonic() - began:.2f}s ({version})"


def check_jaeger(otlp_http_url: str, query_url: str) -> str:
    """A span exported over OTLP/HTTP comes back from the query API by its trace id."""
    began = time.monotonic()
    provider = TracerProvider(resource=Resource.create({"service.name": "sagaflow-devstack"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_http_url}/v1/traces", timeout=10))
    )
    with provider.get_tracer("sagaflow.devstack").start_as_current_span("devstack-check") as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
    provider.shutdown()
    deadline = time.monotonic() + DEADLINE
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{query_url}/api/traces/{trace_id}", timeout=5) as r:
                body = json.load(r)
            spans = [s["operationName"] for t in body.get("data") or [] for s in t["spans"]]
            if "devstack-check" in spans:
                return (
                    f"span exported and fetched by trace id {trace_id} in "
                    f"{time.monotonic() - began:.2f}s"
                )
            last = f"trace without the span: {spans}"
        except urllib.error.HTTPError as exc:
            # 404 until the batch processor has flushed the span into storage.
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise StackError(
        f"Jaeger check: trace {trace_id} was not queryable within {DEADLINE:.0f}s "
        f"({last}); see .stack/logs/jaeger.log"
    )
