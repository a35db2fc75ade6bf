"""The ledger keeps what cacherr cached, durably, with versioned migrations."""

import sqlite3

import pytest

from cacherr.state import db
from cacherr.state.ledger import CachedFile, FileIdentity, Ledger
from cacherr.state.migrations import MIGRATIONS


def _entry(path="Movies/A (2020)/A.mkv", **overrides):
    values = dict(
        relative_path=path, layout="union", original="shadow", kind="cached",
        fast_branch="/mnt/cache", fast=FileIdentity(10, 20, 30),
        slow_branch="/mnt/disk1", slow=FileIdentity(10, 21, 31), cached_at=100.0,
    )
    values.update(overrides)
    return CachedFile(**values)


def test_a_new_state_directory_gets_every_migration_and_full_sync(tmp_path):
    ledger = Ledger.open(tmp_path)
    version = ledger.conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == MIGRATIONS[-1][0]
    assert ledger.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_recorded_files_round_trip_with_identity_and_policy(tmp_path):
    ledger = Ledger.open(tmp_path)
    with ledger.transaction():
        ledger.record(_entry())
        ledger.record(_entry("Movies/B/B.mkv", original="backup", backup_name=".B.mkv.cacherr-backup",
                             slow=None, slow_branch=None, kind="adopted"))
    ledger.close()
    again = Ledger.open(tmp_path)
    files = again.files()
    assert [f.relative_path for f in files] == ["Movies/A (2020)/A.mkv", "Movies/B/B.mkv"]
    assert files[0] == _entry()
    assert files[1].backup_name == ".B.mkv.cacherr-backup" and files[1].slow is None
    assert str(files[0].fast_path) == "/mnt/cache/Movies/A (2020)/A.mkv"


def test_a_failed_transaction_leaves_the_ledger_unchanged(tmp_path):
    ledger = Ledger.open(tmp_path)
    with pytest.raises(RuntimeError), ledger.transaction():
        ledger.record(_entry())
        raise RuntimeError("crash between steps")
    assert ledger.files() == []


def test_attribution_keeps_first_and_latest_selection(tmp_path):
    ledger = Ledger.open(tmp_path)
    with ledger.transaction():
        ledger.attribute("a.mkv", "ondeck", "alice", 100.0)
        ledger.attribute("a.mkv", "ondeck", "alice", 250.0)
        ledger.attribute("a.mkv", "watchlist", "", 120.0)
    rows = ledger.attributions("a.mkv")
    assert [(r.rule, r.user, r.first_selected_at, r.last_selected_at) for r in rows] == [
        ("ondeck", "alice", 100.0, 250.0), ("watchlist", "", 120.0, 120.0)]
    with ledger.transaction():
        ledger.forget("a.mkv")
    assert len(ledger.attributions()) == 2, "forgetting a file keeps its selection history"
    with ledger.transaction():
        assert ledger.prune_attributions({("a.mkv", "watchlist", "")}) == 1
    assert [(r.rule, r.user) for r in ledger.attributions()] == [("watchlist", "")]


def test_holds_expire(tmp_path):
    ledger = Ledger.open(tmp_path)
    with ledger.transaction():
        ledger.hold(["a.mkv", "b.mkv"], until=200.0)
    assert ledger.holds(now=150.0) == {"a.mkv": 200.0, "b.mkv": 200.0}
    assert ledger.holds(now=250.0) == {}


def test_a_database_from_a_newer_cacherr_is_refused(tmp_path):
    Ledger.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / db.DATABASE_NAME)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(db.StateDatabaseError, match="newer"):
        Ledger.open(tmp_path)


def test_read_only_open_needs_an_existing_database_and_cannot_write(tmp_path):
    with pytest.raises(db.StateDatabaseError, match="no state database"):
        Ledger.open(tmp_path, read_only=True)
    Ledger.open(tmp_path).close()
    reader = Ledger.open(tmp_path, read_only=True)
    with pytest.raises(sqlite3.OperationalError):
        reader.record(_entry())


def test_a_read_only_command_reads_a_database_an_older_cacherr_left_without_changing_it(tmp_path):
    # The state an earlier release left (migrations 1-5), with one cached file in it: read
    # before the upgraded service has started and migrated it (ls, plan, doctor).
    path = tmp_path / db.DATABASE_NAME
    conn = sqlite3.connect(path, isolation_level=None)
    for number, sql in MIGRATIONS:
        if number <= 5:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.execute(
        "INSERT INTO cached_files (relative_path, layout, original, kind, fast_branch,"
        " fast_size_bytes, fast_mtime_ns, fast_inode, slow_branch, slow_size_bytes,"
        " slow_mtime_ns, slow_inode, cached_at) VALUES"
        " ('Movies/A.mkv', 'union', 'shadow', 'cached', '/mnt/cache', 10, 20, 30,"
        " '/mnt/disk1', 10, 21, 31, 100.0)")
    conn.close()
    before = path.read_bytes()
    reader = Ledger.open(tmp_path, read_only=True)
    try:
        assert [f.relative_path for f in reader.files()] == ["Movies/A.mkv"]
        assert reader.lookahead() == []
        with pytest.raises(sqlite3.OperationalError):
            reader.record(_entry())
    finally:
        reader.close()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [db.DATABASE_NAME]
