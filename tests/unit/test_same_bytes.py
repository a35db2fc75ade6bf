"""`safety.same_bytes`: what proves two copies that others made the same file."""

from __future__ import annotations

import os

from cacherr.engine.safety import same_bytes


def test_equal_bytes_are_the_same_and_one_byte_at_the_end_is_not(tmp_path):
    data = os.urandom(3 * 1024 + 5)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(data)
    b.write_bytes(data)
    c.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert same_bytes(a, b, chunk_bytes=1024)
    assert not same_bytes(a, c, chunk_bytes=1024)
    assert not same_bytes(a, tmp_path / "short") and not same_bytes(tmp_path / "gone", a)


def test_a_symlink_a_folder_or_a_fifo_is_never_the_same_and_never_waited_on(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"x")
    (tmp_path / "link").symlink_to(a)
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for other in ("link", "folder", "fifo"):
        assert not same_bytes(a, tmp_path / other)
        assert not same_bytes(tmp_path / other, a)
