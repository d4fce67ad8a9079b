"""The local stack's SASL users hold exactly the ACLs the Kubernetes KafkaUsers grant, so the
SASL_SSL integration test exercises production's least privilege, not a looser copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sagaflow.devstack.security import SERVICE_USERS, Grant

pytestmark = pytest.mark.unit

USERS_YAML = Path(__file__).resolve().parents[2] / "deploy/k8s/base/kafka-users.yaml"


def test_service_users_match_the_kafka_users_manifest() -> None:
    manifest: dict[str, tuple[Grant, ...]] = {}
    for doc in yaml.safe_load_all(USERS_YAML.read_text()):
        acls = doc["spec"]["authorization"]["acls"]
        manifest[doc["metadata"]["name"]] = tuple(
            Grant(
                a["resource"]["type"],
                a["resource"]["name"],
                a["resource"]["patternType"],
                tuple(a["operations"]),
            )
            for a in acls
        )
    assert manifest == SERVICE_USERS
