"""Dead letters: list them, inspect one, and re-drive one to the topic it came from."""

from __future__ import annotations

import argparse
import json
from typing import Any

from confluent_kafka import Message

from sagaflow import codec
from sagaflow.cli.kafkaio import (
    Headers,
    headers_of,
    open_producer,
    open_reader,
    partition_count,
    read_one,
    read_partitions,
    unreachable,
    watermarks,
)
from sagaflow.cli.output import EXIT_USAGE, CliError, emit, record_to_json
from sagaflow.config import Config
from sagaflow.kafka.dlq import DLQ_HEADERS, H_OFFSET, H_PARTITION, H_REASON, H_STAGE, H_TOPIC
from sagaflow.kafka.dlq import origin as dlq_origin


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return "0x" + key.hex()


def _summary(msg: Message) -> dict[str, Any]:
    o = dlq_origin(headers_of(msg))
    return {
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": _key_text(msg.key()),
        "reason": o.get(H_REASON, ""),
        "stage": o.get(H_STAGE, ""),
        "source": {
            "topic": o.get(H_TOPIC),
            "partition": o.get(H_PARTITION),
            "offset": o.get(H_OFFSET),
        },
        "bytes": len(msg.value() or b""),
    }


def list_dead_letters(
    config: Config, limit: int, timeout_s: float
) -> tuple[int, list[dict[str, Any]]]:
    """(dlq partitions, summaries of the newest `limit` dead letters of each partition)."""
    topic = config.topics.dlq
    consumer = open_reader(config)
    try:
        n = partition_count(config, consumer, topic)
        starts: dict[int, int] = {}
        for p in range(n):
            low, high = watermarks(config, consumer, topic, p)
            if high > low:
                starts[p] = max(low, high - limit)
        items = (
            [
                _summary(m)
                for m in read_partitions(config, consumer, topic, starts, timeout_s=timeout_s)
            ]
            if starts
            else []
        )
    finally:
        consumer.close()
    return n, items


def cmd_dlq_list(config: Config, args: argparse.Namespace) -> int:
    """The newest `--limit` dead letters of every dlq partition, oldest first."""
    if args.limit < 1:
        raise CliError(f"--limit {args.limit}: must be at least 1", EXIT_USAGE)
    topic = config.topics.dlq
    n, items = list_dead_letters(config, args.limit, args.timeout)
    items = items[-args.limit :] if n == 1 else items
    lines = [f"{'OFFSET':>8}  {'FROM':40} {'STAGE':24} REASON"]
    for it in items:
        s = it["source"]
        where = f"{s['topic']}[{s['partition']}]@{s['offset']}"
        offset = f"{it['offset']}" if n == 1 else f"{it['partition']}:{it['offset']}"
        lines.append(f"{offset:>8}  {where:40} {it['stage']:24} {it['reason'][:100]}")
    if not items:
        lines = [f"{topic} is empty: no dead letters"]
    emit(args, {"topic": topic, "dead_letters": items}, "\n".join(lines))
    return 0


def decode_payload(source_topic: str | None, value: bytes | None, config: Config) -> Any:
    """The payload as the message it should have been, else JSON, else text, else hex."""
    if value is None:
        return {"format": "null"}
    t = config.topics
    attempt: Any = None
    if source_topic == t.commands:
        attempt = codec.decode_command
    elif source_topic == t.events:
        attempt = codec.decode_event
    elif source_topic is not None and source_topic.startswith(t.prefix + "tasks."):
        attempt = codec.decode_task
    error = None
    if attempt is not None:
        try:
            return {"format": "avro", "message": record_to_json(attempt(value))}
        except codec.DecodeError as exc:
            error = str(exc)
    out: dict[str, Any]
    try:
        out = {"format": "json", "value": json.loads(value)}
    except (ValueError, UnicodeDecodeError):
        try:
            out = {"format": "text", "value": value.decode()}
        except UnicodeDecodeError:
            out = {"format": "hex", "value": value.hex()}
    if error is not None:
        out["avro_error"] = error
    return out


def dead_letter_at(config: Config, partition: int, offset: int) -> Message:
    if offset < 0:
        raise CliError(
            f"OFFSET {offset}: offsets are 0 or more (see `sagaflow dlq list`)", EXIT_USAGE
        )
    consumer = open_reader(config)
    try:
        partition_count(config, consumer, config.topics.dlq)
        return read_one(config, consumer, config.topics.dlq, partition, offset)
    finally:
        consumer.close()


def describe_dead_letter(config: Config, msg: Message) -> dict[str, Any]:
    """Its summary, every header and the payload decoded as well as it can be."""
    info = _summary(msg)
    info["headers"] = {k: v.decode(errors="replace") for k, v in headers_of(msg)}
    info["payload"] = decode_payload(info["source"]["topic"], msg.value(), config)
    return info


def cmd_dlq_inspect(config: Config, args: argparse.Namespace) -> int:
    msg = dead_letter_at(config, args.partition, args.offset)
    info = describe_dead_letter(config, msg)
    headers = headers_of(msg)
    s = info["source"]
    lines = [
        f"dead letter  {config.topics.dlq}[{msg.partition()}]@{msg.offset()}",
        f"reason       {info['reason']}",
        f"stage        {info['stage']}",
        f"from         {s['topic']} partition {s['partition']} offset {s['offset']}",
        f"key          {info['key']}",
    ]
    other = [f"{k}={v.decode(errors='replace')}" for k, v in headers if k not in DLQ_HEADERS]
    if other:
        lines.append(f"headers      {' '.join(other)}")
    p = info["payload"]
    shown = json.dumps(p.get("message", p.get("value")), indent=2, sort_keys=True, default=str)
    lines.append(
        f"payload      ({p['format']}, {info['bytes']} bytes)"
        + (f"; not a valid message: {p['avro_error']}" if "avro_error" in p else "")
    )
    lines += ["  " + line for line in shown.splitlines()]
    emit(args, info, "\n".join(lines))
    return 0


# Only the orchestrator writes these, transactionally; a re-driven copy would corrupt the log.
def _never_redrive(config: Config) -> set[str]:
    return {config.topics.events, config.topics.checkpoints, config.topics.dlq}


def redrive_dead_letter(config: Config, msg: Message) -> dict[str, Any]:
    """Produce the dead letter's record again to the topic it came from; where it went."""
    o = dlq_origin(headers_of(msg))
    target = o.get(H_TOPIC)
    where = f"{config.topics.dlq}[{msg.partition()}]@{msg.offset()}"
    if not target:
        raise CliError(
            f"{where} has no {H_TOPIC} header, so its source is unknown; inspect it with "
            "`sagaflow dlq inspect`",
            EXIT_USAGE,
        )
    if target in _never_redrive(config):
        raise CliError(
            f"{where} came from {target}, which only the orchestrator writes; re-driving would "
            "corrupt the log. Fix the code that rejected it and let the orchestrator rebuild "
            "instead",
            EXIT_USAGE,
        )
    headers: Headers = [(k, v) for k, v in headers_of(msg) if k not in DLQ_HEADERS]
    producer = open_producer(config)
    n = partition_count(config, producer, target)
    key = msg.key()
    extra: dict[str, Any] = {}
    if key is None and o.get(H_PARTITION, "").isdigit() and int(o[H_PARTITION]) < n:
        extra["partition"] = int(o[H_PARTITION])  # no key to hash: back where it was
    delivered: list[Message] = []
    errors: list[Any] = []

    def on_delivery(err: Any, m: Message) -> None:
        (errors if err is not None else delivered).append(err if err is not None else m)

    producer.produce(target, msg.value(), key, headers=headers, on_delivery=on_delivery, **extra)
    remaining = producer.flush(15)
    if remaining or errors or not delivered:
        raise unreachable(
            config, f"re-driving to {target}", errors[0] if errors else "not delivered within 15s"
        )
    d = delivered[0]
    return {
        "from": {"topic": config.topics.dlq, "partition": msg.partition(), "offset": msg.offset()},
        "to": {"topic": d.topic(), "partition": d.partition(), "offset": d.offset()},
    }


def cmd_dlq_redrive(config: Config, args: argparse.Namespace) -> int:
    msg = dead_letter_at(config, args.partition, args.offset)
    moved = redrive_dead_letter(config, msg)
    to = moved["to"]
    emit(
        args,
        moved,
        f"re-drove {config.topics.dlq}[{msg.partition()}]@{msg.offset()} to "
        f"{to['topic']} partition {to['partition']} offset {to['offset']}",
    )
    return 0
