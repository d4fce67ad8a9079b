"""Settings for every sagaflow process, read once from the environment.

Every setting is an environment variable; `SETTINGS` below is the one table of them (the
deploy docs are generated from it, and a test keeps the two in step). The object built from
the environment is frozen and passed down explicitly: there are no globals.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("SAGAFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:19092", "Kafka bootstrap servers."),
    Setting(
        "SAGAFLOW_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    ),
    Setting("SAGAFLOW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL mechanism when SASL is used."),
    Setting("SAGAFLOW_KAFKA_SASL_USERNAME", "", "SASL user name (from a Secret)."),
    Setting("SAGAFLOW_KAFKA_SASL_PASSWORD", "", "SASL password (from a Secret)."),
    Setting(
        "SAGAFLOW_KAFKA_SASL_PASSWORD_FILE",
        "",
        "File holding the SASL password (a mounted Secret); used when "
        "SAGAFLOW_KAFKA_SASL_PASSWORD is empty.",
    ),
    Setting("SAGAFLOW_KAFKA_SSL_CA_LOCATION", "", "CA bundle (PEM) for TLS to Kafka."),
    Setting(
        "SAGAFLOW_KAFKA_SSL_ENDPOINT_IDENTIFICATION",
        "https",
        "https: the broker certificate must name the host connected to; none: skip that check "
        "(only for brokers reached by an address their certificate does not list).",
    ),
    Setting("SAGAFLOW_TOPIC_PREFIX", "sagaflow.", "Prefix of every topic name."),
    Setting("SAGAFLOW_PARTITIONS", "6", "Partitions of commands/events (topics create)."),
    Setting(
        "SAGAFLOW_REPLICATION_FACTOR",
        "0",
        "Replication factor (topics create); 0: 3 when the cluster has at least 3 brokers, else 1.",
    ),
    Setting(
        "SAGAFLOW_MIN_INSYNC_REPLICAS",
        "0",
        "min.insync.replicas of the topics (topics create); 0: 2 at replication factor 3 or "
        "more, else 1.",
    ),
    Setting(
        "SAGAFLOW_DATABASE_URL",
        "postgresql://sagaflow:sagaflow@127.0.0.1:15432/sagaflow",
        "Postgres URL for idempotency, the demo services and the read model.",
    ),
    Setting(
        "SAGAFLOW_APP",
        "",
        "module:attribute of the Registry holding the workflows and activities. Required by "
        "the services (they refuse to start without it); for a try-out use the example shop, "
        "sagaflow.examples.checkout:registry.",
    ),
    Setting(
        "SAGAFLOW_INSTANCE_ID",
        "",
        "Stable id of this orchestrator (transactional id suffix); default: host name.",
    ),
    Setting(
        "SAGAFLOW_ORCHESTRATOR_GROUP",
        "sagaflow-orchestrator",
        "Consumer group of the orchestrators.",
    ),
    Setting(
        "SAGAFLOW_GROUP_SESSION_TIMEOUT_MS",
        "2000",
        "With SAGAFLOW_GROUP_PROTOCOL=classic: the groups' session timeout; a member killed "
        "without leaving (kill -9, a lost node) has its partitions moved to a survivor after "
        "this long. Heartbeats go every sixth of it from librdkafka's own thread. The broker "
        "must allow it: group.min.session.timeout.ms at or below it (Kafka's default is 6000).",
    ),
    Setting(
        "SAGAFLOW_GROUP_PROTOCOL",
        "classic",
        "consumer: Kafka 4's consumer group protocol (KIP-848) for the orchestrators, workers "
        "and projector; a member's session timeout and heartbeat interval are then the "
        "broker's group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms "
        "(1500 and 300 give failover within 3 s; docs/failover.md). classic: the classic "
        "protocol with cooperative-sticky assignment and SAGAFLOW_GROUP_SESSION_TIMEOUT_MS, "
        "for brokers older than Kafka 4.",
    ),
    Setting("SAGAFLOW_BATCH_MAX", "500", "Most commands decided in one Kafka transaction."),
    Setting(
        "SAGAFLOW_COMMIT_INTERVAL_MS",
        "200",
        "Longest an idle orchestrator waits for a command before it looks at due timers and "
        "checkpoints. Commands never wait for it: each batch is what arrived while the "
        "previous transaction committed.",
    ),
    Setting(
        "SAGAFLOW_TRANSACTION_TIMEOUT_MS",
        "10000",
        "transaction.timeout.ms of the orchestrator's producer.",
    ),
    Setting(
        "SAGAFLOW_CHECKPOINT_INTERVAL_MS",
        "5000",
        "How often the orchestrator records its recovery low-water marks.",
    ),
    Setting(
        "SAGAFLOW_MAX_PAYLOAD_BYTES", "262144", "Largest input, signal or result payload accepted."
    ),
    Setting(
        "SAGAFLOW_HTTP_HOST", "127.0.0.1", "Address of the HTTP server (API, health, metrics)."
    ),
    Setting("SAGAFLOW_HTTP_PORT", "8080", "Port of the orchestrator's HTTP server."),
    Setting("SAGAFLOW_WORKER_HTTP_PORT", "8081", "Port of the worker's health and metrics server."),
    Setting("SAGAFLOW_API_TOKEN", "", "Bearer token the API requires; empty: no auth."),
    Setting("SAGAFLOW_WORKER_QUEUES", "", "Task queues this worker serves; empty: all in the app."),
    Setting("SAGAFLOW_WORKER_CONCURRENCY", "8", "Activities a worker runs at once."),
    Setting(
        "SAGAFLOW_WORKER_PREFETCH",
        "1000",
        "Tasks a worker holds per queue at once (claiming, running, recording or publishing); "
        "bounds its memory and how far its consumer reads ahead.",
    ),
    Setting(
        "SAGAFLOW_WORKER_LEASE_MS",
        "30000",
        "Idempotency lease; after it a stalled attempt may be taken over.",
    ),
    Setting(
        "SAGAFLOW_WORKER_GROUP_PREFIX",
        "sagaflow-worker-",
        "Consumer group of a task queue = prefix + queue.",
    ),
    Setting("SAGAFLOW_LOG_LEVEL", "INFO", "Python log level."),
    Setting(
        "SAGAFLOW_PROJECTOR",
        "on",
        "on: the orchestrator also projects events into the read model; off: run "
        "'python -m sagaflow.readmodel' separately.",
    ),
    Setting(
        "SAGAFLOW_PROJECTOR_GROUP",
        "sagaflow-projector",
        "Consumer group of the read model projector.",
    ),
    Setting(
        "SAGAFLOW_JAEGER_QUERY_URL",
        "http://127.0.0.1:16686",
        "Jaeger's query API, where the UI fetches a workflow's trace (GET /api/traces/{id}).",
    ),
    Setting(
        "SAGAFLOW_JAEGER_UI_URL",
        "",
        "A real Jaeger UI to link a workflow's trace to (e.g. on Kubernetes); empty: no link, "
        "the UI's own waterfall only.",
    ),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, _DEFAULTS[name])


def _int(env: Mapping[str, str], name: str, minimum: int = 0) -> int:
    raw = _get(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a whole number; set it to e.g. "
            f"{_DEFAULTS[name]!r} or unset it for the default"
        ) from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}; set it to at least {minimum}")
    return value


def _on_off(env: Mapping[str, str], name: str) -> bool:
    raw = _get(env, name).strip().lower()
    if raw not in {"on", "off"}:
        raise ConfigError(f"{name}={raw!r} must be 'on' or 'off'")
    return raw == "on"


def _group_protocol(env: Mapping[str, str]) -> str:
    raw = _get(env, "SAGAFLOW_GROUP_PROTOCOL").strip().lower()
    if raw not in {"classic", "consumer"}:
        raise ConfigError(
            f"SAGAFLOW_GROUP_PROTOCOL={raw!r} must be 'classic' or 'consumer' (KIP-848)"
        )
    return raw


@dataclass(frozen=True)
class Topics:
    """Topic names, all under one prefix."""

    prefix: str

    @property
    def commands(self) -> str:
        return f"{self.prefix}commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}checkpoints"

    @property
    def asl_definitions(self) -> str:
        """Compacted, one partition: every deployed state-machine definition, one record per
        version (sagaflow.asl.store)."""
        return f"{self.prefix}asl.definitions"

    @property
    def closed_workflows(self) -> str:
        """Compacted, keyed by workflow id, partitioned like commands: every closed workflow."""
        return f"{self.prefix}closed-workflows"

    @property
    def activity_cancels(self) -> str:
        """Compacted, one partition, keyed by idempotency key: running activities their
        workflow cancelled (a tombstone once settled); read whole by every worker."""
        return f"{self.prefix}activity-cancels"

    @property
    def replies(self) -> str:
        """Answers to callers waiting on a command (queries, updates), keyed by the caller's
        reply_to; short-lived, so kept an hour."""
        return f"{self.prefix}replies"

    def tasks(self, queue: str) -> str:
        return f"{self.prefix}tasks.{queue}"


@dataclass(frozen=True)
class Config:
    kafka_bootstrap: str
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str = field(repr=False)
    kafka_ssl_ca_location: str
    topics: Topics
    partitions: int
    replication_factor: int
    """0: chosen from the broker count when topics are created."""
    database_url: str = field(repr=False)
    app: str
    instance_id: str
    orchestrator_group: str
    group_session_timeout_ms: int
    group_protocol: str
    batch_max: int
    commit_interval_ms: int
    transaction_timeout_ms: int
    checkpoint_interval_ms: int
    max_payload_bytes: int
    http_host: str
    http_port: int
    worker_http_port: int
    api_token: str = field(repr=False)
    worker_queues: tuple[str, ...]
    worker_concurrency: int
    worker_prefetch: int
    worker_lease_ms: int
    worker_group_prefix: str
    log_level: str
    projector_enabled: bool = True
    projector_group: str = "sagaflow-projector"
    jaeger_query_url: str = "http://127.0.0.1:16686"
    jaeger_ui_url: str = ""
    min_insync_replicas: int = 0
    """0: chosen from the replication factor when topics are created."""
    kafka_ssl_endpoint_identification: str = "https"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        e = os.environ if env is None else env
        protocol = _get(e, "SAGAFLOW_KAFKA_SECURITY_PROTOCOL").upper()
        if protocol not in _PROTOCOLS:
            raise ConfigError(
                f"SAGAFLOW_KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of "
                f"{', '.join(_PROTOCOLS)}"
            )
        user, password, mechanism = _sasl(e, protocol)
        identification = _get(e, "SAGAFLOW_KAFKA_SSL_ENDPOINT_IDENTIFICATION").strip().lower()
        if identification not in {"https", "none"}:
            raise ConfigError(
                f"SAGAFLOW_KAFKA_SSL_ENDPOINT_IDENTIFICATION={identification!r} must be "
                "'https' or 'none'"
            )
        app = _get(e, "SAGAFLOW_APP")
        if app and ":" not in app:
            raise ConfigError(
                f"SAGAFLOW_APP={app!r} must be 'module:attribute', e.g. "
                "'sagaflow.examples.checkout:registry'"
            )
        queues = tuple(q.strip() for q in _get(e, "SAGAFLOW_WORKER_QUEUES").split(",") if q.strip())
        return cls(
            kafka_bootstrap=_get(e, "SAGAFLOW_KAFKA_BOOTSTRAP"),
            kafka_security_protocol=protocol,
            kafka_sasl_mechanism=mechanism,
            kafka_sasl_username=user,
            kafka_sasl_password=password,
            kafka_ssl_ca_location=_get(e, "SAGAFLOW_KAFKA_SSL_CA_LOCATION"),
            kafka_ssl_endpoint_identification=identification,
            topics=Topics(_get(e, "SAGAFLOW_TOPIC_PREFIX")),
            partitions=_int(e, "SAGAFLOW_PARTITIONS", 1),
            replication_factor=_int(e, "SAGAFLOW_REPLICATION_FACTOR", 0),
            min_insync_replicas=_int(e, "SAGAFLOW_MIN_INSYNC_REPLICAS", 0),
            database_url=_get(e, "SAGAFLOW_DATABASE_URL"),
            app=app,
            instance_id=_get(e, "SAGAFLOW_INSTANCE_ID") or socket.gethostname(),
            orchestrator_group=_get(e, "SAGAFLOW_ORCHESTRATOR_GROUP"),
            group_session_timeout_ms=_int(e, "SAGAFLOW_GROUP_SESSION_TIMEOUT_MS", 300),
            group_protocol=_group_protocol(e),
            batch_max=_int(e, "SAGAFLOW_BATCH_MAX", 1),
            commit_interval_ms=_int(e, "SAGAFLOW_COMMIT_INTERVAL_MS"),
            transaction_timeout_ms=_int(e, "SAGAFLOW_TRANSACTION_TIMEOUT_MS", 1000),
            checkpoint_interval_ms=_int(e, "SAGAFLOW_CHECKPOINT_INTERVAL_MS", 100),
            max_payload_bytes=_int(e, "SAGAFLOW_MAX_PAYLOAD_BYTES", 1024),
            http_host=_get(e, "SAGAFLOW_HTTP_HOST"),
            http_port=_int(e, "SAGAFLOW_HTTP_PORT"),
            worker_http_port=_int(e, "SAGAFLOW_WORKER_HTTP_PORT"),
            api_token=_get(e, "SAGAFLOW_API_TOKEN"),
            worker_queues=queues,
            worker_concurrency=_int(e, "SAGAFLOW_WORKER_CONCURRENCY", 1),
            worker_prefetch=_int(e, "SAGAFLOW_WORKER_PREFETCH", 1),
            worker_lease_ms=_int(e, "SAGAFLOW_WORKER_LEASE_MS", 100),
            worker_group_prefix=_get(e, "SAGAFLOW_WORKER_GROUP_PREFIX"),
            log_level=_get(e, "SAGAFLOW_LOG_LEVEL").upper(),
            projector_enabled=_on_off(e, "SAGAFLOW_PROJECTOR"),
            projector_group=_get(e, "SAGAFLOW_PROJECTOR_GROUP"),
            jaeger_query_url=_get(e, "SAGAFLOW_JAEGER_QUERY_URL").rstrip("/"),
            jaeger_ui_url=_get(e, "SAGAFLOW_JAEGER_UI_URL").rstrip("/"),
        )

    def kafka_common(self) -> dict[str, str | int]:
        """librdkafka settings every client of this deployment shares."""
        conf: dict[str, str | int] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            if not self.kafka_sasl_username or not self.kafka_sasl_password:
                # Refused here rather than by the broker, whose answer names no variable.
                raise ConfigError(
                    f"SAGAFLOW_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                    "SAGAFLOW_KAFKA_SASL_USERNAME and SAGAFLOW_KAFKA_SASL_PASSWORD (or "
                    "SAGAFLOW_KAFKA_SASL_PASSWORD_FILE); set both"
                )
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username
            conf["sasl.password"] = self.kafka_sasl_password
        if self.kafka_ssl_ca_location:
            conf["ssl.ca.location"] = self.kafka_ssl_ca_location
        if self.kafka_security_protocol.endswith("SSL"):
            conf["ssl.endpoint.identification.algorithm"] = self.kafka_ssl_endpoint_identification
        return conf


def _sasl(env: Mapping[str, str], protocol: str) -> tuple[str, str, str]:
    """(user, password, mechanism), the password read from its file when given that way."""
    user = _get(env, "SAGAFLOW_KAFKA_SASL_USERNAME")
    password = _get(env, "SAGAFLOW_KAFKA_SASL_PASSWORD")
    mechanism = _get(env, "SAGAFLOW_KAFKA_SASL_MECHANISM").upper()
    password_file = _get(env, "SAGAFLOW_KAFKA_SASL_PASSWORD_FILE")
    if not password and password_file:
        try:
            # A mounted Secret file usually ends with a newline that is not part of it.
            password = Path(password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"SAGAFLOW_KAFKA_SASL_PASSWORD_FILE={password_file!r} cannot be read "
                f"({exc.strerror}); mount the Secret there or set SAGAFLOW_KAFKA_SASL_PASSWORD"
            ) from None
    if not protocol.startswith("SASL"):
        return user, password, mechanism
    if mechanism not in _MECHANISMS:
        raise ConfigError(
            f"SAGAFLOW_KAFKA_SASL_MECHANISM={mechanism!r} is not one of {', '.join(_MECHANISMS)}"
        )
    return user, password, mechanism
