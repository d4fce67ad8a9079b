"""Replication settings chosen for new topics, and the Kafka security settings of Config."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagaflow.config import Config, ConfigError
from sagaflow.kafka.admin import TopicError, replication

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (1, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_replication_follows_the_broker_count(brokers: int, expected: tuple[int, int]) -> None:
    assert replication(Config.from_env({}), brokers) == expected


def test_explicit_replication_is_kept_and_checked() -> None:
    config = Config.from_env(
        {"SAGAFLOW_REPLICATION_FACTOR": "2", "SAGAFLOW_MIN_INSYNC_REPLICAS": "2"}
    )
    assert replication(config, 3) == (2, 2)
    assert replication(config, 3, replication_factor=3) == (3, 2)
    with pytest.raises(TopicError, match="needs at least 2 brokers"):
        replication(config, 1)
    too_many = Config.from_env({"SAGAFLOW_MIN_INSYNC_REPLICAS": "3"})
    with pytest.raises(TopicError, match=r"min\.insync\.replicas 3 exceeds"):
        replication(too_many, 1)


def test_sasl_ssl_client_settings(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    config = Config.from_env(
        {
            "SAGAFLOW_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "SAGAFLOW_KAFKA_SASL_USERNAME": "sagaflow-worker",
            "SAGAFLOW_KAFKA_SASL_PASSWORD_FILE": str(secret),
            "SAGAFLOW_KAFKA_SSL_CA_LOCATION": "/etc/kafka/ca.pem",
        }
    )
    assert config.kafka_common() == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "sagaflow-worker",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert "s3cret" not in repr(config)


def test_security_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SAGAFLOW_KAFKA_SASL_MECHANISM"):
        Config.from_env({"SAGAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                         "SAGAFLOW_KAFKA_SASL_MECHANISM": "GSSAPI"})  # fmt: skip
    with pytest.raises(ConfigError, match="SAGAFLOW_KAFKA_SSL_ENDPOINT_IDENTIFICATION"):
        Config.from_env({"SAGAFLOW_KAFKA_SSL_ENDPOINT_IDENTIFICATION": "maybe"})
    with pytest.raises(ConfigError, match="SAGAFLOW_KAFKA_SASL_PASSWORD_FILE"):
        Config.from_env({"SAGAFLOW_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    no_user = Config.from_env({"SAGAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(ConfigError, match="needs SAGAFLOW_KAFKA_SASL_USERNAME"):
        no_user.kafka_common()
