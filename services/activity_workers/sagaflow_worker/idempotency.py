"""The activity workers' idempotency store: one Postgres row per logical step.

Tasks are delivered at least once; this table makes their effects happen once. The row is
keyed by the logical step, `'{workflow_id}/{activity_seq}'`, never by the attempt, and moves
through three states:

    (none) ──claim──► running ──complete──► completed            (finished: republish it)
                         │   └──fail, non-retryable──► failed     (finished: republish it)
                         └──fail, retryable──► failed, retryable  (released to a later attempt)

A worker claims the row before running the activity, in one statement (`CLAIM_SQL`):

- no row → it is inserted: `Acquired(token=1)`;
- `completed`, or `failed` and not retryable → `AlreadyCompleted(outcome)`: the worker
  republishes the stored outcome and does not run the activity. A non-retryable failure is as
  final as a result: the orchestrator will not retry it, so running again could only produce
  an effect nobody asked for;
- `failed` and retryable → released for the *next* attempt only: a task with a higher attempt
  number takes it over (`Acquired` with a higher token); a redelivery of the attempt that
  failed (or an older one) gets `AlreadyCompleted` with that failure, so it republishes the
  same `FailActivity` instead of running a retry the orchestrator never scheduled;
- `running` with a live lease → `LeasedElsewhere(owner, expires_at)`: leave it, the holder
  will publish (it heartbeats with `extend_lease` while it runs);
- `running` with an expired lease → taken over: `Acquired` with `token = old token + 1`. The
  stalled holder's `complete`, `fail` and `extend_lease` carry the old token and change nothing.

Leases are measured in database time (`now()`), so workers' clocks never matter. The outcome is
stored as the exact bytes first published, so a republish is byte-identical.

When republishing, publish with the attempt of the task in hand: the stored outcome belongs to
the step, not to the attempt that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from sagaflow.core.errors import ActivityFailure

TABLE = "sagaflow_activity_idempotency"


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Succeeded:
    """The activity returned; `result` is the payload of `CompleteActivity`."""

    result: bytes


Failed = ActivityFailure
"""The activity raised; the fields of `FailActivity` (see `activity_failure`)."""


Outcome: TypeAlias = Succeeded | Failed


# --------------------------------------------------------------------------- claim results


@dataclass(frozen=True)
class Acquired:
    """This worker holds the step: run it, then `complete` or `fail` with `token`."""

    token: int


@dataclass(frozen=True)
class AlreadyCompleted:
    """The step is finished (or this attempt already failed): republish `outcome`, do not run."""

    outcome: Outcome
    attempt: int
    """The attempt that produced the outcome."""


@dataclass(frozen=True)
class LeasedElsewhere:
    """Another worker holds a live lease: leave the task to it."""

    owner: str
    expires_at: datetime
    token: int


Claim: TypeAlias = Acquired | AlreadyCompleted | LeasedElsewhere


class IdempotencyError(RuntimeError):
    """The idempotency table is in a state the protocol never produces; the message says how."""


# --------------------------------------------------------------------------- SQL

_LEASE = "now() + %(lease_ms)s * interval '1 millisecond'"

CLAIM_SQL = f"""
WITH wanted AS (
    SELECT * FROM unnest(%(keys)s::text[], %(workflow_ids)s::text[], %(seqs)s::int[],
                         %(names)s::text[], %(attempts)s::int[])
        AS w(key, workflow_id, activity_seq, activity_name, attempt)
),
claimed AS (
    INSERT INTO {TABLE} AS t
        (idempotency_key, workflow_id, activity_seq, activity_name, state, fencing_token,
         lease_expires_at, owner, attempt)
    SELECT w.key, w.workflow_id, w.activity_seq, w.activity_name, 'running', 1,
           {_LEASE}, %(owner)s, w.attempt
    FROM wanted AS w ORDER BY w.key
    ON CONFLICT (idempotency_key) DO UPDATE SET
        state = 'running',
        fencing_token = t.fencing_token + 1,
        lease_expires_at = EXCLUDED.lease_expires_at,
        owner = EXCLUDED.owner,
        attempt = EXCLUDED.attempt,
        activity_name = EXCLUDED.activity_name,
        result = NULL, error_type = NULL, error_message = NULL, error_details = NULL,
        retryable = NULL, finished_at = NULL,
        updated_at = now()
    WHERE (t.state = 'running' AND t.lease_expires_at <= now())
       OR (t.state = 'failed' AND t.retryable AND t.attempt < EXCLUDED.attempt)
    RETURNING t.idempotency_key AS key, true AS acquired, t.state, t.fencing_token,
              t.lease_expires_at, t.owner, t.attempt, t.result, t.error_type,
              t.error_message, t.error_details, t.retryable, false AS claimable
)
SELECT * FROM claimed
UNION ALL
SELECT e.idempotency_key, false, e.state, e.fencing_token, e.lease_expires_at, e.owner,
       e.attempt, e.result, e.error_type, e.error_message, e.error_details, e.retryable,
       (e.state = 'running' AND e.lease_expires_at <= now())
       OR (e.state = 'failed' AND e.retryable AND e.attempt < w.attempt)
FROM {TABLE} AS e JOIN wanted AS w ON e.idempotency_key = w.key
WHERE NOT EXISTS (SELECT FROM claimed AS c WHERE c.key = w.key)
"""
"""The claim of a whole batch of steps, one statement: each is inserted, or taken over when
its lease expired or a retryable failure is released to a later attempt; otherwise its row is
read as it is. Rows are inserted in key order, so two workers claiming overlapping batches lock
them in the same order and cannot deadlock each other.

Why a row's read can miss, and the retry in `claim_many`: every part of a statement reads one
snapshot, taken when it starts. When another worker inserts or changes a row after that, the
INSERT still sees it (ON CONFLICT waits for and checks the newest version) but the SELECT does
not, so it returns nothing for that key, or an older version that looks claimable. Those keys
are claimed again in a fresh statement; this happens only when two claims of one key race.
"""

_FINISH_SQL = f"""
UPDATE {TABLE} AS t
SET state = o.state, result = o.result, error_type = o.error_type,
    error_message = o.error_message, error_details = o.error_details,
    retryable = o.retryable, lease_expires_at = NULL, finished_at = now(), updated_at = now()
FROM unnest(%(keys)s::text[], %(tokens)s::bigint[], %(states)s::text[], %(results)s::bytea[],
            %(error_types)s::text[], %(messages)s::text[], %(details)s::bytea[],
            %(retryables)s::boolean[])
    AS o(key, token, state, result, error_type, error_message, error_details, retryable)
WHERE t.idempotency_key = o.key AND t.fencing_token = o.token AND t.state = 'running'
RETURNING t.idempotency_key
"""
"""Record many outcomes in one statement; a row is written only while its token holds it."""

_EXTEND_SQL = f"""
UPDATE {TABLE} AS t
SET lease_expires_at = {_LEASE}, updated_at = now()
FROM unnest(%(keys)s::text[], %(tokens)s::bigint[]) AS h(key, token)
WHERE t.idempotency_key = h.key AND t.fencing_token = h.token AND t.state = 'running'
RETURNING t.idempotency_key
"""

_CLAIM_TRIES = 5
_DEADLOCK_TRIES = 5


@dataclass(frozen=True)
class StepClaim:
    """One step a worker wants to hold: what `claim_many` takes per task."""

    key: str
    workflow_id: str
    activity_seq: int
    activity_name: str
    attempt: int


@dataclass(frozen=True)
class Finish:
    """One outcome to record under the token that claimed the step."""

    key: str
    token: int
    outcome: Outcome


# --------------------------------------------------------------------------- the store


class IdempotencyStore:
    """Claims and finishes steps in `sagaflow_activity_idempotency` (see the module doc).

    Every method is one statement (atomic on its own, so autocommit connections serve it in one
    round trip) on a connection from `pool`; the batch methods take any number of steps in that
    one statement. The table is created by `sagaflow.db.migrate`.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def claim_many(
        self, steps: Sequence[StepClaim], *, owner: str, lease_ms: int
    ) -> dict[str, Claim]:
        """Try to take every step for `lease_ms` milliseconds of database time; one answer per
        distinct key. A key asked for twice is claimed once (with the highest attempt)."""
        if lease_ms <= 0:
            raise ValueError(f"lease_ms={lease_ms} must be positive")
        wanted: dict[str, StepClaim] = {}
        for step in steps:
            seen = wanted.get(step.key)
            if seen is None or step.attempt > seen.attempt:
                wanted[step.key] = step
        answers: dict[str, Claim] = {}
        for _ in range(_CLAIM_TRIES):
            if not wanted:
                return answers
            rows = await self._fetch(CLAIM_SQL, _claim_params(wanted.values(), owner, lease_ms))
            for row in rows:
                if not row["claimable"]:
                    answers[row["key"]] = _claim_from_row(row["key"], row)
                    wanted.pop(row["key"], None)
            # What is left raced a concurrent claim after this statement's snapshot: claim it
            # again, now seeing that change (see CLAIM_SQL).
        raise IdempotencyError(
            f"claim of {sorted(wanted)[:5]} raced with concurrent claims {_CLAIM_TRIES} times in "
            "a row; is something deleting or rewriting idempotency rows? Redeliver the task to "
            "retry"
        )

    async def claim(
        self,
        key: str,
        *,
        workflow_id: str,
        activity_seq: int,
        activity_name: str,
        attempt: int,
        owner: str,
        lease_ms: int,
    ) -> Claim:
        """Try to take the step `key` for `lease_ms` milliseconds of database time."""
        step = StepClaim(key, workflow_id, activity_seq, activity_name, attempt)
        return (await self.claim_many([step], owner=owner, lease_ms=lease_ms))[key]

    async def finish_many(self, finishes: Sequence[Finish]) -> set[str]:
        """Store every outcome whose token still holds its step; returns the keys written.

        A retryable failure releases the step to the next attempt; a non-retryable one is final.
        A key missing from the answer was taken over by a newer attempt: publish nothing for it.
        """
        if not finishes:
            return set()
        cols: dict[str, list[Any]] = {
            "keys": [],
            "tokens": [],
            "states": [],
            "results": [],
            "error_types": [],
            "messages": [],
            "details": [],
            "retryables": [],
        }
        for f in sorted(finishes, key=lambda f: f.key):
            ok = isinstance(f.outcome, Succeeded)
            cols["keys"].append(f.key)
            cols["tokens"].append(f.token)
            cols["states"].append("completed" if ok else "failed")
            if isinstance(f.outcome, Succeeded):
                cols["results"].append(f.outcome.result)
                for name in ("error_types", "messages", "details", "retryables"):
                    cols[name].append(None)
            else:
                cols["results"].append(None)
                cols["error_types"].append(f.outcome.error_type)
                cols["messages"].append(f.outcome.message)
                cols["details"].append(f.outcome.details)
                cols["retryables"].append(f.outcome.retryable)
        rows = await self._fetch(_FINISH_SQL, cols)
        return {row["idempotency_key"] for row in rows}

    async def complete(self, key: str, token: int, outcome: Succeeded) -> bool:
        """Store the result; False (and nothing written) when `token` no longer holds the step."""
        return key in await self.finish_many([Finish(key, token, outcome)])

    async def fail(self, key: str, token: int, outcome: Failed) -> bool:
        """Store the failure; False (and nothing written) when `token` no longer holds the step.

        A retryable failure releases the step to the next attempt; a non-retryable one is final.
        """
        return key in await self.finish_many([Finish(key, token, outcome)])

    async def extend_leases(self, held: Mapping[str, int], lease_ms: int) -> set[str]:
        """Heartbeat many steps: each lease held by its token now ends `lease_ms` after database
        now. Returns the keys still held; a missing key was taken over (or finished): its
        holder should stop, its writes will be ignored.

        An expired lease nobody took over is extended: the token, not the clock, is the
        authority on who holds the step."""
        if lease_ms <= 0:
            raise ValueError(f"lease_ms={lease_ms} must be positive")
        if not held:
            return set()
        keys = sorted(held)
        rows = await self._fetch(
            _EXTEND_SQL, {"keys": keys, "tokens": [held[k] for k in keys], "lease_ms": lease_ms}
        )
        return {row["idempotency_key"] for row in rows}

    async def extend_lease(self, key: str, token: int, lease_ms: int) -> bool:
        """Heartbeat one step (see `extend_leases`)."""
        return key in await self.extend_leases({key: token}, lease_ms)

    async def _fetch(self, query: str, params: Mapping[str, object]) -> list[DictRow]:
        for tries_left in range(_DEADLOCK_TRIES - 1, -1, -1):
            try:
                async with (
                    self._pool.connection() as conn,
                    conn.cursor(row_factory=dict_row) as cur,
                ):
                    await cur.execute(query, params)
                    rows: list[DictRow] = await cur.fetchall()
                    return rows
            except psycopg.errors.DeadlockDetected:
                # Two batches touching the same rows in different orders (a take-over racing a
                # finish); Postgres rolled this statement back whole, so running it again is
                # safe.
                if not tries_left:
                    raise
        raise AssertionError("unreachable")


def _claim_params(steps: Iterable[StepClaim], owner: str, lease_ms: int) -> dict[str, object]:
    ordered = sorted(steps, key=lambda s: s.key)
    return {
        "keys": [s.key for s in ordered],
        "workflow_ids": [s.workflow_id for s in ordered],
        "seqs": [s.activity_seq for s in ordered],
        "names": [s.activity_name for s in ordered],
        "attempts": [s.attempt for s in ordered],
        "owner": owner,
        "lease_ms": lease_ms,
    }


def _claim_from_row(key: str, row: DictRow) -> Claim:
    if row["acquired"]:
        return Acquired(token=int(row["fencing_token"]))
    state = row["state"]
    if state == "running":
        return LeasedElsewhere(
            owner=row["owner"],
            expires_at=row["lease_expires_at"],
            token=int(row["fencing_token"]),
        )
    outcome: Outcome
    if state == "completed":
        outcome = Succeeded(result=bytes(row["result"]))
    elif state == "failed":
        outcome = Failed(
            error_type=row["error_type"],
            message=row["error_message"] or "",
            retryable=bool(row["retryable"]),
            details=bytes(row["error_details"]) if row["error_details"] is not None else b"null",
        )
    else:
        raise IdempotencyError(
            f"idempotency row {key!r} has unknown state {state!r}; the table's CHECK constraint "
            "should forbid it: compare the schema with sagaflow/db/migrations"
        )
    return AlreadyCompleted(outcome=outcome, attempt=int(row["attempt"]))
