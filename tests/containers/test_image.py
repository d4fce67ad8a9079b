"""The project's image, run the way the Kubernetes manifests run it: the orchestrator and the
worker as containers (non-root, read-only root file system, writable /tmp) against the
containerized Kafka and Postgres, one checkout saga to completion, probes and metrics read from
outside, and SIGTERM ending each process cleanly within the pods' grace period."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sagaflow.core.messages import WorkflowCompleted
from tests.container_tier import ContainerTier
from tests.sagas import Deployment, order, prepare
from tests.support import assert_eventually

pytestmark = [pytest.mark.containers, pytest.mark.e2e, pytest.mark.timeout(300)]

# terminationGracePeriodSeconds of both Deployments in deploy/k8s/base.
GRACE_S = 30
UID = "10001"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest, kafka_bootstrap: str, database_url: str
) -> Iterator[Deployment]:
    yield prepare(kafka_bootstrap, database_url, request.node.name)


def _service(tier: ContainerTier, d: Deployment, command: str, **env: str) -> Any:
    """A container of the project's image as the manifests run it: the image's own user, a
    read-only root file system and an emptyDir-like /tmp."""
    container = (
        tier.container(tier.images.sagaflow, read_only=True)
        .with_command([command])
        .with_tmpfs_mount("/tmp")
    )
    for key, value in d.env.items():
        if key.startswith(("SAGAFLOW_", "OTEL_")):
            container.with_env(key, value)
    container.with_env("SAGAFLOW_HTTP_HOST", "127.0.0.1")
    for key, value in env.items():
        container.with_env(key, value)
    return tier.run(container)


def _exec(container: Any, script: str) -> tuple[int, str]:
    code, out = container.get_wrapped_container().exec_run(["sh", "-c", script])
    return int(code), out.decode()


def _sigterm(container: Any) -> tuple[int, float]:
    """(exit code, seconds to exit) after SIGTERM; fails if it outlives the grace period."""
    wrapped = container.get_wrapped_container()
    began = time.monotonic()
    wrapped.kill(signal="SIGTERM")
    result = wrapped.wait(timeout=GRACE_S)
    return int(result["StatusCode"]), time.monotonic() - began


def test_checkout_saga_on_the_projects_image(
    container_tier: ContainerTier, deployment: Deployment
) -> None:
    d = deployment
    api_port, worker_port = _free_port(), _free_port()
    orchestrator = _service(
        container_tier,
        d,
        "sagaflow-orchestrator",
        SAGAFLOW_HTTP_PORT=str(api_port),
        SAGAFLOW_INSTANCE_ID=f"{d.wid('orchestrator')}",
    )
    worker = _service(
        container_tier, d, "sagaflow-worker", SAGAFLOW_WORKER_HTTP_PORT=str(worker_port)
    )
    for name, port, container in (
        ("orchestrator", api_port, orchestrator),
        ("worker", worker_port, worker),
    ):
        try:
            assert_eventually(
                lambda port=port: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200,
                timeout=90,
                interval=0.5,
                message=f"the {name} container answers /readyz with 200",
            )
        except AssertionError as exc:
            out, err = container.get_logs()
            raise AssertionError(
                f"{exc}\n--- {name} logs:\n{(out + err).decode()[-3000:]}"
            ) from exc

    # The manifests' securityContext: a numeric non-root user, nothing writable but /tmp.
    for container in (orchestrator, worker):
        assert _exec(container, "id -u") == (0, f"{UID}\n")
        assert _exec(container, "touch /tmp/probe")[0] == 0
        code, out = _exec(container, "touch /opt/sagaflow/probe")
        assert code != 0 and "Read-only file system" in out, out

    wid = d.wid("image")
    d.client().start("checkout", order(wid), workflow_id=wid)
    closed = d.wait_closed([wid], timeout_s=120)
    assert isinstance(closed[wid].body, WorkflowCompleted), closed[wid]
    assert [r["kind"] for r in d.ledger([wid])] == ["charge"]

    status, metrics = _get(f"http://127.0.0.1:{api_port}/metrics")
    assert status == 200 and "sagaflow_commands_processed" in metrics, metrics[:500]
    status, metrics = _get(f"http://127.0.0.1:{worker_port}/metrics")
    assert status == 200 and "sagaflow_" in metrics, metrics[:500]

    for name, container in (("worker", worker), ("orchestrator", orchestrator)):
        code, took = _sigterm(container)
        out, err = container.get_logs()
        assert code == 0, f"{name} exited {code} after SIGTERM:\n{(out + err).decode()[-2000:]}"
        assert took < GRACE_S, f"{name} took {took:.1f}s to stop"
