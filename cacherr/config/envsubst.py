"""`${VAR}` and `${VAR:-default}` in parsed string values (never in the raw text)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cacherr.config.errors import Problem, dotted
from cacherr.config.yamlpos import Positions

# `$${` escapes a literal `${`.
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(document: Any, environ: Mapping[str, str], positions: Positions,
               path: tuple = ()) -> tuple[Any, list[Problem]]:
    """Given a parsed document, return it with references replaced, and the problems.

    `${VAR:-default}` uses the default when VAR is unset or empty (as in a shell). An unset
    `${VAR}` without default is a problem at that value.
    """
    problems: list[Problem] = []
    if isinstance(document, dict):
        result = {}
        for key, value in document.items():
            result[key], found = substitute(value, environ, positions, path + (key,))
            problems += found
        return result, problems
    if isinstance(document, list):
        items = []
        for index, value in enumerate(document):
            item, found = substitute(value, environ, positions, path + (index,))
            items.append(item)
            problems += found
        return items, problems
    if not isinstance(document, str) or "$" not in document:
        return document, problems

    def replace(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            line, column = positions.of_value(path)
            problems.append(Problem(
                line, column, dotted(path),
                f"${{{name}}} is not set in the environment and has no default "
                f"(set it, or write ${{{name}:-default}})",
            ))
            return ""
        return value

    return _REFERENCE.sub(replace, document), problems
