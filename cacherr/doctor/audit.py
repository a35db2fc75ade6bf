"""Doctor's audit of the cache: untracked (changed) files and, in the symlink layout, the
symlinks cacherr left to them, duplicates cacherr does not
track, orphan backups, leftover temporary files and empty folders; `--fix` repairs the
safe ones (through the engine's tidy functions): a temporary file that no journal entry
knows and no process has open is cacherr's own leftover, and is removed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from cacherr.config.model import Config
from cacherr.cycle import moverlist
from cacherr.doctor.findings import Finding
from cacherr.engine import paths, tidy
from cacherr.host.processes import open_by_any_process
from cacherr.state.ledger import FileIdentity, Ledger


def _walk(root: Path):
    """(folder, subfolders, files) under root, never following symlinks."""
    if root.is_dir():
        yield from os.walk(root, followlinks=False)


def audit(config: Config, ledger: Ledger, *, fix: bool) -> list[Finding]:
    cache = config.cache
    fast = Path(cache.union.fast if cache.layout == "union" else cache.symlink.dir)
    slow = list(cache.union.slow) if cache.layout == "union" else [Path(m.host) for m in config.paths]
    findings: list[Finding] = []
    tracked = {entry.relative_path: entry for entry in ledger.files(sidecars=True)}
    unfinished = _unfinished_paths(ledger)

    for entry in tracked.values():
        try:
            now = FileIdentity.of(entry.fast_path)
        except FileNotFoundError:
            findings.append(Finding("problem", "untracked", f"{entry.fast_path} is in the ledger "
                                    "but gone from the fast branch",
                                    "run `cacherr run --once`; recovery and the next plan "
                                    "settle it"))
            continue
        if not entry.fast.matches(now):
            findings.append(Finding("warning", "untracked", f"{entry.fast_path} changed since "
                                    "cacherr cached it (size, mtime, ctime or inode); it is "
                                    "left alone",
                                    "if the new file is right, `cacherr evict` skips it; "
                                    "remove or move it yourself"))

    links = _link_prefixes(config) if cache.layout == "symlink" else ()
    linked = {str(entry.slow_path) for entry in tracked.values() if entry.slow_path}
    for branch in slow:
        for folder, _subfolders, files in _walk(branch):
            for name in files:
                if links and str(Path(folder) / name) not in linked:
                    finding = _untracked_link(Path(folder) / name, links, config)
                    if finding is not None:
                        findings.append(finding)
                if not (name.startswith(".") and name.endswith(paths.BACKUP_SUFFIX)):
                    continue
                backup = Path(folder) / name
                original_relative = str((Path(folder) / name[1:-len(paths.BACKUP_SUFFIX)])
                                        .relative_to(branch))
                if original_relative in tracked and tracked[original_relative].backup_name == name:
                    continue
                if fix and tidy.restore_orphan_backup(backup) is not None:
                    findings.append(Finding("ok", "orphan-backup", f"restored {backup}"))
                    continue
                findings.append(Finding("warning", "orphan-backup", f"{backup} belongs to no "
                                        "cached file", "cacherr doctor --fix restores it when "
                                        "the original name is free; otherwise compare and "
                                        "delete one"))
    empty: list[Path] = []
    for folder, subfolders, files in _walk(fast):
        here = Path(folder)
        for name in files:
            path = here / name
            relative = str(path.relative_to(fast))
            if tidy.is_working_name(name):
                findings.append(_working_file(path, relative, unfinished, fix))
            elif cache.layout == "union" and relative not in tracked and \
                    any(os.path.lexists(branch / relative) for branch in slow):
                findings.append(Finding("warning", "duplicate", f"{relative} is on the fast "
                                        "branch and a slow branch, and cacherr did not put it "
                                        "there", "let the mover settle it, or delete one copy "
                                        "after comparing them"))
        if not subfolders and not files and len(here.relative_to(fast).parts) >= 2:
            empty.append(here)
    for folder in empty:
        if fix and tidy.remove_empty_folder(fast, folder):
            findings.append(Finding("ok", "empty-folder", f"removed empty {folder}"))
        else:
            findings.append(Finding("warning", "empty-folder", f"{folder} is empty",
                                    "cacherr doctor --fix removes it"))

    if not findings:
        findings.append(Finding("ok", "audit", f"{len(tracked)} cached files, nothing stray"))
    return findings + mover_list_length(Path(cache.mover_exclude_file), fast)


def _link_prefixes(config: Config) -> tuple[str, ...]:
    """The texts cacherr's symlinks start with: the copies' folder as Plex sees it, and as
    this host does."""
    symlink = config.cache.symlink
    return tuple({symlink.plex_dir.rstrip("/") + "/", str(symlink.dir).rstrip("/") + "/"})


def _untracked_link(path: Path, prefixes: tuple[str, ...], config: Config) -> Finding | None:
    """A symlink into cacherr's copies that the ledger does not know: cacherr untracked the
    file when someone changed it, and left the symlink, the copy and any backup for the
    user; until one is chosen, the file cannot be cached again."""
    try:
        text = os.readlink(path)
    except OSError:
        return None  # not a symlink
    if not text.startswith(prefixes):
        return None
    relative = text[len(next(p for p in prefixes if text.startswith(p))):]
    copy = Path(config.cache.symlink.dir) / relative
    backup = path.with_name(f".{path.name}{paths.BACKUP_SUFFIX}")
    has_backup = os.path.lexists(backup)
    keep = (f"keep one version under {path.name!r}: the copy {copy} (what Plex reads now) "
            f"or the backup {backup}" if has_backup else
            f"replace the symlink with the copy {copy} (what Plex reads now)")
    return Finding("warning", "untracked",
                   f"{path} is cacherr's symlink to {copy}, but cacherr no longer tracks it "
                   "(someone changed the file); it stays as it is and is not cached again "
                   "until you decide", f"compare them, {keep}, and delete the rest")


def mover_list_length(listing: Path, fast: Path) -> list[Finding]:
    """Given the mover list and the fast root, warn when one share's lines approach what
    Mover Tuning can pass to `find` (past it: "Argument list too long", and nothing in
    that share moves)."""
    try:
        text = listing.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    sizes = moverlist.share_sizes(text.splitlines(), fast)
    findings = []
    for share, size in sorted(sizes.items()):
        if size >= 0.8 * moverlist.SHARE_LIMIT_BYTES:
            findings.append(Finding(
                "warning", "mover-list",
                f"the lines for share {share!r} in {listing} make "
                f"{size:,} bytes of Mover Tuning's find command (it fails past about "
                f"{moverlist.SHARE_LIMIT_BYTES:,}, and then moves nothing in that share)",
                "cache fewer files of that share (lower max_size or the rules' reach); "
                "cacherr already writes one line per fully cached folder"))
    return findings


def _unfinished_paths(ledger: Ledger) -> set[str]:
    """The files of actions the journal still has running (a crash left them)."""
    try:
        rows = ledger.conn.execute(
            "SELECT relative_path FROM journal_actions WHERE state = 'running'").fetchall()
    except sqlite3.Error:  # no state database yet
        return set()
    return {row[0] for row in rows}


def _working_file(path: Path, relative: str, unfinished: set[str], fix: bool) -> Finding:
    """What to say (and, with --fix, do) about a temporary copy or link on the fast branch."""
    name = path.name
    suffix = next(s for s in tidy.STRAY_SUFFIXES if name.endswith(s))
    original = str(Path(relative).parent / name[1:-len(suffix)])
    if original in unfinished:
        return Finding("warning", "leftover", f"{path} belongs to an unfinished {original} "
                       "action", "start cacherr (run or run --once): recovery finishes or "
                       "undoes the action and removes it")
    if fix and tidy.remove_stray_working_file(path, open_by_any_process):
        return Finding("ok", "leftover", f"removed {path}: a temporary file of cacherr's (its "
                       "name) that no journal entry knows and no process has open")
    why = "a process has it open" if open_by_any_process(path) else "no journal entry knows it"
    return Finding("warning", "leftover", f"{path} is a temporary file of cacherr's; {why}",
                   "cacherr doctor --fix removes it once no process has it open"
                   if not fix else "it is still open: wait for that process, then run "
                   "cacherr doctor --fix again")
