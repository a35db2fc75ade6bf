"""The engine's pure parts: path checks, the kill-point hook, actions, hashing, rows."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cacherr.engine import Refused
from cacherr.engine.actions import Action
from cacherr.engine.bandwidth import BandwidthLimiter
from cacherr.engine.checkpoints import Checkpoints
from cacherr.engine.hashing import BackgroundHasher
from cacherr.engine.paths import backup_path, link_temp_path, split_relative, temp_path
from cacherr.engine.table import ROWS
from cacherr.state.ledger import FileIdentity


@pytest.mark.parametrize(
    "relative_path",
    [
        "Movies/A (2020)/A.mkv",
        "TV/Show/Season 01/S01E01 – ünïcode 日本.mkv",
        "Movies/..hidden../x.mkv",
        "Movies/It's a 'quote' & (brackets) [1] {2} #3 %4 ~5 !6.mkv",
        "Movies/.x.mkv",
    ],
)
def test_ordinary_and_odd_but_safe_paths_are_accepted(relative_path):
    assert "/".join(split_relative(relative_path)) == relative_path


@pytest.mark.parametrize(
    ("relative_path", "reason"),
    [
        ("", "empty"),
        ("Movies/a\0b.mkv", "NUL"),
        ("/mnt/user/Movies/a.mkv", "absolute"),
        ("Movies/../../etc/passwd", "'..'"),
        ("Movies/./a.mkv", "'.'"),
        ("Movies//a.mkv", "''"),
        ("Movies/" + "x" * 256, "255 bytes"),
        ("Movies/.a.mkv.cacherr-tmp", "working names"),
        ("Movies/.a.mkv.cacherr-backup", "working names"),
        ("a.mkv", "inside a share"),
        ("Movies/name with\nnewline/x.mkv", "control character"),
        ("Movies/x\r.mkv", "control character"),
        ("Movies/x\ty.mkv", "control character"),
        ("Movies/x\x7f.mkv", "control character"),
        ("Movies/`touch PWNED`.mkv", "'`'"),
        ("Movies/$(touch PWNED).mkv", "'$'"),
        ('Movies/say "hi".mkv', "'\"'"),
        ("Movies/back\\slash.mkv", "'\\\\'"),
        (os.fsdecode(b"Movies/caf\xe9.srt"), "not valid UTF-8"),
    ],
)
def test_paths_that_could_escape_or_collide_are_refused_with_the_reason(relative_path, reason):
    with pytest.raises(Refused) as raised:
        split_relative(relative_path)
    assert reason in raised.value.reason


def test_working_names_are_hidden_and_beside_the_file():
    path = Path("/mnt/cache/Movies/A/A.mkv")
    assert temp_path(path) == Path("/mnt/cache/Movies/A/.A.mkv.cacherr-tmp")
    assert backup_path(path) == Path("/mnt/cache/Movies/A/.A.mkv.cacherr-backup")
    assert link_temp_path(path) == Path("/mnt/cache/Movies/A/.A.mkv.cacherr-link")


def test_the_kill_hook_parses_name_and_count_and_counts_checkpoints():
    points = Checkpoints("copy-chunk:3")
    points.reached("copy-chunk")
    points.reached("copy-chunk")  # the third would kill this process
    points.reached("begun")
    assert points.counts == {"copy-chunk": 2, "begun": 1}
    with pytest.raises(ValueError, match="NAME:N"):
        Checkpoints("copy-chunk")
    assert Checkpoints.from_environ({}).counts == {}


def test_an_action_survives_the_journal_round_trip():
    action = Action(
        "evict",
        "symlink",
        "backup",
        "Movies/Ü/ü.mkv",
        "/cache/dir",
        "/media",
        FileIdentity(1, 2, 3),
        FileIdentity(1, 2, 4),
        ".ü.mkv.cacherr-backup",
        "/plex/dir/Movies/Ü/ü.mkv",
        ("/cache/dir/Movies", "/cache/dir/Movies/Ü"),
    )
    assert Action.from_json(action.to_json()) == action
    assert str(action.backup_path) == "/media/Movies/Ü/.ü.mkv.cacherr-backup"


def test_block_hashing_in_threads_is_the_sha256_of_the_block_digests_in_order():
    data = os.urandom(1_000_000)
    block = 65536
    with BackgroundHasher(block, workers=2) as hasher:
        for offset in range(0, len(data), block):
            buffer = hasher.take()
            piece = data[offset : offset + block]
            buffer[: len(piece)] = piece
            hasher.submit(buffer, len(piece))
        digest = hasher.hexdigest()
    expected = hashlib.sha256(
        b"".join(hashlib.sha256(data[i : i + block]).digest() for i in range(0, len(data), block))
    )
    assert digest == expected.hexdigest()


def test_every_row_of_the_spec_table_is_built():
    assert set(ROWS) == {
        ("union", "shadow"),
        ("union", "backup"),
        ("union", "move"),
        ("symlink", "backup"),
        ("symlink", "move"),
    }


def test_the_bandwidth_limiter_paces_transfers_to_the_configured_rate():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = BandwidthLimiter(1_000_000, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        limiter(500_000)  # 5 MB at 1 MB/s: the first second's budget is free, then 4 s
    assert sum(slept) == pytest.approx(4.0)
    assert now[0] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="positive"):
        BandwidthLimiter(0)
