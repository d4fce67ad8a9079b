"""Kafka client construction. Every client of a deployment shares Config.kafka_common().

All producers partition with murmur2 so that Java and Python producers put a workflow's
commands on the same partition (librdkafka's own default hashes with CRC32).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer

from sagaflow.config import Config

PARTITIONER = "murmur2_random"


def command_producer(config: Config, **overrides: Any) -> Producer:
    """Idempotent producer for clients and workers that send commands."""
    conf: dict[str, Any] = {
        **config.kafka_common(),
        "partitioner": PARTITIONER,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "client.id": "sagaflow-client",
    }
    conf.update(overrides)
    return Producer(conf)


def transactional_producer(config: Config, transactional_id: str, **overrides: Any) -> Producer:
    conf: dict[str, Any] = {
        **config.kafka_common(),
        "partitioner": PARTITIONER,
        "transactional.id": transactional_id,
        "transaction.timeout.ms": config.transaction_timeout_ms,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "client.id": transactional_id,
    }
    conf.update(overrides)
    return Producer(conf)


def group_consumer(config: Config, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that commits only what its owner says is done."""
    conf: dict[str, Any] = {
        **config.kafka_common(),
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": 300_000,
        "client.id": group_id,
    }
    if config.group_protocol == "consumer":
        # KIP-848: the broker assigns and times sessions out (group.consumer.* settings);
        # librdkafka refuses the classic assignment and session settings with it.
        conf["group.protocol"] = "consumer"
    else:
        conf.update(
            {
                "partition.assignment.strategy": "cooperative-sticky",
                # A kill -9'd member's partitions move on after the session timeout. librdkafka
                # heartbeats from its own thread, so a busy (GIL-bound) Python loop does not
                # miss them. A survivor learns that the group changed only from a heartbeat's
                # answer, so the interval adds to every failover: six per session keep that
                # under 0.35 s (2 s session) and leave room for five lost or late heartbeats.
                "session.timeout.ms": config.group_session_timeout_ms,
                "heartbeat.interval.ms": max(100, config.group_session_timeout_ms // 6),
            }
        )
    conf.update(overrides)
    return Consumer(conf)


def reader(config: Config, **overrides: Any) -> Consumer:
    """A group-less, assign-only consumer for reading a log range (rebuild, CLI, tests)."""
    conf: dict[str, Any] = {
        **config.kafka_common(),
        "group.id": "sagaflow-reader",  # required by librdkafka; never joined or committed
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    conf.update(overrides)
    return Consumer(conf)
