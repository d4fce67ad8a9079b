"""The client's batched sending: many commands, one flush, every delivery checked."""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition

from sagaflow import codec
from sagaflow.client import Client, DeliveryError
from sagaflow.config import Config
from sagaflow.core.messages import StartWorkflow
from sagaflow.kafka.admin import create_topics
from sagaflow.kafka.clients import reader
from tests.services import config_of, service_env
from tests.support import unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _read_commands(config: Config, expected: int) -> list[tuple[int, StartWorkflow]]:
    consumer = reader(config)
    try:
        consumer.assign(
            [TopicPartition(config.topics.commands, p, 0) for p in range(config.partitions)]
        )
        found: list[tuple[int, StartWorkflow]] = []
        eof: set[int] = set()
        while len(eof) < config.partitions:
            msg = consumer.poll(10)
            assert msg is not None, f"only {len(found)} of {expected} commands read back"
            if msg.error() is not None:
                eof.add(msg.partition() or 0)
                continue
            command = codec.decode_command(msg.value() or b"")
            assert isinstance(command, StartWorkflow)
            assert (msg.key() or b"").decode() == command.workflow_id
            found.append((msg.partition() or 0, command))
        return found
    finally:
        consumer.close()


def test_start_many_delivers_every_start_keyed_like_start(
    kafka_bootstrap: str, database_url: str
) -> None:
    config = config_of(service_env(kafka_bootstrap, database_url, unique_prefix("client")))
    create_topics(config, [])
    client = Client(config)
    ids = client.start_many("bench_saga", ((f"w{i}", {"n": i}) for i in range(300)))
    client.start("bench_saga", {"n": "single"}, workflow_id="w0")  # the one-at-a-time API

    read = _read_commands(config, 301)
    assert ids == [f"w{i}" for i in range(300)]
    assert sorted(c.workflow_id for _p, c in read) == sorted([*ids, "w0"])
    assert {c.command_id for _p, c in read} == {f"start:{w}" for w in ids}
    # A batch and a single start of one workflow land on the same partition (murmur2 by id).
    partitions_of_w0 = {p for p, c in read if c.workflow_id == "w0"}
    assert len(partitions_of_w0) == 1
    assert len({p for p, _c in read}) > 1


def test_send_many_raises_when_kafka_does_not_take_the_batch() -> None:
    config = Config.from_env({"SAGAFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"})  # nothing listens
    client = Client(config)
    with pytest.raises(DeliveryError, match=r"3 of 3 command\(s\) not delivered"):
        client.send_many(
            [StartWorkflow(f"w{i}", "bench_saga", b"{}", None, f"start:w{i}") for i in range(3)],
            timeout_s=1.0,
        )
