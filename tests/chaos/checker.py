"""The ledger checker: what the log, the provider's ledger and the read model say after a chaos
run, against what each saga was designed to end as."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sagaflow.cli.eventlog import Logged, all_events
from sagaflow.config import Config
from sagaflow.core.messages import (
    CLOSING_EVENTS,
    CommandRejected,
    Event,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
)
from sagaflow.examples import shop_pg
from sagaflow.readmodel import queries
from tests.chaos.load import EXPECTED, Saga
from tests.support import assert_eventually


def _status(event: Event) -> str:
    body = event.body
    if isinstance(body, WorkflowCompleted):
        return "completed"
    if isinstance(body, WorkflowFailed):
        return "failed"
    if isinstance(body, WorkflowCancelled):
        return "cancelled"
    return "continued_as_new"


@dataclass
class LogView:
    """Each workflow's events in log order (rejections apart: they carry seq 0)."""

    events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    rejections: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0

    def closed(self, wid: str) -> Event | None:
        return next(
            (e for e in self.events.get(wid, []) if isinstance(e.body, CLOSING_EVENTS)), None
        )


def read_log(config: Config) -> LogView:
    view = LogView()
    for rec in all_events(config):
        if not isinstance(rec, Logged):
            view.undecodable += 1
            continue
        if isinstance(rec.event.body, CommandRejected):
            view.rejections[rec.event.workflow_id] += 1
            continue
        view.events[rec.event.workflow_id].append(rec.event)
    return view


def wait_terminal(config: Config, ids: Sequence[str], timeout_s: float) -> LogView:
    """Polls the log until every workflow has closed or the deadline passes."""

    def all_closed() -> LogView | None:
        view = read_log(config)
        return view if all(view.closed(w) is not None for w in ids) else None

    try:
        return assert_eventually(all_closed, timeout=timeout_s, interval=1.0)
    except AssertionError:
        return read_log(config)  # the checker reports what is still open


@dataclass
class Findings:
    sagas: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    wrong_status: list[str] = field(default_factory=list)
    duplicate_charges: int = 0
    duplicate_refunds: int = 0
    refund_without_charge: list[str] = field(default_factory=list)
    ledger_mismatch: list[str] = field(default_factory=list)
    seq_errors: list[str] = field(default_factory=list)
    rerun_finished: list[str] = field(default_factory=list)
    readmodel_mismatch: list[str] = field(default_factory=list)
    undecodable_events: int = 0
    rejections: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def clean(self) -> bool:
        return not (
            self.lost
            or self.stuck
            or self.wrong_status
            or self.duplicate_charges
            or self.duplicate_refunds
            or self.refund_without_charge
            or self.ledger_mismatch
            or self.seq_errors
            or self.rerun_finished
            or self.readmodel_mismatch
            or self.undecodable_events
        )


def _check_log(f: Findings, sagas: Sequence[Saga], view: LogView) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for saga in sagas:
        wid = saga.workflow_id
        events = view.events.get(wid, [])
        if not any(isinstance(e.body, WorkflowStarted) for e in events):
            if saga.acknowledged_at is not None:
                f.lost.append(wid)
            continue
        seqs = [e.seq for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            dups = sorted(s for s, n in Counter(seqs).items() if n > 1)
            f.seq_errors.append(f"{wid}: {len(seqs)} events, duplicate seqs {dups[:5]}")
        closing = [i for i, e in enumerate(events) if isinstance(e.body, CLOSING_EVENTS)]
        starts = sum(1 for e in events if isinstance(e.body, WorkflowStarted))
        if starts > 1 or (closing and closing[0] != len(events) - 1):
            f.rerun_finished.append(f"{wid}: {starts} starts, {len(events)} events")
        if not closing:
            f.stuck.append(wid)
            continue
        status = _status(events[closing[0]])
        statuses[wid] = status
        if status != EXPECTED[saga.kind][0]:
            f.wrong_status.append(f"{wid} ({saga.kind}): {status}")
    return statuses


def _check_ledger(f: Findings, sagas: Sequence[Saga], rows: list[dict[str, Any]]) -> None:
    by_order: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_order[row["order_id"]].append(row["kind"])
    for saga in sagas:
        kinds = by_order.get(saga.workflow_id, [])
        charges, refunds = kinds.count("charge"), kinds.count("refund")
        f.duplicate_charges += max(0, charges - 1)
        f.duplicate_refunds += max(0, refunds - 1)
        if refunds and not charges:
            f.refund_without_charge.append(saga.workflow_id)
        if sorted(kinds) != sorted(EXPECTED[saga.kind][1]):
            f.ledger_mismatch.append(f"{saga.workflow_id} ({saga.kind}): {kinds}")


async def _readmodel(database_url: str, ids: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for wid in ids:
        row = await queries.get_workflow(database_url, wid)
        out[wid] = None if row is None else str(row["status"])
    return out


async def _ledger(database_url: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for wid in ids:
        rows += await shop_pg.ledger(database_url, wid)
    return rows


def check(
    config: Config, sagas: Sequence[Saga], timeout_s: float, readmodel_timeout_s: float = 60.0
) -> Findings:
    ids = [s.workflow_id for s in sagas]
    view = wait_terminal(config, ids, timeout_s)
    f = Findings(sagas=len(sagas), undecodable_events=view.undecodable)
    f.rejections = sum(view.rejections[w] for w in ids)
    statuses = _check_log(f, sagas, view)
    f.statuses = dict(Counter(statuses.values()))
    _check_ledger(f, sagas, asyncio.run(_ledger(config.database_url, ids)))

    # The projector may still be catching up on the last events: poll until the read model
    # equals the log, then report whatever still differs.
    def differences() -> list[str]:
        model = asyncio.run(_readmodel(config.database_url, list(statuses)))
        return [
            f"{w}: log {s}, read model {model[w]}" for w, s in statuses.items() if model[w] != s
        ]

    try:
        assert_eventually(lambda: not differences(), timeout=readmodel_timeout_s, interval=0.5)
    except AssertionError:
        f.readmodel_mismatch = differences()
    return f
