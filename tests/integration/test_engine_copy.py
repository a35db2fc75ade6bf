"""The durable copy on real file systems: kernel copy paths, checksum re-read, no replace."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cacherr.engine import CopyFailed
from cacherr.engine.copy import CopyOptions, durable_copy
from cacherr.engine.paths import temp_path
from cacherr.state.ledger import FileIdentity
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_root

MiB = 1024 * 1024


def _source(folder: Path, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "source.mkv"
    path.write_bytes(os.urandom(size))
    return path


def test_a_copy_within_one_file_system_uses_copy_file_range(tmp_path):
    source = _source(tmp_path / "a", MiB + 5)
    target = tmp_path / "b" / "target.mkv"
    target.parent.mkdir()
    result = durable_copy(source, target, FileIdentity.of(source), CopyOptions())
    assert result.method == "copy_file_range"
    assert target.read_bytes() == source.read_bytes()
    assert result.target == FileIdentity.of(target)


def test_a_copy_between_file_systems_falls_back_cleanly_and_is_identical(tmp_path):
    require_root()
    with Sandbox(tmp_path / "mnt", disks=1, mergerfs=False) as box:
        source = _source(box.slow[0] / "Movies", MiB + 5)
        target = box.fast / "Movies" / "target.mkv"
        result = durable_copy(
            source, target, FileIdentity.of(source), CopyOptions(chunk_size_bytes=128 * 1024)
        )
        assert result.method in ("sendfile", "copy_file_range")
        assert target.read_bytes() == source.read_bytes()


def test_checksum_verification_reads_back_segments_and_matches_a_plain_sha256(tmp_path):
    source = _source(tmp_path / "a", 3 * MiB + 1000)
    target = tmp_path / "target.mkv"
    options = CopyOptions(
        verify="checksum", chunk_size_bytes=64 * 1024, verify_segment_bytes=256 * 1024
    )
    result = durable_copy(source, target, FileIdentity.of(source), options)
    data = source.read_bytes()
    blocks = b"".join(
        hashlib.sha256(data[i : i + 64 * 1024]).digest() for i in range(0, len(data), 64 * 1024)
    )
    assert result.sha256 == hashlib.sha256(blocks).hexdigest()
    assert target.read_bytes() == data


def test_checksum_verification_catches_a_copy_that_differs_on_disk(tmp_path):
    size = MiB + 1000  # the last, partial segment is re-read only after the copy ends
    source = _source(tmp_path / "a", size)
    target = tmp_path / "target.mkv"

    def the_disk_corrupts_the_tail(done, total):
        if done == total:
            fd = os.open(temp_path(target), os.O_WRONLY)
            os.pwrite(fd, b"\xff" * 16, total - 100)
            os.fsync(fd)
            os.close(fd)

    options = CopyOptions(
        verify="checksum",
        chunk_size_bytes=64 * 1024,
        verify_segment_bytes=256 * 1024,
        progress=the_disk_corrupts_the_tail,
    )
    with pytest.raises(CopyFailed, match="checksum"):
        durable_copy(source, target, FileIdentity.of(source), options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("verify", ["size", "checksum"])
def test_a_file_that_appears_at_the_target_name_is_never_replaced(tmp_path, verify):
    source = _source(tmp_path / "a", 256 * 1024)
    target = tmp_path / "target.mkv"

    def someone_else_creates_the_target(done, total):
        if not target.exists():
            target.write_bytes(b"theirs")

    options = CopyOptions(
        verify=verify, chunk_size_bytes=64 * 1024, progress=someone_else_creates_the_target
    )
    with pytest.raises(CopyFailed, match="another file appeared"):
        durable_copy(source, target, FileIdentity.of(source), options)
    assert target.read_bytes() == b"theirs"
    assert not temp_path(target).exists()


def test_the_bandwidth_hook_sees_every_byte(tmp_path):
    source = _source(tmp_path / "a", MiB + 7)
    seen = []
    options = CopyOptions(chunk_size_bytes=100_000, throttle=seen.append)
    durable_copy(source, tmp_path / "t.mkv", FileIdentity.of(source), options)
    assert sum(seen) == MiB + 7 and len(seen) >= 10


def test_an_empty_file_is_copied_and_verified(tmp_path):
    source = _source(tmp_path / "a", 0)
    for verify in ("size", "checksum"):
        target = tmp_path / f"{verify}.mkv"
        durable_copy(source, target, FileIdentity.of(source), CopyOptions(verify=verify))
        assert target.read_bytes() == b""
