"""The sandbox emulates Unraid's storage: a tmpfs pool, disk folders and a mergerfs view."""

import os

from cacherr.host.mounts import is_separate_mount, mount_of
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_root


def test_the_fast_branch_is_a_separate_mount_and_the_slow_branches_are_not(tmp_path):
    require_root()
    with Sandbox(tmp_path, disks=2, mergerfs=False) as box:
        assert is_separate_mount(box.fast)
        # The slow branches are plain folders on whatever file system holds tmp_path.
        home = mount_of(tmp_path).mount_point
        assert all(mount_of(branch).mount_point == home for branch in box.slow)
        assert os.stat(box.fast).st_dev != os.stat(box.slow[0]).st_dev
        assert box.view is None
    assert mount_of(tmp_path / "cache").mount_point == mount_of(tmp_path).mount_point


def test_the_merged_view_serves_the_pool_copy_when_both_branches_hold_a_file(tmp_path):
    require_fuse()
    with Sandbox(tmp_path, disks=2) as box:
        box.write_file("Movies/A (2020)/A.mkv", b"slow", disk=2)
        assert box.read_view("Movies/A (2020)/A.mkv") == b"slow"
        (box.fast / "Movies/A (2020)").mkdir()
        (box.fast / "Movies/A (2020)/A.mkv").write_bytes(b"fast")
        assert box.read_view("Movies/A (2020)/A.mkv") == b"fast"
    assert mount_of(tmp_path / "user").mount_point == mount_of(tmp_path).mount_point
