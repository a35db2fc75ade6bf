"""Engines for every row of SPEC §4 and every sidecar policy, named by a spec such as
"union/move/subtitles", so a subprocess (the crash and strace tests) rebuilds the same
engine; and the check that the ledger agrees with the disks, file by file."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from cacherr.config.model import SymlinkLayout, UnionLayout
from cacherr.engine import Engine
from cacherr.engine.paths import backup_path
from cacherr.state.ledger import FileIdentity, Ledger
from tests.integration.engine_helpers.world import World

STAMP_NS = 1_600_000_000_123_456_789


def parse(spec: str) -> tuple[str, str, str]:
    """"layout/original[/sidecars]" → (layout, original, sidecars)."""
    layout, original, *rest = spec.split("/")
    return layout, original, rest[0] if rest else "none"


def engine(
    world: World,
    spec: str,
    ledger: Ledger | None = None,
    *,
    roots: Sequence[Path] | None = None,
    **options,
) -> Engine:
    """The engine of one row; symlink layout: `roots` hold the originals (default: the
    world's one root)."""
    layout, original, sidecars = parse(spec)
    ledger = ledger or Ledger.open(world.state_dir)
    if layout == "union":
        union = UnionLayout(
            view=Path(world.view) if world.view else None,  # type: ignore[arg-type]
            fast=Path(world.fast),
            slow=tuple(Path(s) for s in world.slow),
        )
        return Engine(
            ledger, layout="union", original=original, union=union, sidecars=sidecars, **options
        )
    symlink = SymlinkLayout(dir=world.symlink_dir, plex_dir=str(world.symlink_dir))
    return Engine(
        ledger,
        layout="symlink",
        original=original,
        symlink=symlink,
        roots=list(roots) if roots else [world.symlink_root],
        sidecars=sidecars,
        **options,
    )


def write_original(world: World, spec: str, relative_path: str, data: bytes) -> Path:
    return world.write_original(parse(spec)[0], relative_path, data)


def write_on_fast(world: World, relative_path: str, data: bytes) -> Path:
    """A file that is already on the pool (a fresh download): what adopt takes."""
    path = Path(world.fast) / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(STAMP_NS, STAMP_NS))
    return path


def plex_path(world: World, spec: str, relative_path: str) -> Path:
    return world.plex_path(parse(spec)[0], relative_path)


def fast_root(world: World, spec: str) -> Path:
    return Path(world.fast) if parse(spec)[0] == "union" else world.symlink_dir


def _identity(path: Path) -> FileIdentity | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return FileIdentity.of_stat(st) if stat.S_ISREG(st.st_mode) else None


def working_files(world: World, spec: str, folders: set[str]) -> list[Path]:
    """cacherr's hidden working names (temporaries, links, backups) in the given folders
    (relative), on every branch or root."""
    layout = parse(spec)[0]
    bases = [Path(world.fast), *map(Path, world.slow)]
    if layout == "symlink":
        bases = [world.symlink_dir, world.symlink_root]
    found = []
    for base in bases:
        for folder in folders:
            here = base / folder
            if here.is_dir():
                found += [p for p in here.iterdir() if ".cacherr-" in p.name]
    return sorted(found)


def check_consistent(
    world: World, spec: str, files: dict[str, bytes], read_plex=None
) -> dict[str, str]:
    """Given the files an action was about (path → content), assert that what Plex reads
    (through the view, or `read_plex(relative_path)`) is complete, no action is left
    running, no working file is left except recorded backups, and every ledger entry
    matches the disks; return path → state (cached, adopted or not-cached)."""
    read_plex = read_plex or (lambda rel: plex_path(world, spec, rel).read_bytes())
    layout = parse(spec)[0]
    ledger = Ledger.open(world.state_dir)
    try:
        running = ledger.conn.execute(
            "SELECT count(*) FROM journal_actions WHERE state = 'running'"
        ).fetchone()[0]
        entries = {rel: ledger.get(rel) for rel in files}
        refs = {rel: ledger.sidecar_refs(rel) for rel in files}
        in_ledger = {e.relative_path for e in ledger.files(sidecars=True)}
    finally:
        ledger.close()
    assert running == 0
    states: dict[str, str] = {}
    allowed: list[Path] = []
    for rel, data in files.items():
        assert read_plex(rel) == data, rel
        entry = entries[rel]
        if entry is not None and entry.sidecar_of is not None:
            # A sidecar is never left behind by its videos: some cached video references it.
            assert refs[rel] and set(refs[rel]) <= in_ledger, (rel, refs[rel])
        if layout == "union":
            fast = Path(world.fast) / rel
            slow = [Path(b) / rel for b in world.slow if _identity(Path(b) / rel) is not None]
            backups = [backup_path(Path(b) / rel) for b in world.slow]
            backups = [b for b in backups if os.path.lexists(b)]
            if entry is None:
                assert not os.path.lexists(fast), rel
                assert len(slow) == 1 and slow[0].read_bytes() == data, (rel, slow)
                assert backups == [], rel
            else:
                assert entry.fast.matches(_identity(fast)), rel
                if entry.kind == "adopted":
                    assert entry.slow is None or entry.slow.matches(_identity(entry.slow_path))
                elif entry.original == "shadow":
                    assert entry.slow.matches(_identity(entry.slow_path)) and backups == [], rel
                elif entry.original == "backup":
                    assert backups == [entry.slow_path.with_name(entry.backup_name)], rel
                    assert entry.slow.matches(_identity(backups[0])) and slow == [], rel
                    allowed += backups
                else:
                    assert slow == [] and backups == [], rel
        else:
            original, copy = world.symlink_root / rel, world.symlink_dir / rel
            backup = backup_path(original)
            if entry is None:
                assert _identity(original) is not None and not os.path.lexists(copy), rel
                assert not os.path.lexists(backup), rel
            else:
                assert original.is_symlink() and entry.fast.matches(_identity(copy)), rel
                if entry.original == "backup":
                    assert entry.slow.matches(_identity(backup)), rel
                    allowed.append(backup)
                else:
                    assert not os.path.lexists(backup), rel
        states[rel] = "not-cached" if entry is None else entry.kind
    folders = {rel.rpartition("/")[0] for rel in files}
    assert [p for p in working_files(world, spec, folders) if p not in allowed] == []
    return states
