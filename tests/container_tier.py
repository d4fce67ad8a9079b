"""The container tier's services: Kafka and Postgres as testcontainers containers of the images
`sagaflow.devstack.container_images` builds, on the project's Docker engine.

Every container uses the host network (the engine has no bridge) and carries the label
``dev.sagaflow.tier=<session id>``; testcontainers' reaper (ryuk) is off because its image is not
reachable, and this module removes what it started instead: at the end of the session, and
`make containers-down` removes anything a killed session left behind.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from sagaflow.devstack.common import HOST, ensure_ports_free
from sagaflow.devstack.container_images import (
    KAFKA_CONTROLLER_PORT,
    KAFKA_PORT,
    POSTGRES_PORT,
    Images,
    ensure_images,
)
from sagaflow.devstack.containers import LABEL, Engine
from sagaflow.devstack.kafka import new_cluster_id
from tests.support import assert_eventually

# Read by testcontainers when its config module is first imported: no reaper container.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

START_TIMEOUT = 120.0
POSTGRES_URL = f"postgresql://sagaflow:sagaflow@{HOST}:{POSTGRES_PORT}/sagaflow"


class ContainerTier:
    """The engine, the images, and the containers this session started."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.url, self.started_engine = self.engine.up()
        # testcontainers (and docker-py) find the engine through DOCKER_HOST.
        os.environ["DOCKER_HOST"] = self.url
        self.client = self.engine.client(self.url)
        self.images: Images = ensure_images(self.client, self.engine.paths)
        self.session = uuid.uuid4().hex[:12]
        self.containers: list[Any] = []

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL: self.session}

    def container(self, image: str, **kwargs: Any) -> Any:
        """A testcontainers container of `image` on the host network, labelled for clean-up;
        not started."""
        from testcontainers.core.container import DockerContainer

        return DockerContainer(image).with_kwargs(network_mode="host", labels=self.labels, **kwargs)

    def run(self, container: Any) -> Any:
        self.containers.append(container)
        return container.start()

    def wait(self, container: Any, ready: Any, what: str) -> None:
        """Polls `ready()` until true; fails at once with the logs when the container exits."""

        def check() -> bool:
            container.get_wrapped_container().reload()
            status = container.get_wrapped_container().status
            if status in ("exited", "dead"):
                out, err = container.get_logs()
                raise RuntimeError(
                    f"{what} exited during start-up:\n{(out + err).decode()[-3000:]}"
                )
            return bool(ready())

        assert_eventually(check, timeout=START_TIMEOUT, interval=0.5, message=f"{what} is ready")

    def kafka(self) -> str:
        ensure_ports_free("kafka container", (KAFKA_PORT, KAFKA_CONTROLLER_PORT))
        broker = self.run(
            self.container(self.images.kafka).with_env("KAFKA_CLUSTER_ID", new_cluster_id())
        )
        bootstrap = f"{HOST}:{KAFKA_PORT}"
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})

        def ready() -> bool:
            try:
                return bool(admin.list_topics(timeout=2).brokers)
            except KafkaException:
                return False

        self.wait(broker, ready, f"Kafka container ({self.images.kafka})")
        return bootstrap

    def postgres(self) -> str:
        ensure_ports_free("postgres container", (POSTGRES_PORT,))
        server = self.run(self.container(self.images.postgres))

        def ready() -> bool:
            try:
                with psycopg.connect(POSTGRES_URL, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                return False

        self.wait(server, ready, f"Postgres container ({self.images.postgres})")
        return POSTGRES_URL

    def close(self) -> None:
        """Removes this session's containers; stops the engine when this session started it."""
        try:
            self.engine.remove_containers(self.url, self.labels)
            self.client.close()
        finally:
            if self.started_engine:
                self.engine.down()
