"""Topic administration. sagaflow never relies on broker auto-creation."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported without __all__
    AdminClient,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic

from sagaflow.config import Config
from sagaflow.kafka import triage
from sagaflow.kafka.dlq import DLQ_TOPIC_MAX_BYTES


class TopicError(RuntimeError):
    """A topic could not be created or does not match what sagaflow needs."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def wanted_topics(
    config: Config,
    queues: Iterable[str],
    *,
    partitions: int | None = None,
) -> list[TopicSpec]:
    """Every topic a deployment needs. commands and events share one partition count: a
    workflow's events go to the partition number of its commands."""
    t = config.topics
    n = partitions or config.partitions
    specs = [
        TopicSpec(t.commands, n, {}),
        TopicSpec(t.events, n, {"retention.ms": "-1"}),
        # Larger than the other topics' limit, so a dead letter (a record plus headers) fits.
        TopicSpec(t.dlq, 1, {"max.message.bytes": str(DLQ_TOPIC_MAX_BYTES)}),
        TopicSpec(t.checkpoints, 1, {"cleanup.policy": "compact"}),
        # Read whole by every rebuild of partition p: one record per closed workflow id.
        TopicSpec(t.closed_workflows, n, {"cleanup.policy": "compact"}),
        # Deployed state machines, one record per version; read whole by every orchestrator.
        TopicSpec(t.asl_definitions, 1, {"cleanup.policy": "compact"}),
        # Cancellations of running activities still in flight; read whole by every worker.
        TopicSpec(t.activity_cancels, 1, {"cleanup.policy": "compact"}),
        # Replies to waiting callers matter only while someone waits.
        TopicSpec(t.replies, n, {"retention.ms": "3600000"}),
    ]
    specs += [TopicSpec(t.tasks(q), n, {}) for q in sorted(set(queues))]
    return specs


def replication(
    config: Config, brokers: int, replication_factor: int | None = None
) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for new topics on a cluster of `brokers`.

    Unset (0), the factor is 3 when there are at least 3 brokers, else 1; min ISR is then 2 at
    a factor of 3 or more (an acks=all write survives one broker down and is never on one
    disk only), else 1 (a single replica must accept writes)."""
    rf = replication_factor or config.replication_factor or (3 if brokers >= 3 else 1)
    if rf > brokers:
        raise TopicError(
            f"replication factor {rf} needs at least {rf} brokers, the cluster has {brokers}; "
            "lower SAGAFLOW_REPLICATION_FACTOR (or --replication-factor) or add brokers"
        )
    min_isr = config.min_insync_replicas or (2 if rf >= 3 else 1)
    if min_isr > rf:
        raise TopicError(
            f"min.insync.replicas {min_isr} exceeds the replication factor {rf}: no write "
            "could ever succeed; lower SAGAFLOW_MIN_INSYNC_REPLICAS"
        )
    return rf, min_isr


def admin_client(config: Config) -> AdminClient:
    return AdminClient(dict(config.kafka_common()))


def create_topics(
    config: Config,
    queues: Iterable[str],
    *,
    partitions: int | None = None,
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create what is missing; returns {topic: 'created' | 'exists'}. Idempotent.

    An existing commands/events pair whose partition counts differ is an error: the
    orchestrator's partition mapping would break.
    """
    admin = admin_client(config)
    try:
        brokers = len(admin.list_topics(timeout=timeout_s).brokers)
    except KafkaException as exc:
        raise TopicError(
            f"could not read the cluster's metadata: {exc.args[0]}; check the broker at "
            f"{config.kafka_bootstrap} and the client's credentials"
        ) from exc
    rf, min_isr = replication(config, brokers, replication_factor)
    specs = wanted_topics(config, queues, partitions=partitions)
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=rf,
            config={"min.insync.replicas": str(min_isr), **s.config},
        )
        for s in specs
    ]
    outcome: dict[str, str] = {}
    for name, fut in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
            outcome[name] = "created"
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
                continue
            raise TopicError(
                f"could not create topic {name}: {err}; check the broker at "
                f"{config.kafka_bootstrap} and the client's ACLs"
            ) from exc
    _await_metadata(admin, [s.name for s in specs], timeout_s)
    t = config.topics
    counts = partition_counts(config, [t.commands, t.events, t.closed_workflows], timeout_s)
    if len(set(counts.values())) != 1:
        raise TopicError(
            f"commands, events and closed-workflows must have the same partition count, found "
            f"{counts}; recreate or alter them to match"
        )
    return outcome


def _await_metadata(admin: AdminClient, topics: list[str], timeout_s: float) -> None:
    """Wait until the broker's metadata shows every topic with a leader on each partition:
    a created topic is not visible to clients at once, and users act on it straight away."""
    deadline = time.monotonic() + timeout_s
    missing = list(topics)
    while True:
        md = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        missing = [
            t
            for t in topics
            if (tm := md.topics.get(t)) is None
            or tm.error is not None
            or any(p.leader < 0 for p in tm.partitions.values())
        ]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TopicError(
                f"topics {missing} were created but have no leader after {timeout_s:.0f}s; "
                "check the broker's controller log, then re-run 'sagaflow topics create'"
            )
        time.sleep(0.1)  # metadata propagation poll


def partition_counts(config: Config, topics: list[str], timeout_s: float = 10.0) -> dict[str, int]:
    md = admin_client(config).list_topics(timeout=timeout_s)
    out: dict[str, int] = {}
    for name in topics:
        tm = md.topics.get(name)
        if tm is None or tm.error is not None:
            raise TopicError(f"topic {name} does not exist; run 'sagaflow topics create'")
        out[name] = len(tm.partitions)
    return out


def describe_topics(config: Config, timeout_s: float = 10.0) -> dict[str, int]:
    """{topic: partitions} for every topic under the configured prefix."""
    md = admin_client(config).list_topics(timeout=timeout_s)
    return {
        name: len(tm.partitions)
        for name, tm in sorted(md.topics.items())
        if name.startswith(config.topics.prefix)
    }


def topic_max_message_bytes(config: Config, topic: str, timeout_s: float = 10.0) -> int:
    """The topic's effective max.message.bytes (its own setting or the broker's default).

    Raises triage.AbortRequired when the broker does not answer or the client may not describe
    the topic's configuration (DescribeConfigs ACL).
    """
    admin = admin_client(config)
    resource = ConfigResource(ResourceType.TOPIC, topic)

    def describe() -> int:
        entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(
            timeout=timeout_s
        )
        return int(entries["max.message.bytes"].value)

    return triage.call(describe, f"describe_configs {topic}", deadline_s=timeout_s)
