"""SASL_SSL for the local broker: a CA and a broker certificate (openssl), SCRAM-SHA-512 users
created at format time, the StandardAuthorizer, and one user per service holding exactly the
ACLs the Kubernetes KafkaUsers grant (deploy/k8s/base/kafka-users.yaml; a unit test keeps the
two tables equal).

The controller listener stays PLAINTEXT on 127.0.0.1: a KRaft controller cannot authenticate
with SCRAM (its credentials live in the metadata log it serves), so its anonymous principal is
a super user. Clients never reach it: they only get the SASL_SSL listener's address.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# The admin package re-exports these without __all__; mypy --strict wants their home modules.
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from sagaflow.devstack.common import StackError, file_lock, require_tool

MECHANISM = "SCRAM-SHA-512"
SUPERUSER = "sagaflow-broker"


@dataclass(frozen=True)
class Grant:
    """One KafkaUser ACL rule: resource (type, name, pattern) and the operations allowed."""

    resource: str  # topic | group | transactionalId
    name: str
    pattern: str  # literal | prefix
    operations: tuple[str, ...]


# Mirrors deploy/k8s/base/kafka-users.yaml (tests/unit/test_kafka_acls.py compares them).
SERVICE_USERS: dict[str, tuple[Grant, ...]] = {
    "sagaflow-orchestrator": (
        Grant("topic", "sagaflow.commands", "literal", ("Read", "Write", "Describe")),
        Grant("topic", "sagaflow.events", "literal", ("Read", "Write", "Describe")),
        Grant("topic", "sagaflow.checkpoints", "literal", ("Read", "Write", "Describe")),
        Grant("topic", "sagaflow.closed-workflows", "literal", ("Read", "Write", "Describe")),
        Grant("topic", "sagaflow.asl.definitions", "literal", ("Read", "Describe")),
        Grant("topic", "sagaflow.activity-cancels", "literal", ("Write", "Describe")),
        Grant("topic", "sagaflow.replies", "literal", ("Read", "Write", "Describe")),
        Grant("topic", "sagaflow.tasks.", "prefix", ("Write", "Describe")),
        Grant("topic", "sagaflow.dlq", "literal", ("Write", "Describe", "DescribeConfigs")),
        Grant("group", "sagaflow-orchestrator", "literal", ("Read", "Describe")),
        Grant("group", "sagaflow-projector", "literal", ("Read", "Describe")),
        Grant("group", "sagaflow-reader", "literal", ("Describe",)),
        Grant("transactionalId", "sagaflow-orchestrator-", "prefix", ("Write", "Describe")),
    ),
    "sagaflow-worker": (
        Grant("topic", "sagaflow.tasks.", "prefix", ("Read", "Describe")),
        Grant("topic", "sagaflow.commands", "literal", ("Write", "Describe")),
        Grant("topic", "sagaflow.dlq", "literal", ("Write", "Describe")),
        Grant("group", "sagaflow-worker-", "prefix", ("Read", "Describe")),
        Grant("topic", "sagaflow.activity-cancels", "literal", ("Read", "Describe")),
        Grant("group", "sagaflow-reader", "literal", ("Describe",)),
    ),
    "sagaflow-admin": (
        Grant("topic", "sagaflow.", "prefix", ("Create", "Describe", "DescribeConfigs")),
        Grant("topic", "sagaflow.asl.definitions", "literal", ("Write", "Describe")),
    ),
}

_RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_OPERATIONS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "Create": AclOperation.CREATE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
}


@dataclass(frozen=True)
class Certs:
    ca: Path
    """The CA certificate (PEM): clients' ssl.ca.location, the broker's truststore."""
    broker: Path
    """The broker's private key and certificate chain in one PEM file (its keystore)."""


def _openssl(openssl: str, *args: str, cwd: Path) -> None:
    done = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise StackError(
            f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}; remove {cwd} and re-run "
            "`make certs`"
        )


def ensure_certs(directory: Path) -> Certs:
    """A CA and a certificate for 127.0.0.1/localhost signed by it; generated once."""
    certs = Certs(ca=directory / "ca.pem", broker=directory / "broker.pem")
    directory.mkdir(parents=True, exist_ok=True)
    with file_lock(directory / ".lock"):
        if certs.ca.is_file() and certs.broker.is_file():
            return certs
        openssl = require_tool(
            "openssl",
            "to generate the local broker's TLS certificates",
            "install it (`apt-get install openssl`) and re-run `make certs`",
        )
        _openssl(
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.tmp", "-days", "3650", "-subj", "/CN=sagaflow devstack CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
            "-out", "broker.csr", "-subj", "/CN=localhost",
            cwd=directory,
        )  # fmt: skip
        (directory / "broker.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        )
        _openssl(
            openssl, "x509", "-req", "-in", "broker.csr", "-CA", "ca.tmp", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "broker.crt", "-days", "825", "-extfile", "broker.ext",
            cwd=directory,
        )  # fmt: skip
        # Kafka's PEM keystore: the unencrypted PKCS#8 key, then the chain up to the CA.
        certs.broker.write_text(
            (directory / "broker.key").read_text()
            + (directory / "broker.crt").read_text()
            + (directory / "ca.tmp").read_text()
        )
        certs.broker.chmod(0o600)
        (directory / "ca.tmp").rename(certs.ca)
    return certs


@dataclass(frozen=True)
class BrokerSecurity:
    """SASL_SSL (SCRAM-SHA-512) with ACLs for one broker or cluster."""

    certs: Certs
    passwords: dict[str, str]
    superuser: str = SUPERUSER

    @classmethod
    def load_or_create(cls, directory: Path, certs: Certs) -> BrokerSecurity:
        """Passwords for the super user and every service user, kept in
        `<directory>/credentials.json` (mode 600) so a restarted broker keeps its users."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "credentials.json"
        with file_lock(directory / ".credentials.lock"):
            if path.is_file():
                passwords: dict[str, str] = json.loads(path.read_text())
            else:
                passwords = {u: secrets.token_urlsafe(18) for u in (SUPERUSER, *SERVICE_USERS)}
                path.touch(mode=0o600)
                path.write_text(json.dumps(passwords, indent=2))
        return cls(certs=certs, passwords=passwords)

    def broker_settings(self) -> dict[str, str]:
        su = self.superuser
        return {
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{su}" password="{self.passwords[su]}";'
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.certs.broker),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.certs.ca),
            "ssl.client.auth": "none",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The controller listener's principal is ANONYMOUS (see the module docstring).
            "super.users": f"User:{su};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }

    def format_args(self) -> list[str]:
        args: list[str] = []
        for user, password in self.passwords.items():
            args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
        return args

    def client_conf(self, user: str) -> dict[str, str]:
        """librdkafka settings for `user` (what SAGAFLOW_KAFKA_* produce in Config)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.passwords[user],
            "ssl.ca.location": str(self.certs.ca),
        }

    def service_env(self, user: str) -> dict[str, str]:
        """The SAGAFLOW_KAFKA_* variables a service runs with as `user`."""
        return {
            "SAGAFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SAGAFLOW_KAFKA_SASL_MECHANISM": MECHANISM,
            "SAGAFLOW_KAFKA_SASL_USERNAME": user,
            "SAGAFLOW_KAFKA_SASL_PASSWORD": self.passwords[user],
            "SAGAFLOW_KAFKA_SSL_CA_LOCATION": str(self.certs.ca),
        }


def acl_bindings(users: dict[str, tuple[Grant, ...]] = SERVICE_USERS) -> list[AclBinding]:
    return [
        AclBinding(
            _RESOURCES[g.resource],
            g.name,
            _PATTERNS[g.pattern],
            f"User:{user}",
            "*",
            _OPERATIONS[op],
            AclPermissionType.ALLOW,
        )
        for user, grants in users.items()
        for g in grants
        for op in g.operations
    ]


def apply_acls(bootstrap: str, security: BrokerSecurity, timeout_s: float = 30.0) -> int:
    """Creates every service user's ACLs as the super user (idempotent); returns how many."""
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, **security.client_conf(security.superuser)}
    )
    bindings: Sequence[AclBinding] = acl_bindings()
    for binding, future in admin.create_acls(list(bindings), request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise StackError(
                f"creating ACL {binding} failed: {exc.args[0]}; check the broker's "
                "authorizer settings and that the super user authenticates"
            ) from exc
    return len(bindings)
