"""`make bench` in miniature: the whole bench runs against the test stack with tiny
parameters and writes a summary with every figure the issue asks for."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagaflow.bench.report import REQUIRED
from tests.services import service_env
from tests.support import unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAITING = 200


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_quick_bench_writes_every_figure(
    kafka_bootstrap: str, database_url: str, otlp_endpoint: str, tmp_path: Path
) -> None:
    env = service_env(kafka_bootstrap, database_url, unique_prefix("bench"))
    # The bench measures the services with the shipped default sampler, exporting to Jaeger.
    env.pop("OTEL_SDK_DISABLED")
    # The bench finds the local stack's Postgres (for its CPU time) by its data directory.
    if "SAGAFLOW_PG_SHARED_DIR" in os.environ:
        env["SAGAFLOW_PG_SHARED_DIR"] = os.environ["SAGAFLOW_PG_SHARED_DIR"]
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    argv = [sys.executable, "-m", "sagaflow.bench", "--quick", "--duration", "6"]
    argv += ["--raw-duration", "4", "--open-duration", "4", "--ramp", "2", "--in-flight", "200"]
    argv += ["--sequential", "3", "--warm", "10", "--waiting", str(WAITING), "--out", str(tmp_path)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "closed loop" in done.stdout and "raw" in done.stdout

    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in REQUIRED:
        value = summary[key]
        if key == "waiting_kib_per_workflow":
            # With a few hundred parked workflows the resident-memory growth is within the
            # allocator's noise (it can read 0 or below); what must not come back is a driver
            # coroutine per waiting workflow, about 7 KiB each.
            assert isinstance(value, int | float) and math.isfinite(value) and value < 4, value
        elif isinstance(value, dict):
            assert value and all(_positive(v) for v in value.values()), (key, value)
        else:
            assert _positive(value), (key, value)
    assert set(summary["cpu_ms_per_step"]) == {
        "orchestrators",
        "workers",
        "broker",
        "postgres",
        "total",
    }
    assert summary["waiting_completed"] == WAITING
    assert summary["settings"]["activities_per_saga"] == 5
    assert (tmp_path / "summary.png").stat().st_size > 10_000
    assert (tmp_path / "core.json").is_file()
