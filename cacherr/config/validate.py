"""Checking a parsed rules file against the JSON Schema, with positions."""

from __future__ import annotations

import difflib
import re
from typing import Any

import jsonschema

from cacherr.config.errors import Problem, dotted
from cacherr.config.schema import SCHEMA
from cacherr.config.yamlpos import Positions

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
_TYPE_NAMES = {
    "string": "a string", "integer": "a whole number", "boolean": "true or false",
    "object": "a mapping of keys", "array": "a list", "number": "a number",
}


def _python_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty" if value is None else type(value).__name__


def schema_problems(document: Any, positions: Positions) -> list[Problem]:
    """Given a parsed (substituted) document, return every schema problem with its position."""
    problems: list[Problem] = []
    for error in _VALIDATOR.iter_errors(document):
        path = tuple(error.absolute_path)
        problems += _describe(error, path, positions)
    return problems


def _shown(instance: Any, schema: dict[str, Any]) -> str:
    """How a value appears in a message: never a secret, never an empty value as `None`,
    URLs without their credentials, path and query."""
    from cacherr.logs import redact

    if schema.get("x-secret"):
        return "this value"
    if instance is None:
        return "an empty value"
    if isinstance(instance, str):
        return repr(redact(instance))
    return str(instance)


def _describe(error: jsonschema.ValidationError, path: tuple,
              positions: Positions) -> list[Problem]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        if not known:  # a free-form map with typed values (user_tokens)
            return []
        problems = []
        for key in instance:
            if key in known:
                continue
            hint = difflib.get_close_matches(key, known, n=1)
            message = f"unknown key '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            problems.append(Problem(*positions.of_key(path + (key,)),
                                    dotted(path + (key,)), message))
        return problems
    if error.validator == "required" and isinstance(instance, dict):
        return [
            Problem(*positions.of_value(path), dotted(path + (key,)),
                    f"missing required key '{key}'")
            for key in error.validator_value if key not in instance
        ]
    line, column = positions.of_value(path)
    where = dotted(path)
    if instance is None:
        example = schema.get("examples", [None])[0]
        hint = f" (e.g. {example})" if isinstance(example, str | int) and \
            not isinstance(example, bool) else ""
        return [Problem(line, column, where, f"has no value; give one{hint}")]
    shown = _shown(instance, schema)
    if "x-error" in schema and error.validator in ("pattern", "anyOf", "const", "oneOf"):
        return [Problem(line, column, where, f"{shown} {schema['x-error']}")]
    if error.validator == "type":
        expected = error.validator_value
        expected = _TYPE_NAMES.get(expected, expected) if isinstance(expected, str) else expected
        hint = ""
        if expected == "a string" and isinstance(instance, int | float | bool):
            hint = " (quote it if you meant the text)"
        if "x-error" in schema and "pattern" in schema:
            return [Problem(line, column, where, f"{shown} {schema['x-error']}")]
        return [Problem(line, column, where,
                        f"expected {expected}, got {_python_type(instance)}{hint}")]
    if error.validator == "enum":
        choices = ", ".join(str(choice) for choice in error.validator_value)
        return [Problem(line, column, where, f"{shown} is not one of: {choices}")]
    if error.validator == "minLength":
        minimum = error.validator_value
        return [Problem(line, column, where, "must not be empty" if minimum == 1
                        else f"must be at least {minimum} characters")]
    if error.validator == "minItems":
        return [Problem(line, column, where, f"needs at least {error.validator_value} "
                        f"entr{'y' if error.validator_value == 1 else 'ies'}")]
    if schema.get("x-secret"):
        return [Problem(line, column, where, f"this value is not valid here ({error.validator})")]
    from cacherr.logs import redact

    message = redact(re.sub(r"\s+", " ", error.message))
    return [Problem(line, column, where, message)]
