"""The three services together: install, up, down, status."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sagaflow.devstack.common import (
    StackError,
    StackPaths,
    ensure_ports_free,
    file_lock,
    memory_kib,
    progress,
)
from sagaflow.devstack.jaeger import OTLP_HTTP_URL, QUERY_URL, Jaeger
from sagaflow.devstack.layout import kafka_service
from sagaflow.devstack.postgres import DATABASE_URL, Postgres
from sagaflow.devstack.service import Health, Service

__all__ = ["ServiceStatus", "Stack", "StackError"]

READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    ports: tuple[int, ...]
    endpoint: str
    health: Health
    rss_kib: int
    peak_rss_kib: int


class Stack:
    """This clone's local stack. Every operation takes a lock, so concurrent `make up`s from
    several shells (or pytest sessions) start each service once."""

    def __init__(self, paths: StackPaths | None = None) -> None:
        self.paths = StackPaths.from_env() if paths is None else paths
        self.services: dict[str, Service] = {
            s.name: s for s in (Postgres(self.paths), kafka_service(self.paths), Jaeger(self.paths))
        }

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker of the running layout (one broker, or each node of a cluster)."""
        return self.services["kafka"].endpoint()

    # Endpoints, for the test fixtures and `check`.
    database_url = DATABASE_URL
    otlp_http_url = OTLP_HTTP_URL
    jaeger_query_url = QUERY_URL

    def _select(self, names: Iterable[str] | None) -> list[Service]:
        if names is None:
            return list(self.services.values())
        chosen = []
        for name in names:
            if name not in self.services:
                raise StackError(
                    f"unknown service {name!r}; the stack has {', '.join(self.services)}"
                )
            chosen.append(self.services[name])
        return chosen

    def install(self, names: Iterable[str] | None = None) -> None:
        self.paths.make_dirs()
        with file_lock(self.paths.cache / "install.lock"):
            for service in self._select(names):
                service.install()

    def running(self, name: str) -> bool:
        return self.services[name].pid() is not None

    def up(self, names: Iterable[str] | None = None) -> list[str]:
        """Starts what is not running and waits until all of it answers; returns what it
        started (empty when everything was already up)."""
        services = self._select(names)
        self.install(s.name for s in services)
        started: list[str] = []
        began = time.monotonic()
        with file_lock(self.paths.run / "stack.lock"):
            for service in services:
                pid = service.pid()
                if pid is not None:
                    progress(f"{service.name} already running (pid {pid})")
                    continue
                ensure_ports_free(service.name, service.ports)
                progress(f"starting {service.name}")
                service.start()
                started.append(service.name)
            for service in services:
                service.wait_ready(READY_TIMEOUT)
        if started:
            progress(
                f"stack up in {time.monotonic() - began:.1f}s (started "
                f"{', '.join(started)}; logs in {self.paths.logs})"
            )
        else:
            progress("stack already up")
        return started

    def down(self, names: Iterable[str] | None = None) -> None:
        self.paths.run.mkdir(parents=True, exist_ok=True)
        with file_lock(self.paths.run / "stack.lock"):
            # Reverse start order: Jaeger and Kafka first, Postgres last.
            for service in reversed(self._select(names)):
                pid = service.pid()
                if pid is None:
                    progress(f"{service.name} not running")
                    continue
                progress(f"stopping {service.name} (pid {pid})")
                service.stop()

    def status(self) -> list[ServiceStatus]:
        statuses = []
        for service in self.services.values():
            pid = service.pid()
            health = service.health() if pid is not None else Health(False, "not running")
            rss = peak = 0
            for p in service.pids():
                now, high = memory_kib(p)
                rss += now
                peak += high
            statuses.append(
                ServiceStatus(
                    service.name, pid, service.ports, service.endpoint(), health, rss, peak
                )
            )
        return statuses
