"""Policy checks on every rendered overlay: security, images, secrets, probes, autoscaling."""

from __future__ import annotations

import re

import pytest

from tests.k8s.conftest import (
    Obj,
    containers,
    name,
    of_kind,
    sagaflow_config,
    workloads,
)

pytestmark = pytest.mark.k8s

TAGGED = re.compile(r"^[^:@]+(:[0-9a-zA-Z._-]+)?(@sha256:[0-9a-f]{64})?$")


def test_every_container_runs_as_non_root_with_least_privilege(objects: list[Obj]) -> None:
    problems = []
    for o, spec in workloads(objects):
        pod = spec.get("securityContext", {})
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name(o)}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name(o)}: automountServiceAccountToken is not false")
        for c in containers(spec):
            sc = {**pod, **c.get("securityContext", {})}
            where = f"{name(o)} container {c['name']}"
            if sc.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("runAsUser", 1) == 0:
                problems.append(f"{where}: runAsUser is 0")
            if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if c.get("securityContext", {}).get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities do not drop ALL")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if "/tmp" not in mounts:
                problems.append(f"{where}: no writable /tmp (emptyDir) next to the RO root")
    assert not problems, "\n".join(problems)


def test_every_container_has_requests_and_limits(objects: list[Obj]) -> None:
    problems = []
    for o, spec in workloads(objects):
        for c in containers(spec):
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in res.get(kind, {}):
                        problems.append(f"{name(o)} container {c['name']}: no {kind}.{resource}")
    assert not problems, "\n".join(problems)


def test_long_running_containers_have_probes(objects: list[Obj]) -> None:
    problems = []
    for o, spec in workloads(objects):
        if o["kind"] in ("Job", "CronJob"):
            continue  # runs to completion; a probe could only kill it midway
        for c in spec["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"{name(o)} container {c['name']}: no {probe}")
    assert not problems, "\n".join(problems)


def test_sagaflow_probes_use_healthz_and_readyz(objects: list[Obj]) -> None:
    for o, spec in workloads(objects):
        if o["kind"] == "Job" or not o["metadata"]["name"].startswith("sagaflow-"):
            continue
        for c in spec["containers"]:
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name(o)
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name(o)


def test_images_are_tagged_and_never_latest(objects: list[Obj]) -> None:
    problems = []
    for o, spec in workloads(objects):
        for c in containers(spec):
            image = c["image"]
            last = image.rsplit("/", 1)[-1]
            if ":" not in last and "@" not in last:
                problems.append(f"{name(o)} container {c['name']}: untagged image {image!r}")
            elif last.split("@")[0].endswith(":latest") or not TAGGED.match(last):
                problems.append(f"{name(o)} container {c['name']}: bad image {image!r}")
    assert not problems, "\n".join(problems)


def test_no_secret_values_anywhere(overlay: str, objects: list[Obj]) -> None:
    # Secrets come from operators (Strimzi, CloudNativePG) or the cluster's operator; the
    # manifests only reference them.
    secrets = of_kind(objects, "Secret")
    assert not secrets, f"{overlay} renders Secret objects: {[name(s) for s in secrets]}"
    problems = []
    for o, spec in workloads(objects):
        for c in containers(spec):
            for env in c.get("env", []):
                if re.search(r"PASSWORD|TOKEN|SECRET|DATABASE_URL", env["name"]) and "value" in env:
                    problems.append(f"{name(o)} {c['name']}: {env['name']} has an inline value")
    for cm in of_kind(objects, "ConfigMap"):
        for key, value in cm.get("data", {}).items():
            credentials_in_url = re.search(r"://[^/@\s]+:[^/@\s]+@", value)
            if re.search(r"PASSWORD|TOKEN|SECRET", key) or credentials_in_url:
                problems.append(f"{name(cm)}: {key} looks like a secret value")
    assert not problems, "\n".join(problems)


def test_env_names_are_known(objects: list[Obj]) -> None:
    """A typo in a setting's name would silently fall back to its default."""
    from sagaflow.config import SETTINGS

    known = {s.name for s in SETTINGS}
    problems = []
    for o, spec in workloads(objects):
        if not o["metadata"]["name"].startswith("sagaflow-"):
            continue
        for c in containers(spec):
            for env in c.get("env", []):
                n = env["name"]
                if not (n in known or n.startswith(("OTEL_", "K8S_"))):
                    problems.append(f"{name(o)} {c['name']}: {n} is not a sagaflow setting")
    assert not problems, "\n".join(problems)


def test_configmap_keys_are_settings(objects: list[Obj]) -> None:
    from sagaflow.config import SETTINGS

    known = {s.name for s in SETTINGS}
    unknown = sorted(set(sagaflow_config(objects)) - known)
    assert not unknown, f"sagaflow-config keys not in sagaflow.config.SETTINGS: {unknown}"
    for cm in of_kind(objects, "ConfigMap"):
        if cm["metadata"]["name"].startswith("sagaflow-otel"):
            bad = [k for k in cm.get("data", {}) if not k.startswith("OTEL_")]
            assert not bad, f"sagaflow-otel holds non-OTEL_ keys: {bad}"


def test_configmap_builds_a_valid_config(objects: list[Obj]) -> None:
    from sagaflow.config import Config

    config = Config.from_env(sagaflow_config(objects))
    assert config.http_host == "0.0.0.0", "probes reach the pod IP: SAGAFLOW_HTTP_HOST=0.0.0.0"
    assert config.kafka_security_protocol.startswith("SASL"), "KafkaUsers are SCRAM"


def test_orchestrator_identity_and_ports(objects: list[Obj]) -> None:
    from sagaflow.config import Config

    config = Config.from_env(sagaflow_config(objects))
    (sts,) = [
        o
        for o in of_kind(objects, "StatefulSet")
        if o["metadata"]["name"] == "sagaflow-orchestrator"
    ]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["SAGAFLOW_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["ports"][0]["containerPort"] == config.http_port
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    assert sts["spec"].get("replicas", 1) <= config.partitions, (
        "more orchestrators than command partitions: the extra ones would sit idle"
    )
    (dep,) = [
        o for o in of_kind(objects, "Deployment") if o["metadata"]["name"] == "sagaflow-worker"
    ]
    (w,) = dep["spec"]["template"]["spec"]["containers"]
    assert w["ports"][0]["containerPort"] == config.worker_http_port


def test_one_autoscaler_per_workload(objects: list[Obj]) -> None:
    targets: dict[str, list[str]] = {}
    for o in of_kind(objects, "HorizontalPodAutoscaler", "ScaledObject"):
        ref = o["spec"]["scaleTargetRef"]
        targets.setdefault(f"{ref.get('kind', 'Deployment')}/{ref['name']}", []).append(name(o))
    doubled = {t: s for t, s in targets.items() if len(s) > 1}
    assert not doubled, f"two autoscalers on one workload fight: {doubled}"


def test_keda_triggers_match_the_configmap(objects: list[Obj]) -> None:
    from sagaflow.config import Config

    config = Config.from_env(sagaflow_config(objects))
    for so in of_kind(objects, "ScaledObject"):
        for t in so["spec"]["triggers"]:
            md = t["metadata"]
            assert md["bootstrapServers"] == config.kafka_bootstrap, name(so)
            assert md["tls"] == (
                "enable" if config.kafka_security_protocol == "SASL_SSL" else "disable"
            ), name(so)
            queue = md["topic"].removeprefix(config.topics.tasks(""))
            assert md["topic"] == config.topics.tasks(queue)
            assert md["consumerGroup"] == config.worker_group_prefix + queue, name(so)
        assert so["spec"]["maxReplicaCount"] <= config.partitions


def test_network_policies_default_deny(objects: list[Obj]) -> None:
    deny = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and "ingress" not in p["spec"]
        and "egress" not in p["spec"]
    ]
    assert deny, "no default-deny NetworkPolicy"
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
