"""`cacherr validate` reports every problem of a broken rules file at once, as
FILE:LINE:COL: dotted.path: message, exits 2, and changes nothing on disk."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from cacherr.cli import main
from tests.helpers import require_root

VALID = """\
version: 1
plex:
  url: http://127.0.0.1:32400
  token: abc
paths:
  - plex: /data/media
    host: {root}/user/media
cache:
  layout: union
  union:
    view: {root}/user
    fast: {root}/cache
    slow: [{root}/disk*]
  max_size: 80%
rules:
  - name: continue-watching
    select: ondeck
    within: 14d
    episodes_ahead: 5
    keep: {{while: selected, min: 24h}}
    priority: 80
  - name: pins
    select: pinned
    label: cache
state_dir: {root}/state
"""


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its content (None for folders)."""
    result = {}
    for path in sorted(folder.rglob("*")):
        result[str(path.relative_to(folder))] = path.read_bytes() if path.is_file() else None
    return result


def validate(tmp_path: Path, text: str, capsys, *extra: str, env: dict | None = None):
    rules = tmp_path / "rules.yaml"
    rules.write_text(text, encoding="utf-8")
    before = snapshot(tmp_path)
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        code = main(["-c", str(rules), "validate", *extra])
    finally:
        os.environ.clear()
        os.environ.update(old)
    err = capsys.readouterr().err
    assert snapshot(tmp_path) == before, "validate changed something on disk"
    problems = [line.removeprefix(f"{rules}:") for line in err.splitlines()
                if line.startswith(f"{rules}:") and "problem(s)" not in line
                and ": valid (" not in line]
    return code, problems


def offline(tmp_path: Path, text: str, capsys, env: dict | None = None):
    return validate(tmp_path, textwrap.dedent(text), capsys, "--offline", env=env)


def valid_text(root: Path = Path("/srv")) -> str:
    return VALID.format(root=root)


def with_lines(replacements: dict[str, str], root: Path = Path("/srv")) -> str:
    text = valid_text(root)
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# -- the valid base, and YAML itself ---------------------------------------------------


def test_the_valid_base_file_passes_offline(tmp_path, capsys):
    assert offline(tmp_path, valid_text(), capsys) == (0, [])


def test_a_yaml_syntax_error_points_at_its_line_and_column(tmp_path, capsys):
    text = with_lines({"  token: abc\n": "  token: abc\n bad: [1, 2\n"})
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2
    assert len(problems) == 1 and problems[0].startswith("5:2: (syntax): ")


def test_an_empty_file_is_an_error(tmp_path, capsys):
    assert offline(tmp_path, "# nothing here\n", capsys) == (
        2, ["1:1: (root): the rules file is empty"])


def test_a_duplicate_yaml_key_points_at_the_second_one(tmp_path, capsys):
    text = with_lines({"  token: abc\n": "  token: abc\n  url: http://other:32400\n"})
    assert offline(tmp_path, text, capsys) == (
        2, ["5:3: plex.url: duplicate key 'url' (first at line 3)"])


# -- schema ----------------------------------------------------------------------------


def test_an_unknown_top_level_key_points_at_its_own_line(tmp_path, capsys):
    text = valid_text() + "colour: blue\n"
    assert offline(tmp_path, text, capsys) == (2, ["26:1: colour: unknown key 'colour'"])


def test_an_unknown_rule_key_suggests_the_right_one(tmp_path, capsys):
    text = with_lines({"    episodes_ahead: 5\n": "    episode_ahead: 5\n"})
    assert offline(tmp_path, text, capsys) == (2, [
        "19:5: rules.0.episode_ahead: unknown key 'episode_ahead' "
        "(did you mean 'episodes_ahead'?)"])


def test_a_missing_required_key_points_at_the_mapping_that_lacks_it(tmp_path, capsys):
    text = with_lines({"  url: http://127.0.0.1:32400\n": ""})
    assert offline(tmp_path, text, capsys) == (2, ["3:3: plex.url: missing required key 'url'"])


def test_a_missing_top_level_section_is_reported_at_the_top(tmp_path, capsys):
    text = with_lines({"version: 1\n": ""})
    assert offline(tmp_path, text, capsys) == (
        2, ["1:1: version: missing required key 'version'"])


def test_an_unsupported_version_is_an_error(tmp_path, capsys):
    text = with_lines({"version: 1\n": "version: 2\n"})
    assert offline(tmp_path, text, capsys) == (2, ["1:10: version: 2 must be 1"])


def test_a_bare_number_is_not_a_duration(tmp_path, capsys):
    text = with_lines({"    within: 14d\n": "    within: 90\n"})
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2
    assert problems == ["18:13: rules.0.within: 90 is not a duration: use a number with a "
                        "unit s, m, h, d or w (e.g. 90s, 30m, 48h, 7d, 1h30m)"]


def test_a_spelled_out_duration_is_an_error(tmp_path, capsys):
    text = valid_text() + "schedule:\n  every: 1 hour\n"
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2 and len(problems) == 1
    assert problems[0].startswith("27:10: schedule.every: '1 hour' is not a duration")


def test_a_size_without_unit_is_an_error(tmp_path, capsys):
    text = with_lines({"  max_size: 80%\n": "  max_size: 80 percent\n"})
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2 and len(problems) == 1
    assert problems[0].startswith("14:13: cache.max_size: '80 percent' is not a size")


def test_a_percentage_above_100_is_an_error(tmp_path, capsys):
    text = with_lines({"  max_size: 80%\n": "  max_size: 150%\n"})
    assert offline(tmp_path, text, capsys) == (2, [
        "14:13: cache.max_size: '150%': a percentage must be more than 0 and at most 100"])


def test_an_unknown_layout_lists_the_choices(tmp_path, capsys):
    text = with_lines({"  layout: union\n": "  layout: overlay\n"})
    assert offline(tmp_path, text, capsys) == (
        2, ["9:11: cache.layout: 'overlay' is not one of: union, symlink"])


def test_a_priority_above_100_is_an_error(tmp_path, capsys):
    text = with_lines({"    priority: 80\n": "    priority: 150\n"})
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2 and problems == [
        "21:15: rules.0.priority: 150 is greater than the maximum of 100"]


def test_a_word_where_a_number_belongs_is_a_type_error(tmp_path, capsys):
    text = with_lines({"  max_size: 80%\n": "  max_size: 80%\n  transfers: {to_cache: two}\n"})
    assert offline(tmp_path, text, capsys) == (
        2, ["15:25: cache.transfers.to_cache: expected a whole number, got a string"])


# -- meaning ---------------------------------------------------------------------------


def test_a_duplicate_rule_name_points_at_the_second_occurrence(tmp_path, capsys):
    text = with_lines({"  - name: pins\n": "  - name: continue-watching\n"})
    assert offline(tmp_path, text, capsys) == (2, [
        "22:11: rules.1.name: duplicate rule name 'continue-watching' (first at line 16)"])


def test_a_union_layout_without_its_block_is_an_error(tmp_path, capsys):
    text = with_lines({"  union:\n": "  unused:\n"})
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2
    assert problems == [
        "9:3: cache: layout: union needs a 'union' block (view, fast, slow)",
        "10:3: cache.unused: unknown key 'unused'",
    ]


def test_a_symlink_layout_without_its_block_is_an_error(tmp_path, capsys):
    text = textwrap.dedent("""\
        version: 1
        plex: {url: http://127.0.0.1:32400, token: abc}
        paths: [{plex: /data, host: /srv/data}]
        cache:
          layout: symlink
        rules: []
        """)
    assert offline(tmp_path, text, capsys) == (
        2, ["5:3: cache: layout: symlink needs a 'symlink' block (dir, plex_dir)"])


def test_an_unset_variable_without_default_points_at_its_value(tmp_path, capsys):
    text = with_lines({"  token: abc\n": "  token: ${CACHERR_TEST_UNSET_TOKEN}\n"})
    assert offline(tmp_path, text, capsys) == (2, [
        "4:10: plex.token: ${CACHERR_TEST_UNSET_TOKEN} is not set in the environment and has "
        "no default (set it, or write ${CACHERR_TEST_UNSET_TOKEN:-default})"])


def test_a_windows_plex_prefix_is_an_error(tmp_path, capsys):
    text = with_lines({"  - plex: /data/media\n": "  - plex: 'C:\\Media'\n"})
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2 and len(problems) == 1
    assert problems[0].startswith("6:11: paths.0.plex: 'C:\\\\Media' is a Windows path")


def test_an_apprise_url_that_apprise_cannot_parse_is_an_error(tmp_path, capsys):
    text = valid_text() + "notify:\n  urls: ['unraid://', 'nosuchscheme://x']\n"
    assert offline(tmp_path, text, capsys) == (
        2, ["27:23: notify.urls.1: Apprise cannot use this URL: nosuchscheme://..."])


def test_a_key_of_another_selector_is_an_error(tmp_path, capsys):
    text = with_lines({"    episodes_ahead: 5\n": "    episodes_ahead: 5\n    list: movies/trending\n"})
    assert offline(tmp_path, text, capsys) == (
        2, ["20:5: rules.0.list: 'list' does not apply to select: ondeck"])


def test_a_keep_with_two_forms_is_an_error(tmp_path, capsys):
    text = with_lines({"{while: selected, min: 24h}": "{while: selected, for: 7d}"})
    assert offline(tmp_path, text, capsys) == (2, [
        "20:11: rules.0.keep: keep needs exactly one of 'while: selected', 'for: D' or "
        "'until: watched' (found while, for)"])


def test_a_trakt_rule_needs_a_list_and_a_client_id(tmp_path, capsys):
    text = with_lines({"state_dir:": "  - name: trending\n    select: trakt\nstate_dir:"})
    assert offline(tmp_path, text, capsys) == (2, [
        "25:5: rules.2: select: trakt needs a 'list' (e.g. movies/trending)",
        "26:13: rules.2.select: select: trakt needs trakt.client_id",
    ])


def test_every_problem_is_reported_at_once_in_file_order(tmp_path, capsys):
    text = with_lines({
        "version: 1\n": "version: 1\ncolour: blue\n",
        "  layout: union\n": "  layout: overlay\n",
        "    within: 14d\n": "    within: 2 weeks\n",
    })
    code, problems = offline(tmp_path, text, capsys)
    assert code == 2
    assert [p.split(":")[0:3] for p in problems] == [
        ["2", "1", " colour"], ["10", "11", " cache.layout"], ["19", "13", " rules.0.within"]]


def test_a_hash_inside_a_substituted_url_survives(tmp_path, capsys):
    from cacherr.config import loader

    text = valid_text() + "notify:\n  urls: ['${CACHERR_TEST_URL}']\n"
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    config = loader.load(rules, {"CACHERR_TEST_URL": "json://127.0.0.1:9/x #frag"},
                         offline=True)
    assert config.notify.urls == ("json://127.0.0.1:9/x #frag",)


def test_a_missing_rules_file_exits_2(tmp_path, capsys):
    assert main(["-c", str(tmp_path / "nope.yaml"), "validate"]) == 2
    assert "cannot read the rules file" in capsys.readouterr().err


# -- checks against this host ----------------------------------------------------------


@pytest.fixture
def host_tree(tmp_path):
    """tmp/{disk1,disk2,user/media,state} on the disk, and a tmpfs at tmp/cache."""
    require_root()
    root = tmp_path / "host"
    for folder in ("disk1", "disk2", "user/media", "cache", "state"):
        (root / folder).mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(root / "cache")],
                   check=True)
    yield root
    subprocess.run(["umount", str(root / "cache")], check=True)


def test_a_sandbox_with_real_branches_validates_fully(tmp_path, capsys, host_tree):
    assert validate(tmp_path, valid_text(host_tree), capsys) == (0, [])


def test_a_host_path_that_does_not_exist_is_an_error(tmp_path, capsys, host_tree):
    (host_tree / "user/media").rmdir()
    code, problems = validate(tmp_path, valid_text(host_tree), capsys)
    assert (code, problems) == (
        2, [f"7:11: paths.0.host: {host_tree}/user/media does not exist on this host"])


def test_a_slow_glob_that_matches_nothing_is_an_error(tmp_path, capsys, host_tree):
    text = valid_text(host_tree).replace(f"{host_tree}/disk*", f"{host_tree}/array*")
    assert validate(tmp_path, text, capsys) == (
        2, [f"13:12: cache.union.slow.0: {host_tree}/array* matches no folder on this host"])


def test_a_fast_branch_on_the_same_device_as_a_slow_branch_is_an_error(tmp_path, capsys,
                                                                          host_tree):
    text = valid_text(host_tree).replace(f"fast: {host_tree}/cache", f"fast: {host_tree}/state")
    code, problems = validate(tmp_path, text, capsys)
    assert code == 2
    assert problems == [
        f"13:12: cache.union.slow.0: slow branch {host_tree}/disk1 is on the same device as "
        f"the fast branch {host_tree}/state; caching would gain nothing",
        f"13:12: cache.union.slow.0: slow branch {host_tree}/disk2 is on the same device as "
        f"the fast branch {host_tree}/state; caching would gain nothing",
    ]


def test_a_state_dir_on_tmpfs_is_refused(tmp_path, capsys, host_tree):
    text = valid_text(host_tree).replace(f"state_dir: {host_tree}/state",
                                         f"state_dir: {host_tree}/cache/state")
    code, problems = validate(tmp_path, text, capsys)
    assert code == 2 and len(problems) == 1
    assert problems[0].startswith(f"25:12: state_dir: state_dir {host_tree}/cache/state is on "
                                  "tmpfs")


def test_offline_skips_the_host_checks(tmp_path, capsys):
    text = valid_text(Path("/nonexistent/host"))
    assert offline(tmp_path, text, capsys) == (0, [])
    assert validate(tmp_path, text, capsys)[0] == 2
