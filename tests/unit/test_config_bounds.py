"""Parsing within bounds, merge keys, the .env beside the rules file, relative paths, and
the meaning checks that keep a user from hurting themselves (pure: no files but tmp)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cacherr.config import dotenv
from cacherr.config.checks import check_meaning
from cacherr.config.places import absolute_paths, check_places
from cacherr.config.yamlpos import MAX_DEPTH, MAX_VALUES, decode, parse


def test_an_alias_bomb_is_refused_before_anything_is_expanded():
    text = 'a0: &a0 "x"\n' + "".join(
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 10))
    document, _, problems = parse(text)
    assert document is None
    assert [(p.line, p.column, p.path) for p in problems] == [(10, 10, "(syntax)")]
    assert f"past {MAX_VALUES} values" in problems[0].message


def test_aliases_that_stay_small_are_fine_and_shared_values_are_copies():
    document, _, problems = parse("a: &x {k: [1, 2]}\nb: *x\nc: *x\n")
    assert problems == [] and document["b"] == document["c"] == {"k": [1, 2]}
    document["b"]["k"].append(3)
    assert document["c"] == {"k": [1, 2]}


def test_a_merge_key_keeps_the_mapping_s_own_keys_and_the_first_merged_wins():
    document, _, problems = parse("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\n"
                                  "c: {<<: [*a, *b], y: 3}\nd: {<<: *a}\n")
    assert problems == []
    assert document["c"] == {"y": 3, "x": 1, "z": 2}
    assert document["d"] == {"x": 1, "y": 1}


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x {b: *x}\n", "a: &x {<<: *x}\n"])
def test_an_alias_inside_its_own_value_is_refused(text):
    document, _, problems = parse(text)
    assert document is None and "contains itself" in problems[0].message


def test_nesting_is_bounded_at_its_position():
    text = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    _, _, problems = parse(text)
    assert (problems[0].line, problems[0].column) == (1, 4 + MAX_DEPTH - 1)


def test_bytes_that_are_not_utf8_are_positioned():
    text, problems = decode(b"version: 1\nplex: \xc3\x28\n")
    assert text is None and (problems[0].line, problems[0].column) == (2, 7)


def test_the_env_file_is_parsed_quoted_and_commented_and_the_environment_wins(tmp_path):
    rules = tmp_path / "rules.yaml"
    (tmp_path / ".env").write_text("A=1\nexport B='two words' # note\nC=\"x#y\"\n# D=4\n")
    assert dotenv.read(dotenv.beside(rules)) == {"A": "1", "B": "two words", "C": "x#y"}
    assert dotenv.environment(rules, {"A": "env"})["A"] == "env"


def test_merging_into_an_env_file_adds_keeps_and_stays_private(tmp_path):
    path = tmp_path / ".env"
    path.write_text("KEEP=old\n")
    path.chmod(0o644)
    added, kept = dotenv.merge(path, {"KEEP": "new", "NEW": "v a'l", "PLAIN": "abc"})
    assert (added, kept) == (["NEW", "PLAIN"], ["KEEP"])
    assert dotenv.read(path) == {"KEEP": "old", "NEW": "v a'l", "PLAIN": "abc"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dotenv.exposed(path) is False
    with pytest.raises(ValueError):
        dotenv.merge(path, {"BAD": "two\nlines"})


def test_relative_host_paths_are_taken_from_the_rules_file_s_folder():
    document = {"paths": [{"plex": "data", "host": "media"}], "state_dir": "../state",
                "cache": {"union": {"view": "user", "fast": "/mnt/cache", "slow": ["disk*"]}}}
    fixed = absolute_paths(document, Path("/srv/cacherr"))
    assert fixed["paths"] == [{"plex": "data", "host": "/srv/cacherr/media"}]
    assert fixed["state_dir"] == "/srv/state"
    assert fixed["cache"]["union"] == {"view": "/srv/cacherr/user", "fast": "/mnt/cache",
                                       "slow": ["/srv/cacherr/disk*"]}


def messages(document, base=None) -> list[str]:
    from cacherr.config.yamlpos import Positions

    positions = Positions()
    return [f"{p.path}: {p.message}" for p in
            check_meaning(document, positions) + check_places(document, positions, base=base)]


@pytest.mark.parametrize(("state_dir", "base", "fragment"), [
    ("/boot/config/plugins/cacherr/state", None, "on the flash drive"),
    ("/mnt/user/appdata/cacherr", None, "e.g. /mnt/cache/appdata/cacherr"),
    (None, Path("/boot/config/plugins/cacherr"), "not set, so it defaults to a `state` folder"),
])
def test_a_state_dir_on_the_flash_or_the_user_shares_is_refused_offline(state_dir, base,
                                                                        fragment):
    document = {} if state_dir is None else {"state_dir": state_dir}
    found = messages(document, base)
    assert len(found) == 1 and fragment in found[0]


@pytest.mark.parametrize(("schedule", "expected"), [
    ({"every": "0s"}, ["schedule.every: 0s is too often"]),
    ({"every": "4m59s"}, ["schedule.every: 4m59s is too often"]),
    ({"every": "5m", "sessions_every": "2s"}, []),
    ({"sessions_every": "1s"}, ["schedule.sessions_every: 1s is too often"]),
])
def test_schedules_have_minimums(schedule, expected):
    found = messages({"schedule": schedule})
    assert [line.split(":", 2)[0] + ":" + line.split(":", 2)[1] for line in found] == expected


def test_overlapping_and_duplicate_path_mappings_are_refused_but_nested_plex_prefixes_are_not():
    found = messages({"paths": [{"plex": "/data", "host": "/mnt/user/a"},
                                {"plex": "/data/tv", "host": "/mnt/user/b"},
                                {"plex": "/data/", "host": "/mnt/user/c"},
                                {"plex": "/x", "host": "/mnt/user/a/sub"}]})
    assert [line.split(":")[0] for line in found] == ["paths.2.plex", "paths.3.host"]


def test_commands_warn_when_the_env_file_is_readable_by_others(tmp_path, capsys):
    from cacherr.cli import main

    (tmp_path / "media").mkdir()
    (tmp_path / "ssd").mkdir()
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nplex: {url: 'http://127.0.0.1:9', token: '${T}'}\n"
                     "paths: [{plex: /data, host: media}]\n"
                     "cache: {layout: symlink, symlink: {dir: ssd, plex_dir: /ssd}}\n"
                     "rules: [{name: r, select: ondeck}]\n")
    secrets = tmp_path / ".env"
    secrets.write_text("T=secret-from-the-env-file\n")
    secrets.chmod(0o644)
    assert main(["validate", "--offline", "-c", str(rules)]) == 0
    err = capsys.readouterr().err
    assert f"run chmod 600 {secrets}" in err and "secret-from-the-env-file" not in err
    secrets.chmod(0o600)
    assert main(["validate", "--offline", "-c", str(rules)]) == 0
    assert "chmod" not in capsys.readouterr().err
