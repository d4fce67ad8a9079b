"""The production security settings, for real: a broker of its own with a SASL_SSL listener
(SCRAM-SHA-512, certificates from `make certs`), the StandardAuthorizer, and the users and ACLs
of deploy/k8s/base/kafka-users.yaml. The orchestrator and the worker run a saga as their users;
the worker's user cannot append to the events topic; a client without credentials is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from sagaflow.client import Client, wait_closed
from sagaflow.config import Config, ConfigError
from sagaflow.core.messages import WorkflowCompleted
from sagaflow.devstack.cluster import KafkaCluster
from sagaflow.devstack.security import apply_acls
from sagaflow.kafka.admin import create_topics
from tests.sagas import QUEUES, order
from tests.scratch_kafka import migrate_and_seed, scratch_cluster
from tests.services import Service, orchestrator, service_env, worker
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# Away from the stack's 19092 and the cluster test's 29092-29097.
BASE_PORT = 39092
# The KafkaUsers' ACLs name the production topics and groups, and this broker is ours alone.
PREFIX = "sagaflow."


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    root = tmp_path_factory.mktemp("kafka-sasl")
    with scratch_cluster(Path(root), replicas=1, base_port=BASE_PORT, sasl_ssl=True) as cluster:
        security = cluster.nodes[0].security
        assert security is not None
        apply_acls(cluster.endpoint(), security)
        yield cluster


def env_as(cluster: KafkaCluster, user: str, database_url: str) -> dict[str, str]:
    security = cluster.nodes[0].security
    assert security is not None
    return service_env(
        cluster.endpoint(),
        database_url,
        PREFIX,
        # The groups the KafkaUsers grant, not the per-test names service_env picks.
        SAGAFLOW_ORCHESTRATOR_GROUP="sagaflow-orchestrator",
        SAGAFLOW_WORKER_GROUP_PREFIX="sagaflow-worker-",
        SAGAFLOW_PROJECTOR_GROUP="sagaflow-projector",
        **security.service_env(user),
    )


def test_saga_runs_with_each_service_as_its_own_user(
    broker: KafkaCluster, database_url: str
) -> None:
    admin_env = env_as(broker, "sagaflow-admin", database_url)
    outcome = create_topics(Config.from_env(admin_env), QUEUES)
    assert set(outcome.values()) <= {"created", "exists"}
    migrate_and_seed(database_url)

    orch_env = env_as(broker, "sagaflow-orchestrator", database_url)
    services: list[Service] = [
        orchestrator("sasl-orchestrator", orch_env, instance="0").start(),
        worker("sasl-worker", env_as(broker, "sagaflow-worker", database_url)).start(),
    ]
    try:
        # The API runs inside the orchestrator and sends commands with its user.
        config = Config.from_env(orch_env)
        ids = [f"sasl-{uuid.uuid4().hex[:10]}-{i}" for i in range(3)]
        client = Client(config)
        for w in ids:
            client.start("checkout", order(w), workflow_id=w)
        try:
            closed = wait_closed(config, ids, timeout_s=90)
        except TimeoutError as exc:
            logs = "\n".join(f"--- {s.name} (alive={s.alive()})\n{s.tail()}" for s in services)
            raise AssertionError(f"{exc}\n{logs}") from exc
        assert all(isinstance(e.body, WorkflowCompleted) for e in closed.values()), closed
        assert all(s.alive() for s in services), [s.tail() for s in services]
    finally:
        for s in services:
            s.terminate(20)


def test_worker_user_cannot_append_to_the_events_topic(
    broker: KafkaCluster, database_url: str
) -> None:
    create_topics(Config.from_env(env_as(broker, "sagaflow-admin", database_url)), QUEUES)
    config = Config.from_env(env_as(broker, "sagaflow-worker", database_url))
    errors: list[KafkaError] = []
    producer = Producer(
        {**config.kafka_common(), "enable.idempotence": False, "message.timeout.ms": 20_000}
    )
    producer.produce(
        config.topics.events,
        key=b"forged",
        value=b"an event the worker must not write",
        on_delivery=lambda err, _msg: errors.append(err),
    )
    assert producer.flush(30) == 0, "the delivery report never came"
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors[0]


def test_client_without_credentials_is_refused(broker: KafkaCluster) -> None:
    security = broker.nodes[0].security
    assert security is not None
    seen: list[KafkaError] = []

    def refused(conf: dict[str, str]) -> None:
        admin = AdminClient({**conf, "error_cb": seen.append, "log_level": "0"})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=3)

    # No SASL at all (TLS only), and no TLS either.
    refused({"bootstrap.servers": broker.endpoint(), "security.protocol": "SSL",
             "ssl.ca.location": str(security.certs.ca)})  # fmt: skip
    refused({"bootstrap.servers": broker.endpoint(), "security.protocol": "PLAINTEXT"})
    # A known user with a wrong password: the broker says authentication failed.
    seen.clear()
    wrong = {**security.client_conf("sagaflow-worker"), "sasl.password": "not-the-password"}
    refused({"bootstrap.servers": broker.endpoint(), **wrong})
    seen.clear()
    admin = AdminClient({"bootstrap.servers": broker.endpoint(), **wrong, "error_cb": seen.append})

    def authentication_failed() -> bool:
        admin.poll(0.2)  # error callbacks are served by poll
        return any(e.code() == KafkaError._AUTHENTICATION for e in seen)

    assert_eventually(
        authentication_failed,
        timeout=10,
        message="an authentication error for a wrong password",
    )
    # And sagaflow itself refuses to build a SASL client with no credentials.
    with pytest.raises(ConfigError, match="SAGAFLOW_KAFKA_SASL_USERNAME"):
        Config.from_env({"SAGAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}).kafka_common()
