"""sagaflow's web UI: workflows, their timelines, traces and graphs, actions, dead letters."""

from sagaflow.ui.app import make_ui_app

__all__ = ["make_ui_app"]
