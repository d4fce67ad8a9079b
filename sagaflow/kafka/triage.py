"""The one place where Kafka client errors are triaged.

librdkafka classifies every error it raises; we map that to exactly three outcomes:

* retriable      -> call again after a short backoff (bounded by a deadline);
* abortable      -> the transaction in flight must be aborted and the batch rewound;
* fatal          -> the process cannot continue safely (fenced, unrecoverable producer state):
                    exit non-zero so the platform restarts it with fresh clients.

Nothing else in sagaflow catches `KafkaException`; callers catch the two exception types
below and act on them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException

from sagaflow.core.errors import FatalError, SagaflowError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Verdict(Enum):
    RETRY = "retry"
    ABORT = "abort"
    FATAL = "fatal"


class AbortRequired(SagaflowError):
    """The current transaction must be aborted; the batch is rewound and decided again."""


class FatalKafkaError(FatalError):
    """Kafka says this client can't go on (fenced or unrecoverable). Exit and be restarted."""


def _error_of(exc: KafkaException) -> KafkaError | None:
    err = exc.args[0] if exc.args else None
    return err if isinstance(err, KafkaError) else None


_TRANSIENT = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
    }
)
"""Leadership moving (a broker restart, a topic created a moment ago): some client calls
(watermark and metadata queries) report these without librdkafka's retriable flag, though the
protocol defines them as retriable."""


def classify(exc: KafkaException) -> Verdict:
    err = _error_of(exc)
    if err is None:
        return Verdict.FATAL
    if err.fatal():
        return Verdict.FATAL
    if err.txn_requires_abort():
        return Verdict.ABORT
    if err.retriable() or err.code() in _TRANSIENT:
        return Verdict.RETRY
    # Producer fencing and invalid transaction state are not flagged fatal by every librdkafka
    # path, but continuing after them could duplicate events: treat them as fatal.
    if err.code() in (
        KafkaError._FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.PRODUCER_FENCED,
        KafkaError._STATE,
    ):
        return Verdict.FATAL
    return Verdict.ABORT


_FENCE_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


def fenced(exc: FatalKafkaError) -> bool:
    """Whether a fatal error means another client took over this one's transactional id (then
    the process must go, never fight back with a new producer)."""
    cause = exc.__cause__
    err = _error_of(cause) if isinstance(cause, KafkaException) else None
    return err is not None and err.code() in _FENCE_CODES


_GROUP_MOVED_CODES = frozenset(
    {KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS}
)


def group_moved(exc: AbortRequired) -> bool:
    """Whether an abortable error only says the consumer group moved on under the transaction's
    offsets (a rebalance gave the group a new generation): the producer itself is healthy, so
    aborting its transaction is enough, with no new producer."""
    cause = exc.__cause__
    err = _error_of(cause) if isinstance(cause, KafkaException) else None
    return err is not None and err.code() in _GROUP_MOVED_CODES


def describe(exc: KafkaException) -> str:
    err = _error_of(exc)
    return f"{err.name()}: {err.str()}" if err is not None else repr(exc)


def call(fn: Callable[[], T], what: str, *, deadline_s: float = 30.0) -> T:
    """Run one Kafka client call, retrying retriable errors until the deadline.

    Raises AbortRequired or FatalKafkaError; never a bare KafkaException.
    """
    deadline = time.monotonic() + deadline_s
    backoff = 0.05
    while True:
        try:
            return fn()
        except KafkaException as exc:
            verdict = classify(exc)
            if verdict is Verdict.RETRY and time.monotonic() < deadline:
                log.warning("kafka %s failed (%s); retrying in %.2fs", what, describe(exc), backoff)
                time.sleep(backoff)  # backoff between client retries, not synchronisation
                backoff = min(backoff * 2, 1.0)
                continue
            if verdict is Verdict.FATAL:
                raise FatalKafkaError(
                    f"kafka {what} failed fatally ({describe(exc)}); the process must restart "
                    "with fresh clients (another instance with the same transactional id may "
                    "have fenced this one)"
                ) from exc
            raise AbortRequired(
                f"kafka {what} failed ({describe(exc)}); aborting the batch"
            ) from exc
