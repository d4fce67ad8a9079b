"""A state machine execution's page in a real headless browser, against the real services: the
checkout state machine is deployed, one execution waits for its approval and one fails on a
declined card; each page draws the state graph with the path marked (visited states, the state
it is in now, the state it failed in), in colour and in words, with a legend and the path as
text. Screenshots go to .stack/ui-screenshots/ (git-ignored).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from sagaflow.asl import store
from sagaflow.asl.examples import checkout_definition
from sagaflow.core import messages
from tests.sagas import Deployment, order, prepare
from tests.support import assert_eventually
from tests.ui.test_browser import CHROMIUM, SHOTS, _answers, _free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

APP = "sagaflow.asl.examples:registry"
NAME = "checkout-asl-ui"


@pytest.fixture(scope="module")
def machine(kafka_bootstrap: str, database_url: str) -> Iterator[tuple[Deployment, str]]:
    d = prepare(kafka_bootstrap, database_url, f"uism{uuid.uuid4().hex[:6]}", 3)
    try:
        store.deploy(d.config, NAME, checkout_definition())
        port = _free_port()
        d.env["SAGAFLOW_APP"] = APP
        d.orchestrator(SAGAFLOW_HTTP_PORT=str(port))
        d.worker()
        assert_eventually(
            lambda: _answers(f"http://127.0.0.1:{port}/healthz"),
            timeout=60,
            interval=0.2,
            message="the orchestrator's HTTP server answers",
        )
        yield d, f"http://127.0.0.1:{port}/ui"
    finally:
        d.stop()


@pytest.fixture(scope="module")
def page(machine: Any) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; `make test` installs it (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.set_default_timeout(15_000)
            yield pg
        finally:
            browser.close()


def _marks(page: Any) -> dict[str, str]:
    nodes = page.locator("svg.state-graph g[data-mark]")
    return {
        nodes.nth(i).get_attribute("data-state"): nodes.nth(i).get_attribute("data-mark")
        for i in range(nodes.count())
    }


def _poll_marks(page: Any, url: str, expected: dict[str, str], what: str) -> dict[str, str]:
    def check() -> dict[str, str]:
        page.goto(url)
        marks = _marks(page)
        assert {k: marks.get(k) for k in expected} == expected, marks
        return marks

    return assert_eventually(check, timeout=90, interval=1.0, message=what)


def test_a_waiting_execution_shows_where_it_is_on_the_state_graph(
    machine: tuple[Deployment, str], page: Any
) -> None:
    d, ui = machine
    wid = d.wid("waits")
    d.client().start(
        NAME, order(wid, amount_cents=500_000, approval_timeout_s=600), workflow_id=wid
    )
    marks = _poll_marks(
        page,
        f"{ui}/workflows/{wid}",
        {"Charge": "visited", "NeedsApproval": "visited", "Approval": "current"},
        f"{wid} marked as waiting in its Approval state",
    )
    assert "Ship" not in marks and "failed" not in marks.values()
    # Not colour alone: the mark is a word in the box, the path is text, and a legend says so.
    assert "▶ now" in page.locator('g[data-state="Approval"]').inner_html()
    path = page.locator("#state-path").inner_text()
    assert "Defaults → Reserve → Charge → NeedsApproval → Approval" in path
    assert "now in Approval" in path
    # Where the path comes from: the read model once the engine records state transitions,
    # else a replay of the history.
    recorded = hasattr(messages, "StateTransitioned")
    assert ("recorded state transitions" if recorded else "replayed from the event log") in path
    assert "the state it is in now" in page.get_by_label("Legend of the state graph").inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "state-machine-waiting.png"), full_page=True)
    page.locator('section[aria-labelledby="graph-h"]').screenshot(
        path=str(SHOTS / "state-machine-graph.png")
    )


def test_a_failed_execution_shows_the_state_it_failed_in(
    machine: tuple[Deployment, str], page: Any
) -> None:
    d, ui = machine
    wid = d.wid("declined")
    d.client().start(NAME, order(wid, card="tok_declined"), workflow_id=wid)
    marks = _poll_marks(
        page,
        f"{ui}/workflows/{wid}",
        {"Charge": "visited", "ReleaseInventory": "visited", "Failed": "failed"},
        f"{wid} marked as failed in its Fail state after releasing the stock",
    )
    assert "current" not in marks.values() and "Approval" not in marks
    assert "failed in Failed" in page.locator("#state-path").inner_text()
    assert page.locator("#wf-status").get_attribute("data-status") == "failed"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "state-machine-failed.png"), full_page=True)
