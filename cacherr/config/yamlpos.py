"""YAML parsing that remembers where each key and value was written, within bounds.

A rules file is small; a hostile or mistaken one must not cost seconds or gigabytes. The
file is read only up to `MAX_FILE_BYTES`; nesting deeper than `MAX_DEPTH`, more than
`MAX_VALUES` written values, or aliases that expand the document past `MAX_VALUES` (a
"billion laughs" file) are each one problem at their position, found before anything
is expanded. Events come from libyaml when PyYAML has it (about 50x faster), else from
PyYAML's own parser; positions are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from cacherr.config.errors import Problem, dotted

try:  # libyaml's parser, when PyYAML was built with it
    from yaml._yaml import CParser as _EventParser

    def _init_parser(loader, text: str) -> None:
        _EventParser.__init__(loader, text)
except ImportError:  # pragma: no cover - every PyYAML wheel we pin has libyaml
    from yaml.parser import Parser as _Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _EventParser(Reader, Scanner, _Parser):  # type: ignore[no-redef]
        def dispose(self) -> None:
            pass

    def _init_parser(loader, text: str) -> None:
        Reader.__init__(loader, text)
        Scanner.__init__(loader)
        _Parser.__init__(loader)

Path = tuple  # a path into the document: keys and list indices

MAX_FILE_BYTES = 1024 * 1024  # a rules file is a few KiB; this is far beyond any real one
MAX_DEPTH = 32  # rules[].keep.for is 4 deep
MAX_VALUES = 10_000  # values written, and values after expanding aliases (a big file has 1000)


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


def _at(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _mark(node: Node) -> tuple[int, int]:
    return _at(node.start_mark)


class _Refused(Exception):
    """The document breaks a bound; carries the one problem to report."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


class _BoundedComposer(_EventParser, Composer, Resolver):
    """Composes one document into nodes, counting depth and values as it goes, and
    remembering where each alias was used (an alias node is shared with its anchor)."""

    def __init__(self, text: str) -> None:
        _init_parser(self, text)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.depth = 0
        self.values = 0
        self.aliases: list[tuple[tuple[int, int], Node]] = []

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self.aliases.append((_at(event.start_mark), node))
            return node
        self.depth += 1
        self.values += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(Problem(*_at(event.start_mark), "(syntax)",
                                   f"nested more than {MAX_DEPTH} levels deep; a rules file "
                                   "needs a handful"))
        if self.values > MAX_VALUES:
            raise _Refused(Problem(*_at(event.start_mark), "(syntax)",
                                   f"more than {MAX_VALUES} values; a rules file needs a few "
                                   "hundred (is this the right file?)"))
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_single(self) -> Node | None:
        """The document's root node, or None for an empty stream; raise YAMLError or
        _Refused."""
        self.get_event()  # stream start
        if self.check_event(yaml.StreamEndEvent):
            return None
        node = self.compose_document()
        if not self.check_event(yaml.StreamEndEvent):
            extra = self.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the rules file", None,
                "but found another one (remove the `---` line)", extra.start_mark)
        return node


def _check_expansion(root: Node, aliases: list[tuple[tuple[int, int], Node]]) -> None:
    """Raise _Refused if aliases refer to themselves or expand the document past
    MAX_VALUES; the count is memoised per node, so this is linear in the written file."""
    if not aliases:
        return
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise RecursionError
        visiting.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child)
                if total > MAX_VALUES:
                    break
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > MAX_VALUES:
                    break
        visiting.discard(key)
        sizes[key] = total
        return total

    try:
        expanded = size(root)
    except RecursionError:
        where = next(position for position, node in aliases if _contains(node, node))
        raise _Refused(Problem(*where, "(syntax)",
                               "this alias refers to a value that contains itself")) from None
    if expanded > MAX_VALUES:
        where, _ = max(aliases, key=lambda alias: (size(alias[1]), -alias[0][0], -alias[0][1]))
        raise _Refused(Problem(*where, "(syntax)",
                               f"aliases expand the rules file past {MAX_VALUES} values (an "
                               "alias bomb?); write the values out instead"))


def _contains(node: Node, target: Node, seen: set[int] | None = None) -> bool:
    """True if `target` is reachable from inside `node` (a self-referring alias)."""
    seen = set() if seen is None else seen
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = list(node.value)
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    for child in children:
        if child is target:
            return True
        if id(child) not in seen:
            seen.add(id(child))
            if _contains(child, target, seen):
                return True
    return False


class _Converter:
    def __init__(self) -> None:
        self.constructor = SafeConstructor()
        self.positions = Positions()
        self.problems: list[Problem] = []

    def convert(self, node: Node, path: Path) -> Any:
        self.positions.values[path] = _mark(node)
        if isinstance(node, MappingNode):
            own, merged = self._pairs(node, path)
            result: dict[str, Any] = {}
            for key_node, value_node in own:
                if not isinstance(key_node, ScalarNode):
                    self.problems.append(Problem(*_mark(key_node), dotted(path),
                                                 "a key must be plain text, not a list or "
                                                 "a mapping"))
                    continue
                # Keys are taken as written: `on:` stays "on", not True.
                key = key_node.value
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
            # Merged keys (<<) fill in what the mapping does not say itself; among several
            # merged mappings the first listed wins (as PyYAML's own loader does).
            for key_node, value_node in merged:
                if isinstance(key_node, ScalarNode) and key_node.value not in result:
                    child = path + (key_node.value,)
                    self.positions.keys[child] = _mark(key_node)
                    result[key_node.value] = self.convert(value_node, child)
            return result
        if isinstance(node, SequenceNode):
            return [self.convert(item, path + (index,)) for index, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            self.problems.append(Problem(*_mark(node), dotted(path), str(error.problem)))
        except (ValueError, TypeError, OverflowError):
            # An explicit tag on a value that is not of that type (`!!int x`, a date 2001-13-45)
            self.problems.append(Problem(*_mark(node), dotted(path),
                                         f"{node.value[:40]!r} is not a valid {_tag(node)}"))
        return None


    def _pairs(self, node: MappingNode, path: Path) -> tuple[list, list]:
        """(own pairs, merged pairs) of a mapping, without changing the node (an alias
        shares it with every other use)."""
        own: list = []
        merged: list = []
        for key_node, value_node in node.value:
            if key_node.tag != MERGE_TAG:
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problems.append(Problem(*_mark(source), dotted(path),
                                                 "<< merges mappings only"))
                    continue
                source_own, source_merged = self._pairs(source, path)
                merged += source_own + source_merged
        return own, merged


MERGE_TAG = "tag:yaml.org,2002:merge"


def _tag(node: Node) -> str:
    return node.tag.rsplit(":", 1)[-1] if node.tag else "value"


def parse(text: str) -> tuple[Any, Positions, list[Problem]]:
    """Given YAML text, return (document, positions, problems).

    A syntax error, or a document beyond the bounds above, gives a single problem at its
    position and a None document.
    """
    composer = _BoundedComposer(text)
    try:
        node = composer.compose_single()
        if node is not None:
            _check_expansion(node, composer.aliases)
    except _Refused as refused:
        return None, Positions(), [refused.problem]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(part for part in (error.context, error.problem) if part)
        return None, Positions(), [Problem(*_at(mark), "(syntax)", message)]
    except yaml.reader.ReaderError as error:
        return None, Positions(), [Problem(*_position(text, error.position), "(syntax)",
                                           f"{_character(error.character)} is not allowed in "
                                           "a rules file (is this a text file?)")]
    except yaml.YAMLError as error:
        return None, Positions(), [Problem(1, 1, "(syntax)", str(error).splitlines()[0])]
    finally:
        composer.dispose()
    if node is None:
        return None, Positions(), [Problem(1, 1, "(root)", "the rules file is empty")]
    converter = _Converter()
    document = converter.convert(node, ())
    return document, converter.positions, converter.problems


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index."""
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _character(character) -> str:
    # PyYAML's reader gives the character, libyaml's its code point.
    if isinstance(character, str) and character:
        character = ord(character[0])
    if isinstance(character, int):
        return f"the character U+{character:04X}"
    return "a character"


def decode(data: bytes) -> tuple[str | None, list[Problem]]:
    """Given the bytes of a rules file (at most MAX_FILE_BYTES), return its text, or None
    and the problem: not UTF-8, at the line and column of the first bad byte."""
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as error:
        good = data[:error.start].decode("utf-8", errors="replace")
        line, column = _position(good, len(good))
        return None, [Problem(line, column, "(syntax)",
                              f"the byte 0x{data[error.start]:02X} is not UTF-8 text "
                              "(is this the right file?)")]
