"""Problems found in a rules file, reported all at once as FILE:LINE:COL: path: message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    column: int
    path: str  # dotted, e.g. rules.1.keep.for; "(root)" or "(syntax)" when there is none
    message: str

    def format(self, file: str) -> str:
        return f"{file}:{self.line}:{self.column}: {self.path}: {self.message}"


class ConfigError(Exception):
    """The rules file has problems; `lines()` gives them sorted by position."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = sorted(set(problems))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [problem.format(self.file) for problem in self.problems]


def dotted(path: tuple) -> str:
    return ".".join(str(part) for part in path) if path else "(root)"
