"""A state machine's graph as inline SVG, with an execution's path marked on it.

The nodes and edges are sagaflow.asl.graph's (the same the CLI draws as DOT or Mermaid); the
layout is ours, so the page needs no Graphviz: states in layers from the start (longest path
over forward edges), edges that go back or sideways routed around the right side, catch edges
dashed. Parallel branches and Map item processors are drawn inline: the state fans out into
each branch, and each branch's end joins the state's next state.

Marks never rely on colour alone: each marked state also carries a word (visited, now,
failed) in its box and its tooltip, and the page prints the path as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from sagaflow.asl.graph import structure
from sagaflow.ui.statemachine import StatePath

_W, _H, _HGAP, _VGAP, _PAD, _SIDE = 180, 38, 28, 46, 12, 60
_START, _END = "__start", "__end"
MARK_TEXT = {"visited": "✓ visited", "current": "▶ now", "failed": "✗ failed"}
_FILL = {"visited": "#d9f2dd", "current": "#fff3cd", "failed": "#f8d7da", "": "#ffffff"}
_STROKE = {"visited": "#2b8a3e", "current": "#b07d00", "failed": "#c92a2a", "": "#999999"}


@dataclass
class _Flat:
    nodes: list[tuple[str, str, str]] = field(default_factory=list)
    """(id, state name or label, kind)"""
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(from, to, label, is a catch edge)"""


def _flatten(graph: Any) -> _Flat:
    flat = _Flat(list(graph.nodes), list(graph.edges))
    fanned: set[str] = set()
    joins: dict[str, list[str]] = {}
    for cid, label, inner in graph.clusters:
        parent = cid.rsplit("c", 1)[0]  # asl.graph names a cluster "<state id>c<i>"
        sub = _flatten(inner)
        for node, text, kind in sub.nodes:
            if node.endswith(_START):
                flat.nodes.append((node, label, "Branch"))
            elif node.endswith(_END):
                flat.nodes.append((node, f"end of {label}", "Join"))
                joins.setdefault(parent, []).append(node)
            else:
                flat.nodes.append((node, text, kind))
        flat.edges += sub.edges
        flat.edges.append((parent, f"{cid}_{_START}", "", False))
        fanned.add(parent)
    # A Parallel or Map state goes on once its branches end: its next state hangs off them.
    kept = []
    for src, dst, text, catch in flat.edges:
        if src in fanned and not catch and not dst.startswith(f"{src}c"):
            kept += [(end, dst, text, False) for end in joins.get(src, [])]
        else:
            kept.append((src, dst, text, catch))
    flat.edges = kept
    return flat


def _layers(flat: _Flat) -> tuple[dict[str, int], list[str], set[tuple[str, str]]]:
    """Each node's layer, the nodes in the order first reached, and the back edges."""
    out: dict[str, list[str]] = {n: [] for n, _, _ in flat.nodes}
    for src, dst, _, _ in flat.edges:
        out[src].append(dst)
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    on_path: set[str] = set()
    seen: set[str] = set()

    def visit(node: str) -> None:  # iterative would be longer; machines are small
        seen.add(node)
        on_path.add(node)
        order.append(node)
        for nxt in out[node]:
            if nxt in on_path:
                back.add((node, nxt))
            elif nxt not in seen:
                visit(nxt)
        on_path.discard(node)

    visit(_START)
    for node, _, _ in flat.nodes:
        if node not in seen:
            visit(node)
    layer = {n: 0 for n in order}
    changed = True
    while changed:  # longest path; a graph of a few dozen states settles in a few rounds
        changed = False
        for src, dst, _, _ in flat.edges:
            if (src, dst) not in back and layer[dst] < layer[src] + 1:
                layer[dst] = layer[src] + 1
                changed = True
    return layer, order, back


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def marks_of(path: StatePath | None) -> dict[str, str]:
    """State name -> mark."""
    if path is None:
        return {}
    marks = {name: "visited" for name in path.visited}
    for name in path.active:
        marks[name] = "current"
    if path.current:
        marks[path.current] = "current"
    if path.failed:
        marks[path.failed] = "failed"
    return marks


def state_graph_svg(definition: dict[str, Any], path: StatePath | None, title: str) -> str:
    flat = _flatten(structure(definition))
    layer, order, back = _layers(flat)
    rows: dict[int, list[str]] = {}
    for node in order:
        rows.setdefault(layer[node], []).append(node)
    widest = max(len(r) for r in rows.values())
    # Room on the right for edges going back up, on the left for edges skipping layers.
    width = _PAD * 2 + widest * _W + (widest - 1) * _HGAP + 60 + _SIDE
    height = _PAD * 2 + (max(rows) + 1) * (_H + _VGAP)
    pos: dict[str, tuple[float, float]] = {}
    for r, nodes in rows.items():
        row_w = len(nodes) * _W + (len(nodes) - 1) * _HGAP
        x0 = _SIDE + _PAD + ((width - 60 - _SIDE - _PAD * 2) - row_w) / 2
        for i, node in enumerate(nodes):
            pos[node] = (x0 + i * (_W + _HGAP), _PAD + r * (_H + _VGAP))
    marks = marks_of(path)
    parts = [
        f'<svg class="graph state-graph" role="img" aria-label="state graph of {escape(title)}"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' xmlns="http://www.w3.org/2000/svg">'
        '<defs><marker id="sm-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'
    ]
    for i, (src, dst, text, catch) in enumerate(flat.edges):
        between = range(layer[src] + 1, layer[dst])
        # An edge that skips layers passes left of every state it skips, not through them.
        left = min((pos[n][0] for r in between for n in rows[r]), default=None)
        skip_x = None if left is None else max(4.0, left - 12 - (i % 4) * 8)
        parts.append(_edge(i, pos[src], pos[dst], text, catch, (src, dst) in back, skip_x))
    for node, text, kind in flat.nodes:
        mark = marks.get(text, "") if kind not in ("Start", "End", "Branch", "Join") else ""
        parts.append(_node(node, text, kind, mark, pos[node]))
    parts.append("</svg>")
    return "".join(parts)


def _edge(
    i: int,
    a: tuple[float, float],
    b: tuple[float, float],
    text: str,
    catch: bool,
    backwards: bool,
    skip_x: float | None,
) -> str:
    (ax, ay), (bx, by) = a, b
    if skip_x is not None and not backwards and by > ay:
        # Down into the gap below, left past the skipped states, down, right, into the top.
        lane = (i % 4) * 4
        sx, sy, ex, ey = ax + _W / 2, ay + _H, bx + _W / 2, by
        d = (
            f"M{sx:.0f},{sy:.0f} V{sy + _VGAP / 2 - 6 + lane:.0f} H{skip_x:.0f} "
            f"V{ey - _VGAP / 2 + lane:.0f} H{ex:.0f} V{ey:.0f}"
        )
        # Above its first turn, which is its own (each source has its own gap below it).
        lx, ly, anchor = skip_x + 4, sy + _VGAP / 2 - 9 + lane, "start"
    elif backwards or by <= ay:
        # Around the right side, further out the more layers it spans.
        sx, sy, ex, ey = ax + _W, ay + _H / 2, bx + _W, by + _H / 2
        bulge = max(sx, ex) + 30 + min(abs(ay - by) / 8, 25)
        d = f"M{sx:.0f},{sy:.0f} C{bulge:.0f},{sy:.0f} {bulge:.0f},{ey:.0f} {ex:.0f},{ey:.0f}"
        lx, ly, anchor = bulge - 4, (sy + ey) / 2, "end"
    else:
        sx, sy, ex, ey = ax + _W / 2, ay + _H, bx + _W / 2, by
        d = (
            f"M{sx:.0f},{sy:.0f} C{sx:.0f},{sy + _VGAP / 2:.0f} "
            f"{ex:.0f},{ey - _VGAP / 2:.0f} {ex:.0f},{ey:.0f}"
        )
        lx, ly, anchor = (sx + ex) / 2, (sy + ey) / 2 + 4, "middle"
    style = ' stroke-dasharray="5,4" stroke="#c92a2a"' if catch else ' stroke="#555"'
    label = ""
    if text:
        colour = "#c92a2a" if catch else "#444"
        label = (
            f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="10" fill="{colour}" '
            f'text-anchor="{anchor}" paint-order="stroke" stroke="#fff" stroke-width="3">'
            f"{escape(_short(text, 20))}<title>{escape(text)}</title></text>"
        )
    return (
        f'<g class="edge{" catch" if catch else ""}" data-edge="{i}"><path d="{d}" fill="none"'
        f'{style} marker-end="url(#sm-arrow)"/>{label}</g>'
    )


def _node(node: str, text: str, kind: str, mark: str, at: tuple[float, float]) -> str:
    x, y = at
    fill, stroke = _FILL[mark], _STROKE[mark]
    wide = "3" if mark in ("current", "failed") else "1.5" if mark else "1"
    tip = f"{text} ({kind}){': ' + MARK_TEXT[mark] if mark else ''}"
    attrs = f'class="node{" " + mark if mark else ""}" data-kind="{escape(kind)}"'
    if kind not in ("Start", "End", "Branch", "Join"):
        attrs += f' data-state="{escape(text)}"' + (f' data-mark="{mark}"' if mark else "")
    if kind in ("Start", "End", "Branch", "Join"):
        shape = (
            f'<ellipse cx="{x + _W / 2:.0f}" cy="{y + _H / 2:.0f}" rx="{_W / 3:.0f}" '
            f'ry="{_H / 2 - 4:.0f}" fill="#f1f3f5" stroke="#777"/>'
        )
        body = (
            f'<text x="{x + _W / 2:.0f}" y="{y + _H / 2 + 4:.0f}" font-size="11" '
            f'text-anchor="middle">{escape(_short(text, 24))}</text>'
        )
    else:
        dash = ' stroke-dasharray="3,3"' if not mark else ""
        rx = 2 if kind == "Choice" else 8
        shape = (
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_W}" height="{_H}" rx="{rx}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{wide}"{dash}/>'
        )
        body = (
            f'<text x="{x + 8:.0f}" y="{y + 16:.0f}" font-size="12" font-weight="600">'
            f"{escape(_short(text, 24))}</text>"
            f'<text x="{x + 8:.0f}" y="{y + 31:.0f}" font-size="10" fill="#444">'
            f"{escape(kind)}</text>"
        )
        if mark:
            body += (
                f'<text x="{x + _W - 6:.0f}" y="{y + 31:.0f}" font-size="10" '
                f'text-anchor="end" fill="{stroke}" font-weight="600">{MARK_TEXT[mark]}</text>'
            )
    return f"<g {attrs}><title>{escape(tip)}</title>{shape}{body}</g>"
