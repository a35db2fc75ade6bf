"""Opening the state database: durable settings and migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cacherr.state.migrations import MIGRATIONS

DATABASE_NAME = "cacherr.db"


class StateDatabaseError(Exception):
    """The state database cannot be opened or is newer than this cacherr."""


def connect(state_dir: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Given the state directory, return a connection with every migration applied.

    The database is opened with `synchronous=FULL` and WAL, so a committed transaction
    survives a power cut. A read-only connection may be used while a service holds the
    run lock and writes nothing (not even SQLite's -shm file) when no writer has the
    database open; a database an older cacherr left reads as if migrated (its in-memory
    copy is). Raise StateDatabaseError if the file is from a newer cacherr.
    """
    path = Path(state_dir) / DATABASE_NAME
    if read_only:
        if not path.exists():
            raise StateDatabaseError(f"{path}: no state database yet (has cacherr run?)")
        conn = _snapshot(path) or sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = MIGRATIONS[-1][0]
    if version > latest:
        conn.close()
        raise StateDatabaseError(
            f"{path}: schema version {version} is newer than this cacherr knows ({latest})"
        )
    if not read_only:
        migrate(conn)
    return conn


def _snapshot(path: Path) -> sqlite3.Connection | None:
    """An in-memory copy of the database when no writer has it open (no -wal file), so a
    read-only command creates no -shm/-wal file beside it; None when a writer has it open
    (then a read-only connection shares the writer's files) or it kept changing."""
    wal = path.with_name(path.name + "-wal")
    for _ in range(3):
        if wal.exists():
            return None
        before = path.stat()
        data = bytearray(path.read_bytes())
        after = path.stat()
        if wal.exists() or (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns,
                                                                    after.st_size):
            continue
        if len(data) >= 20 and data[18] == data[19] == 2:
            data[18] = data[19] = 1  # WAL in the header: an in-memory copy cannot be WAL
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            conn.deserialize(bytes(data))
        except sqlite3.Error:
            conn.close()
            return None
        # A database an older cacherr left (read before the upgraded service migrated
        # it): the copy is migrated in memory, the file stays as it is.
        conn.row_factory = sqlite3.Row
        migrate(conn)
        conn.execute("PRAGMA query_only = ON")  # read-only, like the file it copies
        return conn
    return None


def connect_empty() -> sqlite3.Connection:
    """An empty, migrated, in-memory database (planning before the first run)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks, each in its own transaction; return the version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, sql in MIGRATIONS:
        if number <= version:
            continue
        try:
            # One transaction per migration: the schema change and its version together.
            conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {int(number)};\nCOMMIT;")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        version = number
    return version
