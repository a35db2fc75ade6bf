"""Under strace: fsyncs precede the renames that publish a file, and the old side is
unlinked only after the new side is durable; an idle cycle never touches a slow branch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
TRACED = "trace=%file,%desc,fsync,fdatasync,rename,renameat2,unlink,unlinkat,link,linkat,symlink"


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def _trace(
    world: World, tmp_path: Path, layout: str, kind: str, rel: str, string_bytes: int = 4096
) -> list[str]:
    strace = require_tool("strace")
    out = tmp_path / f"strace-{layout}-{kind}"
    subprocess.run(
        [
            strace,
            "-f",
            "-y",
            "-qq",
            "-s",
            str(string_bytes),
            "-e",
            TRACED,
            "-o",
            str(out),
            sys.executable,
            "-m",
            "tests.integration.engine_helpers.run_action",
            world.to_json(),
            layout,
            kind,
            rel,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=60,
    )
    return out.read_text().splitlines()


def _index(lines: list[str], pattern: str, after: int = -1) -> int:
    """The index of the first line after `after` that matches `pattern`; fail if none."""
    regex = re.compile(pattern)
    for number, line in enumerate(lines):
        if number > after and regex.search(line) and "= -1" not in line:
            return number
    raise AssertionError(f"no syscall matching {pattern!r} after line {after}")


def _in_order(lines: list[str], *patterns: str) -> list[int]:
    found, after = [], -1
    for pattern in patterns:
        after = _index(lines, pattern, after)
        found.append(after)
    return found


def _fsync(path: Path | str) -> str:
    return rf"\bf(data)?sync\(\d+<{re.escape(str(path))}>\)"


def test_union_cache_fsyncs_the_copy_before_the_rename_and_the_folder_after(world, tmp_path):
    rel = "Movies/A/a.mkv"
    world.write_original("union", rel, os.urandom(100_000))
    lines = _trace(world, tmp_path, "union", "cache", rel)
    final = Path(world.fast) / rel
    temporary = final.with_name(".a.mkv.cacherr-tmp")
    written = _index(
        lines,
        rf"write\(\d+<{re.escape(str(temporary))}>|sendfile\(\d+<{re.escape(str(temporary))}>",
    )
    synced, renamed, folder_synced, journalled = _in_order(
        lines,
        _fsync(temporary),
        rf"rename(at2)?\(.*\"{re.escape(str(temporary))}\".*\"{re.escape(str(final))}\"",
        _fsync(final.parent),
        _fsync(Path(world.state_dir) / "cacherr.db-wal"),
    )
    assert written < synced < renamed < folder_synced < journalled
    # Nothing is written, renamed or unlinked on the slow branch.
    slow = re.escape(world.slow[0])
    assert not [line for line in lines if re.search(rf"(unlink|rename|link)\w*\(.*\"{slow}", line)]


def test_union_evict_unlinks_the_fast_copy_only_after_the_journal_is_durable(world, tmp_path):
    rel = "Movies/B/b.mkv"
    world.write_original("union", rel, os.urandom(100_000))
    world.engine("union", ledger=Ledger.open(world.state_dir)).cache(rel)
    lines = _trace(world, tmp_path, "union", "evict", rel)
    final = Path(world.fast) / rel
    wal = _fsync(Path(world.state_dir) / "cacherr.db-wal")
    checked, unlinked, folder_synced = _in_order(
        lines, wal, rf"unlink(at)?\(.*\"{re.escape(str(final))}\"", _fsync(final.parent)
    )
    assert checked < unlinked < folder_synced
    assert not [
        line
        for line in lines
        if re.search(rf"(unlink|rename|link)\w*\(.*\"{re.escape(world.slow[0])}", line)
    ]


def test_symlink_cache_makes_the_copy_durable_before_touching_the_original(world, tmp_path):
    rel = "Movies/C/c.mkv"
    original = world.write_original("symlink", rel, os.urandom(100_000))
    lines = _trace(world, tmp_path, "symlink", "cache", rel)
    copy = world.symlink_dir / rel
    temporary = copy.with_name(".c.mkv.cacherr-tmp")
    backup = original.with_name(".c.mkv.cacherr-backup")
    link = original.with_name(".c.mkv.cacherr-link")
    e = re.escape
    order = _in_order(
        lines,
        _fsync(temporary),
        rf"rename(at2)?\(.*\"{e(str(temporary))}\".*\"{e(str(copy))}\"",
        _fsync(copy.parent),
        rf"link(at)?\(.*\"{e(str(original))}\".*\"{e(str(backup))}\"",
        _fsync(original.parent),
        rf"symlink(at)?\(.*\"{e(str(link))}\"",
        rf"rename(at2)?\(.*\"{e(str(link))}\".*\"{e(str(original))}\"",
        _fsync(original.parent),
    )
    assert order == sorted(order)


def test_symlink_evict_restores_the_original_durably_before_deleting_the_copy(world, tmp_path):
    rel = "Movies/D/d.mkv"
    original = world.write_original("symlink", rel, os.urandom(100_000))
    world.engine("symlink", ledger=Ledger.open(world.state_dir)).cache(rel)
    lines = _trace(world, tmp_path, "symlink", "evict", rel)
    copy = world.symlink_dir / rel
    backup = original.with_name(".d.mkv.cacherr-backup")
    e = re.escape
    order = _in_order(
        lines,
        rf"rename(at2)?\(.*\"{e(str(backup))}\".*\"{e(str(original))}\"",
        _fsync(original.parent),
        rf"unlink(at)?\(.*\"{e(str(copy))}\"",
        _fsync(copy.parent),
    )
    assert order == sorted(order)
    assert _index(lines, rf"unlink(at)?\(.*\"{e(str(copy))}\"") > order[1]


@pytest.mark.parametrize("layout", ["union", "symlink"])
def test_an_idle_cycle_makes_no_syscall_on_a_slow_branch_path(world, tmp_path, layout):
    rel = "Movies/E/e.mkv"
    world.write_original(layout, rel, os.urandom(10_000))
    world.engine(layout, ledger=Ledger.open(world.state_dir)).cache(rel)  # one file in the ledger
    # Strings cut to nothing: the database's own pages name the branches; paths stay whole.
    lines = _trace(world, tmp_path, layout, "idle", rel, string_bytes=0)
    assert any(world.fast in line for line in lines)  # the trace does see branch paths
    touching = [
        line for line in lines for slow in world.slow if slow in line and "execve(" not in line
    ]  # argv names them; no access
    assert touching == []


# Invariant 5: besides media inside the roots and its own state, the engine reads only these.
# /proc/self/status: the effective capabilities decide whether any owner can be kept.
SYSTEM_FILES_ALLOWED = {"/proc/self/mountinfo", "/proc/self/status"}


@pytest.mark.parametrize("layout", ["union", "symlink"])
def test_actions_touch_only_the_roots_the_state_and_allow_listed_system_files(
    world, tmp_path, layout
):
    rel = "Movies/F/f.mkv"
    world.write_original(layout, rel, os.urandom(10_000))
    touched: set[str] = set()
    for kind in ("cache", "evict"):
        audit = tmp_path / f"audit-{kind}"
        subprocess.run(
            [sys.executable, "-m", "tests.integration.engine_helpers.run_action",
             world.to_json(), layout, kind, rel],
            cwd=REPO, check=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO), "ENGINE_TEST_AUDIT_FILE": str(audit)},
        )  # fmt: skip
        touched |= set(audit.read_text().split("\n"))
    mine = (str(tmp_path / "mnt"), world.state_dir)
    runtime = {str(REPO), sys.prefix, sys.base_prefix}
    runtime |= {os.path.realpath(p) for p in runtime}
    outside = {
        p for p in touched
        if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in (*mine, *runtime))
    }  # fmt: skip
    assert outside == SYSTEM_FILES_ALLOWED  # read (so the audit works), and nothing else
    assert any(p.startswith(str(tmp_path / "mnt")) for p in touched)
