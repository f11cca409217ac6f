"""YAML files read with the position of every value, so errors can name file:line:column.

Only the safe loader is used. Files are size-capped and must be UTF-8; a
document with duplicate keys is refused rather than silently keeping the
last one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_YAML_BYTES = 1024 * 1024
# bounds on the document as aliases expand it: a 12 KiB file of nested aliases is
# otherwise a 28 MB card, rebuilt on every heartbeat
MAX_YAML_NODES = 50_000
MAX_YAML_DEPTH = 64

KeyPath = tuple[str | int, ...]


@dataclass
class Document:
    """A parsed YAML file: its data and the 1-based (line, column) of each value."""

    file: Path
    data: Any
    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: KeyPath) -> tuple[int | None, int | None]:
        """Position of the value at ``path``, or of its nearest parent that has one."""
        while True:
            if path in self.marks:
                return self.marks[path]
            if not path:
                return (None, None)
            path = path[:-1]


ErrorFactory = Callable[..., ConfigError]


def read_yaml(file: Path, error: ErrorFactory, *, max_bytes: int = MAX_YAML_BYTES) -> Document:
    """Read and parse ``file``; every failure is ``error(...)`` naming the file and position."""
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise error(
                f"{file} is {size} bytes; the limit is {max_bytes}",
                hint="this file holds configuration only; move large content to other files",
                file=file,
            )
        raw = file.read_bytes()
    except FileNotFoundError:
        raise error(f"{file} does not exist", hint="create it", file=file) from None
    except IsADirectoryError:
        raise error(f"{file} is a directory, not a file", hint="replace it", file=file) from None
    except OSError as exc:
        raise error(
            f"{file} cannot be read: {exc.strerror}",
            hint="make it readable by the adapter's user",
            file=file,
        ) from None
    return parse_yaml(raw, file, error)


def parse_yaml(raw: bytes, file: Path, error: ErrorFactory) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{file} is not UTF-8 text (byte {exc.start})",
            hint="save it as UTF-8 YAML",
            file=file,
            line=line,
            column=column,
        ) from None
    if "\x00" in text:
        offset = text.index("\x00")
        raise error(
            f"{file} contains a NUL byte; it is binary, not YAML",
            hint="replace it with a YAML text file",
            file=file,
            line=text.count("\n", 0, offset) + 1,
        )
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except _TooDeep as exc:
            raise error(
                f"{file} is nested too deeply to be configuration (more than "
                f"{MAX_YAML_DEPTH} levels)",
                hint="flatten it: configuration does not need this depth",
                file=file,
                line=exc.mark.line + 1,
                column=exc.mark.column + 1,
            ) from None
        if node is not None:
            _check_expanded_size(node, file, error)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        problem = problem.replace(" in the stream but", ",") or "malformed YAML"
        at: int | None = mark.line + 1 if mark else None
        col: int | None = mark.column + 1 if mark else None
        lines = text.splitlines()
        if at is not None and (at > len(lines) or not lines[at - 1].strip()):
            # the file ended before the construct did: the mark is past the last line
            # (3:1 for a 2-line file); point at the end of the last line with content
            last = next((n for n in range(min(at, len(lines)), 0, -1) if lines[n - 1].strip()), 1)
            at, col = last, len(lines[last - 1]) + 1 if lines else 1
            problem += " (the file ends before it is closed)"
        raise error(
            f"{file} is not valid YAML: {problem}",
            hint="fix the YAML syntax at that position",
            file=file,
            line=at,
            column=col,
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"{file} is not valid YAML: {exc}", hint="fix the YAML", file=file) from None
    finally:
        loader.dispose()
    document = Document(file=file, data=data)
    if node is not None:
        _record(node, (), document, set(), error)
    return document


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing a collection deeper than ``MAX_YAML_DEPTH`` as soon as
    it opens (the composer pulls tokens lazily; the scanner's own look-ahead is cut at
    the same depth): PyYAML's scanner is quadratic in the flow depth, and its
    recursive composer would otherwise run to a RecursionError (seconds of CPU)."""

    depth = 0

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        # the scanner looks ahead up to 1,024 characters for a simple key, keeping one
        # per flow level: stopped here, ``[[[[...`` costs 65 brackets, not a million steps
        if self.flow_level > MAX_YAML_DEPTH:
            raise _TooDeep(self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _check_expanded_size(root: yaml.Node, file: Path, error: ErrorFactory) -> None:
    """Refuse a document whose aliases expand past ``MAX_YAML_NODES`` or that nests
    deeper than ``MAX_YAML_DEPTH`` (iterative: no recursion limit to hit)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_YAML_DEPTH:
            raise error(
                f"{file} is nested more than {MAX_YAML_DEPTH} levels deep",
                hint="flatten it: configuration does not need this depth",
                file=file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )
        children = _children(node)
        if done or not children:
            total = 1 + sum(sizes.get(id(child), 1) for child in children)
            sizes[id(node)] = total
            if total > MAX_YAML_NODES:
                raise error(
                    f"{file} expands to more than {MAX_YAML_NODES} values (aliases "
                    "repeated inside aliases)",
                    hint="write the values out, or use fewer nested aliases",
                    file=file,
                    line=node.start_mark.line + 1,
                    column=node.start_mark.column + 1,
                )
            continue
        if id(node) in sizes:
            continue
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _record(
    node: yaml.Node, path: KeyPath, document: Document, seen: set[int], error: ErrorFactory
) -> None:
    document.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if id(node) in seen:  # an alias: already walked; also stops alias bombs
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in keys:
                raise error(
                    f"{document.file} has the key {key!r} twice",
                    hint="keep one of them",
                    file=document.file,
                    line=key_node.start_mark.line + 1,
                    column=key_node.start_mark.column + 1,
                )
            keys.add(key)
            if isinstance(value_node, yaml.CollectionNode) and not value_node.flow_style:
                # a block under a key: point at the key line, not the block's first child
                mark = key_node.start_mark
                document.marks[(*path, key)] = (mark.line + 1, mark.column + 1)
            _record(value_node, (*path, key), document, seen, error)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), document, seen, error)


def type_name(value: Any) -> str:
    """How YAML calls a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
