"""Hostile and broken rules files: each is one `FILE:LINE:COL: path: message`, exit 2, in
well under a second and a few MiB (the command itself, measured in its own process),
and nothing on disk changes. Before, a nine-level alias bomb grew `validate` past 7 GB."""

from __future__ import annotations

import re

import pytest

from tests.e2e.hostile.support import measured, tree
from tests.e2e.test_cli import RULES

SECONDS = 1.0
GROWTH_MIB = 100
BASE = RULES  # a valid file for folder/media, folder/ssd, folder/state


def alias_bomb(levels: int) -> str:
    lines = ['lol0: &a0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"lol{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int) -> str:
    lines = ["m0: &m0 {x: 1}"]
    for level in range(1, levels + 1):
        lines.append(f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}], y{level}: 1}}")
    return "\n".join(lines) + "\n"


HOSTILE = {
    # name: (file content, expected "LINE:COL: path: message" regex)
    "billion-laughs": (alias_bomb(9).encode(),
                       r"^10:12: \(syntax\): aliases expand the rules file past \d+ values"),
    "merge-key-bomb": (merge_bomb(40).encode(),
                       r"^\d+:\d+: \(syntax\): aliases expand the rules file past"),
    "self-alias": (b"a: &x [1, *x]\n",
                   r"^1:11: \(syntax\): this alias refers to a value that contains itself"),
    "deep-flow": (b"a: " + b"[" * 20000 + b"]" * 20000 + b"\n",
                  r"^1:35: \(syntax\): nested more than 32 levels deep"),
    "deep-mapping": (b"a: " + b"{b: " * 20000 + b"1" + b"}" * 20000 + b"\n",
                     r"^1:\d+: \(syntax\): nested more than 32 levels deep"),
    "many-values": (b"a: [" + b"0, " * 200000 + b"0]\n",
                    r"^1:\d+: \(syntax\): more than \d+ values"),
    "binary-junk": (bytes(range(256)) * 64,
                    r"^2:118: \(syntax\): the byte 0x80 is not UTF-8 text"),
    "nul-byte": (b"version: 1\nplex: \x00\n",
                 r"^2:7: \(syntax\): the character U\+0000 is not allowed"),
    "fifty-megabytes": (b"# " + b"x" * (50 * 1024 * 1024) + b"\n",
                        r"^1:1: \(file\): the file is 50\.0 MiB; a rules file is at most 1\.0 MiB"),
    "two-documents": (b"version: 1\n---\nversion: 1\n",
                      r"^2:1: \(syntax\): expected a single document"),
}


@pytest.fixture
def folder(tmp_path):
    for name in ("media", "ssd", "state"):
        (tmp_path / name).mkdir()
    return tmp_path


CASES = [(name, ["validate"]) for name in HOSTILE] + [
    (name, ["run", "--once"]) for name in ("billion-laughs", "deep-flow", "binary-junk")]


@pytest.mark.parametrize(("name", "command"), CASES, ids=[f"{n}-{c[0]}" for n, c in CASES])
def test_a_hostile_rules_file_is_one_positioned_problem_at_once(folder, name, command):
    data, expected = HOSTILE[name]
    rules = folder / "rules.yaml"
    rules.write_bytes(data)
    before = tree(folder)
    result = measured("-c", str(rules), *command)
    assert result.code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{rules}:"), result.stderr
    assert re.search(expected, first.removeprefix(f"{rules}:")), first
    assert "Traceback" not in result.output
    assert result.seconds < SECONDS, f"{name}: {result.seconds:.2f} s"
    assert result.growth_mib < GROWTH_MIB, f"{name}: +{result.growth_mib:.0f} MiB"
    assert result.peak_mib < 2 * GROWTH_MIB, f"{name}: {result.peak_mib:.0f} MiB in all"
    assert tree(folder) == before


def test_the_bomb_inside_an_otherwise_valid_file_is_refused_the_same(folder):
    rules = folder / "rules.yaml"
    rules.write_text(BASE.format(root=folder) + alias_bomb(9).replace("lol", "x-lol"))
    before = tree(folder)
    result = measured("plan", "-c", str(rules))  # -c after the command, too
    assert result.code == 2 and "aliases expand the rules file" in result.stderr
    assert result.seconds < SECONDS and result.growth_mib < GROWTH_MIB
    assert tree(folder) == before


@pytest.mark.parametrize(("text", "expected"), [
    ("version:\n", "1:9: version: has no value; give one (e.g. 1)"),
    ("version: !!int abc\n", "1:10: version: 'abc' is not a valid int"),
    ("? [a, b]\n: 1\n", "1:3: (root): a key must be plain text, not a list or a mapping"),
    ("when: 2001-13-45\n", "1:7: when: '2001-13-45' is not a valid timestamp"),
    ("version: 99999999999999999999999999999999999999999\n",
     "1:10: version: 99999999999999999999999999999999999999999 must be 1"),
])
def test_schema_messages_never_show_parser_internals(folder, text, expected):
    rules = folder / "rules.yaml"
    rules.write_text(text)
    result = measured("validate", "--offline", "-c", str(rules))
    assert result.code == 2
    lines = [line.removeprefix(f"{rules}:") for line in result.stderr.splitlines()]
    assert expected in lines, result.stderr
    for internal in ("ScalarNode", "MappingNode", "SequenceNode", "None ", "tag:yaml.org"):
        assert internal not in result.stderr


def test_a_rules_file_at_the_size_limit_still_loads_quickly(folder):
    rules = folder / "rules.yaml"
    body = BASE.format(root=folder)
    padding = 1024 * 1024 - len(body) - 1
    rules.write_text(body + "#" + "x" * (padding - 2) + "\n")
    assert rules.stat().st_size <= 1024 * 1024
    result = measured("validate", "-c", str(rules))
    assert result.code == 0, result.output
    assert result.seconds < SECONDS


def test_a_merge_key_still_works_and_the_mapping_s_own_keys_win(folder):
    rules = folder / "rules.yaml"
    rules.write_text(BASE.format(root=folder).replace(
        "rules: [{name: r, select: ondeck}]",
        "rules:\n  - &base {name: a, select: ondeck, priority: 10}\n"
        "  - {<<: *base, name: b, priority: 90}"))
    result = measured("validate", "-c", str(rules))
    assert result.code == 0, result.output
    assert "valid (2 rules" in result.stderr
