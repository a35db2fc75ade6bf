"""The README's rules reference is the one generated from the schema."""

from pathlib import Path

from cacherr.config.reference import BEGIN, END, reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_rules_reference_matches_the_schema():
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == reference(), "run: python -m cacherr.config.reference"


def test_the_readme_starts_with_the_two_command_quick_start():
    head = README.read_text().split("\n## ")[0]
    assert "make demo" in head and "make test" in head
