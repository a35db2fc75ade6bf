"""Doctor's checks of what a container hides: paths the host cannot use, the mover's PID
file and process, and the capabilities that keep each file's owner."""

from __future__ import annotations

from cacherr.config.model import Config
from cacherr.doctor.findings import Finding
from cacherr.host import unraid
from cacherr.host.container import (
    can_keep_any_owner,
    default_mover_list,
    in_container,
    under_host_shared_root,
)


def check_container(config: Config, *, container: bool | None = None) -> list[Finding]:
    """In a container: the mover list is under /mnt (the host reads it at the same path),
    the mover guard can see the host's mover, and copies can keep any owner. Elsewhere:
    nothing to check."""
    if not (in_container() if container is None else container):
        return []
    findings = []
    exclude = config.cache.mover_exclude_file
    if not under_host_shared_root(exclude):
        fast = config.cache.union.fast if config.cache.union else config.cache.symlink.dir
        suggested = default_mover_list("/config/state", fast, container=True)
        findings.append(Finding(
            "warning", "container", f"mover_exclude_file {exclude} is not under /mnt: the "
            "host (Mover Tuning) cannot read it at that path",
            f"set cache.mover_exclude_file to a path under /mnt, e.g. {suggested}, and "
            "point Mover Tuning at the same path"))
    if unraid.looks_like_unraid(config.host) and unraid.mover_running(config.host) is None:
        findings.append(Finding(
            "unknown", "container", f"the mover's PID file folder "
            f"({config.host.mover_pid_file.parent}) is not the host's: the mover guard is "
            "unknown and cannot hold transfers while the mover runs",
            "map the host's /var/run read-only to /var/run (template: Mover PID file folder)"))
    if not can_keep_any_owner():
        findings.append(Finding(
            "warning", "container", "without the CHOWN, FOWNER and FSETID capabilities, "
            "files of other owners are skipped", "do not drop those capabilities "
            "(--cap-drop), or run with PUID=0"))
    return findings or [Finding("ok", "container", f"mover list {exclude} is shared with the "
                                "host; owners can be kept")]
