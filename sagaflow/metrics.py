"""Prometheus metrics, in a registry owned by an object (never prometheus_client's global one).

`OrchestratorMetrics` and `WorkerMetrics` are built once per process and handed to the hooks
that update them; `metrics_handler(metrics)` serves their registry at /metrics. Consumer lag is
read on scrape from callbacks (`add_lag_source`): `group_lag` measures a consumer group against
the log end, and the read model projector registers its own callback.

Every metric is prefixed `sagaflow_`. Label values are bounded: message and event types,
activity names, outcomes, stages, partitions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from sagaflow.config import Config
from sagaflow.kafka.clients import reader

log = logging.getLogger(__name__)

LagSource = Callable[[], Mapping[int, int]]
"""Returns {partition: records not yet processed}; raising means "unknown right now"."""

# Transaction commits and activity steps span milliseconds to minutes (human approvals).
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STEP_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    3600.0,
)


class Metrics:
    """What every sagaflow process exposes: dlq records and consumer lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.dlq_records = Counter(
            "sagaflow_dlq_records",
            "Records sent to the dlq, by the stage that gave up on them.",
            ["stage"],
            registry=self.registry,
        )
        self._lag = _LagCollector()
        self.registry.register(self._lag)

    def add_lag_source(self, consumer: str, source: LagSource) -> None:
        """Expose `source()` as sagaflow_consumer_lag{consumer=..., partition=...} on scrape."""
        self._lag.add(consumer, source)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (may block: lag sources talk to Kafka)."""
        return generate_latest(self.registry)


class OrchestratorMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.commands_processed = Counter(
            "sagaflow_commands_processed",
            "Commands decided, by command type.",
            ["type"],
            registry=r,
        )
        self.commands_rejected = Counter(
            "sagaflow_commands_rejected",
            "Commands rejected, by command type and reason.",
            ["type", "reason"],
            registry=r,
        )
        self.decide_seconds = Histogram(
            "sagaflow_decide_seconds",
            "Time the core took to decide one command.",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.events_appended = Counter(
            "sagaflow_events_appended",
            "Events appended in committed transactions, by type.",
            ["type"],
            registry=r,
        )
        self.tasks_produced = Counter(
            "sagaflow_tasks_produced",
            "Activity tasks produced in committed transactions.",
            registry=r,
        )
        self.transaction_seconds = Histogram(
            "sagaflow_transaction_commit_seconds",
            "Time from begin_transaction to a committed transaction (one per batch).",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.transactions_committed = Counter(
            "sagaflow_transactions_committed", "Kafka transactions committed.", registry=r
        )
        self.transactions_aborted = Counter(
            "sagaflow_transactions_aborted",
            "Kafka transactions aborted (the batch is rebuilt and re-read).",
            registry=r,
        )
        self.step_seconds = Histogram(
            "sagaflow_step_latency_seconds",
            "Activity scheduled -> completed or finally failed, from the events' timestamps "
            "(includes queueing, retries and backoff).",
            ["activity", "outcome"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.rebuild_seconds = Histogram(
            "sagaflow_rebuild_seconds",
            "Time to rebuild one partition from the events log.",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.rebuild_events = Counter(
            "sagaflow_rebuild_events", "Events read while rebuilding partitions.", registry=r
        )


class WorkerMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.activity_executions = Counter(
            "sagaflow_activity_executions",
            "Activity attempts run by this worker, by activity and outcome.",
            ["activity", "outcome"],
            registry=r,
        )
        self.activity_seconds = Histogram(
            "sagaflow_activity_duration_seconds",
            "Duration of activity attempts, by activity and outcome.",
            ["activity", "outcome"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.idempotency_hits = Counter(
            "sagaflow_idempotency_hits",
            "Tasks not run because their step was already completed (its outcome is "
            "republished) or leased by another live worker.",
            ["activity", "outcome"],
            registry=r,
        )


# --------------------------------------------------------------------------- consumer lag


class _LagCollector(Collector):
    def __init__(self) -> None:
        self._sources: dict[str, LagSource] = {}
        self._lock = threading.Lock()

    def add(self, consumer: str, source: LagSource) -> None:
        with self._lock:
            self._sources[consumer] = source

    def describe(self) -> Iterable[Metric]:
        # Describing must not call the sources (it runs at registration, maybe before Kafka).
        return [GaugeMetricFamily("sagaflow_consumer_lag", "", labels=["consumer", "partition"])]

    def collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            "sagaflow_consumer_lag",
            "Records a consumer has not processed yet, per partition (log end minus committed).",
            labels=["consumer", "partition"],
        )
        failed = GaugeMetricFamily(
            "sagaflow_consumer_lag_unknown",
            "1 when a consumer's lag could not be read at this scrape.",
            labels=["consumer"],
        )
        with self._lock:
            sources = dict(self._sources)
        for consumer, source in sorted(sources.items()):
            try:
                values = source()
            except KafkaException as exc:
                # A scrape must still answer when Kafka is slow; the gap is visible as a metric
                # (and its series simply goes missing for this scrape).
                log.warning("consumer lag of %s unavailable: %s", consumer, exc)
                failed.add_metric([consumer], 1)
                continue
            failed.add_metric([consumer], 0)
            for partition, value in sorted(values.items()):
                lag.add_metric([consumer, str(partition)], max(0, value))
        return [lag, failed]


class GroupLag:
    """Lag of a Kafka consumer group on one topic, read with a group-less consumer.

    The committed offsets are what counts: what the orchestrator has committed is exactly what
    its transactions made durable, and what a worker has committed is what it finished. The
    consumer used for reading never joins the group, so it cannot disturb its rebalances.
    """

    def __init__(self, config: Config, group: str, topic: str, timeout_s: float = 5.0) -> None:
        self._config = config
        self._group = group
        self._topic = topic
        self._timeout_s = timeout_s
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dict[int, int]:
        with self._lock:
            if self._consumer is None:
                self._consumer = reader(self._config, **{"group.id": self._group})
            consumer = self._consumer
            meta = consumer.list_topics(self._topic, timeout=self._timeout_s).topics.get(
                self._topic
            )
            if meta is None or meta.error is not None:
                return {}
            tps = [TopicPartition(self._topic, p) for p in sorted(meta.partitions)]
            committed = consumer.committed(tps, timeout=self._timeout_s)
            out: dict[int, int] = {}
            for tp in committed:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self._topic, tp.partition), timeout=self._timeout_s, cached=False
                )
                # No committed offset yet: everything from the log start is unprocessed.
                start = tp.offset if tp.offset >= 0 else low
                out[tp.partition] = high - start
            return out

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None


# --------------------------------------------------------------------------- HTTP


def metrics_handler(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler serving `metrics` in Prometheus text format:
    `app.router.add_get("/metrics", metrics_handler(metrics))`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        # Lag sources make Kafka round trips: keep them off the event loop.
        body = await asyncio.to_thread(metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle


def type_name(value: Any) -> str:
    return type(value).__name__
