"""Shared set-up for the read model's integration tests: topics under a unique prefix, a scratch
Postgres schema, a projector thread, and events produced straight to the events topic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core.messages import Event, EventBody
from sagaflow.kafka.clients import command_producer
from sagaflow.readmodel import Projector
from tests.support import (
    assert_eventually,
    create_topics,
    delete_topics,
    running_loop,
    unique_prefix,
)

T0_MS = 1_700_000_000_000


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"rm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield psycopg.conninfo.make_conninfo(url, options=f"-c search_path={schema}")
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def environment(
    kafka_bootstrap: str, database_url: str, label: str, **extra: str
) -> Iterator[Config]:
    prefix = unique_prefix(label)
    create_topics(kafka_bootstrap, prefix, partitions=3)
    try:
        with scratch_database(database_url) as url:
            yield Config.from_env(
                {
                    "SAGAFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
                    "SAGAFLOW_DATABASE_URL": url,
                    "SAGAFLOW_TOPIC_PREFIX": prefix,
                    "SAGAFLOW_PARTITIONS": "3",
                    "SAGAFLOW_PROJECTOR_GROUP": f"{prefix}projector",
                    **extra,
                }
            )
    finally:
        delete_topics(kafka_bootstrap, prefix)


@contextmanager
def running_projector(config: Config, group: str | None = None) -> Iterator[Projector]:
    projector = Projector(config, group_id=group or config.projector_group)
    with running_loop(projector.run, "projector"):
        yield projector


class EventWriter:
    """Produces events as the orchestrator would (keyed by workflow id), numbering seqs."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.producer = command_producer(config)
        self.seqs: dict[str, int] = {}
        self.sent: list[Event] = []

    def event(
        self, workflow_id: str, body: EventBody, *, run_id: str = "run-1", seq: int | None = None
    ) -> Event:
        if seq is None:
            seq = self.seqs.get(workflow_id, 0) + 1
            self.seqs[workflow_id] = seq
        e = Event(workflow_id, seq, run_id, T0_MS + seq * 1000, body)
        self.send_raw(workflow_id, codec.encode_event(e))
        self.sent.append(e)
        return e

    def send_raw(self, key: str, value: bytes) -> None:
        self.producer.produce(self.config.topics.events, value, key.encode())

    def resend(self, events: Sequence[Event]) -> None:
        for e in events:
            self.send_raw(e.workflow_id, codec.encode_event(e))

    def flush(self) -> None:
        assert self.producer.flush(30) == 0, "events not delivered within 30s"


def query(config: Config, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(config.database_url) as conn:
        return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


def wait_caught_up(projector: Projector, at_least: int, timeout: float = 30) -> None:
    assert_eventually(
        lambda: projector.projected + projector.dead_lettered >= at_least,
        timeout=timeout,
        message=f"projector handled {at_least} records",
    )
    assert_eventually(
        lambda: projector.lag() == 0, timeout=timeout, message="projector lag back to 0"
    )
