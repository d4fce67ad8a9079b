"""Property-based fuzzing of the workflow API from its own OpenAPI document (issue 10: no 5xx).

schemathesis generates valid and invalid requests for every documented operation (paths,
queries, bodies, the bearer header) and sends them to the real app, served on a real socket
with real Kafka and Postgres behind it. Bounded in examples per operation and in time; the
assertion is the one the issue asks for: not a single 5xx. The figures (requests, 5xx) are
written to .stack/test-logs/api-fuzz.txt.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sagaflow.config import Config
from sagaflow.workflow import Registry, WorkflowContext
from sagaflow_orchestrator.loop import Orchestrator
from sagaflow_orchestrator.web import make_app
from tests.readmodel_support import environment
from tests.services import LOGS
from tests.support import running_loop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOKEN = "fuzz-token"
MAX_EXAMPLES = 40  # per operation and phase
MAX_TIME_S = 45
SEED = 20261206

registry = Registry()


@registry.workflow(name="echo", version=1)
async def echo(ctx: WorkflowContext, value: Any) -> Any:
    return value


@contextmanager
def serving(config: Config) -> Iterator[int]:
    """The app on 127.0.0.1:<port> in a thread with its own event loop, for an outside client."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(config, Orchestrator(config, registry)), access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, name="api-under-fuzz", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def schemathesis_cli() -> str:
    found = Path(sys.executable).parent / "schemathesis"
    if found.is_file():
        return str(found)
    on_path = shutil.which("schemathesis")
    if on_path is None:
        pytest.fail("schemathesis is not installed; run `make install` (it is a dev dependency)")
    return on_path


def _no_answer_in_time(entry: dict[str, Any]) -> bool:
    """A query or update whose (fuzzed) timeout_s ran out: 504 is its documented answer."""
    path = entry["request"]["url"].split("?")[0]
    return int(entry["response"]["status"]) == 504 and ("/queries/" in path or "/updates/" in path)


def test_fuzzing_the_openapi_document_finds_no_5xx(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    har = tmp_path / "fuzz.har"
    with (
        environment(kafka_bootstrap, database_url, "api-fuzz", SAGAFLOW_API_TOKEN=TOKEN) as config,
        # Queries and updates are answered by an orchestrator: without one they all wait out
        # their timeout.
        running_loop(Orchestrator(config, registry).run, "orchestrator"),
        serving(config) as port,
    ):
        done = subprocess.run(
            [
                schemathesis_cli(),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                "all",
                "--workers",
                "1",  # several workers hung on Python 3.11
                "--max-examples",
                str(MAX_EXAMPLES),
                "--max-time",
                str(MAX_TIME_S),
                "--seed",
                str(SEED),
                "--generation-allow-x00",
                "true",  # NUL in strings: what Postgres refuses (issue 10, finding 7)
                "--generation-database",
                "none",
                "--request-timeout",
                "20",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--report",
                "har",
                "--report-har-path",
                str(har),
                # Every example of every operation runs, not just those before a first
                # (non-5xx) conformance finding.
                "--continue-on-failure",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=MAX_TIME_S + 90,
            check=False,
            cwd=tmp_path,
        )
    entries = json.loads(har.read_text())["log"]["entries"] if har.is_file() else []
    statuses = Counter(int(e["response"]["status"]) for e in entries)
    server_errors = {
        f"{e['request']['method']} {e['request']['url']}": e["response"]["content"].get("text")
        for e in entries
        if int(e["response"]["status"]) >= 500
        and not e["request"]["url"].endswith("/readyz")
        and not _no_answer_in_time(e)
    }
    summary = (
        f"api fuzz: {len(entries)} requests, {len(server_errors)} 5xx (readyz and timed-out "
        "queries/updates excluded), "
        f"statuses {dict(sorted(statuses.items()))}, seed {SEED}"
    )
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "api-fuzz.txt").write_text(f"{summary}\n\n{done.stdout[-20000:]}")
    print(summary)
    assert entries, f"schemathesis sent nothing (exit {done.returncode}): {done.stdout[-3000:]}"
    assert len(entries) >= 50, summary
    assert not server_errors, f"{summary}\n{json.dumps(server_errors, indent=1)[:5000]}"
