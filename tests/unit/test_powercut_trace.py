"""The power-cut explorer's reading of strace: write(2) from user space (verify: checksum
copies so) keeps its bytes, a sync split by another thread's line counts where it ended
and covers only what had finished before it began, and nothing on a watched path that
is not understood passes silently."""

from __future__ import annotations

import pytest

from tests.integration.powercut import model, trace

WATCHED = ["/w/d"]
TEMP = "/w/d/.v.mkv.cacherr-tmp"
OPEN_TEMP = (
    f'100  openat(AT_FDCWD</w>, "{TEMP}", O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600)'
    f" = 4<{TEMP}>"
)
FIRST = b'ab\x00\n"\\\xff7'
# What strace prints for FIRST: C escapes, three octal digits before a digit.
FIRST_QUOTED = r'"ab\0\n\"\\\3777"'


def _initial() -> model.Tree:
    return model.Tree({"/w/d": "d"}, {"d": model.Inode("dir")}, frozenset({"/w"}))


def _parse(lines: list[str]) -> list[trace.Op]:
    return trace.parse(lines, WATCHED, "/snapshots")


def _threaded_copy() -> list[str]:
    """The copy thread (100) writes while the re-read thread (101) fdatasyncs."""
    return [
        OPEN_TEMP,
        f"100  write(4<{TEMP}>, {FIRST_QUOTED}, 8) = 8",
        f"101  fdatasync(4<{TEMP}> <unfinished ...>",
        f'100  write(4<{TEMP}>, "second", 6) = 6',
        "101  <... fdatasync resumed>)          = 0",
        f"100  utimensat(4<{TEMP}>, NULL, [{{tv_sec=1, tv_nsec=0}}, {{tv_sec=2, tv_nsec=3}}], 0) = 0",
        f"101  fdatasync(4<{TEMP}>) = 0",
    ]  # fmt: skip


def test_a_write_keeps_its_bytes_and_where_it_put_them():
    ops = _parse(_threaded_copy())
    writes = [op for op in ops if op.kind == "write"]
    assert [(w.offset, w.data) for w in writes] == [(0, FIRST), (8, b"second")]
    run = model.replay(_initial(), ops)
    after = run.before[-1]
    assert after.inodes[after.names[TEMP]].data == FIRST + b"second"
    assert after.inodes[after.names[TEMP]].mtime_ns == 2_000_000_003


def test_a_sync_split_by_another_thread_covers_only_what_finished_before_it_began():
    ops = _parse(_threaded_copy())
    assert [op.kind for op in ops] == ["creat", "write", "write", "fsync", "utime", "fsync"]
    sync = ops[3]
    assert (sync.flags, sync.during) == ("fdatasync", 1)  # the second write ran meanwhile
    run = model.replay(_initial(), ops)
    assert run.durable_at[1] == 3  # the first write: before the sync began
    assert run.durable_at[2] == 5  # the second: only the next sync covers it
    assert run.durable_at[4] == float("inf")  # fdatasync never covers the times
    # A cut after the first sync may lose the second write, and keep the first.
    kept = {
        state.tree.inodes[state.tree.names[TEMP]].data
        for state in model.crash_states(_initial(), run, 4)
        if TEMP in state.tree.names
    }
    assert kept == {FIRST, FIRST + b"second"}


def test_an_unfinished_sync_of_a_killed_process_made_nothing_durable():
    lines = _threaded_copy()[:3]  # killed while the fdatasync ran
    ops = _parse(lines)
    assert [op.kind for op in ops] == ["creat", "write"]
    assert model.replay(_initial(), ops).durable_at == [float("inf")] * 2


@pytest.mark.parametrize(
    "line, why",
    [
        (f'100  write(4<{TEMP}>, "abc" <unfinished ...>', "killed during a syscall"),
        (f'100  pwrite64(4<{TEMP}>, "x", 1, 0) = 1', "not understood"),
        (f'100  writev(4<{TEMP}>, [{{iov_base="x", iov_len=1}}], 1) = 1', "not understood"),
        (f'100  write(4<{TEMP}>, "abc"..., 9000) = 9000', "not understood"),  # cut short
        (f"100  ftruncate(4<{TEMP}>, 0) = 0", "not understood"),
        ("101  <... fdatasync resumed>) = 0", "without its start"),
    ],
)
def test_what_may_change_a_watched_file_and_is_not_understood_stops_the_parse(line, why):
    with pytest.raises(ValueError, match=why):
        _parse([OPEN_TEMP, line])


def test_a_journal_page_naming_a_watched_path_is_not_about_that_path():
    page = r'100  pwrite64(3</s/cacherr.db-wal>, "\0{\"fast_branch\": \"/w/d/v.mkv\"}", 19, 0) = 19'
    assert [op.kind for op in _parse([OPEN_TEMP, page])] == ["creat"]
