"""YAML parsing that remembers where each key and value was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cacherr.config.errors import Problem, dotted

Path = tuple  # a path into the document: keys and list indices


@dataclass
class Positions:
    """1-based (line, column) of every key and value, by document path."""

    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def of_key(self, path: Path) -> tuple[int, int]:
        """Where the key at `path` was written, else its value, else its nearest ancestor."""
        if path in self.keys:
            return self.keys[path]
        return self.of_value(path)

    def of_value(self, path: Path) -> tuple[int, int]:
        """Where the value at `path` starts, else the key, else the nearest written ancestor."""
        while True:
            if path in self.values:
                return self.values[path]
            if path in self.keys:
                return self.keys[path]
            if not path:
                return (1, 1)
            path = path[:-1]


def _mark(node: Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    def __init__(self) -> None:
        self.constructor = SafeConstructor()
        self.positions = Positions()
        self.problems: list[Problem] = []

    def convert(self, node: Node, path: Path) -> Any:
        self.positions.values[path] = _mark(node)
        if isinstance(node, MappingNode):
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                # Keys are taken as written: `on:` stays "on", not True.
                key = key_node.value if isinstance(key_node, ScalarNode) else str(key_node.value)
                child = path + (key,)
                if key in result:
                    first = self.positions.keys[child]
                    self.problems.append(Problem(
                        *_mark(key_node), dotted(child),
                        f"duplicate key '{key}' (first at line {first[0]})",
                    ))
                    continue
                self.positions.keys[child] = _mark(key_node)
                result[key] = self.convert(value_node, child)
            return result
        if isinstance(node, SequenceNode):
            return [self.convert(item, path + (index,)) for index, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def parse(text: str) -> tuple[Any, Positions, list[Problem]]:
    """Given YAML text, return (document, positions, problems).

    A syntax error gives a single problem at its position and a None document.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(part for part in (error.context, error.problem) if part)
        return None, Positions(), [Problem(line, column, "(syntax)", message)]
    except yaml.YAMLError as error:
        return None, Positions(), [Problem(1, 1, "(syntax)", str(error))]
    if node is None:
        return None, Positions(), [Problem(1, 1, "(root)", "the rules file is empty")]
    converter = _Converter()
    try:
        document = converter.convert(node, ())
    except yaml.constructor.ConstructorError as error:
        mark = error.problem_mark
        return None, Positions(), [Problem(mark.line + 1, mark.column + 1, "(syntax)",
                                           str(error.problem))]
    return document, converter.positions, converter.problems
