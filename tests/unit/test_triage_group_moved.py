"""Which abortable errors leave the producer healthy: a rebalance under a transaction's offsets
is answered by aborting that transaction, anything else by a new producer (loop.py)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from sagaflow.kafka import triage

pytestmark = pytest.mark.unit


def _abort_required(code: int) -> triage.AbortRequired:
    try:
        triage.call(lambda: _raise(code), "send_offsets_to_transaction", deadline_s=0)
    except triage.AbortRequired as exc:
        return exc
    raise AssertionError(f"{KafkaError(code).name()} was not triaged as abortable")


def _raise(code: int) -> None:
    raise KafkaException(KafkaError(code, "from the test", txn_requires_abort=True))


@pytest.mark.parametrize(
    "code",
    [KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS],
)
def test_a_group_change_under_the_offsets_is_only_a_moved_group(code: int) -> None:
    assert triage.group_moved(_abort_required(code))


@pytest.mark.parametrize(
    "code", [KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError._TIMED_OUT, KafkaError._TRANSPORT]
)
def test_other_abortable_errors_need_a_new_producer(code: int) -> None:
    assert not triage.group_moved(_abort_required(code))


def test_an_abort_without_a_kafka_cause_is_not_a_moved_group() -> None:
    assert not triage.group_moved(triage.AbortRequired("injected"))
