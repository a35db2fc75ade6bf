"""The rough edges a new user hits, each with the real command: `run --once` notifies and
says why a source failed, `plan` and `validate` write nothing anywhere, `evict` takes
paths the way `ls` prints them (and no `..` escapes), `doctor --fix` removes a stray
temporary file that provably is cacherr's, validation refuses what would hurt, and the
small things: `-c` after the command, a table header, a JSON summary, a clear message."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.e2e.hostile.support import measured, tree
from tests.e2e.hostile.world import hostile_world
from tests.helpers import require_fuse, require_root

TRENDING = "Movies/Trending Movie (2001)/Trending Movie (2001).mkv"


@pytest.fixture
def world(tmp_path):
    require_root()
    with hostile_world(tmp_path) as built:
        yield built


def events(world) -> list[tuple[str, str]]:
    return [(item["json"]["title"], item["json"]["type"]) for item in world.sink.received]


def test_run_once_sends_the_services_notifications_and_says_why_a_source_failed(world):
    world.rules.write_text(world.rules.read_text().replace("max_size: 90%", "max_size: 200KiB"))
    result = world.cacherr("run", "--once")
    assert result.returncode == 0, result.stderr
    titles = [title for title, _ in events(world)]
    assert "cacherr: cycle summary" in titles and "cacherr: cache full" in titles
    world.fake.fail("pms", "/", status=401)
    failed = world.cacherr("run", "--once")
    assert failed.returncode == 1
    assert re.search(r"source failed: plex: .*401.* — check plex\.token", failed.stderr), \
        failed.stderr


def test_plan_validate_ls_and_doctor_write_nothing_anywhere(world):
    # Before any run (no state yet), and after one (a state to read, never to write).
    rounds = {"before": (["plan"], ["validate"]),
              "after": (["plan", "--json"], ["validate", "--offline"], ["ls"], ["doctor"])}
    for round_, commands in rounds.items():
        before = tree(world.root)
        for command in commands:
            result = world.cacherr(*command)
            assert "Traceback" not in result.stderr, result.stderr
            assert tree(world.root) == before, f"{' '.join(command)} ({round_} a run) wrote"
        if round_ == "before":
            assert world.cacherr("run", "--once").returncode == 0


def test_evict_takes_paths_as_ls_prints_them_and_never_leaves_the_roots(world):
    assert world.cacherr("run", "--once").returncode == 0
    table = world.cacherr("ls").stdout.splitlines()
    assert table[0].split() == ["SIZE", "KIND", "SINCE", "RULES", "USERS", "PATH"]
    row = next(line for line in table[1:] if line.endswith(TRENDING))
    listed = row[row.index("Movies/"):]
    assert world.cacherr("evict", listed).returncode == 0
    episodes = sorted(path for path in world.on_fast() if path.startswith("TV/"))
    given = [str(world.sandbox.fast / episodes[0]),  # the pool copy, as ls --format json has it
             f"{world.media}/TV/../TV/{episodes[1].removeprefix('TV/')}"]  # `..` inside
    result = world.cacherr("evict", *given)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("evicted")] == [
        f"evicted {episodes[0]}", f"evicted {episodes[1]}"]
    before = tree(world.root)
    escaping = [f"{world.media}/../rules.yaml", f"{world.media}/TV/../../.env",
                "../../etc/passwd", f"{world.sandbox.fast}/../disk1"]
    refused = world.cacherr("evict", *escaping)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"cacherr evict: {path}: outside the configured roots (paths, cache)" for path in escaping]
    assert tree(world.root) == before
    for relative, data in world.written.items():
        assert (world.media / relative).read_bytes() == data


def test_doctor_fix_removes_a_stray_temporary_file_that_is_cacherrs_and_not_open(world):
    assert world.cacherr("run", "--once").returncode == 0
    folder = world.sandbox.fast / "Movies" / "Trending Movie (2001)"
    stray = folder / ".Trending Movie (2001).mkv.cacherr-tmp"
    held = folder / ".Other.mkv.cacherr-tmp"
    stray.write_bytes(b"half a copy")
    held.write_bytes(b"being written")
    with open(held, "rb"):
        report = world.cacherr("doctor")
        assert f"{stray} is a temporary file of cacherr's; no journal entry knows it" in \
            report.stdout and "cacherr doctor --fix removes it" in report.stdout
        assert stray.exists()
        fixed = world.cacherr("doctor", "--fix")
        assert f"removed {stray}: a temporary file of cacherr's" in fixed.stdout
        assert f"{held} is a temporary file of cacherr's; a process has it open" in fixed.stdout
    assert not stray.exists() and held.exists()
    assert len(world.on_fast()) == 5  # the four cached files and the one still open


def test_the_summary_is_json_with_log_json_and_the_cli_takes_c_after_the_command(world):
    result = world.cacherr("run", "--once", "--log-json")  # -c comes after `run` too
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    summary = lines[-1]
    assert summary["logger"] == "cacherr.summary"
    assert summary["summary"]["cached_files"] == 4 and summary["summary"]["failed"] == []


@pytest.mark.parametrize("listen", ["abc", "127.0.0.1:99999", "host:port", ":"])
def test_healthcheck_with_a_bad_cacherr_listen_says_so_and_exits_1(world, listen):
    result = world.cacherr("healthcheck", env={"CACHERR_LISTEN": listen})
    assert result.returncode == 1
    assert result.stderr.strip() == (f"cacherr healthcheck: CACHERR_LISTEN={listen!r} is not "
                                     "HOST:PORT (e.g. 127.0.0.1:5445, or :5445)")


INVALID = """\
version: 1
plex: {url: 'http://127.0.0.1:9', token: t}
paths:
  - {plex: /data, host: /srv/media}
  - {plex: /data/, host: /srv/other}
  - {plex: /more, host: /srv/media/tv}
cache:
  layout: union
  union: {view: /mnt/user, fast: /mnt/user/cache, slow: [/mnt/user/disk1, /mnt/disk*]}
rules: [{name: r, select: ondeck}]
schedule: {every: 0s, sessions_every: 1s}
server: {token: s3cr3t-t0k3n}
state_dir: /boot/config/plugins/cacherr/state
"""


def test_validation_refuses_what_would_hurt_and_names_the_fix(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(INVALID)
    before = tree(tmp_path)
    result = measured("validate", "--offline", "-c", str(rules))
    assert result.code == 2
    problems = [line.removeprefix(f"{rules}:") for line in result.stderr.splitlines()
                if line.startswith(f"{rules}:")]
    expected = [
        "5:12: paths.1.plex: /data/ is already mapped by paths.0; give each Plex prefix once",
        "6:25: paths.2.host: /srv/media/tv overlaps paths.0.host /srv/media",
        "9:34: cache.union.fast: /mnt/user/cache is inside the merged view /mnt/user, not a "
        "branch; give the pool's own path",
        "9:58: cache.union.slow.0: /mnt/user/disk1 is inside the merged view /mnt/user",
        "11:19: schedule.every: 0s is too often",
        "11:39: schedule.sessions_every: 1s is too often: each poll asks Plex; the minimum is 2s",
        "12:17: server.token: is shorter than 16 characters",
        "13:12: state_dir: /boot/config/plugins/cacherr/state is on the flash drive",
    ]
    for line in expected:
        assert any(problem.startswith(line) for problem in problems), (line, problems)
    assert "set state_dir: /mnt/cache/appdata/cacherr" in result.stderr
    assert "s3cr3t-t0k3n" not in result.stderr  # the token itself is never shown
    assert tree(tmp_path) == before


def test_a_state_dir_on_fuse_is_refused_and_relative_paths_follow_the_rules_file(tmp_path):
    require_fuse()
    from cacherr.testing.sandbox import Sandbox

    with Sandbox(tmp_path / "sb", disks=1) as sandbox:
        (sandbox.view / "Movies" / "state").mkdir()
        rules = tmp_path / "sb" / "rules.yaml"
        rules.write_text(
            "version: 1\nplex: {url: 'http://127.0.0.1:9', token: t}\n"
            "paths: [{plex: /data, host: user}]\n"
            "cache: {layout: union, union: {view: user, fast: cache, slow: [disk1]}}\n"
            "rules: [{name: r, select: ondeck}]\nstate_dir: user/Movies/state\n")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        result = measured("validate", "-c", str(rules), cwd=elsewhere)
        assert result.code == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 2, result.stderr  # only the state_dir: the relative paths resolved
        assert re.match(rf"{re.escape(str(rules))}:6:12: state_dir: state_dir "
                        rf"{re.escape(str(sandbox.view))}/Movies/state is on FUSE", lines[0])
        assert "/mnt/cache/appdata/cacherr" in lines[0]
        assert os.listdir(elsewhere) == []


@pytest.mark.parametrize(("name", "data", "message"), [
    ("deep.json", b"[" * 100000 + b"]" * 100000, "nests too deeply"),
    ("junk.json", bytes(range(256)), "is not UTF-8 text"),
    ("huge.json", b" " * (5 * 1024 * 1024) + b"{}", "larger than a settings file can be"),
], ids=["deep", "junk", "huge"])
def test_init_refuses_hostile_settings_files_at_once_and_writes_nothing(tmp_path, name, data,
                                                                        message):
    source = tmp_path / name
    source.write_bytes(data)
    before = tree(tmp_path)
    result = measured("init", "--from-plexcache", str(source), "-c", str(tmp_path / "r.yaml"))
    assert result.code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.output
    assert result.seconds < 1 and result.growth_mib < 100
    assert tree(tmp_path) == before
