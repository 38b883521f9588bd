"""Stage 1 of the pipeline: read one contract file into plain data plus a line map.

Public API:

    load_contract_file(path: str | os.PathLike) -> LoadedDoc      # raises LoadError
    LoadedDoc(path, data, lines, sha256, size, written)
    LoadError(line, message)                                      # an Exception
    MAX_FILE_BYTES                                                # the size cap (5 MiB)

`LoadedDoc.lines` maps a path tuple into the data (``("falsifiers", 3, "binding")``) to the
1-based line where that key or sequence item starts, so later stages can report every problem
as FILE:LINE. ``line_of(path)`` finds the nearest recorded ancestor for paths it lacks.
`LoadedDoc.written` keeps the source text of every unquoted scalar YAML read as a null, boolean or
number (``version: 1.10`` -> ``"1.10"``, ``title: yes`` -> ``"yes"``), so a type error can tell the
author to quote what they wrote rather than what YAML made of it (``1.1``, ``True``).

The loader is deliberately stricter than YAML: duplicate keys, anchors/aliases (the
"billion laughs" expansion bomb), explicit tags (``!!bool``, ``!!python/...``; ``!!str`` aside),
control characters, integers beyond 64 bits, nesting beyond MAX_DEPTH, non-UTF-8 bytes, oversize
files, tab indentation, an empty file and a top level that is not a mapping are all refused with
a line number and a fix; nothing else escapes it but LoadError.
Timestamps stay strings (``until: 2027-01-31`` -> ``"2027-01-31"``) so the JSON Schema sees the
same value the author wrote; later stages parse them.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

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
    written: dict[LinePath, str] = field(default_factory=dict, repr=False)

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
_RESOLVER = yaml.resolver.Resolver()
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTION_TAGS = frozenset({None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
_LEADING_TAB = re.compile(r"^[ ]*\t")
# Contracts nest about six levels; anything far deeper is an attack or an accident.
MAX_DEPTH = 64


_STR_TAGS = frozenset({"!", "tag:yaml.org,2002:str"})
# Types a plain scalar may resolve to; anything else the resolver names (`=`, YAML's "value") stays text.
_CONSTRUCTED_TAGS = frozenset({f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float")})
_INT_TAG = "tag:yaml.org,2002:int"
# Every number in a contract (a timeout, a test count, GiB) fits in 64 bits; bounding the text first
# also keeps int() below Python's 4,300-digit conversion limit and sexagesimal (1:2:3) cheap.
MAX_INT = 2**63 - 1
_MAX_INT_CHARS = 70  # 0b + 63 binary digits + sign + a few underscores
# C0 and C1 control characters (tab and newline excepted) and lone surrogates: invisible or
# terminal-rewriting in a message, and not encodable as UTF-8 in the evidence file.
_BAD_CHAR = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _check_text(line: int, value: str, what: str) -> None:
    bad = _BAD_CHAR.search(value)
    if bad:
        raise LoadError(
            line,
            f"{what} contains the control character U+{ord(bad.group()):04X} at offset {bad.start()}; "
            "contracts hold printable text only: remove it",
        )


def _scalar(event: yaml.ScalarEvent) -> Any:
    """The value of one scalar: text unless it is a plain null, boolean or number.

    Explicit tags are refused (``!!str`` and ``!`` excepted: they only say "text", as quotes do):
    ``!!bool safety`` or ``!!int ""`` would make the constructor guess, and crash, where the
    author should just write the value the schema wants.
    """
    line = event.start_mark.line + 1
    if _BAD_CHAR.search(event.value):
        _check_text(line, event.value, "this value")
    if event.tag in _STR_TAGS:
        return event.value
    if event.tag is not None:
        raise LoadError(
            line,
            f"YAML tag {_short_tag(event.tag)!r} is not allowed; contracts use plain YAML only: remove the tag "
            "and write the value as the key expects (true/false, a number, or text in quotes)",
        )
    tag = _plain_tag(event.value, event.implicit) if event.implicit[0] else None
    if tag == _MERGE_TAG:
        raise LoadError(line, "YAML merge keys (<<) are not allowed in contracts; write the keys out in full")
    if tag not in _CONSTRUCTED_TAGS:
        return event.value  # text, quoted text, timestamps (kept as written), the `=` value tag
    if tag == _INT_TAG and len(event.value.replace("_", "")) > _MAX_INT_CHARS:
        raise LoadError(line, _too_large(event.value))
    try:
        value = _SCALAR_CONSTRUCTOR.construct_object(yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark))
    except (yaml.YAMLError, ValueError, KeyError, IndexError, TypeError, OverflowError) as exc:
        # The resolver's patterns are meant to admit only what the constructor can read; should
        # they ever disagree, the author still gets a line and a fix rather than a traceback.
        raise LoadError(line, f"cannot read value {event.value!r} ({exc}); quote it if it is text") from None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise LoadError(line, _too_large(event.value))
    return value


def _too_large(text: str) -> str:
    shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"
    return f"integer {shown} is too large; numbers in a contract are at most {MAX_INT} (2**63-1): write a smaller one"


class _Frame:
    __slots__ = ("value", "path", "key", "is_map")

    def __init__(self, value: Any, path: LinePath) -> None:
        self.value = value
        self.path = path
        self.key: str | None = None  # a mapping's key waiting for its value
        self.is_map = type(value) is dict


# The event classes, compared by identity: the parser makes exactly these, and _build looks at every
# event of every file (10,000 falsifiers are about 200,000 events).
_SCALAR = yaml.ScalarEvent
_MAPPING_START = yaml.MappingStartEvent
_SEQUENCE_START = yaml.SequenceStartEvent
_COLLECTION_END = frozenset({yaml.MappingEndEvent, yaml.SequenceEndEvent})
_DOCUMENT_START = yaml.DocumentStartEvent
_NOT_NODES = frozenset({yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent})
# Plain scalars whose first character starts no implicit type (null, bool, int, float, merge, value...)
# are text without asking the resolver; which characters those are is the resolver's own table.
_RESOLVED_FIRST = frozenset(_RESOLVER.yaml_implicit_resolvers)
_RESOLVE_ALL = None in _RESOLVED_FIRST or bool(_RESOLVER.yaml_path_resolvers)


def _plain_tag(value: str, implicit: tuple[bool, bool]) -> str | None:
    """The tag YAML's resolver gives a plain scalar (None where it would say text without looking)."""
    if not _RESOLVE_ALL and value[:1] not in _RESOLVED_FIRST:
        return None
    return _RESOLVER.resolve(yaml.ScalarNode, value, implicit)


def _build(events: Iterable[yaml.Event]) -> tuple[Any, dict[LinePath, int], dict[LinePath, str]]:
    """Data + line map straight from the parser's event stream.

    Building from events (instead of a composed node tree) keeps this iterative, so deep nesting
    cannot overflow the C stack, and refuses an anchor or alias the moment it appears, so a
    "billion laughs" file costs no more than any other. Returns (data, lines, written); see LoadedDoc.
    """
    lines: dict[LinePath, int] = {}
    written: dict[LinePath, str] = {}
    stack: list[_Frame] = []
    top: _Frame | None = None
    result: Any = None
    start_line = 1
    documents = 0
    for event in events:
        kind = type(event)
        if kind in _COLLECTION_END:
            stack.pop()
            top = stack[-1] if stack else None
            continue
        if kind is _DOCUMENT_START:
            documents += 1
            if documents > 1:
                raise LoadError(
                    event.start_mark.line + 1,
                    "a second YAML document (---) in one file; put each contract in its own file",
                )
            continue
        if kind in _NOT_NODES:
            continue
        line = event.start_mark.line + 1
        if kind is yaml.AliasEvent or event.anchor is not None:
            raise LoadError(
                line,
                "YAML anchors and aliases (&name / *name) are not allowed in contracts; write the value out in full",
            )
        # Where does this node go?
        if top is None:
            path: LinePath = ()
            start_line = line
        elif top.is_map:
            if top.key is None:
                if kind is not _SCALAR:
                    raise LoadError(line, "a mapping key must be a plain word, not a list or mapping; fix the key")
                key = event.value
                if _BAD_CHAR.search(key):
                    _check_text(line, key, "this key")
                if event.tag is not None and event.tag not in _STR_TAGS:
                    raise LoadError(line, f"YAML tag {_short_tag(event.tag)!r} on a key is not allowed; remove the tag")
                if event.implicit[0] and _plain_tag(key, event.implicit) == _MERGE_TAG:
                    raise LoadError(line, "YAML merge keys (<<) are not allowed in contracts; write the keys out in full")
                key_path = top.path + (key,)
                if key_path in lines:  # only this mapping's own key records this path
                    raise LoadError(
                        line,
                        f"duplicate key {key!r} (first defined on line {lines[key_path]}); "
                        "YAML would silently keep only the last one: remove or rename one of them",
                    )
                lines[key_path] = line
                top.key = key
                continue
            path = top.path + (top.key,)
        else:
            path = top.path + (len(top.value),)
            lines[path] = line
        if kind is _SCALAR:
            value: Any = _scalar(event)
            if type(value) is not str:
                written[path] = event.value
        else:
            if event.tag not in _PLAIN_COLLECTION_TAGS:
                raise LoadError(line, f"YAML tag {event.tag!r} is not allowed; contracts use plain YAML only: remove the tag")
            if len(stack) >= MAX_DEPTH:
                raise LoadError(line, f"nested more than {MAX_DEPTH} levels deep; a contract needs about six: flatten it")
            value = {} if kind is _MAPPING_START else []
        if top is None:
            result = value
        elif top.is_map:
            top.value[top.key] = value
            top.key = None
        else:
            top.value.append(value)
        if kind is _MAPPING_START or kind is _SEQUENCE_START:
            top = _Frame(value, path)
            stack.append(top)
    lines[()] = start_line
    return result, lines, written


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


# What a file of each kind must hold at its top level, for the messages about an empty file or a top
# level that is not a mapping (every other rule is the same for contracts and waivers files).
_SHAPES = {
    "contract": ("a contract needs at least id, version, title, invariants and falsifiers", "id: ..., version: ..., ...",
                 "docs/contract-format.md"),
    "waivers": ("a waivers file needs `waivers:`, a list of {falsifier, reason, owner, expires}", "waivers: [...]",
                "docs/waivers.md"),
}


def load_contract_file(path: str | os.PathLike[str], *, kind: str = "contract") -> LoadedDoc:
    """Read and parse one contract file (or, with kind="waivers", a waivers file: the same YAML rules).
    Raises LoadError (never a YAML or OS traceback)."""
    needs, top_level, guide = _SHAPES[kind]
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise LoadError(1, f"cannot read file: {exc.strerror or exc}; check the path") from None
    if not stat.S_ISREG(st.st_mode):
        # Reading a FIFO or a terminal would block forever; a device is never a contract.
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
        raise LoadError(1, f"{kind}, not a contract file; pass a .yaml file or a directory of them")
    size = st.st_size
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
        # yaml.parse's events, without a generator frame and a check_event per event.
        loader = _Loader(text)
        try:
            data, lines, written = _build(iter(loader.get_event, None))
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        lines_of_text = text.splitlines()
        source_line = lines_of_text[line - 1] if 0 < line <= len(lines_of_text) else ""
        if _LEADING_TAB.match(source_line) or "'\\t'" in str(exc.problem):
            raise LoadError(
                line, "tab character in indentation; YAML allows only spaces there: replace the tab with spaces"
            ) from None
        context = exc.context
        if context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            context += f" started on line {exc.context_mark.line + 1}"
        detail = ", ".join(part for part in (context, exc.problem) if part)
        raise LoadError(line, f"malformed YAML: {detail}; fix the syntax on this line") from None
    except yaml.reader.ReaderError as exc:
        # A character YAML forbids anywhere (a raw control character); it carries an offset, not a mark.
        line = text.count("\n", 0, exc.position) + 1
        raise LoadError(
            line, f"character U+{exc.character:04X} is not allowed in YAML ({exc.reason}); remove it"
        ) from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # one line, whatever the library's wording
        raise LoadError(1, f"malformed YAML: {detail}; fix the syntax") from None
    if data is None:
        raise LoadError(
            1,
            f"file is empty (or just null); {needs} (see {guide})",
        )
    if not isinstance(data, dict):
        raise LoadError(
            lines[()],
            f"the top level must be a mapping ({top_level}), found {_describe(data)}; see {guide}",
        )
    return LoadedDoc(
        path=path, data=data, lines=lines, sha256=hashlib.sha256(raw).hexdigest(), size=size, written=written
    )
