"""Dead letters: a record that cannot be decoded or processed, with why and where from.

The original key and bytes are kept as they were whenever they fit; the reason and the origin
travel in headers, so an operator can inspect the record and re-drive it to its source topic
unchanged.

A dead letter must always be producible, whatever arrived: the copy adds headers to a record
that may already be at the size limit, and a produce refused with MSG_SIZE_TOO_LARGE would
leave the poison record on its partition forever (every restart would trip on it again). So
`dead_letter` fits the copy into a byte budget: a value too large is truncated, and its
original size and sha256 go into headers (`H_TRUNCATED` says the payload is not whole, and such
a letter cannot be re-driven). The budget defaults to librdkafka's own `message.max.bytes`
(1,000,000), which every topic with Kafka's default limits also accepts; a producer configured
for the dlq topic's larger limit (`DLQ_TOPIC_MAX_BYTES`, set by `sagaflow topics create`) passes
`record_limit()` of its settings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from confluent_kafka import Message

from sagaflow.kafka.records import headers_of

H_REASON = "sagaflow.dlq.reason"
H_TOPIC = "sagaflow.dlq.source.topic"
H_PARTITION = "sagaflow.dlq.source.partition"
H_OFFSET = "sagaflow.dlq.source.offset"
H_STAGE = "sagaflow.dlq.stage"
H_SIZE = "sagaflow.dlq.original.size"
H_SHA256 = "sagaflow.dlq.original.sha256"
H_TRUNCATED = "sagaflow.dlq.truncated"
H_HEADERS_DROPPED = "sagaflow.dlq.original.headers.dropped"
DLQ_HEADERS = (
    H_REASON,
    H_TOPIC,
    H_PARTITION,
    H_OFFSET,
    H_STAGE,
    H_SIZE,
    H_SHA256,
    H_TRUNCATED,
    H_HEADERS_DROPPED,
)

DEFAULT_RECORD_LIMIT = 1_000_000
"""librdkafka's default message.max.bytes; below the broker's default topic limit (1,048,588)."""

DLQ_TOPIC_MAX_BYTES = 8 * 1024 * 1024
"""max.message.bytes of the dlq topic as sagaflow creates it: room for a whole copy of any
record the other topics (1 MiB by default) accepted, plus the dead letter's headers."""

# What the record batch and per-record framing add on the wire (batch header 61 bytes, varints
# per record and header), with a wide margin: a budget a few bytes too tight costs nothing.
_FRAMING_BYTES = 1024
_MAX_REASON_BYTES = 4000
_MAX_KEY_BYTES = 16 * 1024


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Bytes as librdkafka counts them against message.max.bytes (key, value, headers)."""
        return (
            len(self.key or b"")
            + len(self.value or b"")
            + sum(len(k) + len(v) for k, v in self.headers)
        )


def record_limit(producer_max_bytes: int, topic_max_bytes: int | None = None) -> int:
    """The largest dead letter that both the producer and the dlq topic accept."""
    if topic_max_bytes is None:
        return producer_max_bytes
    return min(producer_max_bytes, topic_max_bytes)


def _as_bytes(raw: object) -> bytes | None:
    if raw is None or isinstance(raw, bytes):
        return raw
    return str(raw).encode()


def dead_letter(
    msg: Message, reason: str, stage: str, *, max_bytes: int = DEFAULT_RECORD_LIMIT
) -> DeadLetter:
    """Wrap `msg` for the dlq, in at most `max_bytes` (see the module docstring).

    `stage` names who gave up on it (e.g. 'orchestrator.decode').
    """
    key = _as_bytes(msg.key())
    value = _as_bytes(msg.value())
    body = value or b""
    ours = [
        (H_REASON, reason.encode()[:_MAX_REASON_BYTES]),
        (H_TOPIC, str(msg.topic()).encode()),
        (H_PARTITION, str(msg.partition()).encode()),
        (H_OFFSET, str(msg.offset()).encode()),
        (H_STAGE, stage.encode()),
        (H_SIZE, str(len(body)).encode()),
        (H_SHA256, hashlib.sha256(body).hexdigest().encode()),
    ]
    original = [(k, v) for k, v in headers_of(msg) if k not in DLQ_HEADERS]
    budget = max_bytes - _FRAMING_BYTES
    fixed = sum(len(k) + len(v) for k, v in ours) + 64  # + the flags added below
    if key is not None and len(key) > _MAX_KEY_BYTES:
        # A key this large is itself the poison; the hash of the value still identifies it.
        key = key[:_MAX_KEY_BYTES]
        ours.append((H_TRUNCATED, b"key"))
    original_size = sum(len(k) + len(v) for k, v in original)
    if original_size > (budget - fixed - len(key or b"")) // 2:
        # Headers that eat half the room are dropped before the payload is cut.
        ours.append((H_HEADERS_DROPPED, str(len(original)).encode()))
        original = []
    room = budget - fixed - len(key or b"") - sum(len(k) + len(v) for k, v in original)
    if value is not None and len(value) > room:
        value = value[: max(room, 0)]
        ours.append((H_TRUNCATED, b"value"))
    return DeadLetter(key, value, [*original, *ours])


def is_truncated(headers: list[tuple[str, bytes]] | None) -> bool:
    """True when the dead letter does not carry its source record whole (no re-drive)."""
    return any(k == H_TRUNCATED for k, _ in headers or [])


def origin(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """The dlq headers of a dead letter, decoded (for the CLI and tests)."""
    return {k: v.decode(errors="replace") for k, v in (headers or []) if k in DLQ_HEADERS}
