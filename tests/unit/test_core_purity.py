"""The core is pure: walk every module of sagaflow.core and fail on forbidden imports/calls."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

import sagaflow.core

pytestmark = pytest.mark.unit

FORBIDDEN_MODULES = {
    "confluent_kafka",
    "psycopg",
    "psycopg_pool",
    "aiohttp",
    "opentelemetry",
    "time",
    "random",
    "uuid",
    "os",
    "socket",
    "asyncio",
    "threading",
    "secrets",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time_ns", "monotonic", "getenv"}
ALLOWED_INTERNAL = ("sagaflow.core",)


def core_modules() -> list[Path]:
    root = Path(sagaflow.core.__file__).parent
    return [root / f"{info.name}.py" for info in pkgutil.iter_modules([str(root)])] + [
        root / "__init__.py"
    ]


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.stem)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
            if top == "sagaflow":
                assert name.startswith(ALLOWED_INTERNAL), f"{path.name} imports {name}"
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
            pytest.fail(f"{path.name}:{node.lineno} uses .{node.attr} (a clock or environment)")


def test_the_walk_sees_the_whole_core() -> None:
    stems = {p.stem for p in core_modules()}
    assert {"engine", "driver", "replay", "state", "registry", "workflow", "messages"} <= stems
