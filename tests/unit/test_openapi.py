"""The served OpenAPI document and the app's routes describe the same API."""

from __future__ import annotations

import pytest
from aiohttp import web

from sagaflow.config import Config
from sagaflow.core.registry import Registry
from sagaflow_orchestrator.loop import Orchestrator
from sagaflow_orchestrator.web import load_openapi, make_app

pytestmark = pytest.mark.unit

METHODS = {"get", "post", "put", "patch", "delete"}


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD to every GET route by itself
            continue
        assert route.resource is not None
        if route.resource.canonical.startswith("/ui/"):  # the web UI's HTML pages, not the API
            continue
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def spec_routes(spec: dict[str, object]) -> set[tuple[str, str]]:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    return {(method, path) for path, item in paths.items() for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    config = Config.from_env({})
    app = make_app(config, Orchestrator(config, Registry()))
    spec = load_openapi()
    assert spec["openapi"].startswith("3.1")
    in_app, in_spec = app_routes(app), spec_routes(spec)
    assert in_app - in_spec == set(), "routes missing from openapi.json"
    assert in_spec - in_app == set(), "openapi.json documents routes the app lacks"


def test_every_path_parameter_is_declared_and_every_ref_resolves() -> None:
    spec = load_openapi()
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            in_path = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
            assert declared == in_path, f"{method} {path}"
            assert op["responses"], f"{method} {path} has no responses"

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
