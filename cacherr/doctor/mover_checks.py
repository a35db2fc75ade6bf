"""Doctor's checks of every way Unraid's mover can run, and whether each honours cacherr's list.

Mover Tuning's mover (age_mover) leaves the files in its "ignore files listed inside of a
text file" list on the pool; Unraid's stock mover has no list and moves everything. What
runs, by how it is started:

- a schedule: on Unraid before 7.2.1, Mover Tuning replaces the stock mover, so Unraid's
  schedule runs age_mover; from 7.2.1 the two have separate schedules and Unraid's own
  (shareMoverSchedule, Settings → Scheduler → Mover Settings) runs the stock mover;
- Mover Tuning's "Force move of all files on a schedule" (force, cron): the stock mover,
  on every version;
- the Main page's Move button: before 7.2.1, age_mover only if Mover Tuning's "Move Now
  button follows plug-in filters" (movenow) is Yes; from 7.2.1 always the stock mover;
- a share's own "Move Now" (Shares → <Share> → Mover Tuning): the stock mover for that
  share, on every version;
- age_mover itself skips the list for a share when the pool is above "Move All from
  Primary->Secondary (cache:yes) shares when disk is above a certain percentage"
  (omovercfg="yes" with omoverthresh), and a share override (shareOverrideConfig/<Share>.cfg
  with moverOverride="yes") can name its own list and threshold: filelistf="yes" there
  replaces the list, omovercfg="yes" the threshold; anything else there keeps the global
  value.

Button presses cannot be seen in any file: those findings say what the button does.

The settings are read as age_mover and Mover Tuning's pages read them (cacherr.host.unraid).
"""

from __future__ import annotations

import re
from pathlib import Path

from cacherr.config.model import HostConfig
from cacherr.cycle.moverlist import BEGIN, END
from cacherr.doctor.findings import Finding
from cacherr.host import unraid

SPLIT_SCHEDULES = (7, 2, 1)  # Unraid's own mover schedule runs the stock mover from here on
TUNING_PAGE = "Settings → Scheduler → Mover Tuning"
MOVE_ALL = "'Move All from Primary->Secondary (cache:yes) shares when disk is above a certain " \
    "percentage'"


def check_mover(host: HostConfig, version: tuple[int, ...], exclude_file: Path,
                shares: list[str] | None) -> list[Finding]:
    """Given where Unraid's files are, its version, cacherr's list file and the shares
    cacherr caches (None: all), return a finding for every way the mover would move cached
    files back, each naming the setting and its fix (or one ok per path that is safe)."""
    tuning = unraid.mover_tuning_config(host)
    findings = _list_setting(tuning, exclude_file)
    if tuning is not None:
        findings += _move_all_threshold(tuning)
        findings += _share_overrides(host, exclude_file, shares)
        findings += _forced_move(host, tuning)
    findings += _stock_schedule(host, version)
    findings += _move_button(tuning, version)
    findings += _list_lines(exclude_file)
    return findings


def _list_setting(tuning: dict[str, str] | None, exclude_file: Path) -> list[Finding]:
    exclude = str(exclude_file)
    if tuning is None:
        return [Finding("warning", "mover", "Mover Tuning is not installed: the mover will move "
                        "cached files back", "install Mover Tuning and set 'Ignore files "
                        f"listed inside of a text file' to Yes with the path {exclude}")]
    enabled, listed = tuning.get("filelistf", ""), tuning.get("filelistv", "").strip()
    if enabled == "yes" and listed == exclude:
        return [Finding("ok", "mover", f"Mover Tuning reads {exclude}")]
    crlf = " (the file has Windows line ends, which Mover Tuning does not read)" \
        if "\r" in enabled + listed else ""
    return [Finding("problem", "mover", f"Mover Tuning does not read cacherr's list "
                    f"(filelistf={enabled!r}, filelistv={listed!r}){crlf}",
                    f"{TUNING_PAGE}: set 'Ignore files listed inside of a text file' to Yes "
                    f"and its path to {exclude}")]


def _threshold(settings: dict[str, str]) -> str | None:
    """The move-all threshold a settings file sets: a percentage, "" (none), None (not set)."""
    if settings.get("omovercfg") != "yes":
        return None
    return settings.get("omoverthresh", "").strip()


def _threshold_finding(threshold: str, where: str, fix: str) -> Finding:
    above = "always (above 0%)" if threshold == "0" else f"once the pool is above {threshold}%"
    return Finding("warning", "mover", f"{where} moves every file of a share {above}, listed "
                   f"or not (omovercfg=\"yes\", omoverthresh=\"{threshold}\")", fix)


def _move_all_threshold(tuning: dict[str, str]) -> list[Finding]:
    threshold = _threshold(tuning)
    if not threshold:  # omovercfg="no": Mover Tuning ignores omoverthresh
        return []
    return [_threshold_finding(
        threshold, f"Mover Tuning's {MOVE_ALL}",
        f"{TUNING_PAGE}: set it to No, or keep the pool well below {threshold}% "
        "(cache.max_size)")]


def _share_overrides(host: HostConfig, exclude_file: Path,
                     shares: list[str] | None) -> list[Finding]:
    findings = []
    for share, settings in unraid.mover_tuning_overrides(host).items():
        if shares is not None and share not in shares:
            continue
        where = f"shareOverrideConfig/{share}.cfg"
        page = f"Shares → {share} → Mover Tuning"
        listed = settings.get("filelistv", "").strip()
        if settings.get("filelistf") == "yes" and listed != str(exclude_file):
            findings.append(Finding(
                "problem", "mover", f"share {share}'s Mover Tuning override ({where}) reads "
                f"the list {listed!r}, not cacherr's", f"{page}: set 'File list path' to "
                f"{exclude_file}, or 'Skip files listed in text file' to No (the global list "
                "then applies)"))
        threshold = _threshold(settings)
        if threshold:
            findings.append(_threshold_finding(
                threshold, f"share {share}'s Mover Tuning override ({where})",
                f"{page}: set {MOVE_ALL} to No"))
    return findings


def _forced_move(host: HostConfig, tuning: dict[str, str]) -> list[Finding]:
    scheduled = unraid.mover_cron(host, "ca.mover.tuning")
    if tuning.get("force") != "yes" and not scheduled:
        return []
    when = tuning.get("cron", "").strip() or "its schedule"
    return [Finding("warning", "mover", "Mover Tuning's 'Force move of all files on a "
                    f"schedule' (force=\"yes\", cron=\"{when}\") runs Unraid's stock mover, "
                    "which ignores the list and moves every cached file back",
                    f"{TUNING_PAGE} (advanced settings): set 'Force move of all files on a "
                    "schedule' to No")]


def _stock_schedule(host: HostConfig, version: tuple[int, ...]) -> list[Finding]:
    if version < SPLIT_SCHEDULES:
        return []
    live = (unraid.var_ini(host) or {}).get("shareMoverSchedule")
    saved = (unraid.share_settings(host) or {}).get("shareMoverSchedule")
    schedule = (live if live is not None else saved or "").strip()
    cron = unraid.mover_cron(host, "dynamix") or ""
    if schedule.lower() in ("", "disabled") and "mover" not in cron:
        return [Finding("ok", "mover", "Unraid's own mover schedule is disabled")]
    return [Finding("warning", "mover", "Unraid 7.2.1+'s built-in mover has its own schedule "
                    f"(shareMoverSchedule=\"{schedule}\") and ignores Mover Tuning's list",
                    "Settings → Scheduler → Mover Settings: set the schedule to Disabled, and "
                    f"schedule Mover Tuning in {TUNING_PAGE}")]


def _move_button(tuning: dict[str, str] | None, version: tuple[int, ...]) -> list[Finding]:
    if version >= SPLIT_SCHEDULES:
        return [Finding("warning", "mover", "on Unraid 7.2.1+ the Main page's Move button runs "
                        "the stock mover, which ignores the list and moves every cached file "
                        "back", f"move with Mover Tuning's own Move now ({TUNING_PAGE}); never "
                        "with the Main page's Move, nor a share's Mover Tuning 'Move Now'")]
    if tuning is not None and tuning.get("movenow", "yes") == "no":  # default.cfg: yes
        return [Finding("warning", "mover", "Mover Tuning's 'Move Now button follows plug-in "
                        "filters' is No (movenow=\"no\"): the Main page's Move button runs the "
                        "stock mover, which ignores the list",
                        f"{TUNING_PAGE} (advanced settings): set it to Yes")]
    return []


def _list_lines(exclude_file: Path) -> list[Finding]:
    """The user's own lines in the list (outside cacherr's block) that are not pool paths:
    Mover Tuning keeps only lines holding /mnt/<pool>/<share>, so they protect nothing."""
    try:
        lines = exclude_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    own, inside = [], False
    for line in lines:
        if line in (BEGIN, END):
            inside = line == BEGIN
        elif not inside and line.strip() and not line.lstrip().startswith("#"):
            own.append(line.strip())
    unusable = [line for line in own if not _is_pool_path(line)]
    if not unusable:
        return []
    return [Finding("warning", "mover", f"{len(unusable)} line(s) of {exclude_file} are not "
                    f"pool paths (first: {unusable[0]}): Mover Tuning ignores them",
                    "write each as the file's path on its pool, /mnt/<pool>/<share>/..., "
                    "not /mnt/user/... or a container's path")]


NOT_POOLS = re.compile(r"^(user0?|disk\d+|disks|remotes|addons|rootshare)$")


def _is_pool_path(line: str) -> bool:
    """/mnt/<pool>/<share>/...: not a user share, an array disk or an Unassigned Devices mount."""
    parts = Path(line).parts
    return len(parts) >= 4 and parts[:2] == ("/", "mnt") and not NOT_POOLS.match(parts[2])
