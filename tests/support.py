"""Helpers for tests against real services: polling, unique names, topics."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from sagaflow.config import Topics

T = TypeVar("T")

_UNSET = object()


def assert_eventually(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition did not hold",
) -> T:
    """Polls `condition` until it returns a truthy value, and returns that value.

    A condition may also signal "not yet" by raising AssertionError, so plain `assert`s can be
    polled. Any other exception is a real failure and propagates at once. On timeout, raises
    AssertionError with `message` and the last value (or assertion) seen.
    """
    deadline = time.monotonic() + timeout
    last: object = _UNSET
    while True:
        try:
            value = condition()
        except AssertionError as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            seen = "never evaluated" if last is _UNSET else repr(last)
            raise AssertionError(f"{message} (after {timeout:.1f}s; last: {seen})")
        # The one sanctioned sleep in the test suite: the polling interval.
        time.sleep(interval)


async def assert_eventually_async(
    condition: Callable[[], Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition did not hold",
) -> T:
    """assert_eventually for coroutines: when the code under test shares the event loop, the
    poll must yield to it instead of blocking. Same rules: AssertionError means "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = _UNSET
    while True:
        try:
            value = await condition()
        except AssertionError as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            seen = "never evaluated" if last is _UNSET else repr(last)
            raise AssertionError(f"{message} (after {timeout:.1f}s; last: {seen})")
        # The async twin of the one sanctioned sleep: the polling interval.
        await asyncio.sleep(interval)


def unique_prefix(label: str = "test") -> str:
    """A topic prefix no other test (or test run sharing the broker) uses, ending in '.'."""
    safe = re.sub(r"[^a-zA-Z0-9_-]+", "-", label)[:40] or "test"
    return f"t.{safe}.{uuid.uuid4().hex[:10]}."


def create_topics(
    bootstrap: str,
    prefix: str,
    *,
    queues: Iterable[str] = ("default",),
    partitions: int = 3,
    timeout: float = 30.0,
) -> Topics:
    """Creates commands, events, dlq, checkpoints and tasks.<queue> under `prefix`.

    Returns once every topic has a leader for every partition, so a producer's first send does
    not race the metadata. Topic settings follow DESIGN.md (events kept forever, checkpoints
    compacted).
    """
    topics = Topics(prefix)
    specs = [
        NewTopic(topics.commands, num_partitions=partitions, replication_factor=1),
        NewTopic(
            topics.events,
            num_partitions=partitions,
            replication_factor=1,
            config={"retention.ms": "-1"},
        ),
        NewTopic(topics.dlq, num_partitions=1, replication_factor=1),
        NewTopic(
            topics.checkpoints,
            num_partitions=1,
            replication_factor=1,
            config={"cleanup.policy": "compact"},
        ),
        NewTopic(
            topics.closed_workflows,
            num_partitions=partitions,
            replication_factor=1,
            config={"cleanup.policy": "compact"},
        ),
        NewTopic(
            topics.activity_cancels,
            num_partitions=1,
            replication_factor=1,
            config={"cleanup.policy": "compact"},
        ),
    ]
    specs += [
        NewTopic(topics.tasks(q), num_partitions=partitions, replication_factor=1)
        for q in sorted(set(queues))
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(specs, request_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0]
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
    names = [spec.topic for spec in specs]

    def all_led() -> bool:
        metadata = admin.list_topics(timeout=5)
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                return False
            if any(p.leader < 0 for p in topic.partitions.values()):
                return False
        return True

    assert_eventually(
        all_led, timeout=timeout, message=f"topics {names} did not get partition leaders"
    )
    return topics


def delete_topics(bootstrap: str, prefix: str, timeout: float = 30.0) -> None:
    """Deletes every topic under `prefix` (tests share one broker; keep it tidy)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [n for n in admin.list_topics(timeout=timeout).topics if n.startswith(prefix)]
    if not names:
        return
    for future in admin.delete_topics(names, request_timeout=timeout).values():
        future.result(timeout=timeout)


@contextmanager
def running_loop(run: Callable[[threading.Event], None], name: str) -> Iterator[None]:
    """Run a service loop (`run(stop)`) in a thread for the block; stop it after, and fail the
    test with whatever the loop raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run(stop)
        except BaseException as exc:  # handed to the test thread, which fails with it
            errors.append(exc)
            raise

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), f"{name} did not stop within 30s"
    if errors:
        raise errors[0]
