"""A Docker engine of the project's own, for the container test tier and the project's image.

No image registry is reachable where sagaflow is developed and no Docker engine runs, so
`make containers` (``python -m sagaflow.devstack.containers up``):

1. installs Debian's ``docker.io`` and ``debootstrap`` with apt when they are missing;
2. starts ``dockerd`` with its own socket, data root and pid file under
   ``$SAGAFLOW_CACHE/docker/net-<network namespace>/``, with ``--bridge=none --iptables=false
   --ip-masq=false``: the engine creates no bridge and no private-range network; every build and
   container uses the host network, so all traffic stays on 127.0.0.1;
3. builds the images the tier runs (`sagaflow.devstack.container_images`), cached by content.

An engine that already answers is used instead and never stopped: ``DOCKER_HOST`` when set
(Docker on a laptop, CI with a Docker service) or Docker's default socket. The engine's home is
per network namespace because a daemon's containers share its namespace's loopback: a daemon
started in another namespace would run containers this one cannot reach.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker  # type: ignore[import-untyped]
from docker.errors import DockerException  # type: ignore[import-untyped]

from sagaflow.devstack.common import (
    StackError,
    StackPaths,
    file_lock,
    live_pid,
    progress,
    run_logged,
    tail,
    terminate,
)

__all__ = ["Engine", "EngineHome"]

DEFAULT_SOCKET = "/var/run/docker.sock"
READY_TIMEOUT = 60.0
# dockerd stops its containers (10 s each by default) and its containerd before exiting.
STOP_GRACE = 60.0
# The labels the container tier puts on what it starts: cleanup finds them by these.
LABEL = "dev.sagaflow.tier"


def _netns_id() -> str:
    """This process's network namespace, e.g. "4026531840"; "host" when it cannot be read."""
    try:
        return os.readlink("/proc/self/ns/net").split("[", 1)[1].rstrip("]")
    except (OSError, IndexError):
        return "host"


@dataclass(frozen=True)
class EngineHome:
    """Where the project's own daemon keeps its socket, pid file, data and logs."""

    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid_file(self) -> Path:
        return self.root / "docker.pid"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def config(self) -> Path:
        return self.root / "daemon.json"

    @classmethod
    def from_env(cls, paths: StackPaths) -> EngineHome:
        override = os.environ.get("SAGAFLOW_DOCKER_HOME")
        if override:
            return cls(Path(override).expanduser().resolve())
        return cls(paths.cache / "docker" / f"net-{_netns_id()}")


def answers(url: str) -> bool:
    """True when a Docker engine answers on `url` (a ping through the API)."""
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=5)
    except DockerException:
        return False
    try:
        return bool(client.ping())
    except DockerException:
        return False
    finally:
        client.close()


def _cgroup_v1_mounts() -> list[str]:
    """Shell lines mounting this process's cgroup hierarchies at /sys/fs/cgroup.

    `ip netns exec` mounts a fresh /sys for the namespace, without the cgroup hierarchies
    dockerd needs ("Devices cgroup isn't mounted"); the daemon gets them back in a mount
    namespace of its own, so nothing changes for any other process.
    """
    entries = [e.split(":", 2)[1] for e in Path("/proc/self/cgroup").read_text().splitlines()]
    if not any(entries):
        return ["mount -t cgroup2 cgroup2 /sys/fs/cgroup"]
    lines = ["mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup"]
    # The v1 hierarchies (a hybrid host's unified "0::" entry is not needed by dockerd).
    for controllers in filter(None, entries):
        options = controllers if not controllers.startswith("name=") else f"none,{controllers}"
        target = f"/sys/fs/cgroup/{controllers.removeprefix('name=')}"
        lines.append(f"mkdir -p {target} && mount -t cgroup -o {options} cgroup {target}")
    return lines


def _cgroups_mounted() -> bool:
    mounts = Path("/proc/self/mounts").read_text()
    return " /sys/fs/cgroup/" in mounts or " /sys/fs/cgroup cgroup2 " in mounts


class Engine:
    """The Docker engine the container tier talks to: someone else's when one answers,
    otherwise the project's own daemon, started and stopped here."""

    def __init__(self, paths: StackPaths | None = None) -> None:
        self.paths = StackPaths.from_env() if paths is None else paths
        self.home = EngineHome.from_env(self.paths)

    def external_url(self) -> str | None:
        """An engine that is not ours: DOCKER_HOST when set, else Docker's default socket
        when it answers."""
        from_env = os.environ.get("DOCKER_HOST")
        if from_env and from_env != self.home.url:
            if not answers(from_env):
                raise StackError(
                    f"DOCKER_HOST={from_env} does not answer; start that engine, or unset "
                    "DOCKER_HOST to let `make containers` start the project's own"
                )
            return from_env
        if Path(DEFAULT_SOCKET).exists() and answers(f"unix://{DEFAULT_SOCKET}"):
            return f"unix://{DEFAULT_SOCKET}"
        return None

    def own_pid(self) -> int | None:
        # The data root is unique to this engine home, so it marks our daemon's command line.
        return live_pid(self.home.pid_file, str(self.home.data_root))

    def url(self) -> str | None:
        """The engine's URL when one answers (ours or an external one), else None."""
        external = self.external_url()
        if external is not None:
            return external
        if self.own_pid() is not None and answers(self.home.url):
            return self.home.url
        return None

    def client(self, url: str) -> docker.DockerClient:
        # version="auto": Debian's engine speaks API 1.41, older than docker-py's default.
        return docker.DockerClient(base_url=url, version="auto", timeout=600)

    def up(self) -> tuple[str, bool]:
        """(URL of an answering engine, whether this call started it)."""
        with file_lock(self.paths.cache / "docker" / "engine.lock"):
            url = self.url()
            if url is not None:
                progress(f"Docker engine answers at {url}")
                return url, False
            install_tools()
            self._start()
            return self.home.url, True

    def _start(self) -> None:
        home = self.home
        for d in (home.root, home.data_root, home.exec_root):
            d.mkdir(parents=True, exist_ok=True)
        # Its own (empty) config file: a host /etc/docker/daemon.json must not add a bridge.
        home.config.write_text("{}\n")
        if home.socket.exists():
            home.socket.unlink()
        dockerd = [
            require("dockerd"),
            f"--config-file={home.config}",
            f"--host={home.url}",
            f"--data-root={home.data_root}",
            f"--exec-root={home.exec_root}",
            f"--pidfile={home.pid_file}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--log-level=warn",
        ]
        cmd = dockerd
        if not _cgroups_mounted():
            progress(
                "cgroups are not mounted here (ip netns exec?); mounting them for dockerd only"
            )
            script = " && ".join([*_cgroup_v1_mounts(), 'exec "$@"'])
            cmd = [require("unshare"), "--mount", "--propagation", "private", "sh", "-c", script]
            cmd += ["dockerd", *dockerd]
        progress(f"starting the project's Docker engine (socket {home.socket}; log {home.log})")
        started = time.monotonic()
        with home.log.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C in the terminal that ran make must not reach it.
                start_new_session=True,
            )
        while time.monotonic() - started < READY_TIMEOUT:
            if proc.poll() is not None:
                raise StackError(
                    f"dockerd exited with {proc.returncode} during start-up: {tail(home.log, 3)}"
                    f" (full log: {home.log})"
                )
            if home.socket.exists() and answers(home.url):
                progress(f"Docker engine up in {time.monotonic() - started:.1f}s")
                return
            time.sleep(0.2)
        raise StackError(
            f"dockerd did not answer on {home.socket} within {READY_TIMEOUT:.0f}s; see "
            f"{home.log}, then `make containers-down` and retry"
        )

    def remove_containers(self, url: str, labels: dict[str, str] | None = None) -> int:
        """Removes the containers the tier started on `url` (all with our LABEL, or only
        those matching `labels`); returns how many."""
        client = self.client(url)
        try:
            wanted = [f"{k}={v}" if v else k for k, v in (labels or {LABEL: ""}).items()]
            found = client.containers.list(all=True, filters={"label": wanted})
            for container in found:
                container.remove(force=True)
            return len(found)
        finally:
            client.close()

    def down(self) -> None:
        """Stops the project's own daemon and everything it runs; an external engine only
        loses the containers the tier started there."""
        with file_lock(self.paths.cache / "docker" / "engine.lock"):
            external = self.external_url()
            if external is not None:
                removed = self.remove_containers(external)
                progress(f"removed {removed} sagaflow container(s) from {external}")
                return
            pid = self.own_pid()
            if pid is None:
                progress("the project's Docker engine is not running")
                return
            if answers(self.home.url):
                client = self.client(self.home.url)
                try:
                    # Every container on our own engine is ours: remove them all, so none
                    # outlives the daemon as an orphaned shim.
                    for container in client.containers.list(all=True):
                        container.remove(force=True)
                finally:
                    client.close()
            progress(f"stopping the project's Docker engine (pid {pid})")
            terminate(pid, "dockerd", grace=STOP_GRACE)
            self.home.pid_file.unlink(missing_ok=True)
            _unmount_under(self.home.exec_root)


def _unmount_under(root: Path) -> None:
    """dockerd 20.10 leaves its network namespace bind-mounted under the exec root when it
    exits; that mount would keep the namespace alive after the engine is gone."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        done = subprocess.run(["umount", target], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(
                f"could not unmount {target} left by dockerd: {done.stderr.strip()}; "
                f"unmount it by hand (`umount {target}`)"
            )


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise StackError(
            f"`{tool}` is not installed; run `make containers` as root (it installs docker.io "
            "and debootstrap with apt) or install them yourself"
        )
    return found


def install_tools() -> None:
    """apt-installs docker.io and debootstrap when missing, without starting Debian's own
    Docker service (that one would create a bridge network)."""
    missing = [
        pkg
        for pkg, tool in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"))
        if shutil.which(tool) is None
    ]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            f"{' and '.join(missing)} missing; install them (`sudo apt-get install -y "
            f"{' '.join(missing)}`) or point DOCKER_HOST at a running Docker engine"
        )
    progress(f"installing {', '.join(missing)} with apt")
    log = StackPaths.from_env().cache_logs / "apt-containers.log"
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:
        # Debian's policy hook: exit 101 tells the package scripts not to start services.
        policy.write_text(
            "#!/bin/sh\n# sagaflow: no service starts during this install\nexit 101\n"
        )
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run_logged(
            ["apt-get", "update", "-q"],
            log,
            what="apt-get update",
            env=env,
            fix="check network access to the Debian mirror and re-run `make containers`",
        )
        run_logged(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            log,
            what=f"installing {' '.join(missing)}",
            fix="check network access to the Debian mirror and re-run `make containers`",
            env=env,
        )
    finally:
        if added_policy:
            policy.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    from sagaflow.devstack.container_images import ensure_images

    parser = argparse.ArgumentParser(
        prog="python -m sagaflow.devstack.containers",
        description="The project's Docker engine and the images of the container test tier.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    engine = Engine()
    try:
        if args.command == "up":
            own_url, _ = engine.up()
            client = engine.client(own_url)
            try:
                images = ensure_images(client, engine.paths)
            finally:
                client.close()
            print(json.dumps(images.as_dict(), indent=2))  # noqa: T201 - for the person at make
        elif args.command == "down":
            engine.down()
        else:
            found = engine.url()
            print(f"engine: {found or 'none answers'} (own home {engine.home.root})")  # noqa: T201
            return 0 if found else 1
    except StackError as exc:
        print(f"containers {args.command}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
