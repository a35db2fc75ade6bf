"""What this process can see of the host, and may do to its files.

cacherr runs on the host (the plugin, plain Linux) or in a container (the image). Three
questions change what it may conclude:

- Does it run in a container? Then only paths under /mnt are the host's own paths (the
  template and compose mount /mnt at /mnt; /config is somewhere else on the host).
- Are the host's process ids visible (the host's PID namespace)? In a container's own PID
  namespace, the PID in the host's `/var/run/mover.pid` names nothing, or someone else.
- Which capabilities does it hold? The image drops root but keeps CHOWN, DAC_OVERRIDE,
  FOWNER and FSETID, which is what keeping any file's owner, mode and times takes.

Files read (a fixed allow-list, SPEC §4 invariant 5): /proc/self/status, /proc/2/status,
/proc/self/mountinfo (through host.mounts) and /run/.containerenv.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cacherr.host.mounts import mount_of

# Linux capability numbers (include/uapi/linux/capability.h).
CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_FOWNER = 3
CAP_FSETID = 4
# Giving a copy another owner takes CHOWN; then setting its mode and times (it is no
# longer ours) takes FOWNER, and keeping a set-group-id bit of a group we are not in
# takes FSETID (without it the kernel clears the bit silently).
KEEP_OWNER_CAPABILITIES = (1 << CAP_CHOWN) | (1 << CAP_FOWNER) | (1 << CAP_FSETID)

# The host folders the template and compose mount at the same path inside the container.
HOST_SHARED_ROOTS = (Path("/mnt"),)
# Set by cacherr's image (Dockerfile); `container` is set by podman, LXC, systemd-nspawn.
IMAGE_MARKER = "CACHERR_IN_CONTAINER"
PODMAN_MARKER = Path("/run/.containerenv")
# Not /.dockerenv: it is left behind in machines and VMs made from Docker images. Docker
# itself is recognised by its own PID namespace.


def effective_capabilities(status_file: Path = Path("/proc/self/status")) -> int | None:
    """The `CapEff` mask of this process, or None if it cannot be read."""
    try:
        for line in status_file.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("CapEff:"):
                return int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError):
        return None
    return None


def can_keep_any_owner(capabilities: int | None = None) -> bool:
    """True if this process can give a copy any owner, then its mode and times: it holds
    CAP_CHOWN, CAP_FOWNER and CAP_FSETID (root does; so does the image's PUID user).
    Given no mask, read this process's; where it cannot be read, only root can."""
    if capabilities is None:
        capabilities = effective_capabilities()
    if capabilities is None:
        return os.geteuid() == 0
    return capabilities & KEEP_OWNER_CAPABILITIES == KEEP_OWNER_CAPABILITIES


def sees_host_pids(proc: Path = Path("/proc")) -> bool:
    """True in the host's (initial) PID namespace: only there is PID 2 the kernel's
    kthreadd, whose parent is 0. In a container's own namespace, PID 2 is one of the
    container's processes, or nothing."""
    try:
        status = (proc / "2" / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return fields.get("Name", "").strip() == "kthreadd" and fields.get("PPid", "").strip() == "0"


def in_container(environ: Mapping[str, str] | None = None) -> bool:
    """True in cacherr's image, in a container that says so, or in any own PID namespace."""
    environ = os.environ if environ is None else environ
    if environ.get(IMAGE_MARKER, "").strip() not in ("", "0"):
        return True
    if environ.get("container", "").strip() or PODMAN_MARKER.exists():
        return True
    return not sees_host_pids()


def how_to_stop_first(command: str, environ: Mapping[str, str] | None = None) -> str:
    """Given a command that needs the service stopped (e.g. "doctor --fix"), return how to
    run it: in a container, `docker exec` cannot reach a stopped container, so the command
    runs once in a new one with the same volumes (its entry point drops to PUID:PGID too)."""
    environ = os.environ if environ is None else environ
    if not in_container(environ):
        return f"stop the service first (Unraid: /etc/rc.d/rc.cacherr stop), then run " \
               f"`cacherr {command}` again"
    puid, pgid = environ.get("PUID", "99"), environ.get("PGID", "100")
    return (f"stop the container, then run the command once in a new one with its volumes "
            f"and the variables your rules use: `docker stop cacherr && docker run --rm "
            f"--volumes-from cacherr -e PUID={puid} -e PGID={pgid} -e PLEX_URL=... "
            f"-e PLEX_TOKEN=... IMAGE {command}` (cacherr: your container's name, IMAGE: its "
            f"image), then `docker start cacherr`")


def under_host_shared_root(path: str | Path) -> bool:
    """True if `path` is under /mnt, which the host sees at the same path."""
    absolute = Path(os.path.normpath(os.path.abspath(path)))
    return any(absolute == root or root in absolute.parents for root in HOST_SHARED_ROOTS)


def shared_with_host(path: str | Path, *, container: bool | None = None) -> bool:
    """True if the host sees `path` as the same file: always outside a container; in one,
    only under /mnt."""
    if container is None:
        container = in_container()
    return not container or under_host_shared_root(path)


def mounted_from_outside(folder: str | Path) -> bool:
    """True if `folder` lies on a mount of its own (in a container: a volume, e.g. the host's
    /var/run), not on the container's root file system."""
    try:
        return mount_of(folder).mount_point != "/"
    except (OSError, LookupError):
        return False


def pool_of(fast: str | Path) -> Path | None:
    """Given the fast branch (or the symlink layout's folder), return the pool's mount
    folder, `/mnt/NAME`, or None if it is not under /mnt."""
    parts = Path(os.path.normpath(os.path.abspath(fast))).parts
    if len(parts) < 3 or parts[1] != "mnt":
        return None
    return Path("/", parts[1], parts[2])


def default_mover_list(state_dir: str | Path, fast: str | Path, *,
                       container: bool | None = None) -> Path:
    """Where the mover list goes when the rules do not say: `mover-exclude.txt` in
    `state_dir`, if the host sees that path as it is. In a container whose state_dir is
    not under /mnt (e.g. /config/state), Mover Tuning on the host could not read it there:
    then `/mnt/POOL/appdata/cacherr/mover-exclude.txt`, as rules/unraid.yaml has it."""
    beside_state = Path(state_dir) / "mover-exclude.txt"
    if shared_with_host(beside_state, container=container):
        return beside_state
    pool = pool_of(fast)
    return beside_state if pool is None else pool / "appdata" / "cacherr" / "mover-exclude.txt"
