"""Recovery checkpoints: per events partition, the lowest offset an open workflow still needs.

Written to the compacted checkpoints topic inside the orchestrator's transaction, so a
checkpoint never runs ahead of the events it summarises. Keyed '<events topic>/<partition>'.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

import fastavro
from confluent_kafka import KafkaError, TopicPartition

from sagaflow.config import Config
from sagaflow.kafka import triage
from sagaflow.kafka.clients import reader
from sagaflow.kafka.records import position

log = logging.getLogger(__name__)

_SCHEMA = fastavro.parse_schema(
    json.loads((resources.files("sagaflow.schemas") / "checkpoint.v1.avsc").read_text())
)
_MAGIC = b"\x01"


@dataclass(frozen=True)
class Checkpoint:
    events_topic: str
    partition: int
    low_water: int
    end_offset: int
    open_workflows: int
    written_at_ms: int


def key(events_topic: str, partition: int) -> bytes:
    return f"{events_topic}/{partition}".encode()


def encode(cp: Checkpoint) -> bytes:
    buf = io.BytesIO()
    buf.write(_MAGIC)
    fastavro.schemaless_writer(buf, _SCHEMA, cp.__dict__)
    return buf.getvalue()


def decode(data: bytes) -> Checkpoint:
    if not data.startswith(_MAGIC):
        raise ValueError("not a sagaflow checkpoint record (bad magic byte)")
    rec: Any = fastavro.schemaless_reader(io.BytesIO(data[1:]), _SCHEMA, None)
    return Checkpoint(**rec)


def read_all(config: Config, timeout_s: float = 30.0) -> dict[bytes, Checkpoint]:
    """The newest checkpoint per key (the topic is compacted and small)."""
    topic = config.topics.checkpoints
    consumer = reader(config)
    out: dict[bytes, Checkpoint] = {}
    try:
        md = triage.call(lambda: consumer.list_topics(topic, timeout=10), "list checkpoints")
        tmeta = md.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            raise RuntimeError(f"topic {topic} is missing; run 'sagaflow topics create'")
        parts = list(tmeta.partitions)
        ends: dict[int, int] = {}
        for p in parts:
            _lo, hi = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10, cached=False
            )
            if hi > 0:
                ends[p] = hi
        if not ends:
            return out
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        done: set[int] = set()
        while len(done) < len(ends):
            for msg in consumer.consume(1000, timeout=0.05):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(position(msg)[0])
                        continue
                    raise RuntimeError(f"reading {topic} failed: {err}")
                k, v = msg.key(), msg.value()
                if isinstance(k, bytes) and v:
                    try:
                        out[k] = decode(v)
                    except ValueError as exc:
                        log.error(
                            "ignoring undecodable checkpoint at %s/%d@%d: %s; recovery "
                            "falls back to an older checkpoint or the log start",
                            topic,
                            msg.partition(),
                            msg.offset(),
                            exc,
                        )
                part, offset = position(msg)
                if offset + 1 >= ends[part]:
                    done.add(part)
        return out
    finally:
        consumer.close()


def read_low_water(config: Config, partition: int) -> int:
    cp = read_all(config).get(key(config.topics.events, partition))
    return cp.low_water if cp is not None else 0
