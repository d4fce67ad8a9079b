"""What the UI's page handlers share: the app's state keys, rendering a template, reading an
action's form (with the API token), and the errors that become pages."""

from __future__ import annotations

import hmac
from typing import Any

import aiohttp
import jinja2
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from sagaflow.client import Client
from sagaflow.config import Config
from sagaflow.core.registry import Registry
from sagaflow.ui.statemachine import Definitions

CONFIG = web.AppKey("ui_config", Config)
REGISTRY = web.AppKey("ui_registry", Registry)
POOL = web.AppKey("ui_pool", AsyncConnectionPool)
CLIENT = web.AppKey("ui_client", Client)
HTTP = web.AppKey("ui_http", aiohttp.ClientSession)
TEMPLATES = web.AppKey("ui_templates", jinja2.Environment)
PREFIX = web.AppKey("ui_prefix", str)
DEFINITIONS = web.AppKey("ui_definitions", Definitions)


class BadInput(ValueError):
    """A query or form value the UI cannot use; the message tells the user what to fix."""


class Forbidden(PermissionError):
    """An action without the API token the deployment requires."""


def render(request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
    app = request.app
    html = (
        app[TEMPLATES]
        .get_template(template)
        .render(
            base=app[PREFIX],
            config=app[CONFIG],
            token_required=bool(app[CONFIG].api_token),
            request_path=request.path_qs,
            **ctx,
        )
    )
    return web.Response(text=html, content_type="text/html", status=status)


async def form(request: web.Request) -> Any:
    """An action's form fields, once its API token (if the deployment has one) checks out."""
    fields = await request.post()
    token = request.app[CONFIG].api_token
    # The same bearer token as the API: forms cannot send a header, so it comes as a field.
    if token and not hmac.compare_digest(str(fields.get("token", "")).encode(), token.encode()):
        raise Forbidden("the API token is missing or wrong; enter the SAGAFLOW_API_TOKEN value")
    return fields


def see_other(url: str) -> web.Response:
    # Returned, not raised: a raised redirect reads as a failure to the access log around us.
    return web.Response(status=303, headers={"Location": url})
