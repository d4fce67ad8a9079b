"""Which Kafka the stack runs: the default single PLAINTEXT broker, or (on request) a KRaft
cluster of combined nodes and/or a SASL_SSL broker with ACLs.

`make up` reads two variables:

- SAGAFLOW_KAFKA_BROKERS=3: three combined broker+controller nodes, brokers on 127.0.0.1:19092,
  19094, 19096 and controllers on 19093, 19095, 19097 (data and logs under
  .stack/kafka-cluster/node-<id>/);
- SAGAFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL: the broker listener(s) speak SASL_SSL with
  SCRAM-SHA-512 and ACLs; the service users' settings are written to
  .stack/kafka-cluster/<user>.env.

The layout chosen is recorded in .stack/kafka-cluster/layout.json, so `make down` and
`make status` find a running cluster without the variables.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from sagaflow.devstack.cluster import KafkaCluster
from sagaflow.devstack.common import StackError, StackPaths
from sagaflow.devstack.kafka import Kafka
from sagaflow.devstack.security import SERVICE_USERS, BrokerSecurity, apply_acls, ensure_certs
from sagaflow.devstack.service import Service


@dataclass(frozen=True)
class Layout:
    brokers: int = 1
    sasl_ssl: bool = False

    @property
    def default(self) -> bool:
        return self.brokers == 1 and not self.sasl_ssl

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Layout | None:
        """The layout the environment asks for; None when it asks for nothing."""
        raw = env.get("SAGAFLOW_KAFKA_BROKERS", "").strip()
        protocol = env.get("SAGAFLOW_KAFKA_SECURITY_PROTOCOL", "").strip().upper()
        if not raw and protocol in {"", "PLAINTEXT"}:
            return None
        if raw not in {"", "1", "3"}:
            raise StackError(
                f"SAGAFLOW_KAFKA_BROKERS={raw!r}: the local stack runs 1 or 3 brokers; "
                "set it to 1 or 3 (or unset it)"
            )
        if protocol not in {"", "PLAINTEXT", "SASL_SSL"}:
            raise StackError(
                f"SAGAFLOW_KAFKA_SECURITY_PROTOCOL={protocol!r}: the local stack runs "
                "PLAINTEXT or SASL_SSL brokers; set one of them (or unset it)"
            )
        return cls(brokers=int(raw or "1"), sasl_ssl=protocol == "SASL_SSL")


def cluster_root(paths: StackPaths) -> Path:
    return paths.stack / "kafka-cluster"


def certs_dir(paths: StackPaths) -> Path:
    return paths.stack / "certs"


def recorded_layout(paths: StackPaths) -> Layout | None:
    try:
        return Layout(**json.loads((cluster_root(paths) / "layout.json").read_text()))
    except FileNotFoundError:
        return None


class StackCluster(KafkaCluster):
    """The stack's non-default Kafka: records its layout when started, and on a secured
    cluster creates the service users' ACLs and env files once it answers."""

    def __init__(self, paths: StackPaths, layout: Layout) -> None:
        root = cluster_root(paths)
        security = None
        if layout.sasl_ssl:
            security = BrokerSecurity.load_or_create(root, ensure_certs(certs_dir(paths)))
        super().__init__(paths, root=root, replicas=layout.brokers, security=security)
        self.layout = layout

    def start(self) -> None:
        recorded = recorded_layout(self.paths)
        if recorded is not None and recorded != self.layout and self.running():
            raise StackError(
                f"a Kafka layout {recorded} already runs; `make down` first to switch to "
                f"{self.layout}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        if recorded is not None and recorded != self.layout:
            # A different quorum cannot reuse the old data: start from empty storage.
            for node_dir in self.root.glob("node-*"):
                shutil.rmtree(node_dir, ignore_errors=True)
            (self.root / "cluster-id").unlink(missing_ok=True)
        (self.root / "layout.json").write_text(json.dumps(asdict(self.layout)))
        super().start()

    def wait_ready(self, timeout: float) -> None:
        super().wait_ready(timeout)
        security = self.nodes[0].security
        if security is None:
            return
        apply_acls(self.endpoint(), security)
        for user in SERVICE_USERS:
            env = {"SAGAFLOW_KAFKA_BOOTSTRAP": self.endpoint(), **security.service_env(user)}
            path = self.root / f"{user}.env"
            path.touch(mode=0o600)
            path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))


def kafka_service(paths: StackPaths, env: Mapping[str, str] | None = None) -> Service:
    """The Kafka the environment asks for, else the one running now, else the single broker."""
    wanted = Layout.from_env(os.environ if env is None else env)
    if wanted is None:
        recorded = recorded_layout(paths)
        if recorded is not None and not recorded.default:
            running = StackCluster(paths, recorded)
            if running.running():
                return running
        return Kafka(paths)
    if wanted.default:
        return Kafka(paths)
    return StackCluster(paths, wanted)
