"""`make demo` ends by printing, for each demo saga, the address of its page in the UI, and the
UI's list and dead-letter pages (the browser tests open such pages against the real services)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sagaflow.devstack import demo

pytestmark = pytest.mark.unit

UI = "http://127.0.0.1:18080/ui"


def test_the_demo_report_prints_a_ui_link_per_saga() -> None:
    sagas = {s.workflow_id: s for s in demo._orders("demo-t")}
    # The closing event of each saga as expected: only its type's name is read.
    closed: dict[str, Any] = {
        wid: SimpleNamespace(body=type(s.expect, (), {})()) for wid, s in sagas.items()
    }
    lines: list[str] = []
    demo._report(sagas, closed, [], lines.append, UI)
    text = "\n".join(lines)
    for wid in sagas:
        assert f"      ui:    {UI}/workflows/{wid}" in text
    assert f"every workflow: {UI}/" in text and f"dead letters: {UI}/dlq" in text
