"""Stage 1 of the pipeline: read one contract file into plain data plus a line map.

Public API:

    load_contract_file(path: str | os.PathLike) -> LoadedDoc      # raises LoadError
    LoadedDoc(path, data, lines, sha256, size)
    LoadError(line, message)                                      # an Exception
    MAX_FILE_BYTES                                                # the size cap (5 MiB)

`LoadedDoc.lines` maps a path tuple into the data (``("falsifiers", 3, "binding")``) to the
1-based line where that key or sequence item starts, so later stages can report every problem
as FILE:LINE. ``line_of(path)`` finds the nearest recorded ancestor for paths it lacks.

The loader is deliberately stricter than YAML: duplicate keys, anchors/aliases (the
"billion laughs" expansion bomb), non-UTF-8 bytes, oversize files, tab indentation, an empty
file and a top level that is not a mapping are all refused with a line number and a fix.
Timestamps stay strings (``until: 2027-01-31`` -> ``"2027-01-31"``) so the JSON Schema sees the
same value the author wrote; later stages parse them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 5 * 1024 * 1024

# The C parser when available: 10,000 falsifiers must validate in seconds.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

LinePath = tuple[Any, ...]


class LoadError(Exception):
    """The file cannot be read as a contract document; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class LoadedDoc:
    path: Path
    data: dict[str, Any]
    lines: dict[LinePath, int] = field(repr=False)
    sha256: str
    size: int

    def line_of(self, path: LinePath) -> int:
        """The line of `path`, or of its nearest ancestor that has one (the document start is line 1)."""
        path = tuple(path)
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return self.lines.get((), 1)


_SCALAR_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_LEADING_TAB = re.compile(r"^[ ]*\t")


def _construct_scalar(node: yaml.ScalarNode) -> Any:
    if node.tag == _TIMESTAMP_TAG:
        return node.value
    try:
        return _SCALAR_CONSTRUCTOR.construct_object(node)
    except yaml.YAMLError as exc:
        raise LoadError(
            node.start_mark.line + 1,
            f"cannot read value {node.value!r} ({getattr(exc, 'problem', exc)}); "
            "contracts use plain YAML only: remove the tag",
        ) from None


def _build(root: yaml.Node) -> tuple[Any, dict[LinePath, int]]:
    """Turn a composed node tree into data + line map, refusing aliases and duplicate keys.

    The C composer shares one node object between an anchor and each alias; seeing a node twice
    is therefore an alias. Refusing it before expanding anything keeps a billion-laughs file
    as cheap as any other.
    """
    lines: dict[LinePath, int] = {(): root.start_mark.line + 1}
    seen: set[int] = set()
    # Iterative: a deeply nested document must not hit Python's recursion limit.
    result_holder: list[Any] = [None]
    stack: list[tuple[yaml.Node, LinePath, Any, Any]] = [(root, (), result_holder, 0)]
    while stack:
        node, path, parent, slot = stack.pop()
        if id(node) in seen:
            raise LoadError(
                node.start_mark.line + 1,
                "YAML anchors and aliases (&name / *name) are not allowed in contracts; "
                "write the value out in full",
            )
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            value: dict[Any, Any] = {}
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise LoadError(
                        key_node.start_mark.line + 1,
                        "a mapping key must be a plain word, not a list or mapping; fix the key",
                    )
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise LoadError(
                        key_node.start_mark.line + 1,
                        "YAML merge keys (<<) are not allowed in contracts; write the keys out in full",
                    )
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise LoadError(
                        line,
                        f"duplicate key {key!r} (first defined on line {first_line[key]}); "
                        "YAML would silently keep only the last one: remove or rename one of them",
                    )
                first_line[key] = line
                lines[path + (key,)] = line
                value[key] = None
                stack.append((value_node, path + (key,), value, key))
        elif isinstance(node, yaml.SequenceNode):
            value = [None] * len(node.value)
            for index, item in enumerate(node.value):
                lines[path + (index,)] = item.start_mark.line + 1
                stack.append((item, path + (index,), value, index))
        else:
            value = _construct_scalar(node)
        parent[slot] = value
    return result_holder[0], lines


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def load_contract_file(path: str | os.PathLike[str]) -> LoadedDoc:
    """Read and parse one contract file. Raises LoadError (never a YAML or OS traceback)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(1, f"cannot read file: {exc.strerror or exc}; check the path") from None
    if size > MAX_FILE_BYTES:
        raise LoadError(
            1,
            f"file is {size / 1024 / 1024:.1f} MiB, over the {MAX_FILE_BYTES // 1024 // 1024} MiB "
            "limit for one contract; split it into several contracts",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(1, f"cannot read file: {exc.strerror or exc}; check its permissions") from None
    if len(raw) > MAX_FILE_BYTES:  # the file grew between stat and read
        raise LoadError(1, f"file is over the {MAX_FILE_BYTES // 1024 // 1024} MiB limit; split it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LoadError(
            line,
            f"file is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "re-save it as UTF-8",
        ) from None
    text = text.removeprefix("\ufeff")
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        lines_of_text = text.splitlines()
        source_line = lines_of_text[line - 1] if 0 < line <= len(lines_of_text) else ""
        if _LEADING_TAB.match(source_line) or "'\\t'" in str(exc.problem):
            raise LoadError(
                line, "tab character in indentation; YAML allows only spaces there: replace the tab with spaces"
            ) from None
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        raise LoadError(line, f"malformed YAML: {detail}; fix the syntax on this line") from None
    except yaml.YAMLError as exc:
        raise LoadError(1, f"malformed YAML: {exc}; fix the syntax") from None
    if root is None:
        raise LoadError(
            1,
            "file is empty; a contract needs at least id, version, title, invariants and falsifiers "
            "(see docs/contract-format.md)",
        )
    data, lines = _build(root)
    if not isinstance(data, dict):
        raise LoadError(
            root.start_mark.line + 1,
            f"the top level must be a mapping (id: ..., version: ..., ...), found {_describe(data)}; "
            "see docs/contract-format.md",
        )
    return LoadedDoc(path=path, data=data, lines=lines, sha256=hashlib.sha256(raw).hexdigest(), size=size)
