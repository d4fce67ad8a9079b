"""The images of the container tier, built here from sources the project already reaches.

No registry serves images, so each image starts from a Debian root file system made with
``debootstrap --variant=minbase`` and ``docker import``; Kafka is the local stack's
Maven-assembled broker, Postgres is Debian's package, and the project's image comes from the
real ``Dockerfile`` with the local Python base as its ``PYTHON_IMAGE`` build argument.

Every image is tagged with a hash of everything that goes into it (recipe, files, build
arguments, parent tag), so a change rebuilds exactly what it affects and nothing else. Built
images are also saved under ``$SAGAFLOW_CACHE/images/``: a fresh engine (another network
namespace, a wiped data root) loads them in seconds and needs no network.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import DockerException, ImageNotFound  # type: ignore[import-untyped]
from docker.utils.build import exclude_paths  # type: ignore[import-untyped]

from sagaflow.devstack.common import StackError, StackPaths, file_lock, progress, run_logged
from sagaflow.devstack.kafka import (
    Kafka,
    broker_settings,
    render_properties,
)

__all__ = ["KAFKA_CONTROLLER_PORT", "KAFKA_PORT", "POSTGRES_PORT", "Images", "ensure_images"]

# Host-network ports of the container tier: apart from the local stack's (19092/19093, 15432,
# Jaeger's 4317/4318/16686) so both tiers can run in one `make test`.
KAFKA_PORT = 29092
KAFKA_CONTROLLER_PORT = 29093
POSTGRES_PORT = 25432
REPO = "sagaflow-local"
SUITE = "bookworm"
# Postgres: the project needs >= 16 and bookworm (and its backports) ship 15; trixie ships 17.
POSTGRES_SUITE = "trixie"
POSTGRES_MAJOR = 17
MIRROR = os.environ.get("SAGAFLOW_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Saved images kept per name: several clones with different sources share the cache.
KEEP_SAVED = 3
_DIGEST = re.compile(r"[0-9a-f]{16}")

_APT = (
    "apt-get update -q && apt-get install -y -q --no-install-recommends {packages} "
    "&& apt-get clean && rm -rf /var/lib/apt/lists/*"
)

_PYTHON = f"""ARG BASE
FROM ${{BASE}}
# What the official python image offers the project's Dockerfile: python, venv, CA certificates.
RUN {_APT.format(packages="python3 python3-venv python-is-python3 ca-certificates")}
# The certificate authorities this machine added (a TLS-inspecting proxy, a company CA): pip
# in the build must trust what the host trusts to reach PyPI.
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates > /dev/null
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python"]
"""
HOST_CAS = Path("/usr/local/share/ca-certificates")

_KAFKA = f"""ARG BASE
FROM ${{BASE}}
RUN {_APT.format(packages="openjdk-17-jre-headless")}
COPY libs/ /opt/kafka/libs/
COPY server.properties log4j2.xml start-kafka.sh /opt/kafka/
RUN chmod 0755 /opt/kafka/start-kafka.sh \\
 && useradd --system --uid 10002 --home-dir /nonexistent --no-create-home kafka
USER 10002
ENV KAFKA_PORT={KAFKA_PORT} KAFKA_CONTROLLER_PORT={KAFKA_CONTROLLER_PORT}
ENTRYPOINT ["/opt/kafka/start-kafka.sh"]
"""

# Data under /tmp: the container is thrown away after the tests, and /tmp is always writable.
_START_KAFKA = """#!/bin/sh
# Single-node KRaft broker of the sagaflow container tier (settings: sagaflow.devstack.kafka).
set -eu
sed -e "s/@BROKER_PORT@/$KAFKA_PORT/g" -e "s/@CONTROLLER_PORT@/$KAFKA_CONTROLLER_PORT/g" \\
  /opt/kafka/server.properties > /tmp/server.properties
java_cmd() { java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \\
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.xml -cp '/opt/kafka/libs/*' "$@"; }
cluster_id=${KAFKA_CLUSTER_ID:-$(java_cmd kafka.tools.StorageTool random-uuid)}
java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c /tmp/server.properties \\
  --ignore-formatted
exec java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \\
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.xml -cp '/opt/kafka/libs/*' \\
  kafka.Kafka /tmp/server.properties
"""

_KAFKA_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="out"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.raft" level="WARN"/>
  </Loggers>
</Configuration>
"""

_POSTGRES = f"""ARG BASE
FROM ${{BASE}}
# No default cluster: the entrypoint makes the one the tests use.
RUN mkdir -p /etc/postgresql-common/createcluster.d \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/sagaflow.conf \\
 && {_APT.format(packages=f"postgresql-{POSTGRES_MAJOR}")}
COPY start-postgres.sh /usr/local/bin/start-postgres.sh
RUN chmod 0755 /usr/local/bin/start-postgres.sh
USER postgres
ENV PGDATA=/tmp/pgdata POSTGRES_PORT={POSTGRES_PORT} \\
    POSTGRES_USER=sagaflow POSTGRES_PASSWORD=sagaflow POSTGRES_DB=sagaflow
ENTRYPOINT ["/usr/local/bin/start-postgres.sh"]
"""

_START_POSTGRES = f"""#!/bin/sh
# Postgres of the sagaflow container tier: a fresh cluster, one password user and database.
set -eu
bin=/usr/lib/postgresql/{POSTGRES_MAJOR}/bin
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \\
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --no-sync > /dev/null
  rm -f "$pwfile"
  echo "CREATE DATABASE \\"$POSTGRES_DB\\" OWNER \\"$POSTGRES_USER\\";" \\
    | "$bin/postgres" --single -D "$PGDATA" -j postgres > /dev/null
fi
# Throwaway test data: durability settings off for speed.
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses=127.0.0.1 -c port="$POSTGRES_PORT" \\
  -c unix_socket_directories=/tmp -c fsync=off -c synchronous_commit=off \\
  -c full_page_writes=off -c max_connections=200
"""


@dataclass(frozen=True)
class Images:
    """Tags of the built images, ready on the engine."""

    debian: str
    python: str
    kafka: str
    postgres: str
    sagaflow: str

    def as_dict(self) -> dict[str, str]:
        return dict(vars(self))


@dataclass(frozen=True)
class Recipe:
    """One image: a Dockerfile and its context files (name in the context -> content)."""

    name: str
    dockerfile: str
    files: Mapping[str, bytes | Path] = field(default_factory=dict)
    buildargs: Mapping[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        h = hashlib.sha256(f"{self.name}\0{self.dockerfile}\0".encode())
        for key, value in sorted(self.buildargs.items()):
            h.update(f"arg {key}={value}\0".encode())
        for name, content in sorted(self.files.items()):
            h.update(f"file {name}\0".encode())
            h.update(content if isinstance(content, bytes) else _file_digest(content).encode())
        return h.hexdigest()[:16]

    def context(self) -> io.BytesIO:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            _add_bytes(tar, "Dockerfile", self.dockerfile.encode(), 0o644)
            for name, content in sorted(self.files.items()):
                if isinstance(content, bytes):
                    _add_bytes(tar, name, content, 0o755 if name.endswith(".sh") else 0o644)
                else:
                    tar.add(str(content), arcname=name)
        buffer.seek(0)
        return buffer


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}\0".encode())
        with f.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _project_digest(repo: Path) -> str:
    """Hash of the project's build context: what `.dockerignore` lets through."""
    ignore = repo / ".dockerignore"
    patterns = [
        line.strip()
        for line in (ignore.read_text().splitlines() if ignore.exists() else [])
        if line.strip() and not line.startswith("#")
    ]
    h = hashlib.sha256()
    for rel in sorted(exclude_paths(str(repo), patterns, dockerfile="Dockerfile")):
        path = repo / rel
        if path.is_file():
            h.update(f"{rel}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


class Builder:
    """Ensures images on one engine: present, else loaded from the cache, else built."""

    def __init__(self, client: Any, paths: StackPaths) -> None:
        self.client = client
        self.paths = paths
        self.saved = paths.cache / "images"
        self.log = paths.cache_logs / "container-images.log"

    def present(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
        except ImageNotFound:
            return False
        return True

    def ensure(self, name: str, digest: str, build: Callable[[str], None]) -> str:
        tag = f"{REPO}/{name}:{digest}"
        saved = self.saved / f"{name}-{digest}.tar"
        if self.present(tag):
            if not saved.is_file():
                # Built before the cache was wiped or pruned: other engines still need it.
                self._save(name, tag, saved)
            return tag
        began = time.monotonic()
        if saved.is_file():
            progress(f"loading image {tag} from {saved}")
            with saved.open("rb") as handle:
                self.client.images.load(handle)
        else:
            progress(f"building image {tag} (log: {self.log})")
            build(tag)
            self._save(name, tag, saved)
        progress(f"image {tag} ready in {time.monotonic() - began:.0f}s")
        return tag

    def _save(self, name: str, tag: str, saved: Path) -> None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        partial = saved.with_suffix(f".{os.getpid()}.partial")
        with partial.open("wb") as out:
            for chunk in self.client.images.get(tag).save(named=True):
                out.write(chunk)
        partial.rename(saved)
        # Exactly "<name>-<16 hex>.tar": "debian-*" must not match "debian-trixie-*".
        mine = [
            p
            for p in self.saved.glob(f"{name}-*.tar")
            if _DIGEST.fullmatch(p.stem[len(name) + 1 :])
        ]
        older = sorted(mine, key=lambda p: p.stat().st_mtime)
        for stale in older[:-KEEP_SAVED]:
            stale.unlink(missing_ok=True)

    def build(self, tag: str, **kwargs: Any) -> None:
        """docker build on the host network; its output goes to the log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            log.write(f"\n=== building {tag}\n")
            try:
                stream: Iterator[dict[str, Any]] = self.client.api.build(
                    tag=tag, network_mode="host", rm=True, forcerm=True, decode=True, **kwargs
                )
                for item in stream:
                    if "stream" in item:
                        log.write(item["stream"])
                    if "error" in item:
                        raise StackError(
                            f"building {tag} failed: {item['error'].strip()}; see {self.log}"
                        )
            except DockerException as exc:
                raise StackError(f"building {tag} failed: {exc}; see {self.log}") from exc

    def recipe(self, recipe: Recipe) -> str:
        return self.ensure(
            recipe.name,
            recipe.digest(),
            lambda tag: self.build(
                tag, fileobj=recipe.context(), custom_context=True, buildargs=dict(recipe.buildargs)
            ),
        )

    def debian(self, suite: str = SUITE) -> str:
        """A minbase Debian root file system of `suite` made with debootstrap and imported;
        with SAGAFLOW_DEBIAN_IMAGES=hub, Docker Hub's debian:<suite>-slim instead (a laptop
        without root or debootstrap)."""
        if os.environ.get("SAGAFLOW_DEBIAN_IMAGES") == "hub":
            named = f"debian:{suite}-slim"
            if not self.present(named):
                progress(f"pulling {named}")
                self.client.images.pull(named)
            return named
        recipe = f"debootstrap --variant=minbase {suite} {MIRROR}"
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
        name = "debian" if suite == SUITE else f"debian-{suite}"
        return self.ensure(name, digest, lambda tag: self._debootstrap(tag, suite))

    def _debootstrap(self, tag: str, suite: str) -> None:
        tool = shutil.which("debootstrap")
        if tool is None or os.geteuid() != 0:
            raise StackError(
                "building the Debian base needs root and debootstrap (`make containers` as "
                "root installs it); elsewhere set SAGAFLOW_DEBIAN_IMAGES=hub (Docker Hub's)"
            )
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=self.paths.cache))
        try:
            rootfs = work / "rootfs"
            run_logged(
                [tool, "--variant=minbase", suite, str(rootfs), MIRROR],
                self.log,
                what="debootstrap (about a minute)",
                fix="check network access to the Debian mirror and re-run `make containers`",
            )
            # Package lists and downloaded .debs: every image runs apt-get update itself.
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for p in (rootfs / junk).glob("*"):
                    if p.is_file():
                        p.unlink()
            archive = work / "rootfs.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
            repository, _, version = tag.rpartition(":")
            self.client.api.import_image(
                src=str(archive), repository=repository, tag=version, changes=['CMD ["bash"]']
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _host_cas() -> dict[str, bytes | Path]:
    files: dict[str, bytes | Path] = {"ca/README": b"CAs added by the host that built this.\n"}
    for crt in sorted(HOST_CAS.glob("*.crt")) if HOST_CAS.is_dir() else []:
        files[f"ca/{crt.name}"] = crt
    return files


def kafka_recipe(paths: StackPaths, base: str) -> Recipe:
    kafka = Kafka(paths)
    kafka.install()
    settings = broker_settings("127.0.0.1", "@BROKER_PORT@", "@CONTROLLER_PORT@", "/tmp/kafka")
    return Recipe(
        name="kafka",
        dockerfile=_KAFKA,
        files={
            "libs": kafka.libs,
            "server.properties": render_properties(settings).encode(),
            "log4j2.xml": _KAFKA_LOG4J2.encode(),
            "start-kafka.sh": _START_KAFKA.encode(),
        },
        buildargs={"BASE": base},
    )


def ensure_images(client: Any, paths: StackPaths) -> Images:
    """Every image of the container tier on the engine `client` talks to. Serialised across
    processes: a second engine (another namespace) waits, then loads what the first saved."""
    with file_lock(paths.cache / "images" / "build.lock"):
        return _ensure_images(client, paths)


def _ensure_images(client: Any, paths: StackPaths) -> Images:
    began = time.monotonic()
    builder = Builder(client, paths)
    debian = builder.debian()
    python = builder.recipe(
        Recipe("python", _PYTHON, files=_host_cas(), buildargs={"BASE": debian})
    )
    kafka = builder.recipe(kafka_recipe(paths, debian))
    postgres = builder.recipe(
        Recipe(
            "postgres",
            _POSTGRES,
            files={"start-postgres.sh": _START_POSTGRES.encode()},
            buildargs={"BASE": builder.debian(POSTGRES_SUITE)},
        )
    )
    repo = paths.repo
    args = {"PYTHON_IMAGE": python}
    # The Dockerfile's builder stage, kept as an image of its own: its dependency layers (the
    # only steps that need PyPI) then serve as --cache-from, so a source change rebuilds the
    # project's image without the network, even on an engine that loaded its images.
    deps = Recipe(
        "sagaflow-builder",
        (repo / "Dockerfile").read_text(),
        files={lock: repo / lock for lock in ("requirements.lock", "requirements-build.lock")},
        buildargs=args,
    )
    stage = builder.ensure(
        deps.name,
        deps.digest(),
        lambda tag: builder.build(
            tag, path=str(repo), dockerfile="Dockerfile", target="builder", buildargs=args
        ),
    )
    sagaflow = builder.ensure(
        "sagaflow",
        hashlib.sha256(f"{_project_digest(repo)}\0{python}".encode()).hexdigest()[:16],
        lambda tag: builder.build(
            tag, path=str(repo), dockerfile="Dockerfile", buildargs=args, cache_from=[stage]
        ),
    )
    progress(f"container images ready in {time.monotonic() - began:.0f}s")
    return Images(debian, python, kafka, postgres, sagaflow)
