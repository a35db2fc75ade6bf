"""`cacherr doctor` checks the host (Plex, paths, branches, Unraid share and mover
settings) and audits the cache; `--fix` repairs only what is safe."""

from __future__ import annotations

import pytest

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from tests.e2e.cycle_support import cacherr, populate, small_world, write_rules
from tests.helpers import require_fuse


@pytest.fixture
def world(tmp_path):
    require_fuse()
    scenario = small_world()
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=2) as sandbox:
        written = populate(sandbox, scenario)
        rules = write_rules(tmp_path / "rules.yaml", fake, sandbox, tmp_path / "state")
        host = tmp_path / "unraid"
        (host / "emhttp").mkdir(parents=True)
        (host / "boot" / "shares").mkdir(parents=True)
        (host / "boot" / "plugins" / "ca.mover.tuning").mkdir(parents=True)
        (host / "run").mkdir()
        with rules.open("a") as handle:
            handle.write(f"host: {{mover_pid_file: '{host}/run/mover.pid', "
                         f"emhttp_dir: '{host}/emhttp', boot_config_dir: '{host}/boot'}}\n"
                         f"server: {{listen: '127.0.0.1:0'}}\n")
        yield fake, sandbox, written, rules, host


def unraid_files(host, *, version="7.2.1", schedule="0 3 * * *", tv_pool="cache",
                 filelist=None):
    (host / "emhttp" / "var.ini").write_text(
        f'version="{version}"\nfsState="Started"\nmdResyncPos="0"\n'
        f'shareMoverSchedule="{schedule}"\n')
    (host / "boot" / "shares" / "Movies.cfg").write_text(
        'shareUseCache="yes"\nshareCachePool="cache"\n')
    (host / "boot" / "shares" / "TV.cfg").write_text(
        f'shareUseCache="yes"\nshareCachePool="{tv_pool}"\n')
    if filelist is not None:
        (host / "boot" / "plugins" / "ca.mover.tuning" / "ca.mover.tuning.cfg").write_text(
            f'filelistf="yes"\nfilelistv="{filelist}"\n')


def test_a_healthy_unraid_host_passes(world, tmp_path):
    fake, sandbox, written, rules, host = world
    unraid_files(host, schedule="", filelist=tmp_path / "state" / "mover-exclude.txt")
    result = cacherr(rules, "doctor", fake=fake)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      plex: reachable, 2 library folders" in result.stdout
    assert "ok      paths: every Plex library folder maps to this host" in result.stdout
    assert "ok      mover: Mover Tuning reads" in result.stdout
    assert "PROBLEM" not in result.stdout


def test_the_unraid_traps_are_reported_with_their_fix(world):
    fake, sandbox, written, rules, host = world
    unraid_files(host, tv_pool="nvme", filelist="/mnt/user/other.txt")
    result = cacherr(rules, "doctor", fake=fake)
    assert result.returncode == 1
    out = result.stdout
    assert "PROBLEM share: share TV does not use pool cache (uses nvme)" in out
    assert "PROBLEM mover: Mover Tuning does not read cacherr's list" in out
    assert "WARN    mover: Unraid 7.2.1+'s built-in mover has its own schedule" in out
    assert out.count("fix: ") >= 3


def test_an_unreachable_plex_is_a_problem(world):
    fake, sandbox, written, rules, host = world
    fake.fail("pms", "/library/sections", status=401)
    result = cacherr(rules, "doctor", fake=fake)
    assert result.returncode == 1
    assert "PROBLEM plex: Plex refused the token (401)" in result.stdout


def test_the_audit_finds_stray_files_and_fix_repairs_only_the_safe_ones(world):
    fake, sandbox, written, rules, host = world
    unraid_files(host, schedule="")
    empty = sandbox.fast / "Movies" / "Gone (2001)"
    empty.mkdir()
    duplicate = "Movies/Other Movie (2001)/Other Movie (2001).mkv"
    (sandbox.fast / duplicate).parent.mkdir(parents=True)
    (sandbox.fast / duplicate).write_bytes(written[duplicate])
    slow_copy = next(b / duplicate for b in sandbox.slow if (b / duplicate).exists())
    backup = slow_copy.with_name(f".{slow_copy.name}.cacherr-backup")
    slow_copy.rename(backup)  # an orphan backup whose original name is free

    before = cacherr(rules, "doctor", fake=fake)
    assert f"WARN    empty-folder: {empty} is empty" in before.stdout
    assert f"WARN    orphan-backup: {backup} belongs to no cached file" in before.stdout
    assert empty.exists() and backup.exists()

    fixed = cacherr(rules, "doctor", "--fix", fake=fake)
    assert f"ok      empty-folder: removed empty {empty}" in fixed.stdout
    assert f"ok      orphan-backup: restored {backup}" in fixed.stdout
    assert not empty.exists() and not backup.exists()
    assert slow_copy.read_bytes() == written[duplicate]
    assert f"WARN    duplicate: {duplicate} is on the fast branch and a slow branch" in fixed.stdout
    assert (sandbox.fast / duplicate).exists(), "a duplicate is never deleted by --fix"
