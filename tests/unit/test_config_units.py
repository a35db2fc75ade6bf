"""Human durations and sizes, and `${VAR}` substitution in parsed values."""

import pytest

from cacherr.config.envsubst import substitute
from cacherr.config.model import Size
from cacherr.config.units import format_bytes, parse_duration, parse_size
from cacherr.config.yamlpos import parse


@pytest.mark.parametrize("text,seconds", [
    ("90s", 90), ("30m", 1800), ("48h", 172800), ("7d", 604800), ("2w", 1209600),
    ("1h30m", 5400), ("1d12h", 129600), ("0s", 0),
])
def test_durations_combine_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["90", "1 hour", "h", "1.5h", "-5m", "", "1y"])
def test_bare_numbers_and_unknown_units_are_not_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text,size", [
    ("500GiB", Size(bytes=500 * 2**30)), ("20GB", Size(bytes=20 * 10**9)),
    ("1.5TB", Size(bytes=1_500_000_000_000)), ("512 MiB", Size(bytes=512 * 2**20)),
    ("80%", Size(percent=80.0)), ("100%", Size(percent=100.0)), ("0.5%", Size(percent=0.5)),
])
def test_sizes_take_decimal_binary_and_percent_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0%", "101%", "80", "10 gigs", "GiB"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_a_percentage_resolves_against_the_file_system_size():
    assert parse_size("25%").bytes_of(1000) == 250
    assert parse_size("1KiB").bytes_of(10) == 1024
    with pytest.raises(ValueError, match="not allowed"):
        parse_size("5%", allow_percent=False)


def test_byte_counts_print_in_binary_units():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 2**30) == "3.0 GiB"


def _substitute(yaml_text, environ):
    document, positions, problems = parse(yaml_text)
    assert problems == []
    return substitute(document, environ, positions)


def test_variables_are_replaced_in_values_but_not_in_keys():
    result, problems = _substitute("a: ${X}\n${X}: 1\nb: ['x${Y:-dflt}y']\n", {"X": "val"})
    assert problems == []
    assert result == {"a": "val", "${X}": 1, "b": ["xdflty"]}


def test_a_default_is_used_when_the_variable_is_unset_or_empty():
    result, _ = _substitute("a: ${X:-one}\nb: ${Y:-two}\n", {"Y": ""})
    assert result == {"a": "one", "b": "two"}


def test_a_dollar_dollar_brace_is_a_literal():
    result, problems = _substitute("a: cost $${X}\n", {})
    assert (result, problems) == ({"a": "cost ${X}"}, [])


def test_substituted_values_are_not_parsed_as_yaml():
    # The value of X would be a comment and a mapping if pasted into the raw text.
    result, _ = _substitute("a: ${X}\n", {"X": "http://h/#x: y"})
    assert result == {"a": "http://h/#x: y"}


def test_an_unset_variable_is_a_problem_at_its_value():
    _, problems = _substitute("top:\n  key: pre-${NOPE}\n", {})
    assert [(p.line, p.column, p.path) for p in problems] == [(2, 8, "top.key")]


def test_yaml_keys_are_taken_as_written():
    document, _, _ = parse("on: 1\nyes: 2\n")
    assert document == {"on": 1, "yes": 2}


def test_merge_keys_work():
    document, _, problems = parse("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert problems == [] and document["other"] == {"x": 1, "y": 2}
