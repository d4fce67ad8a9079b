"""The rendered overlays (.stack/k8s/<overlay>.yaml, written by scripts/k8s-check.sh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RENDERED = ROOT / ".stack" / "k8s"
OVERLAYS = sorted(p.name for p in (ROOT / "deploy" / "k8s" / "overlays").iterdir() if p.is_dir())

Obj = dict[str, Any]


def load(overlay: str) -> list[Obj]:
    path = RENDERED / f"{overlay}.yaml"
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'make k8s-check' (it renders the overlays first)")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def objects(overlay: str) -> list[Obj]:
    return load(overlay)


def of_kind(objects: list[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objects if o["kind"] in kinds]


def name(o: Obj) -> str:
    return f"{o['kind']}/{o['metadata']['name']}"


def pod_spec(o: Obj) -> Obj | None:
    if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return o["spec"]["template"]["spec"]
    if o["kind"] == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if o["kind"] == "Pod":
        return o["spec"]
    return None


def workloads(objects: list[Obj]) -> list[tuple[Obj, Obj]]:
    return [(o, spec) for o in objects if (spec := pod_spec(o)) is not None]


def containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def sagaflow_config(objects: list[Obj]) -> dict[str, str]:
    """The data of the sagaflow-config ConfigMap (kustomize adds a hash suffix to its name)."""
    found = [
        o
        for o in of_kind(objects, "ConfigMap")
        if o["metadata"]["name"].startswith("sagaflow-config")
    ]
    assert len(found) == 1, f"expected one sagaflow-config ConfigMap, found {len(found)}"
    return dict(found[0].get("data", {}))
