"""The end-to-end fixtures several modules share."""

from __future__ import annotations

import pytest

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from tests.e2e.cycle_support import populate, small_world, write_rules
from tests.helpers import require_fuse


@pytest.fixture
def world(tmp_path):
    """(fake Plex, sandbox, {share path: bytes written}, rules file) of the small world:
    its library files on two slow disks behind a mergerfs view, a union-layout rules file."""
    require_fuse()
    scenario = small_world()
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=2) as sandbox:
        written = populate(sandbox, scenario)
        rules = write_rules(tmp_path / "rules.yaml", fake, sandbox, tmp_path / "state")
        yield fake, sandbox, written, rules
