"""Driving load and watching it complete: one tracker per system follows its events topic,
and the runs (closed loop, open loop, one at a time) send starts in batches against it.

Latencies come from the recorded times in the events themselves (the orchestrator's clock at
decision time), so the driver's own scheduling never inflates them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core.messages import (
    CLOSING_EVENTS,
    ActivityCompleted,
    ActivityScheduled,
    WorkflowStarted,
)
from sagaflow.kafka.clients import reader

# (workflow id, kind, step, recorded ms), kind one of started/scheduled/completed/closed.
Observed = tuple[str, str, int, int]
Decoder = Callable[[bytes, bytes], Observed | None]
Sender = Callable[[list[str]], None]
SEND_BATCH = 500
STEPS_PER_SAGA = 5  # sagaflow.bench.app's bench_saga and sagaflow.bench.raw's loop


def sagaflow_decoder(key: bytes, value: bytes) -> Observed | None:
    try:
        event = codec.decode_event(value)
    except codec.DecodeError:
        return None  # a reader moves on; the orchestrator quarantines such a workflow
    body, wid, ms = event.body, event.workflow_id, event.recorded_at_ms
    if isinstance(body, ActivityScheduled):
        return (wid, "scheduled", body.activity_seq, ms)
    if isinstance(body, ActivityCompleted):
        return (wid, "completed", body.activity_seq, ms)
    if isinstance(body, WorkflowStarted):
        return (wid, "started", 0, ms)
    if isinstance(body, CLOSING_EVENTS):
        return (wid, "closed", 0, ms)
    return None


def raw_decoder(key: bytes, value: bytes) -> Observed | None:
    from sagaflow.bench.raw import parse_event

    kind, step, ms = parse_event(value)
    return (key.decode(), kind, step, ms)


@dataclass
class Tracker:
    """Follows one events topic from its start in a thread; counts and times what closes."""

    config: Config
    decode: Decoder
    started: int = 0
    closed: int = 0
    completed_steps: int = 0
    steps: list[tuple[int, int]] = field(default_factory=list)  # (completed ms, latency ms)
    sagas: list[tuple[int, int]] = field(default_factory=list)  # (closed ms, latency ms)
    closed_ids: set[str] = field(default_factory=set)
    error: BaseException | None = None
    # Says what went wrong with the processes under test (one exited), or None: checked while
    # waiting, so a dead service fails the run at once instead of at the wait's deadline.
    trouble: Callable[[], str | None] = lambda: None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started_ms: dict[str, int] = field(default_factory=dict)
    _scheduled_ms: dict[tuple[str, int], int] = field(default_factory=dict)
    _thread: threading.Thread | None = None

    def start(self) -> Tracker:
        self._thread = threading.Thread(target=self._run, name="bench-tracker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as exc:  # noqa: BLE001 - not swallowed: wait_until re-raises it
            self.error = exc
            with self._cond:
                self._cond.notify_all()

    def _follow(self) -> None:
        # Not sagaflow.client.follow: that decodes sagaflow events one poll at a time, and this
        # reader must keep up with the raw loop's ~25,000 events/s in its own record format.
        consumer = reader(self.config, **{"enable.partition.eof": False})
        topic = self.config.topics.events
        md = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            raise RuntimeError(f"bench tracker: topic {topic} is missing")
        consumer.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        try:
            while not self._stop.is_set():
                msgs = consumer.consume(1000, 0.1)
                seen = [
                    o
                    for m in msgs
                    if m.error() is None
                    and (o := self.decode(m.key() or b"", m.value() or b"")) is not None
                ]
                if seen:
                    self._apply(seen)
        finally:
            consumer.close()

    def _apply(self, seen: list[Observed]) -> None:
        with self._cond:
            for wid, kind, step, ms in seen:
                if kind == "scheduled":
                    self._scheduled_ms[(wid, step)] = ms
                elif kind == "completed":
                    s = self._scheduled_ms.pop((wid, step), None)
                    self.completed_steps += 1
                    if s is not None:
                        self.steps.append((ms, ms - s))
                elif kind == "started":
                    self.started += 1
                    self._started_ms[wid] = ms
                elif wid not in self.closed_ids:
                    self.closed += 1
                    self.closed_ids.add(wid)
                    s = self._started_ms.pop(wid, None)
                    if s is not None:
                        self.sagas.append((ms, ms - s))
            self._cond.notify_all()

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Block until `condition()` holds (checked whenever events arrive)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not condition():
                if self.error is not None:
                    raise RuntimeError(f"bench tracker failed: {self.error}") from self.error
                problem = self.trouble()
                if problem is not None:
                    raise RuntimeError(f"{what}: {problem}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{what}: not done after {timeout_s:.0f}s ({self.closed} closed, "
                        f"{self.started} started); see the service logs in .stack/logs/"
                    )
                self._cond.wait(min(left, 0.5))

    def wait_event(self, timeout_s: float) -> None:
        with self._cond:
            self._cond.wait(timeout_s)


def window(samples: list[tuple[int, int]], t0_ms: int, t1_ms: int) -> list[int]:
    """Latencies of the samples recorded within [t0, t1]."""
    return [lat for ms, lat in samples if t0_ms <= ms <= t1_ms]


def now_ms() -> int:
    return int(time.time() * 1000)


def progress(
    label: str, t0: float, closed: int, worth: float, last: tuple[float, float]
) -> tuple[float, float]:
    """A progress line: sagas closed, and the rate in sagas' worth of completed steps."""
    now = time.monotonic()
    rate = (worth - last[1]) / max(now - last[0], 1e-6)
    avg = worth / max(now - t0, 1e-6)
    print(
        f"    {label}: {now - t0:5.1f}s {closed:>8,} closed; {rate:7.1f} sagas/s now, "
        f"{avg:7.1f}/s so far",
        flush=True,
    )
    return (now, worth)


def closed_loop(
    tracker: Tracker,
    send: Sender,
    label: str,
    duration_s: float,
    in_flight: int,
    ramp_s: float = 0.0,
    every_s: float = 5.0,
) -> dict[str, Any]:
    """Keep `in_flight` sagas open for `ramp_s + duration_s`, topping up in batches as they
    close; then let the last ones finish. Throughput and latencies count only the last
    `duration_s` (the first closures come a whole saga latency after the first starts).

    Throughput is steps completed in that window / STEPS_PER_SAGA: sagas started together
    advance in lock-step and close in bursts, so counting closures would quantise the rate to
    whole bursts; steps complete continuously."""
    base = tracker.closed
    sent = 0
    timeline: list[tuple[float, int, float]] = []  # (seconds, closed, sagas' worth of steps)
    steps0 = tracker.completed_steps
    t0 = time.monotonic()
    last = (t0, 0.0)
    next_sample = t0 + 1.0
    next_print = t0 + every_s
    measure_from = t0 + ramp_s
    measured: tuple[float, int, int] | None = None  # (monotonic, closed, wall ms) at its start
    end = measure_from + duration_s
    while (now := time.monotonic()) < end:
        done = tracker.closed - base
        if measured is None and now >= measure_from:
            measured = (now, done, now_ms())
        free = in_flight - (sent - done)
        if free >= min(SEND_BATCH, in_flight // 10 or 1):
            n = min(free, SEND_BATCH)
            send([f"{label}-{sent + i}" for i in range(n)])
            sent += n
        else:
            tracker.wait_event(0.02)
        if now >= next_sample:
            worth = (tracker.completed_steps - steps0) / STEPS_PER_SAGA
            timeline.append((round(now - t0, 3), done, worth))
            next_sample += 1.0
        if now >= next_print:
            worth = (tracker.completed_steps - steps0) / STEPS_PER_SAGA
            last = progress(label, t0, done, worth, last)
            next_print += every_s
    m_start, m_closed, m_ms = measured or (t0, 0, now_ms())
    elapsed = time.monotonic() - m_start
    in_window = tracker.closed - base - m_closed
    t1_ms = now_ms()
    tracker.wait_until(
        lambda: tracker.closed - base >= sent, max(120.0, sent / 50), f"{label} drain"
    )
    step_ms = window(tracker.steps, m_ms, t1_ms)
    return {
        "seconds": round(elapsed, 3),
        "ramp_seconds": ramp_s,
        "sent": sent,
        "closed_in_window": in_window,
        "closed_per_s": in_window / elapsed,
        "steps_in_window": len(step_ms),
        "sagas_per_s": len(step_ms) / STEPS_PER_SAGA / elapsed,
        "timeline": timeline,
        "step_ms": step_ms,
        "saga_ms": window(tracker.sagas, m_ms, t1_ms),
    }


def open_loop(
    tracker: Tracker, send: Sender, label: str, rate: float, duration_s: float, every_s: float = 5.0
) -> dict[str, Any]:
    """Start sagas at a fixed rate (in small batches every 20 ms), whatever closes."""
    steps0 = tracker.completed_steps
    base = tracker.closed
    sent = 0
    t0 = time.monotonic()
    t0_ms = now_ms()
    last = (t0, 0.0)
    next_print = t0 + every_s
    while (now := time.monotonic()) < t0 + duration_s:
        due = int(rate * (now - t0)) - sent
        if due > 0:
            send([f"{label}-{sent + i}" for i in range(due)])
            sent += due
        if now >= next_print:
            worth = (tracker.completed_steps - steps0) / STEPS_PER_SAGA
            last = progress(label, t0, tracker.closed - base, worth, last)
            next_print += every_s
        time.sleep(0.02)  # the open loop's sending tick: it paces the load, not a wait for it
    tracker.wait_until(
        lambda: tracker.closed - base >= sent, max(120.0, sent / 50), f"{label} drain"
    )
    t1_ms = now_ms()
    return {
        "rate": rate,
        "seconds": duration_s,
        "sent": sent,
        "step_ms": window(tracker.steps, t0_ms, t1_ms),
        "saga_ms": window(tracker.sagas, t0_ms, t1_ms),
    }


def _closed(tracker: Tracker, wid: str) -> Callable[[], bool]:
    return lambda: wid in tracker.closed_ids


def one_at_a_time(tracker: Tracker, send: Sender, label: str, n: int) -> dict[str, Any]:
    """Sagas strictly one after the other: latency with no queueing at all."""
    t0_ms = now_ms()
    for i in range(n):
        wid = f"{label}-{i}"
        send([wid])
        tracker.wait_until(_closed(tracker, wid), 60.0, f"{label} saga {wid}")
    t1_ms = now_ms()
    return {
        "sagas": n,
        "step_ms": window(tracker.steps, t0_ms, t1_ms),
        "saga_ms": window(tracker.sagas, t0_ms, t1_ms),
    }
