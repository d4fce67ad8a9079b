"""The web UI in a real headless browser (Debian's Chromium driven by Playwright), against the
real services: Kafka, Postgres, Jaeger, one orchestrator serving /ui and one worker.

The four demo sagas are started as `make demo` does; the UI must list them with the right
statuses, show a timeline and a waterfall with spans of both services, show the approval saga's
signal wait and complete it when `approve` is sent from the page, compensate a saga cancelled
from the page, and list, inspect and re-drive a poison record on the dead-letter page.
Screenshots of every page go to .stack/ui-screenshots/ (git-ignored).
"""

from __future__ import annotations

import socket
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from sagaflow.kafka.clients import command_producer
from tests.sagas import Deployment, order, prepare
from tests.support import assert_eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / ".stack" / "ui-screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Demo:
    d: Deployment
    ui: str
    ids: dict[str, str]
    services: dict[str, str]


@pytest.fixture(scope="module")
def demo(
    kafka_bootstrap: str, database_url: str, otlp_endpoint: str, jaeger_query_url: str
) -> Iterator[Demo]:
    run = uuid.uuid4().hex[:8]
    services = {"orchestrator": f"ui-orchestrator-{run}", "worker": f"ui-worker-{run}"}
    port = _free_port()
    d = prepare(
        kafka_bootstrap,
        database_url,
        "ui",
        3,
        OTEL_SDK_DISABLED="false",
        # The default samples 10 %: every demo saga must have its trace.
        OTEL_TRACES_SAMPLER="parentbased_always_on",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_BSP_SCHEDULE_DELAY="200",
        SAGAFLOW_JAEGER_QUERY_URL=jaeger_query_url,
    )
    try:
        d.orchestrator(SAGAFLOW_HTTP_PORT=str(port), OTEL_SERVICE_NAME=services["orchestrator"])
        d.worker(OTEL_SERVICE_NAME=services["worker"])
        ids = {
            "completes": d.wid(f"{run}-1"),
            "declined": d.wid(f"{run}-2"),
            "approval": d.wid(f"{run}-3"),
            "times_out": d.wid(f"{run}-4"),
            "cancelled": d.wid(f"{run}-5"),
            "idle": d.wid(f"{run}-6"),
        }
        inputs = {
            "completes": order(ids["completes"], amount_cents=4_200),
            "declined": order(ids["declined"], amount_cents=4_200, card="tok_declined"),
            "approval": order(ids["approval"], amount_cents=250_000),
            "times_out": order(ids["times_out"], amount_cents=250_000, approval_timeout_s=3),
            "cancelled": order(ids["cancelled"], amount_cents=250_000),
            "idle": order(ids["idle"], amount_cents=250_000),
        }
        assert_eventually(
            lambda: _answers(f"http://127.0.0.1:{port}/healthz"),
            timeout=60,
            interval=0.2,
            message="the orchestrator's HTTP server answers",
        )
        client = d.client()
        for label, wid in ids.items():
            client.start("checkout", inputs[label], workflow_id=wid)
        yield Demo(d, f"http://127.0.0.1:{port}/ui", ids, services)
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; `make test` installs it (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.on("dialog", lambda dialog: dialog.accept())  # the confirmations of cancel and re-drive
    try:
        yield pg
    finally:
        context.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _poll(page: Any, url: str, check: Callable[[], Any], message: str, timeout: float = 60) -> Any:
    """Load `url` until `check()` (run against the loaded page) holds."""

    def attempt() -> Any:
        page.goto(url)
        return check()

    return assert_eventually(attempt, timeout=timeout, interval=0.5, message=message)


def _status(page: Any) -> str:
    status = page.locator("#wf-status")
    # An error page (say, the projector not caught up yet) has none: not yet, and say what it was.
    assert status.count() == 1, page.content()[:800]
    return str(status.get_attribute("data-status"))


def _row_statuses(page: Any) -> dict[str, str]:
    rows = page.locator("tr[data-workflow-id]")
    return {
        rows.nth(i).get_attribute("data-workflow-id"): rows.nth(i)
        .locator("[data-status]")
        .get_attribute("data-status")
        for i in range(rows.count())
    }


def test_the_demo_sagas_appear_with_their_statuses(demo: Demo, page: Any) -> None:
    prefix = demo.ids["completes"].rsplit("-", 1)[0]
    expected = {
        demo.ids["completes"]: "completed",
        demo.ids["declined"]: "failed",
        demo.ids["times_out"]: "failed",
        demo.ids["approval"]: "running",
    }

    def listed() -> bool:
        got = _row_statuses(page)
        assert {k: got.get(k) for k in expected} == expected, got
        return True

    _poll(page, f"{demo.ui}/?q={prefix}", listed, "the demo sagas listed with their statuses")
    # The counts per status cover the search too.
    assert page.locator('[data-status-count="failed"] b').inner_text() == "2"
    _shot(page, "workflows")
    # Filtering by status narrows the list to it.
    page.locator('[data-status-count="failed"]').click()
    page.wait_for_url("**status=failed**")
    failed = _row_statuses(page)  # the search is kept: only this test's two failed sagas
    assert failed == {demo.ids["declined"]: "failed", demo.ids["times_out"]: "failed"}, failed
    # Keyboard: the search box is labelled and reachable.
    assert page.get_by_label("Id").is_visible()


def test_a_workflow_page_shows_its_timeline_graph_and_trace(demo: Demo, page: Any) -> None:
    wid = demo.ids["completes"]
    _poll(
        page,
        f"{demo.ui}/workflows/{wid}",
        lambda: _status(page) == "completed",
        f"{wid} completed",
    )
    events = page.locator("tr[data-event]")
    kinds = [events.nth(i).get_attribute("data-event") for i in range(events.count())]
    assert kinds[0] == "WorkflowStarted" and kinds[-1] == "WorkflowCompleted", kinds
    assert "ActivityScheduled" in kinds and "SignalReceived" not in kinds
    assert "charge_payment" in page.locator("table.timeline").inner_text()
    assert page.locator("svg.graph g.node").count() >= 5  # four activities and the end

    # The waterfall: spans from both services, loaded from Jaeger by the page itself.
    def both_services() -> set[str]:
        spans = page.locator("li.span")
        services = {spans.nth(i).get_attribute("data-service") for i in range(spans.count())}
        assert set(demo.services.values()) <= services, services
        return services

    _poll(page, f"{demo.ui}/workflows/{wid}", lambda: _wait_trace(page, both_services), "spans")
    first = page.locator("li.span summary").first
    first.click()
    assert page.locator("li.span dl.attrs").first.is_visible()
    _shot(page, "workflow")


def _wait_trace(page: Any, check: Callable[[], Any]) -> Any:
    # The page fetches the trace after load and looks again while Jaeger has none.
    page.locator("#trace li.span, #trace .problem").first.wait_for(timeout=20_000)
    return check()


def _ask(page: Any, name: str) -> str:
    page.get_by_label("Query name").fill(name)
    page.get_by_role("button", name="Ask").click()
    page.locator("#query-h").wait_for(timeout=30_000)
    return str(page.locator("section.query").inner_text())


def test_a_query_from_the_ui_is_answered_live_and_from_a_closed_workflows_final_state(
    demo: Demo, page: Any
) -> None:
    live, closed = demo.ids["approval"], demo.ids["declined"]
    _poll(
        page,
        f"{demo.ui}/workflows/{live}",
        lambda: page.locator('li[data-wait="signal"][data-signal="approve"]').count() == 1,
        f"{live} waits for its approval",
    )
    # The workflow type's queries are offered by name.
    assert page.locator('#query-names option[value="progress"]').count() == 1
    before = page.locator("tr[data-event]").count()
    answer = _ask(page, "progress")
    assert '"stage": "awaiting approval"' in answer and '"workflow": "running"' in answer, answer
    _shot(page, "query-answered")
    # A query records nothing.
    page.goto(f"{demo.ui}/workflows/{live}")
    assert page.locator("tr[data-event]").count() == before
    assert "was not answered" in _ask(page, "no_such_query")

    _poll(page, f"{demo.ui}/workflows/{closed}", lambda: _status(page) == "failed", "declined")
    answer = _ask(page, "progress")
    assert '"stage": "charging"' in answer and '"workflow": "failed"' in answer, answer


def test_approve_from_the_ui_completes_the_waiting_saga(demo: Demo, page: Any) -> None:
    wid = demo.ids["approval"]
    url = f"{demo.ui}/workflows/{wid}"
    _poll(
        page,
        url,
        lambda: page.locator('li[data-wait="signal"][data-signal="approve"]').count() == 1,
        f"{wid} shows its wait for the approve signal",
    )
    assert "times out at" in page.locator('li[data-wait="signal"]').inner_text()
    # The engine records signal waits and the read model projects them: no replay needed.
    assert page.locator('li[data-wait="signal"]').get_attribute("data-source") == "read model"
    _shot(page, "waiting-for-approval")
    page.get_by_label("Signal name").fill("approve")
    page.get_by_label("Payload (JSON)").fill('{"approved": true, "by": "ui-test"}')
    page.get_by_role("button", name="Send signal").click()
    assert "signal approve" in page.locator(".flash").inner_text()
    # The page shows the event that records the signal once the engine has written it (it looks
    # again by itself; no reload here).
    recorded = page.locator('#action-result [data-outcome="recorded"]')
    recorded.wait_for(timeout=30_000)
    assert "SignalReceived" in recorded.inner_text()
    seq = recorded.locator("a").get_attribute("href")
    assert page.locator(f"tr{seq}.result").get_attribute("data-event") == "SignalReceived"
    _poll(page, url, lambda: _status(page) == "completed", f"{wid} completed after approve")
    assert page.locator('tr[data-event="SignalReceived"]').count() == 1
    assert '"approved": true' in page.locator("#wf-result").inner_text()


def test_cancel_from_the_ui_compensates(demo: Demo, page: Any) -> None:
    wid = demo.ids["cancelled"]
    url = f"{demo.ui}/workflows/{wid}"
    _poll(
        page,
        url,
        lambda: page.locator('li[data-wait="signal"]').count() == 1,
        f"{wid} waiting for approval (charged, so there is something to compensate)",
    )
    page.get_by_label("Reason").fill("customer changed their mind")
    page.get_by_role("button", name="Cancel workflow").click()
    page.locator('#action-result [data-outcome="recorded"]').wait_for(timeout=30_000)
    assert "CancelRequested" in page.locator("#action-result").inner_text()
    _poll(page, url, lambda: _status(page) == "cancelled", f"{wid} cancelled")
    compensations = page.locator("ul.compensations").inner_text()
    assert "refund_payment" in compensations and "release_inventory" in compensations
    assert "customer changed their mind" in page.locator("#wf-error").inner_text()
    # Playwright's sync API holds this thread's event loop; the ledger query needs its own.
    with ThreadPoolExecutor(1) as pool:
        ledger = pool.submit(demo.d.ledger, [wid]).result(timeout=30)
    refunds = [r for r in ledger if r["kind"] == "refund"]
    assert len(refunds) == 1, refunds
    _shot(page, "cancelled")


def test_a_poison_record_is_listed_inspected_and_redriven(demo: Demo, page: Any) -> None:
    commands = demo.d.config.topics.commands
    producer = command_producer(demo.d.config)
    producer.produce(commands, b"\x00poison from the ui test\xff", b"ui-poison")
    assert producer.flush(10) == 0

    def rows() -> int:
        n = page.locator(f'tr[data-source="{commands}"]').count()
        assert n >= 1, "no dead letter yet"
        return int(n)

    before = _poll(page, f"{demo.ui}/dlq", rows, "the poison record on the dead-letter page")
    _shot(page, "dlq")
    page.locator(f'tr[data-source="{commands}"] a').first.click()
    assert page.locator("#dlq-reason").inner_text().strip()
    assert "00 70 6f 69 73 6f 6e" in page.locator("#dlq-hex").inner_text()
    assert "poison from the ui test" in page.locator("#dlq-text").inner_text()
    _shot(page, "dlq-item")
    page.get_by_role("button", name=f"Re-drive to {commands}").click()
    assert f"to {commands} partition" in page.locator("#dlq-flash").inner_text()
    # Back on the commands topic it is still poison, so the orchestrator dead-letters it again.
    _poll(
        page, f"{demo.ui}/dlq", lambda: rows() > before, "the re-driven record dead-lettered again"
    )


def test_the_health_page_shows_the_orchestrator_and_lag(demo: Demo, page: Any) -> None:
    group = demo.d.config.orchestrator_group

    def owns_partitions() -> bool:
        assert page.locator("#readiness").get_attribute("data-ready") == "yes", page.content()[:800]
        row = page.locator("tr[data-orchestrator]")
        assert row.count() == 1 and "commands[" in row.inner_text()
        return True

    _poll(page, f"{demo.ui}/health", owns_partitions, "the orchestrator on the health page")
    assert page.locator(f'tr[data-group="{group}"] [data-lag]').count() == 1
    workers = page.locator('tr[data-group*="worker-"]')
    assert workers.count() == 4  # inventory, payments, shipping, email
    _shot(page, "health")


def test_usable_by_keyboard_on_a_narrow_screen_with_local_times(demo: Demo, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 780}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        wid = demo.ids["completes"]
        _poll(page, f"{demo.ui}/?q={wid}", lambda: _row_statuses(page) == {wid: "completed"},
              f"{wid} listed")  # fmt: skip
        _assert_fits(page, "the workflows list")
        _shot(page, "narrow-workflows")
        # Times in the browser's zone (Tokyo is UTC+9), the UTC time on hover.
        started = page.locator(f'tr[data-workflow-id="{wid}"] time').first
        iso = str(started.get_attribute("datetime"))
        assert str(started.get_attribute("title")).endswith(" UTC")
        assert started.inner_text() != iso
        tokyo = page.evaluate(
            "iso => new Date(iso).toLocaleString()", iso
        )  # the same rendering the page's script does, in the context's zone
        assert started.inner_text() == tokyo

        # Keyboard only: the skip link first, then the main navigation, then the search box.
        page.goto(f"{demo.ui}/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        search = page.get_by_label("Id")
        search.focus()
        page.keyboard.type(wid)
        page.keyboard.press("Enter")
        page.wait_for_url(f"**q={wid}**")
        link = page.get_by_role("link", name=wid)
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/workflows/{wid}")
        assert _status(page) == "completed"
        _assert_fits(page, "a workflow page")
        _shot(page, "narrow-workflow")
        # Every form control has a label a screen reader reads out.
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                 .map(el => el.name)"""
        )
        assert unlabelled == []
    finally:
        context.close()


def _assert_fits(page: Any, what: str) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    wide = page.evaluate(
        """() => [...document.querySelectorAll('main *')]
             .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth)
             .slice(0, 8)
             .map(el => el.tagName + '.' + el.className + ' ' + el.textContent.slice(0, 40))"""
    )
    assert overflow <= 1, f"{what} scrolls sideways by {overflow}px on a narrow screen: {wide}"


def test_terminate_from_the_ui_stops_at_once_with_no_compensation(demo: Demo, page: Any) -> None:
    wid = demo.ids["idle"]
    url = f"{demo.ui}/workflows/{wid}"
    _poll(page, url, lambda: page.locator('li[data-wait="signal"]').count() == 1, f"{wid} waits")
    actions = page.locator("section.actions").inner_text().lower()
    assert "send signal" in actions and "cancel workflow" in actions
    # Not offered while the engine lacks it.
    if not hasattr(demo.d.client(), "query"):
        assert "query" not in actions, actions
    page.get_by_label("Why terminate").fill("stuck: the approver left")
    page.get_by_label("Who (recorded)").fill("ops@example.com")
    page.get_by_role("button", name="Terminate now").click()
    recorded = page.locator('#action-result [data-outcome="recorded"]')
    recorded.wait_for(timeout=30_000)
    assert "WorkflowTerminated" in recorded.inner_text()
    _poll(page, url, lambda: _status(page) == "terminated", f"{wid} terminated")
    assert page.locator("ul.compensations").count() == 0
    assert page.locator("section.actions").count() == 0  # nothing to act on any more
    terminated = page.locator('tr[data-event="WorkflowTerminated"]').inner_text()
    assert "stuck: the approver left" in terminated and "ops@example.com" in terminated
    # The wait's timer never fires now: the graph says so, and the end is drawn.
    assert page.locator('svg.graph g.node.abandoned[data-kind="timer"]').count() == 1
    assert "terminated" in page.locator('svg.graph g.node[data-kind="end"]').inner_html()
    _assert_fits(page, "a workflow page with a long input")
    with ThreadPoolExecutor(1) as pool:
        ledger = pool.submit(demo.d.ledger, [wid]).result(timeout=30)
    assert [r["kind"] for r in ledger] == ["charge"]  # charged, never refunded
    _shot(page, "terminated")
