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

from sagaflow.config import Config
from sagaflow.kafka.logread import LogReadError, ends_when_reachable, read_partitions
from sagaflow_orchestrator.rebuild import RebuildError, range_reader

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
    """The newest checkpoint per key (the topic is compacted and small). Raises RebuildError
    (fatal: without checkpoints no partition can be rebuilt) naming what to do."""
    topic = config.topics.checkpoints
    consumer = range_reader(config)
    out: dict[bytes, Checkpoint] = {}
    try:
        try:
            ends = ends_when_reachable(consumer, topic, None)
            parts = sorted(ends)
            records = list(
                read_partitions(
                    consumer, topic, dict.fromkeys(parts, 0), deadline_s=timeout_s, ends=ends
                )
            )
        except LogReadError as exc:
            raise RebuildError(f"reading the checkpoints: {exc}") from exc
        for msg in records:
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
        return out
    finally:
        consumer.close()


def read_low_water(config: Config, partition: int) -> int:
    cp = read_all(config).get(key(config.topics.events, partition))
    return cp.low_water if cp is not None else 0
