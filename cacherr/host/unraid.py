"""Unraid's state and config files, read from a fixed allow-list (invariant 5).

Every reader takes the folder from `config.host` (so tests point them at a sandbox) and
returns None when the file is not visible (e.g. in Docker without the mounts): callers
report "unknown", never "not running".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cacherr.config.model import HostConfig
from cacherr.host.container import in_container, mounted_from_outside, sees_host_pids

_INI_LINE = re.compile(r'^\s*([A-Za-z0-9_.]+)\s*=\s*"?(.*?)"?\s*$')


def read_ini(path: Path) -> dict[str, str] | None:
    """Unraid's `key="value"` files (sections ignored); None if missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        match = _INI_LINE.match(line)
        if match and not line.lstrip().startswith(("#", ";", "[")):
            values[match.group(1)] = match.group(2)
    return values


def looks_like_unraid(host: HostConfig) -> bool:
    """True on Unraid, or in a container on Unraid (dockerMan sets HOST_OS=Unraid): there,
    a guard whose files are missing is "unknown"; elsewhere there is no Unraid guard."""
    return (host.emhttp_dir.is_dir() or (host.boot_config_dir / "shares").is_dir()
            or os.environ.get("HOST_OS", "").lower() == "unraid")


def var_ini(host: HostConfig) -> dict[str, str] | None:
    return read_ini(host.emhttp_dir / "var.ini")


def share_config(host: HostConfig, share: str) -> dict[str, str] | None:
    return read_ini(host.boot_config_dir / "shares" / f"{share}.cfg")


MOVER_TUNING_DIR = Path("plugins") / "ca.mover.tuning"
OVERRIDE_ON = 'moverOverride="yes"'


def read_mover_tuning_file(path: Path) -> dict[str, str] | None:
    """Given a Mover Tuning settings file, return its values as its mover (age_mover) reads
    them; None if missing or unreadable.

    age_mover takes, for a key, the first line whose text before the first `=` is exactly
    the key, and the rest of that line minus one trailing and then one leading `"`. A
    line it does not read (the last one without a newline) is left out; a CRLF line keeps
    its `\r` (so `filelistf="yes"` + CRLF is not "yes" to it either).
    """
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")  # keeps any \r, as bash does
    except OSError:
        return None
    values: dict[str, str] = {}
    for line in text.split("\n")[:-1]:  # `while read` skips a last line without newline
        key, separator, value = line.partition("=")
        if separator and key not in values:
            value = value[:-1] if value.endswith('"') else value
            values[key] = value[1:] if value.startswith('"') else value
    return values


def mover_tuning_config(host: HostConfig) -> dict[str, str] | None:
    """Mover Tuning's global settings (None: Mover Tuning is not installed or not visible)."""
    return read_mover_tuning_file(host.boot_config_dir / MOVER_TUNING_DIR / "ca.mover.tuning.cfg")


def mover_tuning_overrides(host: HostConfig) -> dict[str, dict[str, str]]:
    """{share: settings} of the per-share override files Mover Tuning applies
    (shareOverrideConfig/<share>.cfg holding moverOverride="yes", as age_mover greps it)."""
    folder = host.boot_config_dir / MOVER_TUNING_DIR / "shareOverrideConfig"
    found = {}
    for path in sorted(folder.glob("*.cfg")) if folder.is_dir() else []:
        try:
            active = OVERRIDE_ON in path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        values = read_mover_tuning_file(path) if active else None
        if values is not None:
            found[path.stem] = values
    return found


def share_settings(host: HostConfig) -> dict[str, str] | None:
    """The global share settings (share.cfg: shareMoverSchedule, ...); None if not visible."""
    return read_ini(host.boot_config_dir / "share.cfg")


def mover_cron(host: HostConfig, owner: str) -> str | None:
    """The mover schedule a plugin left for update_cron (`plugins/<owner>/mover.cron`:
    `dynamix` for Unraid's own, `ca.mover.tuning` for its forced move); None if none."""
    try:
        return (host.boot_config_dir / "plugins" / owner / "mover.cron").read_text(
            encoding="utf-8", errors="replace")
    except OSError:
        return None


def unraid_version(host: HostConfig) -> tuple[int, ...] | None:
    """From var.ini's `version` (e.g. 7.2.1 → (7, 2, 1)); None when not on Unraid."""
    values = var_ini(host)
    if not values or "version" not in values:
        return None
    numbers = re.findall(r"\d+", values["version"])
    return tuple(int(n) for n in numbers[:3]) or None


def mover_running(host: HostConfig, *, container: bool | None = None,
                  host_pids: bool | None = None) -> bool | None:
    """Whether the Unraid mover runs, from its PID file: True, False, or None (unknown).

    The mover writes the file when it starts and deletes it when it is done. On the host,
    a file naming a live process means running, a stale one (its process gone) not. In a
    container (`container`; detected when None) two things are hidden from cacherr:
    - the host's processes, unless it shares the host's PID namespace (`host_pids`,
      e.g. `--pid=host`): then a present file means running, as in Mover Tuning's own
      page, since the PID names nothing here, or one of the container's own processes;
    - the host's /var/run itself, unless mounted: a missing file in the container's own
      folder says nothing, so the guard is unknown (SPEC §4: never "not running").
    """
    pid_file = host.mover_pid_file
    if container is None:
        container = in_container()
    if host_pids is None:
        host_pids = sees_host_pids()
    if not pid_file.parent.is_dir():
        return None
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        if container and not mounted_from_outside(pid_file.parent):
            return None
        return False
    except OSError:
        return None
    if not host_pids:
        return True
    try:
        pid = int(text or "0")
    except ValueError:
        return None
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parity_check_running(host: HostConfig) -> bool | None:
    """True while a parity check or rebuild runs (`mdResyncPos` not 0); None if unknown."""
    values = var_ini(host)
    if values is None:
        return None
    return values.get("mdResyncPos", "0") not in ("", "0")


def share_pools(host: HostConfig, share: str) -> tuple[str, set[str]] | None:
    """(shareUseCache, the pools the share uses) from its config; None if not readable."""
    values = share_config(host, share)
    if values is None:
        return None
    pools = {values.get(key, "") for key in ("shareCachePool", "shareCachePool2")} - {""}
    return values.get("shareUseCache", "no"), pools
