"""Dead letters: a record that cannot be decoded or processed, with why and where from.

The original key and bytes are kept as they were; the reason and the origin travel in headers,
so an operator can inspect the record and re-drive it to its source topic unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message

from sagaflow.kafka.records import headers_of

H_REASON = "sagaflow.dlq.reason"
H_TOPIC = "sagaflow.dlq.source.topic"
H_PARTITION = "sagaflow.dlq.source.partition"
H_OFFSET = "sagaflow.dlq.source.offset"
H_STAGE = "sagaflow.dlq.stage"
DLQ_HEADERS = (H_REASON, H_TOPIC, H_PARTITION, H_OFFSET, H_STAGE)


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(msg: Message, reason: str, stage: str) -> DeadLetter:
    """Wrap `msg` for the dlq. `stage` names who gave up on it (e.g. 'orchestrator.decode')."""
    original = [(k, v) for k, v in headers_of(msg) if k not in DLQ_HEADERS]
    headers = [
        *original,
        (H_REASON, reason.encode()[:4000]),
        (H_TOPIC, str(msg.topic()).encode()),
        (H_PARTITION, str(msg.partition()).encode()),
        (H_OFFSET, str(msg.offset()).encode()),
        (H_STAGE, stage.encode()),
    ]
    key = msg.key()
    value = msg.value()
    return DeadLetter(
        key if isinstance(key, bytes) or key is None else str(key).encode(),
        value if isinstance(value, bytes) or value is None else str(value).encode(),
        headers,
    )


def origin(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """The dlq headers of a dead letter, decoded (for the CLI and tests)."""
    return {k: v.decode(errors="replace") for k, v in (headers or []) if k in DLQ_HEADERS}
