"""Draw a state machine: Graphviz DOT, Mermaid, or SVG (DOT rendered by Graphviz `dot`).

Parallel branches and Map item processors are nested clusters (subgraphs); Catch edges are
dashed and labelled with the errors they catch; Choice edges carry a short form of their rule.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from sagaflow.workflow import SagaflowError

FORMATS = ("dot", "mermaid", "svg")
_START = "__start"
_END = "__end"


class GraphError(SagaflowError):
    """The graph could not be drawn (e.g. SVG without Graphviz installed)."""


@dataclass
class _Graph:
    nodes: list[tuple[str, str, str]] = field(default_factory=list)
    """(id, label, state type)"""
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(from, to, label, is a catch edge)"""
    clusters: list[tuple[str, str, _Graph]] = field(default_factory=list)
    """(id, label, inner graph)"""


def _rule_label(rule: dict[str, Any]) -> str:
    for name in ("And", "Or"):
        if name in rule:
            return f" {name.lower()} ".join(_rule_label(r) for r in rule[name])
    if "Not" in rule:
        return f"not ({_rule_label(rule['Not'])})"
    for key, value in rule.items():
        if key not in ("Variable", "Next", "Comment"):
            return f"{rule.get('Variable', '')} {key} {json.dumps(value)}"
    return "?"


def _build(machine: dict[str, Any], prefix: str) -> _Graph:
    graph = _Graph()
    ids = {name: f"{prefix}s{i}" for i, name in enumerate(machine["States"])}
    start, end = f"{prefix}{_START}", f"{prefix}{_END}"
    graph.nodes.append((start, "Start", "Start"))
    graph.edges.append((start, ids[machine["StartAt"]], "", False))
    needs_end = False
    for name, state in machine["States"].items():
        node = ids[name]
        kind = state["Type"]
        if kind in ("Parallel", "Map"):
            inner_graphs = (
                [(f"branch {i}", b) for i, b in enumerate(state["Branches"])]
                if kind == "Parallel"
                else [("items", state.get("ItemProcessor", state.get("Iterator")))]
            )
            for i, (label, inner) in enumerate(inner_graphs):
                graph.clusters.append(
                    (f"{node}c{i}", f"{name}: {label}", _build(inner, f"{node}c{i}_"))
                )
        graph.nodes.append((node, name, kind))
        if "Next" in state:
            graph.edges.append((node, ids[state["Next"]], "", False))
        if state.get("End") or kind in ("Succeed", "Fail"):
            needs_end = True
            graph.edges.append((node, end, "", False))
        for rule in state.get("Choices", []):
            graph.edges.append((node, ids[rule["Next"]], _rule_label(rule), False))
        if "Default" in state:
            graph.edges.append((node, ids[state["Default"]], "default", False))
        for catcher in state.get("Catch", []):
            graph.edges.append(
                (node, ids[catcher["Next"]], "catch " + ", ".join(catcher["ErrorEquals"]), True)
            )
    if needs_end:
        graph.nodes.append((end, "End", "End"))
    return graph


def structure(machine: dict[str, Any]) -> _Graph:
    """The nodes, edges and clusters every format is drawn from (the web UI lays them out)."""
    return _build(machine, "")


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DOT_SHAPES = {"Start": "circle", "End": "doublecircle", "Choice": "diamond",
               "Succeed": "box", "Fail": "box"}  # fmt: skip


def _dot_body(graph: _Graph, indent: str) -> list[str]:
    lines: list[str] = []
    for cid, label, inner in graph.clusters:
        lines.append(f"{indent}subgraph cluster_{cid} {{")
        lines.append(f"{indent}  label={_dot_quote(label)}; style=rounded;")
        lines += _dot_body(inner, indent + "  ")
        lines.append(f"{indent}}}")
    for node, label, kind in graph.nodes:
        shape = _DOT_SHAPES.get(kind, "box")
        style = ', style="rounded,filled", fillcolor="#fde2e2"' if kind == "Fail" else ""
        lines.append(f"{indent}{node} [label={_dot_quote(label)}, shape={shape}{style}];")
    for src, dst, label, catch in graph.edges:
        attrs = [f"label={_dot_quote(label)}"] if label else []
        if catch:
            attrs += ["style=dashed", "color=red", "fontcolor=red"]
        lines.append(f"{indent}{src} -> {dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    return lines


def to_dot(machine: dict[str, Any]) -> str:
    lines = ["digraph state_machine {", "  rankdir=TB;", "  node [fontname=Helvetica];"]
    lines += _dot_body(_build(machine, ""), "  ")
    return "\n".join([*lines, "}"]) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _mermaid_body(graph: _Graph, indent: str) -> list[str]:
    lines: list[str] = []
    for cid, label, inner in graph.clusters:
        lines.append(f'{indent}subgraph {cid}["{_mermaid_text(label)}"]')
        lines += _mermaid_body(inner, indent + "  ")
        lines.append(f"{indent}end")
    for node, label, kind in graph.nodes:
        text = _mermaid_text(label)
        if kind == "Choice":
            lines.append(f'{indent}{node}{{"{text}"}}')
        elif kind in ("Start", "End"):
            lines.append(f'{indent}{node}(("{text}"))')
        else:
            lines.append(f'{indent}{node}["{text}"]')
    for src, dst, label, catch in graph.edges:
        arrow = "-.->" if catch else "-->"
        shown = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"{indent}{src} {arrow}{shown} {dst}")
    return lines


def to_mermaid(machine: dict[str, Any]) -> str:
    return "\n".join(["flowchart TD", *_mermaid_body(_build(machine, ""), "  ")]) + "\n"


def to_svg(machine: dict[str, Any]) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise GraphError(
            "SVG needs Graphviz's `dot` (apt-get install graphviz, or `make install`); "
            "or use --format dot / --format mermaid"
        )
    done = subprocess.run(
        [dot, "-Tsvg"], input=to_dot(machine), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise GraphError(f"`dot -Tsvg` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def render(machine: dict[str, Any], fmt: str) -> str:
    if fmt == "dot":
        return to_dot(machine)
    if fmt == "mermaid":
        return to_mermaid(machine)
    if fmt == "svg":
        return to_svg(machine)
    raise GraphError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
