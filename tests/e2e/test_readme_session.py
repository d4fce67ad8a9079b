"""The README's "A session with the CLI" runs as written.

The commands are read from the README itself (so the test follows the text, not a copy), joined
where a quoted argument spans lines, and run with bash in order; `&` commands are started in the
background and stopped at the end. What the test changes, only for isolation on a shared broker
and database: a topic prefix of its own, HTTP ports chosen by the OS, and a workflow id of its own
in place of `order-42` (Postgres outlives test runs, and the id's idempotency rows with it).
Skipped lines: `make up` (the test stack is up), `source` (the virtualenv's bin is on PATH) and
`open` (a browser).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.services import service_env
from tests.support import delete_topics, unique_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

README = Path(__file__).parents[2] / "README.md"
SKIPPED = ("make up", "source ", "open ")


def session_commands(readme: str) -> list[str]:
    """The `$ ` commands of the README's CLI session, comments dropped, continuations joined."""
    section = readme.split("## A session with the CLI", 1)[1]
    block = section.split("```console", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    pending: str | None = None
    for line in block.splitlines():
        if pending is not None:
            pending += "\n" + line
        elif line.startswith("$ "):
            pending = line[2:]
        else:
            continue  # output shown in the README
        try:
            shlex.split(pending, comments=True)
        except ValueError:
            continue  # an open quote: the command goes on on the next line
        commands.append(_without_comment(pending))
        pending = None
    assert pending is None, f"unterminated command in the README: {pending!r}"
    return commands


def _without_comment(command: str) -> str:
    lexer = shlex.shlex(command, posix=False, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return " ".join(lexer)


def test_the_readme_parser_finds_the_session() -> None:
    commands = session_commands(README.read_text())
    assert any(c.startswith("sagaflow start checkout") for c in commands), commands
    assert any(c.endswith("&") for c in commands), "the services start in the background"


def test_the_readme_cli_session_runs_as_written(
    kafka_bootstrap: str, database_url: str, otlp_endpoint: str
) -> None:
    prefix = unique_prefix("readme")
    workflow_id = f"order-{uuid.uuid4().hex[:8]}"
    bin_dir = Path(sys.executable).parent
    env = service_env(kafka_bootstrap, database_url, prefix)
    # What the README sets itself, it sets itself.
    for name in ("SAGAFLOW_APP", "OTEL_SDK_DISABLED", "SAGAFLOW_PARTITIONS"):
        env.pop(name, None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["SAGAFLOW_INSTANCE_ID"] = prefix.strip(".")
    background: list[subprocess.Popen[bytes]] = []
    logs = Path(__file__).parents[2] / ".stack" / "test-logs"
    logs.mkdir(parents=True, exist_ok=True)
    ran: list[str] = []
    try:
        for written in session_commands(README.read_text()):
            if written.startswith(SKIPPED):
                continue
            command = written.replace("order-42", workflow_id)
            export = re.fullmatch(r"export (\w+)=(\S+)", command)
            if export:
                env[export.group(1)] = export.group(2)
                continue
            if command.endswith("&"):
                log = logs / f"{prefix.strip('.')}-{len(background)}.log"
                background.append(
                    subprocess.Popen(
                        ["bash", "-c", command.removesuffix("&").strip()],
                        env=env,
                        stdout=log.open("ab"),
                        stderr=subprocess.STDOUT,
                    )
                )
                continue
            done = subprocess.run(
                ["bash", "-c", command],
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            ran.append(command)
            assert done.returncode == 0, (
                f"README command failed (exit {done.returncode}): {command}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
            assert all(p.poll() is None for p in background), f"a service died after: {command}"
            if command.startswith("sagaflow show"):
                assert "status    completed" in done.stdout, done.stdout
        assert any(c.startswith("sagaflow watch") for c in ran), ran
    finally:
        for p in background:
            p.terminate()
        for p in background:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        delete_topics(kafka_bootstrap, prefix)
