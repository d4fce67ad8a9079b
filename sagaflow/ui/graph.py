"""A workflow's graph as inline SVG.

For a code workflow: the path it has taken so far, one box per activity, compensation, timer
and signal, plus what it waits for now. State machines draw their own graph: a module that knows
one registers a renderer for its workflow type in GRAPH_RENDERERS (the hook the sagaflow.asl
package fills in), and the page uses it instead.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

GraphRenderer = Callable[[str, list[dict[str, Any]], dict[str, Any]], str]
"""(workflow type, path steps, the workflow row) -> SVG markup."""

GRAPH_RENDERERS: dict[str, GraphRenderer] = {}

_BOX_W, _BOX_H, _GAP, _PAD = 240, 34, 18, 10
_FILL = {
    "completed": "#d9f2dd",
    "failed": "#f8d7da",
    "running": "#fff3cd",
    "waiting": "#fff3cd",
    "cancelled": "#e2e3e5",
    "abandoned": "#e2e3e5",
}
_KIND = {
    "activity": "▶",
    "compensation": "↩",
    "timer": "◷",
    "signal": "✉",
    "update": "✎",
    "end": "■",
}


def render(workflow_type: str, steps: list[dict[str, Any]], workflow: dict[str, Any]) -> str:
    renderer = GRAPH_RENDERERS.get(workflow_type, code_path_svg)
    return renderer(workflow_type, steps, workflow)


def code_path_svg(workflow_type: str, steps: list[dict[str, Any]], workflow: dict[str, Any]) -> str:
    nodes = list(steps)
    status = workflow.get("status", "")
    if status in {
        "completed",
        "failed",
        "cancelled",
        "terminated",
        "timed_out",
        "continued_as_new",
    }:
        nodes.append(
            {"kind": "end", "label": status.replace("_", " "), "state": _end_state(status)}
        )
    if not nodes:
        return '<p class="empty">No steps taken yet.</p>'
    height = _PAD * 2 + len(nodes) * _BOX_H + (len(nodes) - 1) * _GAP
    width = _BOX_W + _PAD * 2
    parts = [
        f'<svg class="graph" role="img" aria-label="steps of {escape(workflow_type)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, node in enumerate(nodes):
        y = _PAD + i * (_BOX_H + _GAP)
        if i:
            x = _PAD + _BOX_W // 2
            parts.append(
                f'<line x1="{x}" y1="{y - _GAP}" x2="{x}" y2="{y}" stroke="#555" '
                'marker-end="url(#arrow)"/>'
            )
        state = node.get("state", "running")
        label = f"{_KIND.get(node['kind'], '')} {node['label']}"
        parts.append(
            f'<g class="node {escape(state)}" data-kind="{escape(node["kind"])}">'
            f"<title>{escape(node['kind'])}: {escape(node['label'])} ({escape(state)})</title>"
            f'<rect x="{_PAD}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            f'fill="{_FILL.get(state, "#fff")}" stroke="#555"/>'
            f'<text x="{_PAD + 10}" y="{y + 22}" font-size="13">{escape(label)}</text>'
            f'<text x="{_PAD + _BOX_W - 8}" y="{y + 22}" font-size="11" text-anchor="end" '
            f'fill="#444">{escape(state)}</text></g>'
        )
    parts.insert(
        1,
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    )
    parts.append("</svg>")
    return "".join(parts)


def _end_state(status: str) -> str:
    return {
        "completed": "completed",
        "failed": "failed",
        "cancelled": "cancelled",
        "terminated": "cancelled",
        "timed_out": "failed",
    }.get(status, "completed")
