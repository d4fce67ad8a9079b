"""The container tier is what it says: Kafka and Postgres come from containers of the images
built here, on an engine with no bridge network, labelled for the project's own clean-up."""

from __future__ import annotations

import psycopg
import pytest

from sagaflow.devstack.container_images import KAFKA_PORT, POSTGRES_MAJOR, POSTGRES_PORT
from sagaflow.devstack.containers import LABEL
from tests.container_tier import ContainerTier

pytestmark = [pytest.mark.containers, pytest.mark.integration, pytest.mark.timeout(120)]


def test_kafka_and_postgres_are_this_sessions_containers(
    container_tier: ContainerTier, kafka_bootstrap: str, database_url: str
) -> None:
    assert kafka_bootstrap.endswith(f":{KAFKA_PORT}")
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    # Debian trixie's postgresql-17, not the local stack's Postgres 16 on port 15432.
    assert row is not None and str(row[0]).startswith(f"{POSTGRES_MAJOR}."), row
    assert f":{POSTGRES_PORT}/" in database_url

    running = container_tier.client.containers.list(
        filters={"label": f"{LABEL}={container_tier.session}"}
    )
    images = {c.image.tags[0] for c in running}
    assert {container_tier.images.kafka, container_tier.images.postgres} <= images
    assert {c.attrs["HostConfig"]["NetworkMode"] for c in running} == {"host"}


def test_the_projects_engine_has_no_bridge_network(container_tier: ContainerTier) -> None:
    if container_tier.engine.external_url() is not None:
        pytest.skip("an external Docker engine is in use; its networks are not ours to judge")
    names = {n.name for n in container_tier.client.networks.list()}
    assert names == {"host", "none"}, f"the engine created networks: {names}"
