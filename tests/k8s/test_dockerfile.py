"""The Dockerfile's structure, checked without a Docker engine: multi-stage, pinned base,
hash-locked dependencies, non-root numeric USER, no build tools in the final stage; and, in the
container tier (`make test-containers`), the image built from it: user, command, no compilers or
pip, size."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.container_tier import ContainerTier

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk)\s+(-\S+\s+)*install\b|\b(gcc|g\+\+|make|build-essential|cc)\b|"
    r"\bpip3?\s+(\S+\s+)*install\b|\bpip\s+wheel\b"
)


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _base_image() -> str:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", (ROOT / "Dockerfile").read_text(), re.M))
    return args["PYTHON_IMAGE"]


def test_multi_stage_with_named_builder() -> None:
    stages = _stages()
    assert len(stages) >= 2, "the Dockerfile must build in one stage and run in another"
    assert re.search(r"\bAS builder\b", stages[0][0][1], re.I)


def test_base_is_slim_python_311_pinned_by_version() -> None:
    image = _base_image()
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    for stage in _stages():
        assert stage[0][1].split()[0] in ("${PYTHON_IMAGE}", "$PYTHON_IMAGE"), stage[0]
    assert "latest" not in (ROOT / "Dockerfile").read_text()


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    final = _stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]} must be a numeric non-zero uid"


def test_no_build_tools_in_final_stage() -> None:
    final = _stages()[-1]
    for word, rest in final:
        if word == "RUN":
            assert not BUILD_TOOLS.search(rest), f"final stage installs or builds: {rest}"
    copies = [rest for word, rest in final if word in ("COPY", "ADD")]
    assert copies and all(c.startswith("--from=builder") for c in copies), (
        f"the final stage may only copy from the builder: {copies}"
    )


def test_dependencies_come_from_hash_locked_files() -> None:
    builder = " ".join(rest for _, rest in _stages()[0])
    assert "--require-hashes" in builder
    assert "-r /tmp/requirements.lock" in builder
    assert "-r /tmp/requirements-build.lock" in builder
    assert "--only-binary=:all:" in builder, "wheels only: no compiler in the builder either"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-build.lock"])
def test_lock_files_pin_every_package_with_hashes(lock: str) -> None:
    text = (ROOT / lock).read_text()
    reqs = re.split(r"\n(?=[A-Za-z0-9])", re.sub(r"(?m)^\s*#.*\n", "", text).strip())
    assert reqs
    for req in reqs:
        head = req.split("\\")[0].strip()
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s;]+(\s*;.*)?", head), f"{lock}: unpinned {head}"
        assert "--hash=sha256:" in req, f"{lock}: {head} has no hash"


def test_lock_matches_pyproject_pins() -> None:
    """Changing a pin in pyproject.toml without re-locking fails here (docs/deploy.md says how)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = (ROOT / "requirements.lock").read_text()
    locked = {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"(?m)^([A-Za-z0-9_.\-]+)==(\S+)", lock)
    }
    problems = []
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", dep.strip())
        assert m, f"pyproject dependency {dep!r} is not pinned with =="
        pkg, version = m.group(1).lower().replace("_", "-"), m.group(3)
        if locked.get(pkg) != version:
            problems.append(f"{pkg}: pyproject {version}, requirements.lock {locked.get(pkg)}")
    assert not problems, "re-run the pip-compile command in docs/deploy.md:\n" + "\n".join(problems)


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "allow-list style: ignore everything, then re-include"
    for path in ("!pyproject.toml", "!requirements.lock", "!sagaflow/", "!services/"):
        assert path in lines


# Measured 263 MB on the local Debian minbase + Python 3.11 base (README, "Containers"); the
# bound leaves room for a few more dependencies but catches a compiler or a cache slipping in.
MAX_IMAGE_MB = 350


def _run(tier: ContainerTier, *command: str) -> str:
    """Runs the built image once (host network, read-only root) and returns its output."""
    out = tier.client.containers.run(
        tier.images.sagaflow,
        list(command) or None,
        network_mode="host",
        read_only=True,
        labels=tier.labels,
        remove=True,
        stdout=True,
        stderr=True,
    )
    return bytes(out).decode()


def _image(tier: ContainerTier) -> dict[str, Any]:
    return dict(tier.client.images.get(tier.images.sagaflow).attrs)


@pytest.mark.containers
def test_built_image_runs_as_the_numeric_non_root_user(container_tier: ContainerTier) -> None:
    assert _image(container_tier)["Config"]["User"] == "10001:10001"
    assert _run(container_tier, "id", "-u").strip() == "10001"


@pytest.mark.containers
def test_built_image_has_no_entrypoint_and_its_default_command_prints_usage(
    container_tier: ContainerTier,
) -> None:
    config = _image(container_tier)["Config"]
    assert not config.get("Entrypoint"), "the manifests pick the process with `command`"
    assert config["Cmd"] == ["sagaflow", "--help"]
    assert "usage: sagaflow" in _run(container_tier)


@pytest.mark.containers
def test_built_image_has_no_compilers_and_no_pip(container_tier: ContainerTier) -> None:
    found = _run(
        container_tier,
        "sh",
        "-c",
        "for t in gcc cc c++ g++ clang make ld as pip pip3; do command -v $t; done; "
        "python -c 'import pip' 2>/dev/null && echo 'pip module'; true",
    )
    assert found.strip() == "", f"build tools in the runtime image: {found.split()}"


@pytest.mark.containers
def test_built_image_size(container_tier: ContainerTier) -> None:
    size_mb = _image(container_tier)["Size"] / 1e6
    assert size_mb < MAX_IMAGE_MB, f"image is {size_mb:.0f} MB (limit {MAX_IMAGE_MB} MB)"


@pytest.mark.containers
def test_built_image_ships_no_dev_stack_bench_or_demo(container_tier: ContainerTier) -> None:
    found = _run(
        container_tier,
        "python",
        "-c",
        "import importlib.util as u; "
        "print([m for m in ('sagaflow.devstack', 'sagaflow.bench') "
        "if u.find_spec(m) is not None])",
    )
    assert found.strip() == "[]", f"checkout-only tooling in the runtime image: {found}"
    # ... while the runtime itself is all there.
    assert "usage: sagaflow" in _run(container_tier, "sagaflow", "--help")


def test_the_runtime_lock_carries_no_test_tooling() -> None:
    """The image installs requirements.lock: test-only packages stay in the dev extras."""
    lock = (ROOT / "requirements.lock").read_text()
    for package in ("testcontainers", "docker", "pytest", "pgserver", "playwright"):
        assert not re.search(rf"(?m)^{package}==", lock), f"{package} is in the runtime lock"
