"""The merged view serves the fast copy before the original is hidden or removed (issue
11, point 6): asked first, and "no such file" counts as no; never delete, then warn."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cacherr.config.model import UnionLayout
from cacherr.engine import Engine, Refused
from cacherr.engine.paths import backup_path, temp_path
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import MERGERFS_OPTIONS, Sandbox
from tests.helpers import require_fuse

DATA = os.urandom(64 * 1024)


@pytest.fixture
def box(tmp_path):
    mergerfs = require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as sandbox:
        # A view the pool is not part of (the share does not use this pool), and one of
        # the second disk only (the file is not there at all: ENOENT).
        views = {}
        for name, branches in (("without-pool", sandbox.slow), ("disk2", sandbox.slow[1:])):
            view = tmp_path / name
            view.mkdir()
            subprocess.run([mergerfs, "-o", MERGERFS_OPTIONS.replace("cacherr-sandbox", name),
                            ":".join(map(str, branches)), str(view)], check=True)  # fmt: skip
            views[name] = view
        try:
            yield sandbox, views
        finally:
            for view in views.values():
                subprocess.run(["umount", str(view)], check=False)


@pytest.mark.parametrize("original", ["backup", "move"])
@pytest.mark.parametrize("view_name", ["without-pool", "disk2"])
def test_the_original_stays_when_the_view_would_not_serve_the_fast_copy(
    box, tmp_path, original, view_name
):
    sandbox, views = box
    rel = f"Movies/View {original} {view_name}/v.mkv"
    slow = sandbox.write_file(rel, DATA)
    union = UnionLayout(view=views[view_name], fast=sandbox.fast, slow=tuple(sandbox.slow))
    engine = Engine(Ledger.open(tmp_path / "state"), layout="union", original=original,
                    union=union)  # fmt: skip
    with pytest.raises(Refused, match="merged view does not serve the fast copy"):
        engine.cache(rel)
    assert slow.read_bytes() == DATA and not backup_path(slow).exists()
    fast = Path(sandbox.fast) / rel
    assert not fast.exists() and not temp_path(fast).exists()  # the copy was rolled back
    assert engine.ledger.get(rel) is None
    if view_name == "without-pool":
        assert (views[view_name] / rel).read_bytes() == DATA  # Plex still reads it


def test_a_view_that_serves_the_fast_copy_lets_the_original_go(box, tmp_path):
    sandbox, _ = box
    rel = "Movies/View ok/v.mkv"
    slow = sandbox.write_file(rel, DATA)
    union = UnionLayout(view=sandbox.view, fast=sandbox.fast, slow=tuple(sandbox.slow))
    engine = Engine(Ledger.open(tmp_path / "state"), layout="union", original="move",
                    union=union)  # fmt: skip
    assert engine.cache(rel).view_serves_fast is True
    assert not slow.exists() and sandbox.read_view(rel) == DATA
