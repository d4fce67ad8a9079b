"""Edges that used to kill a process or answer 500: a dead letter of any size, the projector's
lag refresh during a broker restart, and request values Postgres or UTF-8 cannot hold."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sagaflow.config import Config
from sagaflow.inputs import InputError, check_json
from sagaflow.kafka.dlq import (
    DEFAULT_RECORD_LIMIT,
    H_HEADERS_DROPPED,
    H_SHA256,
    H_SIZE,
    H_TRUNCATED,
    dead_letter,
    is_truncated,
    origin,
)
from sagaflow.readmodel.projector import KAFKA, Projector

pytestmark = pytest.mark.unit


class FakeMessage:
    """The few accessors of confluent_kafka.Message that dead_letter reads."""

    def __init__(
        self, value: bytes | None, key: bytes | None = b"wf-1", headers: Any = None
    ) -> None:
        self._value, self._key, self._headers = value, key, headers

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> Any:
        return self._headers

    def topic(self) -> str:
        return "p.commands"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41


# --------------------------------------------------------------------------- dead letters


def test_a_small_record_is_copied_whole_with_size_and_hash() -> None:
    letter = dead_letter(FakeMessage(b"junk", headers=[("trace", b"t")]), "why", "stage")  # type: ignore[arg-type]
    h = origin(letter.headers)
    assert letter.value == b"junk" and letter.key == b"wf-1"
    assert ("trace", b"t") in letter.headers
    assert h[H_SIZE] == "4" and h[H_SHA256] == hashlib.sha256(b"junk").hexdigest()
    assert (h["sagaflow.dlq.source.topic"], h["sagaflow.dlq.source.partition"]) == (
        "p.commands",
        "2",
    )
    assert h["sagaflow.dlq.source.offset"] == "41"
    assert not is_truncated(letter.headers)


@pytest.mark.parametrize("limit", [DEFAULT_RECORD_LIMIT, 64 * 1024, 8 * 1024 * 1024])
def test_a_record_at_the_size_limit_is_truncated_to_fit_with_its_origin(limit: int) -> None:
    value = bytes(range(256)) * (limit // 256 + 10)  # over the limit before any header
    letter = dead_letter(
        FakeMessage(value), "undecodable command: x" * 500, "orch", max_bytes=limit
    )  # type: ignore[arg-type]
    h = origin(letter.headers)
    assert letter.size <= limit - 512, "the dead letter (with headers) fits the limit"
    assert letter.value is not None and value.startswith(letter.value)
    assert h[H_TRUNCATED] == "value" and is_truncated(letter.headers)
    assert h[H_SIZE] == str(len(value))
    assert h[H_SHA256] == hashlib.sha256(value).hexdigest()
    assert len(h["sagaflow.dlq.reason"]) <= 4000


def test_huge_headers_and_key_are_dropped_before_the_payload_is_lost() -> None:
    headers = [(f"h{i}", b"x" * 10_000) for i in range(200)]  # 2 MB of headers
    letter = dead_letter(FakeMessage(b"v" * 100, key=b"k" * 100_000, headers=headers), "r", "s")  # type: ignore[arg-type]
    h = origin(letter.headers)
    assert letter.size <= DEFAULT_RECORD_LIMIT
    assert h[H_HEADERS_DROPPED] == "200"
    assert letter.value == b"v" * 100
    assert letter.key is not None and len(letter.key) <= 16 * 1024


# --------------------------------------------------------------------------- projector lag


class FlakyConsumer:
    """A consumer whose watermark query fails like a broker mid-restart until healed."""

    def __init__(self) -> None:
        self.broken = True

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("p.events", 0)]

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition("p.events", 0, 5)]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition("p.events", 0, 5)]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        if self.broken:
            # What triage turns into "abort": not retriable, not fatal.
            raise KafkaException(
                KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION, "leader moved", retriable=False)
            )
        return (0, 9)


def test_lag_refresh_during_a_broker_restart_marks_kafka_away_and_recovers() -> None:
    config = Config.from_env(
        {"SAGAFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1", "SAGAFLOW_TOPIC_PREFIX": "p."}
    )
    projector = Projector(config)
    consumer = FlakyConsumer()
    projector._consumer = consumer  # type: ignore[assignment]

    projector._refresh_lag()  # must not raise: that used to kill the orchestrator

    assert KAFKA in projector.away() and "NOT_LEADER_FOR_PARTITION" in projector.away()[KAFKA]
    consumer.broken = False
    projector._lag_checked = 0.0
    projector._refresh_lag()
    assert projector.away() == {}
    assert projector.lag() == 4


# --------------------------------------------------------------------------- request values


@pytest.mark.parametrize(
    ("value", "root", "field"),
    [
        ({"input": {"sku": "a\x00b"}}, "", "input.sku"),
        ({"input": {"items": ["ok", "\ud800"]}}, "", "input.items[1]"),
        ("\udfff", "body", "body"),
        ({"reason": "x", "k\x00": 1}, "", "body (a key)"),
    ],
)
def test_unstorable_text_is_refused_naming_the_field(value: Any, root: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        check_json(value, root)
    assert caught.value.field == field


def test_deep_nesting_is_refused_without_recursion() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InputError, match="nested more than 64 levels") as caught:
        check_json({"input": deep}, "")
    assert caught.value.field == "input"
    check_json({"input": [[["fine"]]], "unicode": "żółw ✓"}, "")


def test_a_moving_leader_is_retried_even_without_the_retriable_flag() -> None:
    from confluent_kafka import KafkaError, KafkaException

    from sagaflow.kafka import triage

    for code in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE):
        exc = KafkaException(KafkaError(code, "moved", retriable=False))
        assert triage.classify(exc) is triage.Verdict.RETRY
