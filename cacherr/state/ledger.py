"""The ledger: what cacherr cached or adopted, for whom, and what it did.

The ledger is the source of truth about the cache; the mover exclusion file is derived
from it. It shares the state database with the engine's journal, so that a transfer's
last journal step and its ledger record commit together.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cacherr.state import db


@dataclass(frozen=True)
class FileIdentity:
    """A file as measured on its branch: a change in any field means someone else wrote it.

    `ctime_ns` catches a writer that keeps size and mtime (a tagger, `rsync --inplace -t`);
    None where it was not recorded (entries from before cacherr kept it). Compare a
    recorded identity with a file through `matches`, which skips an unrecorded ctime.
    """

    size_bytes: int
    mtime_ns: int
    inode: int
    ctime_ns: int | None = None

    @classmethod
    def of(cls, path: str | Path) -> FileIdentity:
        """Given a physical path, return its identity (lstat: never follows a symlink)."""
        return cls.of_stat(Path(path).lstat())

    @classmethod
    def of_stat(cls, st) -> FileIdentity:
        """Given an os.stat_result, return the identity it shows."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)

    def matches(self, measured: FileIdentity | None) -> bool:
        """True if `measured` (taken now) is this recorded file, unchanged."""
        return (
            measured is not None
            and (measured.size_bytes, measured.mtime_ns, measured.inode)
            == (self.size_bytes, self.mtime_ns, self.inode)
            and (self.ctime_ns is None or measured.ctime_ns == self.ctime_ns)
        )


@dataclass(frozen=True)
class CachedFile:
    """One ledger entry: a file on the fast side, with how it got there."""

    relative_path: str
    layout: str
    original: str
    kind: str  # cached | adopted
    fast_branch: str
    fast: FileIdentity
    slow_branch: str | None = None
    slow: FileIdentity | None = None
    backup_name: str | None = None
    sidecar_of: str | None = None
    cached_at: float = 0.0
    link_target: str | None = None  # symlink layout: the text of cacherr's symlink

    @property
    def fast_path(self) -> Path:
        return Path(self.fast_branch) / self.relative_path

    @property
    def slow_path(self) -> Path | None:
        return None if self.slow_branch is None else Path(self.slow_branch) / self.relative_path


@dataclass(frozen=True)
class Attribution:
    """A rule (and user) that selected a file, and when."""

    relative_path: str
    rule: str
    user: str
    first_selected_at: float
    last_selected_at: float


_FILE_COLUMNS = (
    "relative_path, layout, original, kind, fast_branch, fast_size_bytes, fast_mtime_ns,"
    " fast_inode, slow_branch, slow_size_bytes, slow_mtime_ns, slow_inode, backup_name,"
    " sidecar_of, cached_at, fast_ctime_ns, slow_ctime_ns, link_target"
)


def _row_to_file(row: sqlite3.Row) -> CachedFile:
    slow = None
    if row["slow_size_bytes"] is not None:
        slow = FileIdentity(
            row["slow_size_bytes"], row["slow_mtime_ns"], row["slow_inode"], row["slow_ctime_ns"]
        )
    return CachedFile(
        relative_path=row["relative_path"],
        layout=row["layout"],
        original=row["original"],
        kind=row["kind"],
        fast_branch=row["fast_branch"],
        fast=FileIdentity(
            row["fast_size_bytes"], row["fast_mtime_ns"], row["fast_inode"], row["fast_ctime_ns"]
        ),
        slow_branch=row["slow_branch"],
        slow=slow,
        backup_name=row["backup_name"],
        sidecar_of=row["sidecar_of"],
        cached_at=row["cached_at"],
        link_target=row["link_target"],
    )


class Ledger:
    """Read and write the ledger tables of one state database connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    @classmethod
    def open(cls, state_dir: str | Path, *, read_only: bool = False) -> Ledger:
        return cls(db.connect(Path(state_dir), read_only=read_only))

    def close(self) -> None:
        self.conn.close()

    # -- cached files --------------------------------------------------------------

    def record(self, entry: CachedFile) -> None:
        """Insert or replace the entry for `entry.relative_path` (in the caller's transaction)."""
        slow = entry.slow
        self.conn.execute(
            f"INSERT OR REPLACE INTO cached_files ({_FILE_COLUMNS})"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                entry.relative_path, entry.layout, entry.original, entry.kind,
                entry.fast_branch, entry.fast.size_bytes, entry.fast.mtime_ns, entry.fast.inode,
                entry.slow_branch,
                slow.size_bytes if slow else None,
                slow.mtime_ns if slow else None,
                slow.inode if slow else None,
                entry.backup_name, entry.sidecar_of, entry.cached_at or time.time(),
                entry.fast.ctime_ns, slow.ctime_ns if slow else None, entry.link_target,
            ),
        )

    def forget(self, relative_path: str) -> None:
        """Drop a file from the ledger (in the caller's transaction).

        Its attributions stay: they are the planner's memory of when each rule first
        selected the file (a `keep: {for: D}` must not start again after an eviction);
        `prune_attributions` drops them once the rule stops selecting the file. Its
        sidecar references go (a video's sidecars are then orphans until evicted).
        """
        self.conn.execute("DELETE FROM cached_files WHERE relative_path = ?", (relative_path,))
        self.conn.execute(
            "DELETE FROM sidecar_refs WHERE sidecar = ? OR video = ?", (relative_path, relative_path)
        )

    def get(self, relative_path: str) -> CachedFile | None:
        row = self.conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM cached_files WHERE relative_path = ?",
            (relative_path,),
        ).fetchone()
        return None if row is None else _row_to_file(row)

    def files(self, *, sidecars: bool = False) -> list[CachedFile]:
        """Every entry the planner deals with (videos), sorted by relative path; with
        `sidecars`, the sidecars that travel with them too (the mover list needs both)."""
        where = "" if sidecars else " WHERE sidecar_of IS NULL"
        rows = self.conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM cached_files{where} ORDER BY relative_path"
        ).fetchall()
        return [_row_to_file(row) for row in rows]

    # -- sidecars ------------------------------------------------------------------

    def refer_sidecar(self, sidecar: str, video: str) -> None:
        """Note that `video` brought `sidecar` along (in the caller's transaction)."""
        self.conn.execute("INSERT OR IGNORE INTO sidecar_refs VALUES (?, ?)", (sidecar, video))

    def sidecar_refs(self, sidecar: str) -> list[str]:
        """The videos that reference `sidecar`, sorted."""
        rows = self.conn.execute(
            "SELECT video FROM sidecar_refs WHERE sidecar = ? ORDER BY video", (sidecar,)
        ).fetchall()
        return [row[0] for row in rows]

    def sidecars_of(self, video: str) -> list[str]:
        """The sidecars `video` references, sorted."""
        rows = self.conn.execute(
            "SELECT sidecar FROM sidecar_refs WHERE video = ? ORDER BY sidecar", (video,)
        ).fetchall()
        return [row[0] for row in rows]

    def orphan_sidecars(self) -> list[CachedFile]:
        """Sidecar entries that no video references any more (their last video left)."""
        rows = self.conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM cached_files WHERE sidecar_of IS NOT NULL"
            " AND relative_path NOT IN (SELECT sidecar FROM sidecar_refs) ORDER BY relative_path"
        ).fetchall()
        return [_row_to_file(row) for row in rows]

    def promote_sidecar(self, relative_path: str) -> None:
        """Make a sidecar entry a file of its own (a rule wants it for itself)."""
        with self.transaction():
            self.conn.execute(
                "UPDATE cached_files SET sidecar_of = NULL WHERE relative_path = ?",
                (relative_path,),
            )
            self.conn.execute("DELETE FROM sidecar_refs WHERE sidecar = ?", (relative_path,))

    # -- attributions --------------------------------------------------------------

    def attribute(self, relative_path: str, rule: str, user: str, at: float) -> None:
        """Note that `rule` selected the file for `user` at time `at`."""
        self.conn.execute(
            "INSERT INTO attributions VALUES (?,?,?,?,?)"
            " ON CONFLICT (relative_path, rule, user)"
            " DO UPDATE SET last_selected_at = max(last_selected_at, excluded.last_selected_at)",
            (relative_path, rule, user, at, at),
        )

    def prune_attributions(self, keep: Iterable[tuple[str, str, str]]) -> int:
        """Drop every attribution not in `keep` ((relative_path, rule, user) triples);
        return how many were dropped (in the caller's transaction)."""
        wanted = set(keep)
        rows = self.conn.execute("SELECT relative_path, rule, user FROM attributions").fetchall()
        stale = [tuple(row) for row in rows if tuple(row) not in wanted]
        self.conn.executemany(
            "DELETE FROM attributions WHERE relative_path = ? AND rule = ? AND user = ?", stale)
        return len(stale)

    def attributions(self, relative_path: str | None = None) -> list[Attribution]:
        sql = "SELECT * FROM attributions"
        params: tuple = ()
        if relative_path is not None:
            sql += " WHERE relative_path = ?"
            params = (relative_path,)
        rows = self.conn.execute(sql + " ORDER BY relative_path, rule, user", params).fetchall()
        return [Attribution(**dict(row)) for row in rows]

    # -- history and holds ---------------------------------------------------------

    def log_operation(self, action: str, relative_path: str, outcome: str,
                      size_bytes: int = 0, detail: str = "", at: float | None = None) -> None:
        self.conn.execute(
            "INSERT INTO operations (at, action, relative_path, size_bytes, outcome, detail)"
            " VALUES (?,?,?,?,?,?)",
            (at if at is not None else time.time(), action, relative_path, size_bytes,
             outcome, detail),
        )

    def operations(self, limit: int = 100) -> Iterator[sqlite3.Row]:
        yield from self.conn.execute(
            "SELECT * FROM operations ORDER BY id DESC LIMIT ?", (limit,)
        )

    def hold(self, relative_paths: Iterable[str], until: float) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO holds VALUES (?, ?)",
            [(path, until) for path in relative_paths],
        )

    def lookahead(self) -> list[dict]:
        """The look-ahead windows the rules last chose: rule, users, show, episodes, reason."""
        rows = self.conn.execute("SELECT rule, users, show, episodes, reason FROM lookahead"
                                 " ORDER BY rule, users, show").fetchall()
        return [dict(row) for row in rows]

    def holds(self, now: float) -> dict[str, float]:
        """The holds still in force at `now`."""
        rows = self.conn.execute("SELECT * FROM holds WHERE until > ?", (now,)).fetchall()
        return {row["relative_path"]: row["until"] for row in rows}

    # -- transactions --------------------------------------------------------------

    def transaction(self) -> _Transaction:
        """`with ledger.transaction():` commits on success, rolls back on error."""
        return _Transaction(self.conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
