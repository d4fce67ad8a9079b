"""The columns of the read model's workflow row (sagaflow_workflows), named once for the
projector that writes them and the queries that read them."""

from __future__ import annotations

SUMMARY = ("workflow_id", "run_id", "type", "version", "status", "created_at", "updated_at")
"""What a list page shows of each workflow."""

JSON_COLUMNS = frozenset(
    {
        "input",
        "result",
        "error",
        "current_step",
        "pending_activities",
        "pending_timers",
        "received_signals",
        "signal_waits",
        "updates",
        "parked",
        "parent",
        "pending_children",
        "state_path",
    }
)
"""Columns stored as jsonb."""

ROW = (
    *SUMMARY,
    "input",
    "result",
    "error",
    "current_step",
    "pending_activities",
    "pending_timers",
    "received_signals",
    "signal_waits",
    "updates",
    "cancel_requested",
    "parked",
    "parent",
    "pending_children",
    "state_path",
    "last_seq",
)
"""Every column of the row, in the order one workflow is shown."""
