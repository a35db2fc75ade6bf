"""Building and running cacherr's image with podman, all of it inside one work folder.

No image registry is reachable in CI, so the Dockerfile's base, `debian:bookworm-slim`, is
made the way Debian's own image is: `debootstrap --variant=minbase bookworm` from the
mirror apt is configured with. The only addition is the host's CA bundle (as a local CA),
so that pip inside the build trusts what this machine's HTTPS goes through. The rootfs
tarball is cached (`base_tarball`), the image storage, containers and their state live in
the work folder, and `close()` removes all of it.

podman on these machines: `runc` (crun refuses cgroups in hybrid mode), cgroupfs and a
file event log (no systemd), ulimits no higher than this shell's, host networking (no
bridges or firewall rules), the overlay driver where the kernel allows it, else vfs, and
`--format docker` so that HEALTHCHECK is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import shutil
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
BASE_MAX_AGE_SECONDS = 7 * 86400
TOOLS = ("podman", "debootstrap", "runc", "conmon")
SYSTEM_BLOB_CACHE = (Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
                     Path("/var/lib/containers/cache"), Path("/var/lib/containers"))


class PodmanError(Exception):
    """A podman command failed (its output is in the message)."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 `URIs:` or a one-line `deb`)."""
    files = sorted((sources / "sources.list.d").glob("*.sources")) + \
        sorted((sources / "sources.list.d").glob("*.list")) + [sources / "sources.list"]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.MULTILINE) + \
                re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def base_tarball(cache_dir: Path, work: Path) -> Path:
    """The base rootfs as a tarball, from the cache if fresh, else bootstrapped into `work`."""
    mirror = apt_mirror()
    key = hashlib.sha256(f"{SUITE} minbase {mirror}".encode()).hexdigest()[:12]
    tarball = cache_dir / f"debian-{SUITE}-minbase-{key}.tar"
    if tarball.exists() and time.time() - tarball.stat().st_mtime < BASE_MAX_AGE_SECONDS:
        return tarball
    rootfs = work / "rootfs"
    try:
        _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror], timeout=900)
        local_ca = rootfs / "usr/local/share/ca-certificates"
        local_ca.mkdir(parents=True, exist_ok=True)
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", local_ca / "host-ca-bundle.crt")
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."],
             timeout=600)
        partial.replace(tarball)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def _run(argv: list[str], *, timeout: float, env: dict[str, str] | None = None,
         check: bool = True, stdin=None) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=stdin)
    if check and done.returncode != 0:
        raise PodmanError(f"{' '.join(argv[:6])}... exited {done.returncode}:\n"
                          f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


class Podman:
    """podman with its storage, run state and configuration in `work`."""

    def __init__(self, work: Path):
        self.work = work
        self.conf = work / "containers.conf"
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
        self.conf.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
            "[engine]\n"
            'runtime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'tmp_dir = "{work / "tmp"}"\n'
            f'volume_path = "{work / "volumes"}"\n')
        self.driver = "overlay"
        # podman's image library keeps a blob-info cache at this fixed place for root,
        # whatever --root says: removed at close() unless it was there before.
        self._created = [path for path in SYSTEM_BLOB_CACHE if not path.exists()]
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf), "TMPDIR": str(work / "tmp")}
        (work / "tmp").mkdir(exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.work / f"storage-{self.driver}"),
                "--runroot", str(self.work / f"runroot-{self.driver}"),
                "--storage-driver", self.driver, "--events-backend", "file", *args]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True,
                 stdin=None) -> subprocess.CompletedProcess:
        return _run(self.argv(*args), timeout=timeout, env=self.env, check=check, stdin=stdin)

    def import_base(self, tarball: Path) -> None:
        """Import the rootfs as the Dockerfile's base; fall back to vfs where overlay fails."""
        for driver in ("overlay", "vfs"):
            self.driver = driver
            with tarball.open("rb") as stream:
                done = self("import", "-", BASE_IMAGE, timeout=600, check=False, stdin=stream)
            if done.returncode == 0:
                return
            self.reset()
        raise PodmanError(f"podman import failed: {done.stderr[-3000:]}")

    def build(self, context: Path, tag: str) -> None:
        # One layer on top of the base (vfs copies every layer in full), no pull.
        self("build", "--format", "docker", "--network", "host", "--pull=never",
             "--layers=false", "-t", tag, str(context), timeout=1200)

    def reset(self) -> None:
        """Remove every container and image, then the storage itself."""
        self("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
        self("system", "reset", "--force", check=False, timeout=300)
        _unmount_under(self.work)
        for name in (f"storage-{self.driver}", f"runroot-{self.driver}"):
            shutil.rmtree(self.work / name, ignore_errors=True)

    def close(self) -> None:
        for driver in ("overlay", "vfs"):
            self.driver = driver
            if (self.work / f"storage-{driver}").exists():
                self.reset()
        _unmount_under(self.work)
        shutil.rmtree(self.work, ignore_errors=True)
        for path in self._created:  # the cache file, then its folders if left empty
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)


def _unmount_under(folder: Path) -> None:
    """Unmount whatever podman left mounted below `folder` (deepest first)."""
    prefix = str(folder.resolve()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        points = [line.split()[4] for line in handle if line.split()[4].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
