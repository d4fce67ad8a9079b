"""Loading the user's application (the Registry of workflows and activities) by name."""

from __future__ import annotations

import importlib

from sagaflow.config import ConfigError
from sagaflow.core.registry import Registry


def load_registry(spec: str) -> Registry:
    """`spec` is 'module:attribute' naming a Registry (SAGAFLOW_APP)."""
    if not spec:
        raise ConfigError(
            "SAGAFLOW_APP is not set: set it to the module:attribute of your workflows' "
            "Registry; for a try-out, the example shop is "
            "SAGAFLOW_APP=sagaflow.examples.checkout:registry"
        )
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"SAGAFLOW_APP={spec!r}: cannot import {module_name!r} ({exc}); "
            "install the package that defines your workflows"
        ) from exc
    registry = getattr(module, attr, None)
    if not isinstance(registry, Registry):
        raise ConfigError(
            f"SAGAFLOW_APP={spec!r}: {module_name}.{attr} is not a "
            "sagaflow Registry; point it at the Registry your workflows use"
        )
    return registry
