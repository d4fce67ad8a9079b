"""Typed views of consumed records: where a record came from, and its headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from confluent_kafka import Message

KafkaHeaders: TypeAlias = list[tuple[str, str | bytes | None]]
"""What Producer.produce(headers=...) takes."""


def position(msg: Message) -> tuple[int, int]:
    """(partition, offset) of a consumed record; both are always set on one."""
    partition, offset = msg.partition(), msg.offset()
    if partition is None or offset is None:
        raise ValueError(f"record of {msg.topic()} has no position; it was not consumed")
    return partition, offset


def headers_of(msg: Message) -> list[tuple[str, bytes]]:
    """A record's headers as (name, bytes) pairs (a missing value becomes b'')."""
    raw = msg.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in items]


def to_kafka(headers: Sequence[tuple[str, bytes]]) -> KafkaHeaders:
    out: KafkaHeaders = [(k, v) for k, v in headers]
    return out
