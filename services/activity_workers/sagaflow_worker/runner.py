"""The activity worker: consume tasks, run each logical step once, report with a command.

Per task: claim the step's idempotency row (one statement, lease from database time, fencing
token). Completed already -> republish the stored outcome without running. Leased by a live
worker -> leave it (the orchestrator's start-to-close timer retries it if that worker died).
Acquired -> run the activity with its idempotency key, store the outcome under the token,
publish CompleteActivity or FailActivity, and only then let the task's offset be committed.

One consumer thread per task queue (one consumer group per queue); activities run on the
asyncio loop, sync ones in threads; at most `worker_concurrency` at once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core.errors import ApplicationError
from sagaflow.core.messages import ActivityTask, CompleteActivity, FailActivity
from sagaflow.core.registry import ActivityContext, Registry
from sagaflow.kafka import triage
from sagaflow.kafka.clients import command_producer, group_consumer
from sagaflow.kafka.dlq import dead_letter
from sagaflow.kafka.records import position, to_kafka
from sagaflow_worker.hooks import WorkerHooks
from sagaflow_worker.idempotency import (
    Acquired,
    AlreadyCompleted,
    Failed,
    IdempotencyStore,
    LeasedElsewhere,
    Succeeded,
)
from sagaflow_worker.offsets import OffsetTracker

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """A command could not be delivered to Kafka; the task stays uncommitted and comes back."""


@dataclass
class WorkerStatus:
    queues: tuple[str, ...] = ()
    assigned: int = 0
    ready: bool = False
    completed: int = 0
    failed: int = 0
    republished: int = 0
    skipped_leased: int = 0


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
        self._producer: Producer = command_producer(config, **{"client.id": f"worker-{owner}"})
        self._slots = threading.BoundedSemaphore(config.worker_concurrency)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        pump = threading.Thread(
            target=self._pump_producer, args=(stop,), daemon=True, name="producer-poll"
        )
        pump.start()
        threads = [
            asyncio.to_thread(self._consume_queue, q, loop, stop) for q in self.status.queues
        ]
        self.status.ready = True
        try:
            await asyncio.gather(*threads)
        finally:
            self.status.ready = False
            stop.set()
            await asyncio.to_thread(self._producer.flush, 10)

    def _pump_producer(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._producer.poll(0.1)

    # ------------------------------------------------------------------ consuming

    def _consume_queue(
        self, queue: str, loop: asyncio.AbstractEventLoop, stop: threading.Event
    ) -> None:
        topic = self.config.topics.tasks(queue)
        tracker = OffsetTracker()
        lock = threading.Lock()

        def on_revoke(consumer: Consumer, parts: list[TopicPartition]) -> None:
            with lock:
                self._commit(consumer, topic, tracker)
                for tp in parts:
                    tracker.forget(tp.partition)

        consumer = group_consumer(self.config, self.config.worker_group_prefix + queue)
        consumer.subscribe([topic], on_revoke=on_revoke, on_lost=on_revoke)
        log.info("worker %s consuming %s", self.owner, topic)
        try:
            while not stop.is_set():
                with lock:
                    self._commit(consumer, topic, tracker)
                if not self._slots.acquire(timeout=0.2):
                    continue  # every slot busy: stop fetching until one frees up
                msg = consumer.poll(0.2)
                if msg is None:
                    self._slots.release()
                    continue
                err = msg.error()
                if err is not None:
                    self._slots.release()
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error on %s: %s", topic, err)
                    continue
                part, offset = position(msg)
                with lock:
                    tracker.started(part, offset)
                fut = asyncio.run_coroutine_threadsafe(self._handle(msg), loop)
                fut.add_done_callback(self._on_done(tracker, lock, part, offset, msg))
            # Let in-flight tasks finish so their offsets are committed before leaving.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with lock:
                    self._commit(consumer, topic, tracker)
                    if tracker.in_flight() == 0:
                        break
                consumer.poll(0.1)
        finally:
            consumer.close()

    def _on_done(
        self, tracker: OffsetTracker, lock: threading.Lock, part: int, offset: int, msg: Message
    ) -> Any:
        def done(fut: Future[None]) -> None:
            self._slots.release()
            exc = fut.exception()
            if exc is not None:
                # Not committed: the task is redelivered after a restart or rebalance, and
                # the idempotency row makes the retry safe.
                log.error(
                    "task %s/%d@%d not finished: %s; it will be redelivered",
                    msg.topic(),
                    part,
                    offset,
                    exc,
                )
                return
            with lock:
                tracker.finished(part, offset)

        return done

    def _commit(self, consumer: Consumer, topic: str, tracker: OffsetTracker) -> None:
        ready = tracker.committable()
        if ready:
            offsets = [TopicPartition(topic, p, o) for p, o in ready.items()]
            try:
                triage.call(
                    lambda: consumer.commit(offsets=offsets, asynchronous=False),
                    "commit offsets",
                    deadline_s=10,
                )
            except triage.AbortRequired as exc:
                # A rebalance took the partition: its new owner re-reads from the last commit.
                log.warning("offset commit skipped: %s", exc)

    # ------------------------------------------------------------------ one task

    async def _handle(self, msg: Message) -> None:
        try:
            task = codec.decode_task(msg.value() or b"")
        except codec.DecodeError as exc:
            await self._dead_letter(msg, f"undecodable activity task: {exc}")
            return
        with self.hooks.task_span(task, msg) as span:
            await self._run_task(task, span)

    async def _run_task(self, task: ActivityTask, span: Any) -> None:
        claim = await self._claim(task)
        while isinstance(claim, LeasedElsewhere):
            # Another attempt holds the step. Leave it while its lease is live; if its worker
            # died, the lease runs out and this attempt takes over (with a higher token).
            self.status.skipped_leased += 1
            wait_s = (claim.expires_at - datetime.now(UTC)).total_seconds()
            if wait_s > self.config.worker_lease_ms / 1000 * 2:
                return  # a long lease: the orchestrator's start-to-close timer retries it
            await asyncio.sleep(max(wait_s, 0) + 0.05)  # until the other lease runs out
            claim = await self._claim(task)
        if isinstance(claim, AlreadyCompleted):
            self.status.republished += 1
            await self._publish(task, claim.outcome, span)
            return
        assert isinstance(claim, Acquired)
        started = time.perf_counter()
        keeper = asyncio.create_task(self._keep_lease(task, claim.token))
        try:
            outcome = await self._execute(task)
        finally:
            keeper.cancel()
        self.hooks.executed(task, outcome, time.perf_counter() - started, span)
        if isinstance(outcome, Succeeded):
            stored = await self.store.complete(task.idempotency_key, claim.token, outcome)
        else:
            stored = await self.store.fail(task.idempotency_key, claim.token, outcome)
        if not stored:
            # A newer attempt took the step over (our lease expired); its outcome is the one
            # that counts, so this stale attempt publishes nothing.
            log.warning(
                "step %s: lease lost to a newer attempt; result dropped", task.idempotency_key
            )
            return
        await self._publish(task, outcome, span)

    async def _claim(self, task: ActivityTask) -> Acquired | AlreadyCompleted | LeasedElsewhere:
        claim = await self.store.claim(
            task.idempotency_key,
            workflow_id=task.workflow_id,
            activity_seq=task.activity_seq,
            activity_name=task.activity_name,
            attempt=task.attempt,
            owner=self.owner,
            lease_ms=self.config.worker_lease_ms,
        )
        self.hooks.claimed(task, type(claim).__name__)
        return claim

    async def _keep_lease(self, task: ActivityTask, token: int) -> None:
        """Extend the lease while the activity runs, so a live attempt is never taken over."""
        period = self.config.worker_lease_ms / 3000
        while True:
            await asyncio.sleep(period)  # heartbeat period, not synchronisation
            if not await self.store.extend_lease(
                task.idempotency_key, token, self.config.worker_lease_ms
            ):
                log.warning("step %s: lease taken over by a newer attempt", task.idempotency_key)
                return

    async def _execute(self, task: ActivityTask) -> Succeeded | Failed:
        definition = self.registry.find_activity(task.activity_name)
        if definition is None:
            return Failed(
                "ActivityNotRegistered",
                f"activity {task.activity_name!r} is not registered in this worker's "
                f"app ({self.config.app}); deploy a worker that has it",
                True,
            )
        ctx = ActivityContext(
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            activity_seq=task.activity_seq,
            attempt=task.attempt,
            activity_name=task.activity_name,
            idempotency_key=task.idempotency_key,
            resources=self.resources,
        )
        timeout = task.start_to_close_ms / 1000 if task.start_to_close_ms > 0 else None
        try:
            arg = codec.loads_payload(task.input)
            if inspect.iscoroutinefunction(definition.fn):
                result = await asyncio.wait_for(definition.fn(ctx, arg), timeout)
            else:
                result = await asyncio.wait_for(asyncio.to_thread(definition.fn, ctx, arg), timeout)
            return Succeeded(codec.dumps_payload(result))
        except ApplicationError as exc:
            return Failed(
                exc.type, str(exc), not exc.non_retryable, codec.dumps_payload(exc.details)
            )
        except TimeoutError:
            return Failed(
                "StartToCloseTimeout", f"attempt ran longer than {task.start_to_close_ms} ms", True
            )
        except Exception as exc:  # noqa: BLE001 - user code: any error is the attempt's failure
            return Failed(type(exc).__name__, str(exc) or repr(exc), True)

    async def _publish(self, task: ActivityTask, outcome: Succeeded | Failed, span: Any) -> None:
        command: CompleteActivity | FailActivity
        if isinstance(outcome, Succeeded):
            command = CompleteActivity(
                task.workflow_id,
                task.run_id,
                task.activity_seq,
                task.attempt,
                outcome.result,
                command_id=f"{task.idempotency_key}#{task.attempt}",
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
                command_id=f"{task.idempotency_key}#{task.attempt}",
            )
            self.status.failed += 1
        await self._produce(
            self.config.topics.commands,
            codec.encode_command(command),
            task.workflow_id.encode(),
            self.hooks.command_headers(span),
        )

    async def _dead_letter(self, msg: Message, reason: str) -> None:
        dl = dead_letter(msg, reason, "worker")
        self.hooks.dead_lettered("worker.decode")
        await self._produce(self.config.topics.dlq, dl.value, dl.key, dl.headers)

    async def _produce(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: Any, _msg: Message) -> None:
            if err is None:
                loop.call_soon_threadsafe(_settle, delivered, None)
            else:
                loop.call_soon_threadsafe(
                    _settle, delivered, PublishError(f"delivery to {topic} failed: {err}")
                )

        while True:
            try:
                self._producer.produce(
                    topic, value, key, headers=to_kafka(headers), on_delivery=on_delivery
                )
                break
            except BufferError:
                await asyncio.sleep(0.05)  # local queue full; the poll thread drains it
        await delivered


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
