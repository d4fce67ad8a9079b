"""Every topic the code uses has a Strimzi KafkaTopic that matches it; KafkaUsers grant what
each service needs."""

from __future__ import annotations

import pytest

from sagaflow.app import load_registry
from sagaflow.config import Config
from sagaflow.kafka.admin import TopicSpec, wanted_topics
from tests.k8s.conftest import Obj, of_kind, sagaflow_config

pytestmark = pytest.mark.k8s


def _wanted(objects: list[Obj]) -> tuple[Config, dict[str, TopicSpec]]:
    config = Config.from_env(sagaflow_config(objects))
    queues = load_registry(config.app).task_queues()
    return config, {t.name: t for t in wanted_topics(config, queues)}


def _topics(objects: list[Obj]) -> dict[str, Obj]:
    return {
        o["spec"].get("topicName", o["metadata"]["name"]): o for o in of_kind(objects, "KafkaTopic")
    }


def test_every_topic_has_a_matching_kafka_topic(objects: list[Obj]) -> None:
    config, wanted = _wanted(objects)
    topics = _topics(objects)
    missing = sorted(set(wanted) - set(topics))
    extra = sorted(set(topics) - set(wanted))
    assert not missing, f"topics the code uses without a KafkaTopic: {missing}"
    assert not extra, f"KafkaTopics the code does not use: {extra}"
    problems = []
    for topic, spec in wanted.items():
        kt = topics[topic]["spec"]
        if kt["partitions"] != spec.partitions:
            problems.append(
                f"{topic}: {kt['partitions']} partitions, the code creates {spec.partitions}"
            )
        if kt["replicas"] != config.replication_factor:
            problems.append(f"{topic}: replicas {kt['replicas']} != SAGAFLOW_REPLICATION_FACTOR")
        for key, value in spec.config.items():
            if str(kt.get("config", {}).get(key)) != value:
                problems.append(f"{topic}: config {key} should be {value!r}")
    assert not problems, "\n".join(problems)


def test_commands_and_events_have_the_same_partition_count(objects: list[Obj]) -> None:
    t = Config.from_env(sagaflow_config(objects)).topics
    topics = _topics(objects)
    assert topics[t.commands]["spec"]["partitions"] == topics[t.events]["spec"]["partitions"]


def _acls(objects: list[Obj], user: str) -> list[Obj]:
    (u,) = [o for o in of_kind(objects, "KafkaUser") if o["metadata"]["name"] == user]
    assert u["spec"]["authentication"]["type"] == "scram-sha-512"
    return list(u["spec"]["authorization"]["acls"])


def _allows(acls: list[Obj], kind: str, resource: str, op: str) -> bool:
    for acl in acls:
        r = acl["resource"]
        if r["type"] != kind or op not in acl["operations"]:
            continue
        if r.get("patternType", "literal") == "literal" and r["name"] == resource:
            return True
        if r.get("patternType") == "prefix" and resource.startswith(r["name"]):
            return True
    return False


def test_orchestrator_acls(objects: list[Obj]) -> None:
    config, wanted = _wanted(objects)
    t = config.topics
    acls = _acls(objects, "sagaflow-orchestrator")
    for topic in (t.commands, t.events, t.checkpoints, t.closed_workflows, t.replies):
        assert _allows(acls, "topic", topic, "Read"), topic
    tasks = [n for n in wanted if n.startswith(t.tasks(""))]
    # commands too: a command on the wrong partition is re-routed to the right one
    for topic in [
        t.commands,
        t.events,
        t.checkpoints,
        t.closed_workflows,
        t.replies,
        t.dlq,
        *tasks,
    ]:
        assert _allows(acls, "topic", topic, "Write"), topic
    assert _allows(acls, "group", config.orchestrator_group, "Read")
    assert _allows(acls, "group", config.projector_group, "Read")
    # transactional.id of pod sagaflow-orchestrator-0
    txn_id = "sagaflow-orchestrator-sagaflow-orchestrator-0"
    assert _allows(acls, "transactionalId", txn_id, "Write")
    assert not _allows(acls, "topic", t.tasks("x"), "Read"), "orchestrators never read tasks"


def test_worker_acls(objects: list[Obj]) -> None:
    config, wanted = _wanted(objects)
    t = config.topics
    acls = _acls(objects, "sagaflow-worker")
    for topic in (n for n in wanted if n.startswith(t.tasks(""))):
        queue = topic.removeprefix(t.tasks(""))
        assert _allows(acls, "topic", topic, "Read"), topic
        group = config.worker_group_prefix + queue
        assert _allows(acls, "group", group, "Read"), group
    for topic in (t.commands, t.dlq):
        assert _allows(acls, "topic", topic, "Write"), topic
    assert not _allows(acls, "topic", t.events, "Write"), "only the orchestrator appends events"
    assert not any(a["resource"]["type"] == "transactionalId" for a in acls)


def test_admin_acls_create_topics_and_deploy_state_machines_only(objects: list[Obj]) -> None:
    config, wanted = _wanted(objects)
    acls = _acls(objects, "sagaflow-admin")
    for topic in wanted:
        assert _allows(acls, "topic", topic, "Create"), topic
    writable = {a["resource"]["name"] for a in acls if "Write" in a["operations"]}
    assert writable == {config.topics.asl_definitions}, "the admin writes definitions only"
    ops = {op for a in acls for op in a["operations"]}
    assert ops <= {"Create", "Describe", "DescribeConfigs", "Write"}, ops


def test_workloads_use_their_own_kafka_user(objects: list[Obj]) -> None:
    users = {o["metadata"]["name"] for o in of_kind(objects, "KafkaUser")}
    for o in of_kind(objects, "StatefulSet", "Deployment", "Job"):
        spec = o["spec"]["template"]["spec"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            env = {e["name"]: e for e in c.get("env", [])}
            if "SAGAFLOW_KAFKA_SASL_USERNAME" not in env:
                continue
            user = env["SAGAFLOW_KAFKA_SASL_USERNAME"]["value"]
            assert user in users, f"{o['metadata']['name']}: no KafkaUser {user}"
            ref = env["SAGAFLOW_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": user, "key": "password"}, o["metadata"]["name"]
