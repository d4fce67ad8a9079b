"""`sagaflow ui`: the web UI on its own, without an orchestrator (it reads the same stores)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from sagaflow.app import load_registry
from sagaflow.config import Config, ConfigError
from sagaflow.ui.app import make_ui_app

log = logging.getLogger("sagaflow.ui")


def cmd_ui(config: Config, args: argparse.Namespace) -> int:
    try:
        registry = load_registry(config.app)
    except ConfigError as exc:
        # Without the code the UI still shows everything recorded; only signal waits need it.
        sys.stderr.write(
            f"sagaflow ui: cannot load SAGAFLOW_APP={config.app} ({exc}); the UI runs, but "
            "cannot tell which signals a running workflow waits for\n"
        )
        registry = None
    root = web.Application()
    root.add_subapp("/ui", make_ui_app(config, registry))

    async def to_ui(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")

    root.router.add_get("/", to_ui)
    sys.stdout.write(f"sagaflow ui: http://{args.host}:{args.port}/ui/ (Ctrl-C stops it)\n")
    sys.stdout.flush()
    try:
        asyncio.run(_serve(root, args.host, args.port))
    except KeyboardInterrupt:
        return 0
    return 0


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
