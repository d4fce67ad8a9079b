"""The dead-letter pages: list, inspect (reason, origin, bytes as hex and text), re-drive one
or all, through the CLI's dead-letter code."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sagaflow.cli import dlq
from sagaflow.cli.output import CliError
from sagaflow.ui.common import CONFIG, PREFIX, BadInput, form, render, see_other

DLQ_LIMIT = 200


async def dlq_page(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    partitions, items = await asyncio.to_thread(dlq.list_dead_letters, config, DLQ_LIMIT, 10.0)
    return render(
        request,
        "dlq.html",
        items=items,
        partitions=partitions,
        topic=config.topics.dlq,
        flash=request.query.get("moved", ""),
    )


async def dlq_item_page(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    partition, offset = int(request.match_info["partition"]), int(request.match_info["offset"])
    msg = await asyncio.to_thread(dlq.dead_letter_at, config, partition, offset)
    info = dlq.describe_dead_letter(config, msg)
    value = msg.value() or b""
    return render(
        request,
        "dlq_item.html",
        info=info,
        topic=config.topics.dlq,
        hex_dump=_hex_dump(value),
        text=value.decode("utf-8", errors="replace"),
    )


def _hex_dump(data: bytes, width: int = 16) -> str:
    lines = []
    for i in range(0, len(data), width):
        chunk = data[i : i + width]
        shown = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{i:08x}  {chunk.hex(' '):<{width * 3}} {shown}")
    return "\n".join(lines)


async def dlq_redrive_action(request: web.Request) -> web.Response:
    await form(request)
    config = request.app[CONFIG]
    partition, offset = int(request.match_info["partition"]), int(request.match_info["offset"])

    def redrive() -> dict[str, Any]:
        return dlq.redrive_dead_letter(config, dlq.dead_letter_at(config, partition, offset))

    try:
        moved = await asyncio.to_thread(redrive)
    except CliError as exc:
        raise BadInput(str(exc)) from exc
    to = moved["to"]
    note = (
        f"re-drove {partition}:{offset} to {to['topic']} partition {to['partition']} "
        f"offset {to['offset']}"
    )
    return see_other(f"{request.app[PREFIX]}/dlq?{urlencode({'moved': note})}")


async def dlq_redrive_all_action(request: web.Request) -> web.Response:
    await form(request)
    config = request.app[CONFIG]

    def redrive_all() -> tuple[int, list[str]]:
        _n, items = dlq.list_dead_letters(config, DLQ_LIMIT, 10.0)
        done, refused = 0, []
        for it in items:
            try:
                dlq.redrive_dead_letter(
                    config, dlq.dead_letter_at(config, it["partition"], it["offset"])
                )
                done += 1
            except CliError as exc:
                refused.append(f"{it['partition']}:{it['offset']}: {exc}")
        return done, refused

    done, refused = await asyncio.to_thread(redrive_all)
    note = f"re-drove {done} dead letter(s)" + (
        f"; {len(refused)} refused: " + " | ".join(refused[:5]) if refused else ""
    )
    return see_other(f"{request.app[PREFIX]}/dlq?{urlencode({'moved': note})}")
