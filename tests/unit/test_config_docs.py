"""docs/configuration.md is generated from sagaflow.config.SETTINGS and must stay in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagaflow.config import SETTINGS, Setting
from sagaflow.config_docs import main, render

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_md_is_up_to_date() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is out of date with sagaflow.config.SETTINGS; "
        "run: python -m sagaflow.config_docs"
    )


def test_every_setting_is_a_row() -> None:
    text = render()
    for s in SETTINGS:
        assert f"| `{s.name}` |" in text


def test_cells_escape_pipes_and_show_empty_defaults() -> None:
    text = render([Setting("X_A", "", "a | b")])
    assert "| `X_A` | (empty) | a \\| b |" in text


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    assert main([str(stale), "--check"]) == 1
    assert main([str(stale)]) == 0
    assert main([str(stale), "--check"]) == 0
