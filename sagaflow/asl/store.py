"""Deployed state machines, stored durably in a compacted Kafka topic.

Topic `<prefix>asl.definitions` (one partition, cleanup.policy=compact) holds one record per
(name, version), key `name@version`, so compaction keeps every version: executions that started
on an old version finish on it. Deploying an unchanged document is a no-op; a changed one
becomes the next version. The orchestrator reads the topic to its end before it rebuilds any
workflow (so replay finds every version) and then follows it, registering new versions as they
are deployed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.cimpl import NewTopic

from sagaflow.asl import model
from sagaflow.asl.interpreter import register
from sagaflow.config import Config
from sagaflow.kafka import logread, triage
from sagaflow.kafka.admin import TopicError, admin_client
from sagaflow.kafka.clients import command_producer, reader
from sagaflow.kafka.produce import describe_error, produce
from sagaflow.workflow import Registry, SagaflowError

log = logging.getLogger("sagaflow.asl")

FOLLOW_POLL_S = 0.5
MISSING_TOPIC_RECHECK_S = 2.0


class DeployError(SagaflowError):
    """A definition could not be stored (or read back) in Kafka."""


@dataclass(frozen=True)
class Deployed:
    name: str
    version: int
    definition: dict[str, Any]
    digest: str


def topic(config: Config) -> str:
    return config.topics.asl_definitions


def digest(definition: dict[str, Any]) -> str:
    """The same document gives the same digest, however it was formatted."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def ensure_topic(config: Config, timeout_s: float = 30.0) -> None:
    """Create the compacted definitions topic if it is missing (idempotent)."""
    admin = admin_client(config)
    spec = NewTopic(
        topic(config),
        num_partitions=1,
        replication_factor=config.replication_factor,
        config={"cleanup.policy": "compact", "retention.ms": "-1"},
    )
    for name, future in admin.create_topics([spec], request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TopicError(
                f"could not create topic {name}: {err}; check the broker at "
                f"{config.kafka_bootstrap} and the client's ACLs"
            ) from exc


def topic_exists(config: Config, timeout_s: float = 10.0) -> bool:
    name = topic(config)
    metadata = triage.call(
        lambda: admin_client(config).list_topics(name, timeout=timeout_s), f"metadata of {name}"
    )
    found = metadata.topics.get(name)
    return found is not None and found.error is None


def _decode(value: bytes) -> Deployed:
    data = json.loads(value)
    definition = model.load(json.dumps(data["definition"]), f"{data['name']}@{data['version']}")
    return Deployed(data["name"], int(data["version"]), definition, data["digest"])


def _next_offset(msg: Any) -> int:
    offset = msg.offset()
    assert offset is not None
    return int(offset) + 1


def _decode_record(msg: Any) -> Deployed | None:
    """The record's definition; None for a tombstone or a record that is not one (skipped with
    an error in the log: one bad record must not stop every other state machine loading)."""
    value = msg.value()
    if value is None:
        return None
    try:
        return _decode(value)
    except (model.DefinitionError, ValueError, KeyError, TypeError) as exc:
        log.error(
            "skipping record at offset %s of the definitions topic: %s; deploy a fixed "
            "definition with 'sagaflow asl deploy'", msg.offset(), exc,
        )  # fmt: skip
        return None


def read_all(config: Config, timeout_s: float = 30.0) -> tuple[list[Deployed], int]:
    """Every stored definition, and the offset after the last record."""
    consumer = reader(config)
    found: dict[tuple[str, int], Deployed] = {}
    end = 0
    try:
        for msg in logread.read_partitions(consumer, topic(config), {0: 0}, deadline_s=timeout_s):
            end = _next_offset(msg)
            deployed = _decode_record(msg)
            if deployed is not None:
                found[(deployed.name, deployed.version)] = deployed
    finally:
        consumer.close()
    return sorted(found.values(), key=lambda d: (d.name, d.version)), end


def deploy(config: Config, name: str, definition: dict[str, Any]) -> tuple[Deployed, bool]:
    """Store `definition` under `name`: the next version if it changed, else the current one.
    Returns (the stored version, whether it is new)."""
    ensure_topic(config)
    existing = [d for d in read_all(config)[0] if d.name == name]
    wanted = digest(definition)
    if existing and existing[-1].digest == wanted:
        return existing[-1], False
    deployed = Deployed(name, (existing[-1].version + 1) if existing else 1, definition, wanted)
    value = json.dumps(
        {"name": name, "version": deployed.version, "definition": definition, "digest": wanted}
    ).encode()
    errors: list[str] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(describe_error(err))

    producer = command_producer(config)
    produce(producer, topic(config), value, f"{name}@{deployed.version}", on_delivery=delivered)
    if producer.flush(30) > 0 or errors:
        raise DeployError(
            f"definition {name!r} version {deployed.version} was not stored in "
            f"{topic(config)} ({errors or 'no acknowledgement within 30 s'}); check the broker "
            "and deploy again (deploying is idempotent)"
        )
    return deployed, True


def _register_new(registry: Registry, deployed: list[Deployed]) -> None:
    for d in deployed:
        if d.version not in registry.workflows.get(d.name, {}):
            register(registry, d.name, d.definition, d.version)
            log.info("state machine %s version %d registered", d.name, d.version)


class Follower:
    """Registers every deployed definition into a Registry, now and as new ones arrive."""

    def __init__(self, config: Config, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.offset = 0

    def load(self) -> None:
        """Read the topic to its end and register everything (before any replay). A missing
        topic means nothing was deployed yet: the orchestrator does not create it (it may lack
        the right to), `sagaflow asl deploy` does."""
        backoff = 0.5
        while True:
            try:
                if not topic_exists(self.config):
                    log.info(
                        "no state machine deployed yet (%s does not exist)", topic(self.config)
                    )
                    return
                deployed, self.offset = read_all(self.config)
                _register_new(self.registry, deployed)
                return
            except (triage.AbortRequired, logread.LogReadError) as exc:
                # The broker is away (restarting): nothing can run without it anyway, and the
                # definitions must be known before any replay.
                log.warning(
                    "loading the deployed state machines: %s; waiting for the broker, retrying "
                    "in %.1fs",
                    exc,
                    backoff,
                )
                time.sleep(backoff)  # backoff while the broker is away
                backoff = min(backoff * 2, 5.0)

    def start(self) -> Follower:
        self.load()
        self._thread = threading.Thread(target=self._follow, name="asl-definitions", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _follow(self) -> None:
        consumer = reader(self.config)
        try:
            while not self._stop.is_set():
                try:
                    if not topic_exists(self.config):
                        self._stop.wait(MISSING_TOPIC_RECHECK_S)
                        continue
                    for msg in logread.read_partitions(
                        consumer,
                        topic(self.config),
                        {0: self.offset},
                        deadline_s=FOLLOW_POLL_S,
                        follow=True,
                    ):
                        self.offset = _next_offset(msg)
                        deployed = _decode_record(msg)
                        if deployed is not None:
                            _register_new(self.registry, [deployed])
                except (logread.LogReadError, triage.AbortRequired) as exc:
                    # The broker went away: definitions already loaded keep working; new
                    # deployments are picked up once it is back.
                    log.warning("following the definitions topic: %s", exc)
                    self._stop.wait(FOLLOW_POLL_S)
        finally:
            consumer.close()


def attach(config: Config, registry: Registry) -> Follower:
    """Load every deployed state machine into `registry` and keep following the topic."""
    return Follower(config, registry).start()
