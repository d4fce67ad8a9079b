"""A Kafka client for applications: send commands, follow what the engine recorded.

Commands go to the commands topic keyed by workflow id (murmur2, like every sagaflow
producer). Events are read back with read_committed, so only what the orchestrator committed
is ever seen.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core import payload as core_payload
from sagaflow.core.errors import SagaflowError
from sagaflow.core.identity import start_command_id
from sagaflow.core.messages import (
    CLOSING_EVENTS,
    CancelWorkflow,
    Command,
    Event,
    QueryWorkflow,
    ReplyToCaller,
    SignalWorkflow,
    StartWorkflow,
    TerminateWorkflow,
    UpdateWorkflow,
)
from sagaflow.kafka import triage
from sagaflow.kafka.clients import command_producer, reader
from sagaflow.kafka.logread import end_offsets, partitions_of, read_partitions
from sagaflow.kafka.partition import partition_for
from sagaflow.kafka.produce import describe_error, produce
from sagaflow.kafka.records import headers_of, position

HeaderFactory = Callable[[Command], list[tuple[str, bytes]]]


class DeliveryError(RuntimeError):
    """Kafka did not take the command; nothing was sent. Check the broker and retry."""


payload = core_payload.dumps
"""A payload's bytes, as every other part of sagaflow encodes it (sagaflow.core.payload)."""


class ReplyTimeoutError(SagaflowError, TimeoutError):
    """No answer to a query or update arrived in time. Nothing is known about the outcome of an
    update: ask again with the same update id (it is deduplicated) to learn it."""


class ReplyError(SagaflowError):
    """A query or update was answered with a failure or a rejection (see `reply`)."""

    def __init__(self, reply: ReplyToCaller) -> None:
        super().__init__(f"{reply.error_type}: {reply.message}")
        self.reply = reply


def reply_value(reply: ReplyToCaller) -> Any:
    """The answer's value; ReplyError if the query or update failed or was rejected."""
    if not reply.ok:
        raise ReplyError(reply)
    return core_payload.loads(reply.result)


class Client:
    def __init__(
        self,
        config: Config,
        *,
        headers: HeaderFactory | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.config = config
        self._headers = headers
        self._producer = producer or command_producer(config)
        self.partitions: dict[str, int] = {}
        """workflow id -> the commands partition its command was delivered to by the latest
        send (the producer's Java-compatible murmur2 partitioner chose it). Only the latest
        send's, so a long-lived client (the API's) does not grow with every workflow id."""

    def send(self, command: Command, timeout_s: float = 30.0) -> None:
        """Produce one command and wait until Kafka has it (acks=all)."""
        self.send_many([command], timeout_s)

    def send_many(self, commands: Iterable[Command], timeout_s: float = 30.0) -> int:
        """Produce every command, then wait once until Kafka has all of them (acks=all).

        One flush serves the whole batch, so sending N starts costs about one produce round
        trip instead of N. Returns how many were sent. Raises DeliveryError naming the
        commands Kafka did not take (the others may have been delivered: commands carry ids,
        so sending the whole batch again is safe).
        """
        failed: list[tuple[str, Any]] = []
        sent = 0
        self.partitions = {}
        for command in commands:
            self._produce(command, failed)
            sent += 1
        remaining = self._producer.flush(timeout_s)
        if remaining or failed:
            first = failed[0] if failed else (None, f"{remaining} still queued after {timeout_s}s")
            raise DeliveryError(
                f"{len(failed) + remaining} of {sent} command(s) not delivered to "
                f"{self.config.topics.commands} at {self.config.kafka_bootstrap} (first: "
                f"{first[0] or 'timed out'}: {first[1]}); is the broker up? Retry the batch."
            )
        return sent

    def _produce(self, command: Command, failed: list[tuple[str, Any]]) -> None:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append((command.workflow_id, describe_error(err)))
            else:
                self.partitions[command.workflow_id] = position(msg)[0]

        try:
            produce(
                self._producer,
                self.config.topics.commands,
                codec.encode_command(command),
                command.workflow_id,
                headers=self._headers(command) if self._headers else (),
                on_delivery=on_delivery,
            )
        except triage.AbortRequired as exc:
            raise DeliveryError(
                f"command for {command.workflow_id} not queued for "
                f"{self.config.topics.commands}: {exc}; check the broker and retry"
            ) from exc

    def start(
        self,
        workflow_type: str,
        input: Any,
        *,
        workflow_id: str,
        version: int | None = None,
        command_id: str = "",
        execution_timeout_s: float = 0,
        run_timeout_s: float = 0,
    ) -> str:
        """Send StartWorkflow. Safe to repeat: the command_id is derived from what is started,
        so the engine answers a repeat as already started (and refuses a different start with
        the same workflow id as a duplicate). A timeout (seconds, 0 = none) closes the workflow
        (or each run) as timed_out when it passes, running no more code."""
        data = payload(input)
        command_id = command_id or start_command_id(workflow_id, workflow_type, version, data)
        command = StartWorkflow(
            workflow_id,
            workflow_type,
            data,
            version,
            command_id,
            execution_timeout_ms=round(execution_timeout_s * 1000),
            run_timeout_ms=round(run_timeout_s * 1000),
        )
        self.send(command)
        return workflow_id

    def start_many(
        self,
        workflow_type: str,
        inputs: Iterable[tuple[str, Any]],
        *,
        version: int | None = None,
        timeout_s: float = 30.0,
    ) -> list[str]:
        """Start one workflow per (workflow id, input) with a single flush; returns the ids."""
        ids: list[str] = []
        commands: list[Command] = []
        for workflow_id, input in inputs:
            ids.append(workflow_id)
            data = payload(input)
            command_id = start_command_id(workflow_id, workflow_type, version, data)
            commands.append(StartWorkflow(workflow_id, workflow_type, data, version, command_id))
        self.send_many(commands, timeout_s)
        return ids

    def signal_many(
        self, signals: Iterable[tuple[str, Any]], name: str, timeout_s: float = 30.0
    ) -> int:
        """Signal every (workflow id, value) with one flush; returns how many were sent."""
        return self.send_many(
            (SignalWorkflow(wid, name, payload(value), "") for wid, value in signals), timeout_s
        )

    def signal(self, workflow_id: str, name: str, value: Any = None, command_id: str = "") -> None:
        self.send(SignalWorkflow(workflow_id, name, payload(value), command_id))

    def cancel(self, workflow_id: str, reason: str = "", command_id: str = "") -> None:
        self.send(CancelWorkflow(workflow_id, reason, command_id))

    def query(
        self, workflow_id: str, name: str, args: Any = None, *, timeout_s: float = 10.0
    ) -> ReplyToCaller:
        """Ask the orchestrator that owns the workflow; wait up to timeout_s for the answer
        (ReplyTimeoutError). `reply_value(reply)` gives the value or raises."""
        request_id = uuid.uuid4().hex
        command = QueryWorkflow(workflow_id, name, payload(args), request_id, request_id)
        return self.ask(command, timeout_s)

    def update(
        self,
        workflow_id: str,
        name: str,
        args: Any = None,
        *,
        update_id: str = "",
        timeout_s: float = 30.0,
    ) -> ReplyToCaller:
        """Send an update and wait for its result. Pass the same `update_id` to repeat an update
        safely: a repeat is answered with the first one's result."""
        request_id = uuid.uuid4().hex
        command = UpdateWorkflow(
            workflow_id, name, payload(args), update_id or request_id, request_id, request_id
        )
        return self.ask(command, timeout_s)

    def ask(self, command: QueryWorkflow | UpdateWorkflow, timeout_s: float) -> ReplyToCaller:
        """Send `command` and wait for the reply keyed by its request id. The replies
        partition's end is taken before sending, so the answer cannot be missed."""
        deadline = time.monotonic() + timeout_s
        topic = self.config.topics.replies
        key = command.request_id.encode()
        consumer = reader(self.config)
        try:
            partition = partition_for(key, len(partitions_of(consumer, topic)))
            start = end_offsets(consumer, topic, [partition])[partition]
            self.send(command, max(1.0, deadline - time.monotonic()))
            for msg in read_partitions(
                consumer,
                topic,
                {partition: start},
                deadline_s=max(0.0, deadline - time.monotonic()),
                follow=True,
                stop=lambda m: m.key() == key,
            ):
                if msg.key() == key:
                    return codec.decode_reply(msg.value() or b"")
        finally:
            consumer.close()
        if isinstance(command, QueryWorkflow):
            kind, again = "query", "(queries are safe to repeat)"
        else:
            kind, again = "update", f"with update id {command.update_id!r} to learn its outcome"
        raise ReplyTimeoutError(
            f"no answer to {kind} {command.name!r} of workflow {command.workflow_id!r} within "
            f"{timeout_s:g}s; is an orchestrator running and owning its partition? Ask again "
            f"{again}"
        )

    def terminate(self, workflow_id: str, reason: str, by: str = "", command_id: str = "") -> None:
        """Stop the workflow now: no compensation runs (cancel asks the code instead)."""
        self.send(TerminateWorkflow(workflow_id, reason, by, command_id))


@dataclass(frozen=True)
class Recorded:
    event: Event
    partition: int
    offset: int
    headers: list[tuple[str, bytes]]


def follow(
    config: Config,
    *,
    from_beginning: bool = True,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Recorded]:
    """Every committed event, in partition order, until `stop()` is true (checked when idle)."""
    consumer = reader(config)
    try:
        topic = config.topics.events
        parts = partitions_of(consumer, topic)
        starts = dict.fromkeys(parts, 0) if from_beginning else end_offsets(consumer, topic, parts)
        for msg in read_partitions(
            consumer, topic, starts, deadline_s=float("inf"), follow=True, idle=stop
        ):
            try:
                event = codec.decode_event(msg.value() or b"")
            except codec.DecodeError:
                continue  # the orchestrator quarantines the workflow; a reader just moves on
            partition, offset = position(msg)
            yield Recorded(event, partition, offset, headers_of(msg))
    finally:
        consumer.close()


def wait_closed(
    config: Config,
    workflow_ids: Iterable[str],
    timeout_s: float,
    on_event: Callable[[Recorded], None] | None = None,
) -> dict[str, Event]:
    """Follow the events until every workflow has closed; {id: closing event}."""
    pending = set(workflow_ids)
    closed: dict[str, Event] = {}
    deadline = time.monotonic() + timeout_s
    for rec in follow(config, stop=lambda: time.monotonic() > deadline):
        wid = rec.event.workflow_id
        if wid not in pending and wid not in closed:
            continue
        if on_event is not None:
            on_event(rec)
        if isinstance(rec.event.body, CLOSING_EVENTS) and wid in pending:
            pending.discard(wid)
            closed[wid] = rec.event
            if not pending:
                break
        if time.monotonic() > deadline:
            break
    if pending:
        raise TimeoutError(
            f"{len(pending)} workflow(s) still open after {timeout_s:.0f}s: {sorted(pending)[:5]}"
        )
    return closed
