"""The activity worker: a pipeline of batch stages that runs each logical step once.

    consume ─► decode ─► claim ─► run ─► record ─► publish ─► commit
    (thread)   (batch)   (1 SQL)  (concurrent) (1 SQL)  (async acks) (async, behind acks)

- **consume** (one dedicated thread per task queue): poll, then drain what is already buffered,
  bounded by the room left under SAGAFLOW_WORKER_PREFETCH; hand the batch to the asyncio loop.
- **decode**: an undecodable record goes to the dlq (its offset then advances like any other).
- **claim**: the whole batch's idempotency rows in one statement (lease from database time,
  fencing token). Completed already → republish the stored outcome without running. Leased by a
  live worker → leave it (short lease: wait it out and claim again). Acquired → run.
- **run**: activities concurrently, at most SAGAFLOW_WORKER_CONCURRENCY at once; synchronous
  ones in the worker's own thread pool, so they never starve the consumer threads. One
  heartbeat extends every held lease in one statement. An activity's own heartbeats (throttled)
  and its workflow's cancellations travel through sagaflow_worker.control.
- **record**: every outcome ready at that moment in one statement, each under its token; a
  step whose token was taken over publishes nothing.
- **publish**: produce CompleteActivity/FailActivity (and dead letters); librdkafka batches the
  requests; a failed delivery is produced again after a backoff, so the offset always advances.
- **commit**: offsets are committed asynchronously, never past a task whose result Kafka has
  not acknowledged.

The record and publish stages drain what has accumulated while their previous round trip was in
flight, so batches grow with load and an idle worker answers at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from psycopg_pool import PoolTimeout

from sagaflow import codec, faults
from sagaflow.config import Config
from sagaflow.core.errors import ApplicationError, activity_failure
from sagaflow.core.messages import ActivityTask, CompleteActivity, FailActivity, HeartbeatActivity
from sagaflow.core.registry import ActivityContext, Registry
from sagaflow.kafka import triage
from sagaflow.kafka.clients import command_producer, group_consumer
from sagaflow.kafka.dlq import dead_letter
from sagaflow.kafka.produce import describe_error, produce
from sagaflow.kafka.records import headers_of, position
from sagaflow.service import in_thread
from sagaflow_worker.control import AttemptControl, CancelWatch, run_attempt
from sagaflow_worker.hooks import ConsumedTask, TaskTrace, WorkerHooks
from sagaflow_worker.idempotency import (
    Acquired,
    AlreadyCompleted,
    Claim,
    Failed,
    Finish,
    IdempotencyStore,
    LeasedElsewhere,
    Outcome,
    StepClaim,
    Succeeded,
)
from sagaflow_worker.offsets import OffsetTracker

log = logging.getLogger(__name__)
T = TypeVar("T")

_DB_ERRORS = (psycopg.OperationalError, PoolTimeout)
"""Postgres went away (restart, network): retried with backoff, never fatal."""


@dataclass
class WorkerStatus:
    queues: tuple[str, ...] = ()
    assigned: int = 0
    ready: bool = False
    database_ok: bool = True
    completed: int = 0
    failed: int = 0
    republished: int = 0
    skipped_leased: int = 0
    dead_lettered: int = 0
    publish_retries: int = 0


@dataclass
class _Queue:
    """One task queue's consumer side: the offsets it may commit and its room for more."""

    name: str
    topic: str
    group: str
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    lock: threading.Lock = field(default_factory=threading.Lock)
    room: threading.Condition = field(init=False)
    in_flight: int = 0

    def __post_init__(self) -> None:
        self.room = threading.Condition(self.lock)

    def finished(self, partition: int, offset: int) -> None:
        with self.lock:
            if self.tracker.finished(partition, offset):
                self.in_flight -= 1
                self.room.notify()


@dataclass
class _Job:
    """One task travelling through the stages."""

    queue: _Queue
    partition: int
    offset: int
    trace: TaskTrace | None = None
    msg: Message | None = None  # kept only until decoded (dead letters need the raw record)
    token: int = 0
    outcome: Outcome | None = None
    followers: list[_Job] = field(default_factory=list)
    """Deliveries of the same step in the same batch; they get this job's answer."""

    @property
    def task(self) -> ActivityTask:
        assert self.trace is not None
        return self.trace.consumed.task


@dataclass
class _Publish:
    """A record for the publish stage and what to do once Kafka acknowledged it."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]
    job: _Job


class Worker:
    def __init__(
        self,
        config: Config,
        registry: Registry,
        store: IdempotencyStore,
        resources: Mapping[str, Any],
        *,
        owner: str,
        hooks: WorkerHooks | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.store = store
        self.resources = resources
        self.owner = owner
        self.hooks = hooks or WorkerHooks()
        queues = config.worker_queues or tuple(sorted(registry.task_queues()))
        self.status = WorkerStatus(queues=queues)
        self._producer = command_producer(config, **{"client.id": f"worker-{owner}"})
        self._executor = ThreadPoolExecutor(
            max_workers=config.worker_concurrency, thread_name_prefix="activity"
        )
        self._held: dict[str, int] = {}  # idempotency key -> token, while the activity runs
        self._fatal: triage.FatalKafkaError | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.cancels = CancelWatch(config)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: threading.Event) -> None:
        """Consume every queue until `stop` is set, then let in-flight tasks finish.

        Raises FatalKafkaError when the producer cannot go on (the process exits 3)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._slots = asyncio.Semaphore(self.config.worker_concurrency)
        self._to_record: asyncio.Queue[_Job] = asyncio.Queue()
        self._to_publish: asyncio.Queue[_Publish] = asyncio.Queue()
        stages = [
            asyncio.create_task(self._record_stage(), name="record"),
            asyncio.create_task(self._publish_stage(), name="publish"),
            asyncio.create_task(self._lease_keeper(), name="heartbeat"),
        ]
        pump = threading.Thread(target=self._pump, args=(stop,), daemon=True, name="producer")
        pump.start()
        self.cancels.start()
        done: list[asyncio.Future[None]] = []
        for name in self.status.queues:
            q = _Queue(name, self.config.topics.tasks(name), self.config.worker_group_prefix + name)
            done.append(in_thread(f"tasks-{name}", self._consume, q, stop))
        self.status.ready = True
        try:
            await asyncio.gather(*done)
        finally:
            self.status.ready = False
            stop.set()
            for stage in stages:
                stage.cancel()
            await asyncio.to_thread(self.cancels.stop)
            await asyncio.to_thread(self._producer.flush, 10)
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._fatal is not None:
            raise self._fatal

    def _pump(self, stop: threading.Event) -> None:
        """Serve the producer's delivery reports (they settle the publish stage)."""
        while not stop.is_set():
            self._producer.poll(0.1)

    # ------------------------------------------------------------------ consume (a thread)

    def _consume(self, q: _Queue, stop: threading.Event) -> None:
        prefetch = self.config.worker_prefetch

        def on_revoke(consumer: Consumer, parts: list[TopicPartition]) -> None:
            with q.lock:
                self._commit(consumer, q, sync=True)
                for tp in parts:
                    q.in_flight -= q.tracker.forget(tp.partition)
                q.room.notify()

        def on_commit(err: KafkaError | None, parts: list[TopicPartition]) -> None:
            # Runs inside poll(), on this thread.
            with q.lock:
                for tp in parts:
                    if err is None and tp.error is None:
                        q.tracker.commit_acked(tp.partition, tp.offset)
                    else:
                        log.info("offset commit of %s failed (%s); retrying", tp, err or tp.error)
                        q.tracker.commit_failed(tp.partition, tp.offset)

        consumer = group_consumer(self.config, q.group, on_commit=on_commit)
        consumer.subscribe([q.topic], on_revoke=on_revoke, on_lost=on_revoke)
        log.info("worker %s consuming %s", self.owner, q.topic)
        try:
            while not stop.is_set() and self._fatal is None:
                with q.lock:
                    self._commit(consumer, q, sync=False)
                    if q.in_flight >= prefetch:
                        q.room.wait(0.1)  # every slot busy: fetch more once tasks finish
                        continue
                    room = prefetch - q.in_flight
                msgs = _poll_then_drain(consumer, room)
                jobs: list[_Job] = []
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer error on %s: %s", q.topic, err)
                        continue
                    part, offset = position(msg)
                    jobs.append(_Job(q, part, offset, msg=msg))
                if not jobs:
                    continue
                with q.lock:
                    for job in jobs:
                        q.tracker.started(job.partition, job.offset)
                    q.in_flight += len(jobs)
                asyncio.run_coroutine_threadsafe(self._claim_stage(jobs), self._loop)
            # Let in-flight tasks finish so their offsets are committed before leaving.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with q.lock:
                    self._commit(consumer, q, sync=False)
                    if q.in_flight <= 0:
                        break
                consumer.poll(0.1)
            with q.lock:
                self._commit(consumer, q, sync=True)
        finally:
            consumer.close()

    def _commit(self, consumer: Consumer, q: _Queue, *, sync: bool) -> None:
        """Commit what every partition's acknowledged prefix allows (q.lock held)."""
        idle = q.tracker.idle_partitions()
        positions = {}
        if idle:
            for tp in consumer.position([TopicPartition(q.topic, p) for p in idle]):
                if tp.offset >= 0:
                    positions[tp.partition] = tp.offset
        ready = q.tracker.committable(positions)
        if not ready:
            return
        offsets = [TopicPartition(q.topic, p, o) for p, o in ready.items()]
        try:
            if sync:
                triage.call(
                    lambda: consumer.commit(offsets=offsets, asynchronous=False),
                    "commit offsets",
                    deadline_s=10,
                )
            else:
                triage.call(
                    lambda: consumer.commit(offsets=offsets, asynchronous=True),
                    "commit offsets",
                    deadline_s=10,
                )
        except triage.AbortRequired as exc:
            # A rebalance took the partition: its new owner re-reads from the last commit, and
            # the idempotency rows make that safe.
            log.warning("offset commit skipped: %s", exc)

    # ------------------------------------------------------------------ decode + claim

    async def _claim_stage(self, jobs: list[_Job]) -> None:
        live: list[_Job] = []
        for job in jobs:
            msg = job.msg
            assert msg is not None
            try:
                task = codec.decode_task(msg.value() or b"")
            except codec.DecodeError as exc:
                self._dead_letter(job, msg, f"undecodable activity task: {exc}")
                continue
            job.trace = self.hooks.begin(
                ConsumedTask(
                    task,
                    job.queue.topic,
                    job.partition,
                    job.offset,
                    msg.key(),
                    tuple(headers_of(msg)),
                    job.queue.group,
                )
            )
            job.msg = None
            live.append(job)
        if not live:
            return
        # The same step twice in one batch (a redelivery): the delivery with the highest
        # attempt leads, the others follow it and publish whatever answer it gets.
        leaders: dict[str, _Job] = {}
        for job in sorted(live, key=lambda j: j.task.attempt, reverse=True):
            leader = leaders.setdefault(job.task.idempotency_key, job)
            if leader is not job:
                leader.followers.append(job)
        claims = await self._with_database(
            "claim",
            lambda: self.store.claim_many(
                [_step(job.task) for job in leaders.values()],
                owner=self.owner,
                lease_ms=self.config.worker_lease_ms,
            ),
        )
        for key, job in leaders.items():
            self._dispatch(job, claims[key])

    def _dispatch(self, job: _Job, claim: Claim) -> None:
        assert job.trace is not None
        self.hooks.claimed(job.trace, type(claim).__name__)
        if isinstance(claim, Acquired):
            job.token = claim.token
            self._held[job.task.idempotency_key] = claim.token
            self._spawn(self._run_stage(job))
        elif isinstance(claim, AlreadyCompleted):
            self.status.republished += 1
            self._publish_outcome(job, claim.outcome)
        else:
            self._spawn(self._wait_out_lease(job, claim))

    async def _wait_out_lease(self, job: _Job, claim: LeasedElsewhere) -> None:
        """Another attempt holds the step. Leave it while its lease is live; if its worker died,
        the lease runs out and this attempt takes over (with a higher token)."""
        self.status.skipped_leased += 1
        wait_s = (claim.expires_at - datetime.now(UTC)).total_seconds()
        if wait_s > self.config.worker_lease_ms / 1000 * 2:
            # A long lease: the orchestrator's start-to-close timer retries the step.
            self._drop(job, f"leased by {claim.owner} until {claim.expires_at.isoformat()}")
            return
        await asyncio.sleep(max(wait_s, 0) + 0.05)  # until the other lease runs out
        again = await self._with_database(
            "claim",
            lambda: self.store.claim_many(
                [_step(job.task)], owner=self.owner, lease_ms=self.config.worker_lease_ms
            ),
        )
        self._dispatch(job, again[job.task.idempotency_key])

    # ------------------------------------------------------------------ run

    async def _run_stage(self, job: _Job) -> None:
        assert job.trace is not None
        async with self._slots:
            started = time.perf_counter()
            outcome = await self._execute(job.task)
        self.hooks.executed(job.trace, outcome, time.perf_counter() - started)
        job.outcome = outcome
        self._to_record.put_nowait(job)

    async def _execute(self, task: ActivityTask) -> Outcome:
        definition = self.registry.find_activity(task.activity_name)
        if definition is None:
            return Failed(
                "ActivityNotRegistered",
                f"activity {task.activity_name!r} is not registered in this worker's "
                f"app ({self.config.app}); deploy a worker that has it",
                True,
            )
        try:
            # The argument as the activity's parameter annotation (ApplicationError, not
            # retryable, when it cannot fit; ValueError when it is not JSON at all).
            arg = definition.read_input(task.input)
            details = codec.loads_payload(task.heartbeat_details)
        except (ValueError, ApplicationError) as exc:
            return activity_failure(exc)
        control = AttemptControl(task, self._loop, self._send_heartbeat)
        key = task.idempotency_key
        self.cancels.listen(key, control.cancel)
        ctx = ActivityContext(
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            activity_seq=task.activity_seq,
            attempt=task.attempt,
            activity_name=task.activity_name,
            idempotency_key=key,
            resources=self.resources,
            heartbeat_details=details,
            control=control,
        )
        timeout = task.start_to_close_ms / 1000 if task.start_to_close_ms > 0 else None
        try:
            return await run_attempt(definition, ctx, control, self._executor, timeout, arg)
        finally:
            control.close()
            self.cancels.forget(key)

    def _send_heartbeat(self, command: HeartbeatActivity) -> None:
        """Best effort: a heartbeat lost to a broker hiccup is made good by the next one."""
        try:
            produce(
                self._producer,
                self.config.topics.commands,
                codec.encode_command(command),
                command.workflow_id.encode(),
            )
        except triage.FatalKafkaError as exc:
            self._fatal = exc
        except triage.AbortRequired as exc:
            log.warning(
                "heartbeat of %s/%s not sent: %s", command.workflow_id, command.activity_seq, exc
            )

    async def _lease_keeper(self) -> None:
        """Extend every held lease in one statement, so a live attempt is never taken over."""
        period = self.config.worker_lease_ms / 3000
        while True:
            await asyncio.sleep(period)  # heartbeat period, not synchronisation
            held = dict(self._held)
            if not held:
                continue
            try:
                kept = await self.store.extend_leases(held, self.config.worker_lease_ms)
            except _DB_ERRORS as exc:
                log.warning("lease heartbeat failed (%s); retrying next period", exc)
                continue
            for key in held.keys() - kept:
                log.warning("step %s: lease taken over by a newer attempt", key)

    # ------------------------------------------------------------------ record

    async def _record_stage(self) -> None:
        while True:
            jobs = await _drain(self._to_record)
            finishes = []
            for job in jobs:
                assert job.outcome is not None
                finishes.append(Finish(job.task.idempotency_key, job.token, job.outcome))
            stored = await self._with_database("record", partial(self.store.finish_many, finishes))
            for job in jobs:
                key = job.task.idempotency_key
                if self._held.get(key) == job.token:
                    del self._held[key]
                assert job.outcome is not None
                if key in stored:
                    self._publish_outcome(job, job.outcome)
                else:
                    # A newer attempt took the step over (our lease expired); its outcome is
                    # the one that counts, so this stale attempt publishes nothing.
                    log.warning("step %s: lease lost to a newer attempt; result dropped", key)
                    self._drop(job, "lease lost to a newer attempt")

    async def _with_database(self, stage: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one store call, retrying with backoff while Postgres is away (never fatal)."""
        backoff = 0.1
        while True:
            try:
                result = await call()
            except _DB_ERRORS as exc:
                self.status.database_ok = False
                log.warning(
                    "%s: Postgres unavailable (%s); retrying in %.1fs — check that the "
                    "database at SAGAFLOW_DATABASE_URL is up",
                    stage,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)  # backoff while the database is away
                backoff = min(backoff * 2, 5.0)
                continue
            self.status.database_ok = True
            return result

    # ------------------------------------------------------------------ publish

    def _publish_outcome(self, job: _Job, outcome: Outcome) -> None:
        for follower in job.followers:
            self._publish_outcome(follower, outcome)
        task = job.task
        assert job.trace is not None
        command: CompleteActivity | FailActivity
        command_id = f"{task.idempotency_key}#{task.attempt}"
        if isinstance(outcome, Succeeded):
            command = CompleteActivity(
                task.workflow_id,
                task.run_id,
                task.activity_seq,
                task.attempt,
                outcome.result,
                command_id=command_id,
            )
            self.status.completed += 1
        else:
            command = FailActivity(
                task.workflow_id,
                task.run_id,
                task.activity_seq,
                task.attempt,
                outcome.error_type,
                outcome.message,
                outcome.retryable,
                outcome.details,
                command_id=command_id,
            )
            self.status.failed += 1
        self._to_publish.put_nowait(
            _Publish(
                self.config.topics.commands,
                codec.encode_command(command),
                task.workflow_id.encode(),
                self.hooks.result_headers(job.trace),
                job,
            )
        )

    def _dead_letter(self, job: _Job, msg: Message, reason: str) -> None:
        dl = dead_letter(msg, reason, "worker")
        self.hooks.dead_lettered("worker.decode")
        self.status.dead_lettered += 1
        self._to_publish.put_nowait(
            _Publish(self.config.topics.dlq, dl.value, dl.key, dl.headers, job)
        )

    async def _publish_stage(self) -> None:
        while True:
            for rec in await _drain(self._to_publish):
                await self._produce(rec)

    async def _produce(self, rec: _Publish) -> None:
        backoff = 0.5
        while self._fatal is None:
            try:
                produce(
                    self._producer,
                    rec.topic,
                    rec.value,
                    rec.key,
                    headers=rec.headers,
                    on_delivery=lambda err, _msg: self._delivered(rec, err),
                )
                return
            except triage.FatalKafkaError as exc:
                self._fatal = exc
                return
            except triage.AbortRequired as exc:
                log.error("%s; producing it again in %.1fs", exc, backoff)
                self.status.publish_retries += 1
                await asyncio.sleep(backoff)  # backoff before producing the record again
                backoff = min(backoff * 2, 10.0)

    def _delivered(self, rec: _Publish, err: KafkaError | None) -> None:
        """Delivery report (producer thread): acknowledged → the offset may advance; failed →
        produce it again after a backoff, so a partition never sticks behind it."""
        if err is None and faults.fails_once("worker_publish_lost"):
            err = KafkaError(KafkaError._MSG_TIMED_OUT, "simulated by fault point", fatal=False)
        if err is None:
            self._loop.call_soon_threadsafe(self._finish, rec.job, None)
            return
        if err.fatal():
            self._fatal = triage.FatalKafkaError(
                f"delivery to {rec.topic} failed fatally ({describe_error(err)}); the worker "
                "must restart with a fresh producer"
            )
            return
        log.warning("delivery to %s failed (%s); producing it again", rec.topic, err)
        self.status.publish_retries += 1
        self._loop.call_soon_threadsafe(
            self._loop.call_later, 0.5, self._to_publish.put_nowait, rec
        )

    # ------------------------------------------------------------------ leaving the pipeline

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run one task's stage; kept referenced until it ends (asyncio holds tasks weakly)."""
        task = asyncio.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _drop(self, job: _Job, why: str) -> None:
        """The task needs nothing published (the step is someone else's or already answered):
        its offset may advance."""
        for follower in job.followers:
            self._finish(follower, why)
        self._finish(job, why)

    def _finish(self, job: _Job, error: str | None) -> None:
        if job.trace is not None:
            self.hooks.end(job.trace, error)
        job.queue.finished(job.partition, job.offset)


def _step(task: ActivityTask) -> StepClaim:
    return StepClaim(
        task.idempotency_key, task.workflow_id, task.activity_seq, task.activity_name, task.attempt
    )


def _poll_then_drain(consumer: Consumer, room: int) -> list[Message]:
    """Wait (briefly, without spinning) for one record, then take what is already buffered."""
    first = consumer.poll(0.1)
    if first is None:
        return []
    if room <= 1:
        return [first]
    return [first, *consumer.consume(room - 1, timeout=0)]


async def _drain(queue: asyncio.Queue[T]) -> list[T]:
    """Wait for one item, then take everything that has accumulated behind it."""
    items = [await queue.get()]
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
