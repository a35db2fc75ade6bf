"""cacherr's container run the way the template and compose run it, against a sandbox.

Host side, in a work folder: a sandbox `mnt` (disk folders, a tmpfs pool, a mergerfs
view) mounted at /mnt (`rw,slave`); `config` at /config; read-only `run` (the host's
/var/run: the mover's PID file), `emhttp` and `boot`; PUID 99, PGID 100, PLEX_URL and
PLEX_TOKEN pointing at the project's fake Plex on loopback (host networking).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from cacherr.testing.scenarios import Scenario
from tests.container.podman import Podman
from tests.helpers import get_local, wait_for

PUID, PGID = 99, 100
STOP_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Deployment:
    """One container of the image with its host folders; `start()` runs it detached."""

    def __init__(self, podman: Podman, image: str, work: Path, fake: FakePlex, sandbox: Sandbox,
                 *, name: str, mount_var_run: bool = True):
        self.podman, self.image, self.work, self.fake, self.sandbox = (
            podman, image, work, fake, sandbox)
        self.name = name
        self.port = free_port()
        self.config = work / "config"
        self.run = work / "run"
        self.emhttp = work / "emhttp"
        self.boot = work / "boot"
        for folder in (self.config, self.run, self.emhttp, self.boot / "shares"):
            folder.mkdir(parents=True, exist_ok=True)
        # podman writes /run/.containerenv into the folder bound at /run (Docker does not).
        (self.run / ".containerenv").touch()
        (self.emhttp / "var.ini").write_text('version="7.1.4"\nmdState="STARTED"\n'
                                             'mdResyncPos="0"\n')
        self.mount_var_run = mount_var_run

    @property
    def mover_pid_file(self) -> Path:
        return self.run / "mover.pid"

    def run_argv(self) -> list[str]:
        volumes = [f"{self.sandbox.root}:/mnt:rw,slave", f"{self.config}:/config:rw",
                   f"{self.emhttp}:/var/local/emhttp:ro", f"{self.boot}:/boot/config:ro"]
        if self.mount_var_run:
            volumes.append(f"{self.run}:/var/run:ro")
        environment = {"PUID": str(PUID), "PGID": str(PGID), "UMASK": "022",
                       "PLEX_URL": self.fake.pms_url, "PLEX_TOKEN": self.fake.owner_token,
                       "HOST_OS": "Unraid", "CACHERR_LISTEN": f"127.0.0.1:{self.port}",
                       **self.fake.env()}
        argv = ["run", "--detach", "--name", self.name, "--network", "host",
                "--stop-timeout", str(STOP_TIMEOUT_SECONDS)]
        for volume in volumes:
            argv += ["--volume", volume]
        for key, value in environment.items():
            argv += ["--env", f"{key}={value}"]
        return [*argv, self.image]

    def start(self) -> None:
        self.podman(*self.run_argv())

    def restart(self) -> None:
        self.podman("start", self.name)

    def stop(self) -> tuple[float, int]:
        """`podman stop` (SIGTERM, then SIGKILL after the stop timeout): (seconds, exit code)."""
        started = time.monotonic()
        self.podman("stop", "--time", str(STOP_TIMEOUT_SECONDS), self.name,
                    timeout=STOP_TIMEOUT_SECONDS + 60)
        return time.monotonic() - started, int(self.inspect("{{.State.ExitCode}}"))

    def remove(self) -> None:
        self.podman("rm", "--force", "--time", "0", self.name, check=False)

    def inspect(self, template: str) -> str:
        return self.podman("inspect", "--format", template, self.name).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def logs(self) -> str:
        done = self.podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def reload(self) -> None:
        """SIGHUP, as `docker kill -s HUP`: the rules are read again and a cycle runs."""
        self.podman("kill", "--signal", "HUP", self.name)

    def exec(self, *argv: str, check: bool = True):
        return self.podman("exec", self.name, *argv, check=check)

    # -- HTTP --------------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, bytes]:
        return get_local(self.port, path)

    def health(self) -> dict:
        status, body = self.get("/health")
        return json.loads(body) if status in (200, 503) else {}

    def metric(self, name: str, labels: str = "") -> float | None:
        status, body = self.get("/metrics")
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in body.decode().splitlines() if status == 200 else ():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return None

    def wait_healthy(self, what: str, predicate=lambda health: True,
                     timeout_seconds: float = 60) -> dict:
        def ready():
            if not self.running():
                raise AssertionError(f"the container stopped:\n{self.logs()[-3000:]}")
            health = self.health()
            return health if health and predicate(health) else None

        try:
            return wait_for(ready, timeout_seconds=timeout_seconds, interval_seconds=0.2,
                            what=what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- container log ---\n{self.logs()[-3000:]}") \
                from None


@contextlib.contextmanager
def deployed(image, scenario: Scenario, *, name: str, disks: int = 2,
             prepare: Callable[[Deployment], None] | None = None,
             mount_var_run: bool = True) -> Iterator[Deployment]:
    """A running container of `image` (a tests.container.conftest.Image) for `scenario`,
    in a fresh work folder; `prepare(deployment)` runs before it starts. On exit the
    container, the sandbox's mounts and the folder are removed."""
    top = Path(tempfile.mkdtemp(dir="/tmp", prefix="cacherr-ctr-"))
    os.chmod(top, 0o755)  # the container's user must be able to enter
    try:
        with FakePlex(scenario) as fake, \
                Sandbox(top / "mnt", disks=disks, fast_size_bytes=128 * 1024 * 1024) as sandbox:
            deployment = Deployment(image.podman, image.tag, top / "host", fake, sandbox,
                                    name=name, mount_var_run=mount_var_run)
            if prepare is not None:
                prepare(deployment)
            deployment.start()
            try:
                yield deployment
            finally:
                deployment.remove()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def rules(port: int, *, every: str = "1h", extra_cache: str = "", dry_run: bool = False) -> str:
    """A rules file for the sandbox as the container sees it: /mnt/user, /mnt/cache, disks."""
    return f"""\
version: 1
plex: {{url: "${{PLEX_URL}}", token: "${{PLEX_TOKEN}}", timeout: 5s}}
paths: [{{plex: /data/media, host: /mnt/user}}]
cache:
  layout: union
  union: {{view: /mnt/user, fast: /mnt/cache, slow: ["/mnt/disk*"]}}
  max_size: 90%
  min_free: 1MiB
{extra_cache}rules:
  - name: pinned
    select: pinned
    label: cache
    keep: {{while: selected}}
    priority: 50
schedule: {{every: {every}, sessions_every: 1h}}
server: {{listen: "127.0.0.1:{port}"}}
state_dir: /config/state
dry_run: {"true" if dry_run else "false"}
"""


def tree_owners_and_modes(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below `folder` (and itself): relative path -> (uid, gid, mode bits)."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        st = os.lstat(path)
        found[str(path.relative_to(folder))] = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
    return found
