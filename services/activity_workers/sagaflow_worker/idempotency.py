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

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

TABLE = "sagaflow_activity_idempotency"


def idempotency_key(workflow_id: str, activity_seq: int) -> str:
    """The key of a logical step; also what the activity passes to the outside world."""
    return f"{workflow_id}/{activity_seq}"


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Succeeded:
    """The activity returned; `result` is the payload of `CompleteActivity`."""

    result: bytes


@dataclass(frozen=True)
class Failed:
    """The activity raised; the fields of `FailActivity`."""

    error_type: str
    message: str
    retryable: bool
    details: bytes = b"null"


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
WITH claimed AS (
    INSERT INTO {TABLE} AS t
        (idempotency_key, workflow_id, activity_seq, activity_name, state, fencing_token,
         lease_expires_at, owner, attempt)
    VALUES (%(key)s, %(workflow_id)s, %(activity_seq)s, %(activity_name)s, 'running', 1,
            {_LEASE}, %(owner)s, %(attempt)s)
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
    RETURNING true AS acquired, t.state, t.fencing_token, t.lease_expires_at, t.owner,
              t.attempt, t.result, t.error_type, t.error_message, t.error_details, t.retryable,
              false AS claimable
)
SELECT * FROM claimed
UNION ALL
SELECT false, e.state, e.fencing_token, e.lease_expires_at, e.owner, e.attempt, e.result,
       e.error_type, e.error_message, e.error_details, e.retryable,
       (e.state = 'running' AND e.lease_expires_at <= now())
       OR (e.state = 'failed' AND e.retryable AND e.attempt < %(attempt)s)
FROM {TABLE} AS e
WHERE e.idempotency_key = %(key)s AND NOT EXISTS (SELECT FROM claimed)
"""
"""The claim, one statement: insert, or take over when the lease expired or a retryable failure
is released to a later attempt; otherwise read the row as it is.

Why the read can miss, and the retry in `claim`: every part of a statement reads one snapshot,
taken when it starts. When another worker inserts or changes the row after that, the INSERT
still sees it (ON CONFLICT waits for and checks the newest version) but the SELECT does not, so
it returns nothing, or an older version that looks claimable. The statement then runs again
with a fresh snapshot; this happens only when two claims of one key race.
"""

_COMPLETE_SQL = f"""
UPDATE {TABLE}
SET state = 'completed', result = %(result)s, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE idempotency_key = %(key)s AND fencing_token = %(token)s AND state = 'running'
"""

_FAIL_SQL = f"""
UPDATE {TABLE}
SET state = 'failed', error_type = %(error_type)s, error_message = %(message)s,
    error_details = %(details)s, retryable = %(retryable)s, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE idempotency_key = %(key)s AND fencing_token = %(token)s AND state = 'running'
"""

_EXTEND_SQL = f"""
UPDATE {TABLE}
SET lease_expires_at = {_LEASE}, updated_at = now()
WHERE idempotency_key = %(key)s AND fencing_token = %(token)s AND state = 'running'
"""

_CLAIM_TRIES = 5


# --------------------------------------------------------------------------- the store


class IdempotencyStore:
    """Claims and finishes steps in `sagaflow_activity_idempotency` (see the module doc).

    Every method is one statement in its own transaction on a connection from `pool`; the
    table is created by `sagaflow.db.migrate`.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

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
        if lease_ms <= 0:
            raise ValueError(f"lease_ms={lease_ms} must be positive")
        params = {
            "key": key,
            "workflow_id": workflow_id,
            "activity_seq": activity_seq,
            "activity_name": activity_name,
            "attempt": attempt,
            "owner": owner,
            "lease_ms": lease_ms,
        }
        for _ in range(_CLAIM_TRIES):
            async with self._pool.connection() as conn:
                row = await _fetch_claim(conn, params)
            if row is not None and not row["claimable"]:
                return _claim_from_row(key, row)
            # A concurrent claim changed the row after this statement's snapshot: run it
            # again, now seeing that change (see CLAIM_SQL).
        raise IdempotencyError(
            f"claim of {key!r} raced with concurrent claims {_CLAIM_TRIES} times in a row; "
            "is something deleting or rewriting idempotency rows? Redeliver the task to retry"
        )

    async def complete(self, key: str, token: int, outcome: Succeeded) -> bool:
        """Store the result; False (and nothing written) when `token` no longer holds the step."""
        return await self._update(
            _COMPLETE_SQL, {"key": key, "token": token, "result": outcome.result}
        )

    async def fail(self, key: str, token: int, outcome: Failed) -> bool:
        """Store the failure; False (and nothing written) when `token` no longer holds the step.

        A retryable failure releases the step to the next attempt; a non-retryable one is final.
        """
        return await self._update(
            _FAIL_SQL,
            {
                "key": key,
                "token": token,
                "error_type": outcome.error_type,
                "message": outcome.message,
                "details": outcome.details,
                "retryable": outcome.retryable,
            },
        )

    async def extend_lease(self, key: str, token: int, lease_ms: int) -> bool:
        """Heartbeat: the lease now ends `lease_ms` after database now. False when `token` was
        taken over (or the step finished): the caller should stop, its writes will be ignored.

        An expired lease nobody took over is extended: the token, not the clock, is the
        authority on who holds the step."""
        if lease_ms <= 0:
            raise ValueError(f"lease_ms={lease_ms} must be positive")
        return await self._update(_EXTEND_SQL, {"key": key, "token": token, "lease_ms": lease_ms})

    async def _update(self, query: str, params: dict[str, object]) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(query, params)
            return bool(cur.rowcount == 1)


async def _fetch_claim(conn: AsyncConnection[Any], params: dict[str, object]) -> DictRow | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CLAIM_SQL, params)
        return await cur.fetchone()


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
