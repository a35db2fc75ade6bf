"""The state directory must survive a reboot and keep SQLite safe: tmpfs, RAM roots, the flash and FUSE are refused."""

import os

import pytest

from cacherr.host.mounts import is_separate_mount, mount_of, parse_mountinfo
from cacherr.state.statedir import StateDirError, check_state_dir

MOUNTINFO = """\
22 1 0:21 / / rw,relatime - rootfs rootfs rw
25 22 8:1 / /mnt/disk1 rw,noatime - xfs /dev/md1p1 rw
26 22 259:1 / /mnt/cache rw,noatime - btrfs /dev/nvme0n1p1 rw
27 22 8:17 / /boot rw,noatime - vfat /dev/sdb1 rw,fmask=0177
28 22 0:45 / /mnt/user rw - fuse.shfs shfs rw
29 26 0:46 / /mnt/cache/tmp\\040dir rw - tmpfs tmpfs rw
"""
MOUNTS = parse_mountinfo(MOUNTINFO)


def test_mountinfo_parsing_unescapes_spaces_and_reads_devices():
    assert [m.mount_point for m in MOUNTS][-1] == "/mnt/cache/tmp dir"
    assert MOUNTS[1].device == os.makedev(8, 1) and MOUNTS[1].fs_type == "xfs"


def test_the_longest_mount_point_holds_a_path():
    assert mount_of("/mnt/cache/appdata/cacherr", MOUNTS).mount_point == "/mnt/cache"
    assert mount_of("/mnt/cache/tmp dir/x", MOUNTS).fs_type == "tmpfs"
    assert mount_of("/mnt/cachefoo", MOUNTS).mount_point == "/"


def test_an_unmounted_pool_is_a_folder_on_the_root_file_system():
    assert is_separate_mount("/mnt/cache/x", MOUNTS)
    assert not is_separate_mount("/mnt/nvme/x", MOUNTS)


@pytest.mark.parametrize("path,fs", [("/boot/config/plugins/cacherr", "vfat"),
                                     ("/var/lib/cacherr", "rootfs"),
                                     ("/mnt/cache/tmp dir/state", "tmpfs")])
def test_volatile_and_flash_state_directories_are_refused(path, fs):
    with pytest.raises(StateDirError, match=fs):
        check_state_dir(path, MOUNTS)


def test_a_fuse_state_directory_is_refused_and_the_message_names_the_pool_path():
    with pytest.raises(StateDirError, match="FUSE") as refused:
        check_state_dir("/mnt/user/appdata/cacherr", MOUNTS)
    assert "/mnt/cache/appdata/cacherr" in str(refused.value)


def test_a_pool_state_directory_is_fine():
    check = check_state_dir("/mnt/cache/appdata/cacherr", MOUNTS)
    assert (check.fs_type, check.warnings) == ("btrfs", [])
