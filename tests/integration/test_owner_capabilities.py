"""Invariant 8 with capabilities, not root: the image's user (uid 99, gid 100, ambient CHOWN,
DAC_OVERRIDE, FOWNER, FSETID) caches a file of another owner with mode 0640, keeping its
owner, mode and times, and the folder it creates gets its counterpart's owner and mode;
without FSETID (a set-gid bit would be lost silently) such a file is refused, as without
any capability."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.test_engine_guards import OWNER_SCRIPT

REPO = Path(__file__).resolve().parents[2]
PUID, PGID = 99, 100
OWNER = 1000
MTIME_NS = 1_600_000_000_123_456_789


@pytest.fixture
def box():
    require_fuse()
    top = Path(tempfile.mkdtemp(dir="/tmp", prefix="cacherr-caps-"))  # others may enter
    os.chmod(top, 0o755)
    try:
        with Sandbox(top / "mnt", disks=1, mergerfs=False) as sandbox:
            (sandbox.root / "state").mkdir()
            os.chown(sandbox.root / "state", PUID, PGID)
            yield sandbox
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _cache_as_puid(box: Sandbox, relative: str, capabilities: str) -> str:
    setpriv = require_tool("setpriv")
    done = subprocess.run(
        [setpriv, f"--reuid={PUID}", f"--regid={PGID}", "--clear-groups",
         f"--inh-caps=-all,{capabilities}", f"--ambient-caps=-all,{capabilities}",
         sys.executable, "-c", OWNER_SCRIPT, str(box.root), relative],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _write_foreign_file(box: Sandbox, relative: str, mode: int) -> os.stat_result:
    path = box.write_file(relative, os.urandom(64 * 1024), uid=OWNER, gid=OWNER)
    os.chmod(path, mode)
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    os.chown(path.parent, OWNER, OWNER)
    os.chmod(path.parent, 0o2750)
    return os.stat(path)


def test_with_the_image_s_capabilities_another_owner_s_0640_file_keeps_owner_mode_and_times(box):
    relative = "Movies/Theirs/theirs.mkv"
    source = _write_foreign_file(box, relative, 0o640)
    outcome = _cache_as_puid(box, relative, "+chown,+fowner,+fsetid,+dac_override")
    assert outcome == "cached"
    copy = os.stat(box.fast / relative)
    assert (copy.st_uid, copy.st_gid, stat.S_IMODE(copy.st_mode)) == (OWNER, OWNER, 0o640)
    assert copy.st_mtime_ns == source.st_mtime_ns == MTIME_NS
    assert (box.fast / relative).read_bytes() == (box.slow[0] / relative).read_bytes()
    folder = os.stat(box.fast / "Movies/Theirs")
    assert (folder.st_uid, folder.st_gid, stat.S_IMODE(folder.st_mode)) == (OWNER, OWNER, 0o2750)


def test_a_set_gid_file_of_another_group_is_refused_without_fsetid(box):
    relative = "Movies/SetGid/setgid.mkv"
    _write_foreign_file(box, relative, 0o2640)
    outcome = _cache_as_puid(box, relative, "+chown,+fowner,+dac_override")
    assert outcome.startswith("Refused") and "owner cannot be kept" in outcome
    assert "FSETID" in outcome
    assert not (box.fast / "Movies/SetGid").exists()
    outcome = _cache_as_puid(box, relative, "+chown,+fowner,+fsetid,+dac_override")
    assert outcome == "cached"
    assert stat.S_IMODE(os.stat(box.fast / relative).st_mode) == 0o2640
