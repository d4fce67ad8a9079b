"""How a running attempt talks with its workflow: heartbeats out, cancellations in.

**Heartbeats.** `ActivityContext.heartbeat(details)` (from the activity's thread or the event
loop) keeps only the latest details and sends a HeartbeatActivity command at most once per
interval: a third of the heartbeat timeout (so two heartbeats can be lost before the attempt
times out), or DEFAULT_HEARTBEAT_INTERVAL_S without one. Details that arrive inside the
interval go out at its end, so the last progress is not lost while the attempt runs; a chatty
activity costs one command per interval, never one per call.

**Cancellations.** The orchestrator writes an ActivityCancellation record, keyed by the step's
idempotency key, to the compacted activity-cancels topic in the same transaction as
ActivityCancelRequested, and a tombstone once the activity settled. Every worker follows that
one small partition with an assign-only reader (`CancelWatch`) and fires the cancel signal of
the attempt it runs for that key. Why a topic rather than an answer to a heartbeat: the
orchestrator has no channel back to one worker; a record keyed by the step reaches whichever
worker runs it, survives worker restarts and redeliveries (a task claimed after its
cancellation does not run at all), and reaches activities that never heartbeat.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core.errors import activity_failure
from sagaflow.core.messages import ActivityTask, HeartbeatActivity
from sagaflow.core.registry import ActivityContext, ActivityDefinition
from sagaflow.kafka import logread, triage
from sagaflow.kafka.clients import reader
from sagaflow_worker.idempotency import Failed, Outcome, Succeeded

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL_S = 30.0
"""Throttle of an activity scheduled without a heartbeat timeout (its details still matter to
a retry)."""
FOLLOW_POLL_S = 5.0
CANCELLED = "ActivityCancelled"


class CancelWatch:
    """The set of steps their workflows cancelled, followed from the activity-cancels topic
    (a thread of its own), with a callback per step this worker runs."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()
        self._listeners: dict[str, Callable[[], None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.offset = 0

    def start(self) -> CancelWatch:
        self._thread = threading.Thread(target=self._follow, name="activity-cancels", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=FOLLOW_POLL_S + 1)

    def is_cancelled(self, key: str) -> bool:
        with self._lock:
            return key in self._cancelled

    def listen(self, key: str, on_cancel: Callable[[], None]) -> None:
        """Call `on_cancel` (from the watch's thread, or now) once step `key` is cancelled."""
        with self._lock:
            self._listeners[key] = on_cancel
            already = key in self._cancelled
        if already:
            on_cancel()

    def forget(self, key: str) -> None:
        with self._lock:
            self._listeners.pop(key, None)

    def apply(self, key: str, value: bytes | None) -> None:
        """One record of the topic: a cancellation, or (None) the tombstone of a settled one."""
        with self._lock:
            if value is None:
                self._cancelled.discard(key)
                return
            self._cancelled.add(key)
            listener = self._listeners.get(key)
        if listener is not None:
            listener()

    def _follow(self) -> None:
        topic = self._config.topics.activity_cancels
        consumer = reader(self._config)
        try:
            while not self._stop.is_set():
                try:
                    logread.partitions_of(consumer, topic)
                    for msg in logread.read_partitions(
                        consumer,
                        topic,
                        {0: self.offset},
                        deadline_s=FOLLOW_POLL_S,
                        follow=True,
                        idle=self._stop.is_set,
                    ):
                        self.offset = (msg.offset() or 0) + 1
                        key = (msg.key() or b"").decode()
                        value = msg.value()
                        if value is not None:
                            try:
                                codec.decode_cancellation(value)
                            except codec.DecodeError as exc:
                                log.warning("skipping an undecodable cancellation: %s", exc)
                                continue
                        self.apply(key, value)
                except (logread.LogReadError, triage.AbortRequired) as exc:
                    # Running activities go on; cancellations arrive once the broker is back.
                    log.warning("following %s: %s; retrying", topic, exc)
                    self._stop.wait(FOLLOW_POLL_S)
        finally:
            consumer.close()


class AttemptControl:
    """The ActivityControl of one running attempt (see the module doc)."""

    def __init__(
        self,
        task: ActivityTask,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[HeartbeatActivity], None],
        *,
        default_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
    ) -> None:
        self._task = task
        self._loop = loop
        self._send = send
        timeout_s = task.heartbeat_timeout_ms / 1000
        self.interval_s = timeout_s / 3 if timeout_s > 0 else default_interval_s
        self._cancelled = threading.Event()
        self.on_cancel: Callable[[], object] | None = None
        self._last_sent = float("-inf")
        self._pending: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.sent = 0
        self.silence_s = timeout_s
        self._last_beat = loop.time()
        self.silent = loop.create_future()
        """Resolved when the activity went a whole heartbeat timeout without a heartbeat: the
        worker gives the attempt up, so its step is released to the next attempt."""
        if self.silence_s > 0:
            self._watchdog = loop.call_at(self._last_beat + self.silence_s, self._check_silence)

    # ActivityControl
    def heartbeat(self, details: Any) -> None:
        encoded = codec.dumps_payload(details)  # a bad value fails in the activity, at its call
        self._loop.call_soon_threadsafe(self._beat, encoded)

    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    # the worker's side
    def cancel(self) -> None:
        """The workflow cancelled this step (any thread)."""
        self._cancelled.set()
        if self.on_cancel is not None:
            self._loop.call_soon_threadsafe(self.on_cancel)

    def close(self) -> None:
        """The attempt ended (loop thread): nothing more is sent for it."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.silence_s > 0:
            self._watchdog.cancel()

    def _check_silence(self) -> None:
        if self._closed or self.silent.done():
            return
        due = self._last_beat + self.silence_s
        if self._loop.time() >= due:
            self.silent.set_result(None)
        else:
            self._watchdog = self._loop.call_at(due, self._check_silence)

    def _beat(self, encoded: bytes) -> None:
        if self._closed:
            return
        self._last_beat = self._loop.time()
        self._pending = encoded
        due = self._last_sent + self.interval_s
        if self._loop.time() >= due:
            self._flush()
        elif self._timer is None:
            self._timer = self._loop.call_at(due, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._closed or self._pending is None:
            return
        t = self._task
        details, self._pending = self._pending, None
        self._last_sent = self._loop.time()
        self.sent += 1
        self._send(HeartbeatActivity(t.workflow_id, t.run_id, t.activity_seq, t.attempt, details))


async def run_attempt(
    definition: ActivityDefinition,
    ctx: ActivityContext,
    control: AttemptControl,
    executor: ThreadPoolExecutor,
    timeout_s: float | None,
    arg: Any,
) -> Outcome:
    """Run one attempt to its outcome, or give it up at its start-to-close timeout or when it
    goes silent for a heartbeat timeout (a sync activity's thread cannot be stopped: it runs on
    unheeded). A cancelled async activity is cancelled at its current await; a sync one sees
    ctx.is_cancelled() and stops itself. A cancelled attempt is never retried."""
    loop = asyncio.get_running_loop()
    if control.is_cancelled():
        return Failed(CANCELLED, "cancelled by its workflow before the attempt started", False)
    work: asyncio.Future[Any]
    if inspect.iscoroutinefunction(definition.fn):
        work = asyncio.ensure_future(definition.fn(ctx, arg))
        control.on_cancel = work.cancel
        if control.is_cancelled():  # cancelled between the check above and now
            work.cancel()
    else:
        work = loop.run_in_executor(executor, definition.fn, ctx, arg)
    try:
        done, _ = await asyncio.wait(
            {work, control.silent}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    except asyncio.CancelledError:
        work.cancel()  # the worker itself is stopping
        raise
    if work not in done:
        work.cancel()
        if control.silent.done():
            return Failed(
                "HeartbeatTimeout",
                f"no heartbeat for {control.silence_s:g} s (the heartbeat timeout); the "
                "attempt was given up",
                True,
            )
        return Failed(
            "StartToCloseTimeout", f"attempt ran longer than {timeout_s:g} s (start-to-close)", True
        )
    if work.cancelled():
        return Failed(CANCELLED, "cancelled by its workflow while it ran", False)
    try:
        return Succeeded(codec.dumps_payload(work.result()))
    except Exception as exc:  # noqa: BLE001 - user code: any error is the attempt's failure
        failure = activity_failure(exc)
        return Failed(failure.error_type, failure.message, failure.retryable, failure.details)
