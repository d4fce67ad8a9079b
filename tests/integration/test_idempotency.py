"""The activity idempotency store on a real Postgres: claim, complete, fail, leases, fencing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from sagaflow.core.messages import idempotency_key
from sagaflow.db import migrate, open_pool
from sagaflow.db.testing import run_in_scratch_schema
from sagaflow_worker.idempotency import (
    Acquired,
    AlreadyCompleted,
    Claim,
    Failed,
    Finish,
    IdempotencyStore,
    LeasedElsewhere,
    StepClaim,
    Succeeded,
)
from tests.support import assert_eventually_async

pytestmark = pytest.mark.integration

KEY = idempotency_key("wf-1", 3)
LEASE_MS = 60_000


async def _claim(
    store: IdempotencyStore,
    key: str = KEY,
    *,
    owner: str = "w1",
    attempt: int = 1,
    lease_ms: int = LEASE_MS,
) -> Claim:
    workflow_id, seq = key.rsplit("/", 1)
    return await store.claim(
        key,
        workflow_id=workflow_id,
        activity_seq=int(seq),
        activity_name="charge_payment",
        attempt=attempt,
        owner=owner,
        lease_ms=lease_ms,
    )


async def _expire_lease(pool: AsyncConnectionPool[Any], key: str = KEY) -> None:
    """Stands in for the lease running out (a stalled or dead worker) without waiting for it."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE sagaflow_activity_idempotency"
            " SET lease_expires_at = now() - interval '1 second' WHERE idempotency_key = %s",
            (key,),
        )


async def _row(pool: AsyncConnectionPool[Any], key: str = KEY) -> tuple[Any, ...]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT state, fencing_token, owner, attempt, result, lease_expires_at > now()"
            " FROM sagaflow_activity_idempotency WHERE idempotency_key = %s",
            (key,),
        )
        row = await cur.fetchone()
        assert row is not None
        return tuple(row)


def _with_store(database_url: str, body: Any, pool_size: int = 2) -> None:
    async def run(url: str) -> None:
        await migrate(url)
        async with open_pool(url, min_size=pool_size, max_size=pool_size) as pool:
            await body(IdempotencyStore(pool), pool)

    run_in_scratch_schema(database_url, run)


def test_new_key_is_acquired_and_a_live_lease_is_left_alone(database_url: str) -> None:
    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        assert await _claim(store, owner="w1") == Acquired(token=1)
        other = await _claim(store, owner="w2")
        assert isinstance(other, LeasedElsewhere)
        assert (other.owner, other.token) == ("w1", 1)
        # The same worker seeing its own task again (a redelivery) also leaves it.
        assert isinstance(await _claim(store, owner="w1"), LeasedElsewhere)
        assert await _row(pool) == ("running", 1, "w1", 1, None, True)

    _with_store(database_url, body)


def test_completed_step_is_republished_not_rerun(database_url: str) -> None:
    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        claim = await _claim(store)
        assert isinstance(claim, Acquired)
        result = b'{"charge_id": "ch_1",  "note": "bytes kept exactly"}'
        assert await store.complete(KEY, claim.token, Succeeded(result))
        for attempt in (1, 2):
            again = await _claim(store, owner="w2", attempt=attempt)
            assert again == AlreadyCompleted(outcome=Succeeded(result), attempt=1)
        # Finished: no second completion, no heartbeat, even an expired-looking lease is moot.
        assert not await store.complete(KEY, claim.token, Succeeded(b"{}"))
        assert not await store.extend_lease(KEY, claim.token, LEASE_MS)
        assert await _row(pool) == ("completed", 1, "w1", 1, result, None)

    _with_store(database_url, body)


def test_non_retryable_failure_is_final(database_url: str) -> None:
    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        claim = await _claim(store)
        assert isinstance(claim, Acquired)
        failure = Failed("PaymentDeclined", "card declined", retryable=False, details=b'{"a":1}')
        assert await store.fail(KEY, claim.token, failure)
        for attempt in (1, 2, 9):
            assert await _claim(store, attempt=attempt) == AlreadyCompleted(failure, attempt=1)

    _with_store(database_url, body)


def test_retryable_failure_releases_the_step_to_the_next_attempt_only(database_url: str) -> None:
    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        first = await _claim(store, attempt=1)
        assert isinstance(first, Acquired)
        failure = Failed("Timeout", "provider timed out", retryable=True)
        assert await store.fail(KEY, first.token, failure)
        # A redelivery of attempt 1 republishes its failure instead of running an unscheduled
        # retry.
        assert await _claim(store, attempt=1, owner="w2") == AlreadyCompleted(failure, attempt=1)
        second = await _claim(store, attempt=2, owner="w2")
        assert second == Acquired(token=2)
        assert not await store.complete(KEY, first.token, Succeeded(b'"stale"'))
        assert await store.complete(KEY, 2, Succeeded(b'"ok"'))
        assert await _claim(store, attempt=3) == AlreadyCompleted(Succeeded(b'"ok"'), attempt=2)

    _with_store(database_url, body)


def test_expired_lease_is_taken_over_and_the_stale_worker_is_fenced(database_url: str) -> None:
    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        stale = await _claim(store, owner="w1")
        assert stale == Acquired(token=1)
        await _expire_lease(pool)
        fresh = await _claim(store, owner="w2")
        assert fresh == Acquired(token=2)
        assert isinstance(await _claim(store, owner="w3"), LeasedElsewhere)
        # The stale worker wakes up: every write it tries changes nothing.
        assert not await store.extend_lease(KEY, stale.token, LEASE_MS)
        assert not await store.complete(KEY, stale.token, Succeeded(b'"stale"'))
        assert not await store.fail(KEY, stale.token, Failed("X", "stale", retryable=False))
        assert await _row(pool) == ("running", 2, "w2", 1, None, True)
        assert await store.complete(KEY, fresh.token, Succeeded(b'"fresh"'))
        assert await _row(pool) == ("completed", 2, "w2", 1, b'"fresh"', None)

    _with_store(database_url, body)


def test_lease_runs_out_in_database_time(database_url: str) -> None:
    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        assert await _claim(store, owner="w1", lease_ms=200) == Acquired(token=1)
        assert isinstance(await _claim(store, owner="w2"), LeasedElsewhere)

        async def taken_over() -> Acquired | None:
            claim = await _claim(store, owner="w2")
            assert isinstance(claim, Acquired | LeasedElsewhere)
            return claim if isinstance(claim, Acquired) else None

        claim = await assert_eventually_async(
            taken_over,
            timeout=10,
            interval=0.02,
            message="a 200 ms lease was still live after 10 s",
        )
        assert claim == Acquired(token=2)

    _with_store(database_url, body)


def test_heartbeat_extends_the_lease(database_url: str) -> None:
    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        claim = await _claim(store, lease_ms=1_000)
        assert isinstance(claim, Acquired)
        await _expire_lease(pool)
        # Expired but not taken over: the token still holds the step, so the heartbeat wins.
        assert await store.extend_lease(KEY, claim.token, LEASE_MS)
        assert isinstance(await _claim(store, owner="w2"), LeasedElsewhere)
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT lease_expires_at - now() > interval '50 seconds'"
                " FROM sagaflow_activity_idempotency WHERE idempotency_key = %s",
                (KEY,),
            )
            assert await cur.fetchone() == (True,)

    _with_store(database_url, body)


def test_concurrent_claims_of_one_key_acquire_exactly_once(database_url: str) -> None:
    contenders = 8

    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        for n in range(25):
            key = idempotency_key(f"wf-race-{n}", 1)
            claims = await asyncio.gather(
                *(_claim(store, key, owner=f"w{i}") for i in range(contenders))
            )
            assert sum(isinstance(c, Acquired) for c in claims) == 1, claims
            assert all(isinstance(c, Acquired | LeasedElsewhere) for c in claims), claims
            # And the take-over of an expired lease, raced the same way.
            await _expire_lease(pool, key)
            claims = await asyncio.gather(
                *(_claim(store, key, owner=f"v{i}") for i in range(contenders))
            )
            assert [c for c in claims if isinstance(c, Acquired)] == [Acquired(token=2)], claims

    _with_store(database_url, body, pool_size=contenders)


def _step(key: str, attempt: int = 1) -> StepClaim:
    workflow_id, seq = key.rsplit("/", 1)
    return StepClaim(key, workflow_id, int(seq), "charge_payment", attempt)


def test_one_batch_claim_answers_completed_leased_expired_and_new_steps(
    database_url: str,
) -> None:
    done, leased, expired, new = (idempotency_key(f"wf-batch-{n}", 1) for n in range(4))

    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        for key in (done, leased, expired):
            assert await _claim(store, key, owner="other") == Acquired(token=1)
        assert await store.complete(done, 1, Succeeded(b'"stored"'))
        await _expire_lease(pool, expired)
        claims = await store.claim_many(
            [_step(k) for k in (new, expired, leased, done)], owner="me", lease_ms=LEASE_MS
        )
        assert claims[done] == AlreadyCompleted(Succeeded(b'"stored"'), attempt=1)
        assert isinstance(claims[leased], LeasedElsewhere)
        assert (claims[leased].owner, claims[leased].token) == ("other", 1)
        assert claims[expired] == Acquired(token=2), "an expired lease is taken over"
        assert claims[new] == Acquired(token=1)
        stored = await store.finish_many(
            [
                Finish(new, 1, Succeeded(b'"n"')),
                Finish(expired, 2, Failed("Boom", "retry me", retryable=True)),
            ]
        )
        assert stored == {new, expired}
        assert await _row(pool, new) == ("completed", 1, "me", 1, b'"n"', None)
        # A write under a token that no longer holds the step changes nothing.
        assert await store.finish_many([Finish(expired, 1, Succeeded(b'"stale"'))]) == set()

    _with_store(database_url, body)


def test_two_workers_claiming_overlapping_batches_run_each_step_once(database_url: str) -> None:
    keys = [idempotency_key(f"wf-overlap-{n}", 1) for n in range(60)]

    async def body(store: IdempotencyStore, pool: AsyncConnectionPool[Any]) -> None:
        for round_ in range(5):
            ks = [f"r{round_}-{k}" for k in keys]
            # Each worker's batch covers two thirds of the steps, in a different order, so the
            # middle third is contended and lock order differs between the two statements.
            a = [_step(k) for k in ks[:40]]
            b = [_step(k) for k in reversed(ks[20:])]
            ca, cb = await asyncio.gather(
                store.claim_many(a, owner="wa", lease_ms=LEASE_MS),
                store.claim_many(b, owner="wb", lease_ms=LEASE_MS),
            )
            acquired = [k for k, c in (*ca.items(), *cb.items()) if isinstance(c, Acquired)]
            assert sorted(acquired) == sorted(ks), "every step acquired exactly once"
            for k in ks[20:40]:
                answers = (ca[k], cb[k])
                assert sum(isinstance(c, Acquired) for c in answers) == 1, answers
                assert sum(isinstance(c, LeasedElsewhere) for c in answers) == 1, answers

    _with_store(database_url, body, pool_size=2)
