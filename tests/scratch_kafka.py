"""Kafka brokers of a test's own, beside the stack's: own ports, own scratch directory, stopped
(kill -9 when a controlled shutdown would stall) at the end of the test module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sagaflow.devstack.cluster import KafkaCluster
from sagaflow.devstack.common import StackPaths
from sagaflow.devstack.layout import certs_dir
from sagaflow.devstack.security import BrokerSecurity, ensure_certs

START_TIMEOUT_S = 150.0


@contextmanager
def scratch_cluster(
    root: Path,
    *,
    replicas: int,
    base_port: int,
    sasl_ssl: bool = False,
    overrides: Mapping[str, str] | None = None,
) -> Iterator[KafkaCluster]:
    paths = StackPaths.from_env()
    paths.make_dirs()
    security = None
    if sasl_ssl:
        # The certificates are the stack's (`make certs`), generated once per clone.
        security = BrokerSecurity.load_or_create(root, ensure_certs(certs_dir(paths)))
    cluster = KafkaCluster(
        paths,
        root=root,
        replicas=replicas,
        base_port=base_port,
        security=security,
        overrides=overrides,
    )
    cluster.install()
    try:
        cluster.start()
        cluster.wait_ready(START_TIMEOUT_S)
        yield cluster
    finally:
        # Scratch data is thrown away: no need for a controlled shutdown.
        cluster.kill()


def migrate_and_seed(database_url: str) -> None:
    from sagaflow.db.migrate import migrate
    from sagaflow.examples import shop_pg

    async def db() -> None:
        await migrate(database_url)
        await shop_pg.seed_stock(database_url, {"sku-test": 1_000_000})

    asyncio.run(db())
