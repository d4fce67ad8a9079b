"""A workflow's trace as a waterfall, from Jaeger's query API (GET /api/traces/{id}, v1 JSON).

The local Jaeger serves no UI of its own, so the page draws the spans itself: one row per span,
indented under its parent, with a bar placed on the trace's time axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp


class TraceUnavailable(RuntimeError):
    """Jaeger did not answer with the trace; the message says why and what to check."""


@dataclass(frozen=True)
class SpanRow:
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start_us: int
    duration_us: int
    error: bool
    depth: int
    offset_pct: float
    width_pct: float
    attributes: list[tuple[str, str]] = field(default_factory=list)


def _is_error(tags: dict[str, Any]) -> bool:
    return tags.get("error") is True or tags.get("otel.status_code") == "ERROR"


def waterfall(body: dict[str, Any]) -> list[SpanRow]:
    """Rows in depth-first order (children after their parent, by start time)."""
    raw: list[dict[str, Any]] = []
    for trace in body.get("data") or []:
        services = {pid: p.get("serviceName", "?") for pid, p in trace.get("processes", {}).items()}
        for s in trace.get("spans", []):
            parents = [
                r["spanID"] for r in s.get("references", []) if r.get("refType") == "CHILD_OF"
            ]
            tags = {t["key"]: t.get("value") for t in s.get("tags", [])}
            raw.append(
                {
                    "id": s["spanID"],
                    "parent": parents[0] if parents else None,
                    "service": services.get(s.get("processID"), "?"),
                    "operation": s.get("operationName", ""),
                    "start": int(s.get("startTime", 0)),
                    "duration": int(s.get("duration", 0)),
                    "tags": tags,
                }
            )
    if not raw:
        return []
    ids = {s["id"] for s in raw}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in raw:
        # A parent that never reached Jaeger (not sampled, lost) makes its child a root.
        children.setdefault(s["parent"] if s["parent"] in ids else None, []).append(s)
    t0 = min(s["start"] for s in raw)
    total = max(max(s["start"] + s["duration"] for s in raw) - t0, 1)
    rows: list[SpanRow] = []

    def visit(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: (x["start"], x["operation"])):
            rows.append(
                SpanRow(
                    s["id"],
                    s["parent"],
                    s["service"],
                    s["operation"],
                    s["start"],
                    s["duration"],
                    _is_error(s["tags"]),
                    depth,
                    round(100 * (s["start"] - t0) / total, 3),
                    max(round(100 * s["duration"] / total, 3), 0.3),
                    sorted((k, str(v)) for k, v in s["tags"].items()),
                )
            )
            visit(s["id"], depth + 1)

    visit(None, 0)
    return rows


async def fetch_trace(
    session: aiohttp.ClientSession, query_url: str, trace_id: str, timeout_s: float = 5.0
) -> list[SpanRow]:
    """The trace's spans so far; [] while Jaeger has none of them."""
    url = f"{query_url}/api/traces/{trace_id}"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status == 404:
                return []
            if resp.status != 200:
                raise TraceUnavailable(
                    f"Jaeger at {query_url} answered {resp.status} for trace {trace_id}; "
                    "check SAGAFLOW_JAEGER_QUERY_URL"
                )
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TraceUnavailable(
            f"Jaeger's query API at {query_url} did not answer ({type(exc).__name__}); is Jaeger "
            "running? set SAGAFLOW_JAEGER_QUERY_URL to its query address"
        ) from exc
    return waterfall(body)
