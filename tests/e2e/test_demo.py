"""`cacherr demo --once` (behind `make demo`) runs a whole cycle on a throw-away sandbox
with the built-in fake Plex, prints plan, ls and the summary, and exits 0."""

import os
import subprocess
import sys

import pytest

from tests.helpers import require_fuse


def demo(*args):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CACHERR_")}
    return subprocess.run([sys.executable, "-m", "cacherr", "demo", "--once", *args],
                          capture_output=True, text=True, timeout=120, env=environment)


@pytest.mark.parametrize("layout", ["union", "symlink"])
def test_the_demo_caches_files_and_prints_the_summary(layout):
    if layout == "union":
        require_fuse()
    result = demo("--layout", layout)
    assert result.returncode == 0, result.stderr
    assert "cached 5 files" in result.stderr
    assert "== what is cached: cacherr ls" in result.stderr
    assert "5 files, 320.0 KiB" in result.stderr
    assert result.stdout.count("continue-watching") == 3
