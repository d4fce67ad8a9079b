"""What every service of the local stack provides."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from sagaflow.devstack.common import StackPaths, live_pid


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


class Service(abc.ABC):
    """One process of the stack: installed into the cache, run from `<repo>/.stack/<name>`."""

    name: str
    ports: tuple[int, ...]

    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths

    @property
    def home(self) -> Path:
        return self.paths.service_dir(self.name)

    @property
    def pid_file(self) -> Path:
        return self.paths.run / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.paths.logs / f"{self.name}.log"

    @property
    def marker(self) -> str:
        """A string only this clone's process of this service has on its command line."""
        return str(self.home)

    def pid(self) -> int | None:
        return live_pid(self.pid_file, self.marker)

    def pids(self) -> list[int]:
        """Every process whose memory counts towards the stack's footprint."""
        pid = self.pid()
        return [] if pid is None else [pid]

    @abc.abstractmethod
    def install(self) -> None:
        """Downloads or builds what the service needs into the cache; quick when cached."""

    @abc.abstractmethod
    def start(self) -> None:
        """Starts the process without waiting for it to serve."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float) -> None:
        """Returns once the service answers a real request; StackError after `timeout` s."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stops the process and returns when it is gone."""

    @abc.abstractmethod
    def health(self) -> Health:
        """One real request, answered quickly."""

    @abc.abstractmethod
    def endpoint(self) -> str:
        """How clients reach the service."""
