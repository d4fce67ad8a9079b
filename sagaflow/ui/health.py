"""The health page's facts, from Kafka's own view: which orchestrator owns which commands
partitions, and how far each consumer group (orchestrators, projector, workers) lags behind."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from sagaflow.cli.kafkaio import open_reader, quiet
from sagaflow.config import Config

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Member:
    client_id: str
    host: str
    partitions: list[str]


@dataclass
class Group:
    name: str
    topic: str
    state: str = "unknown"
    members: list[Member] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)
    """{partition: records not yet consumed}; a partition without a commit counts from its
    start."""
    problem: str | None = None

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


def groups_of(config: Config, queues: frozenset[str]) -> list[Group]:
    """The consumer groups a deployment runs, each with the topic it consumes."""
    out = [
        Group(config.orchestrator_group, config.topics.commands),
        Group(config.projector_group, config.topics.events),
    ]
    out += [Group(config.worker_group_prefix + q, config.topics.tasks(q)) for q in sorted(queues)]
    return out


def read_health(config: Config, queues: frozenset[str]) -> list[Group]:
    """Blocking (call it in a thread). A group Kafka cannot describe carries its problem."""
    admin = AdminClient({**config.kafka_common(), **quiet()})
    consumer = open_reader(config)
    groups = groups_of(config, queues)
    try:
        for g in groups:
            try:
                _describe(admin, consumer, g)
            except KafkaException as exc:
                # Shown on the page, not handled: the operator learns what Kafka said.
                g.problem = f"Kafka could not describe {g.name}: {exc.args[0] if exc.args else exc}"
    finally:
        consumer.close()
    return groups


def _describe(admin: AdminClient, consumer: Consumer, g: Group) -> None:
    desc = admin.describe_consumer_groups([g.name])[g.name].result(timeout=TIMEOUT_S)
    g.state = str(desc.state).rsplit(".", 1)[-1].lower()
    g.members = [
        Member(
            m.client_id,
            m.host,
            [
                f"{tp.topic}[{tp.partition}]"
                for tp in (m.assignment.topic_partitions if m.assignment else [])
            ],
        )
        for m in desc.members
    ]
    request = [ConsumerGroupTopicPartitions(g.name)]
    committed = admin.list_consumer_group_offsets(request)[g.name].result(timeout=TIMEOUT_S)
    offsets = {tp.partition: tp.offset for tp in committed.topic_partitions if tp.topic == g.topic}
    md = consumer.list_topics(g.topic, timeout=TIMEOUT_S)
    meta = md.topics.get(g.topic)
    if meta is None or meta.error is not None:
        g.problem = f"topic {g.topic} is missing; run 'sagaflow topics create'"
        return
    for p in sorted(meta.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(g.topic, p), timeout=TIMEOUT_S)
        done = offsets.get(p, -1)
        g.lag[p] = max(0, high - (done if done >= 0 else low))
