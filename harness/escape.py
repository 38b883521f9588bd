"""Escaping of untrusted text (falsifier messages, counterexamples, file names) for where it goes.

A falsifier's message, a test's output or a path under a non-UTF-8 directory can carry anything:
terminal control sequences (`ESC ]0;...BEL`, a bare `\\r` that repaints "FALSIFIED" as "PASSED"),
bidi overrides that show text in another order than it is, XML-forbidden control characters,
Markdown/HTML structure, and lone surrogates (`os.fsdecode(b"\\xff")`, `"\\udcff"`) that no UTF-8
encoder accepts. One function per target format, and every writer or printer of such text calls it:

- `terminal(text)`: one printable line for stdout/stderr.
- `json_safe(value)`: a JSON document's strings made encodable as UTF-8.
- `xml(text)`: text an XML 1.0 document may hold (ElementTree then escapes `<&"`).
- `markdown(text)`, `markdown_code(text)`, `html(text)`, `markdown_block(text)`: summary.md pieces.
- `github_data(text)`, `github_property(text)`: a GitHub Actions workflow command's message and properties.
- `html_block(text)`: multi-line text in an HTML <pre> (the release audit page).

Whatever is replaced is shown visibly as a Python-style escape (`\\x1b`, `\\u202e`, `\\udcff`), so
what a falsifier said can still be read, never executed by whatever displays it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Bidirectional formatting characters (Unicode TR9): they reorder what a reader sees, e.g. U+202E
# makes "FALSIFIED" read backwards. Not Cc, so listed: LRM, RLM, ALM, LRE..RLO, LRI..PDI.
_BIDI = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Line and paragraph separators break lines in some terminals and renderers.
_SEPARATORS = frozenset("\u2028\u2029")


def _visible(char: str) -> str:
    """`char` as a Python-style escape: \\x1b, \\u202e, \\udcff."""
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str, keep: str) -> bool:
    if char in keep:
        return False
    category = unicodedata.category(char)
    # Cc: C0, DEL, C1 controls (ESC, CR, BEL, CSI...); Cs: lone surrogates.
    return category in ("Cc", "Cs") or char in _BIDI or char in _SEPARATORS


def printable(text: Any, keep: str = "") -> str:
    """`text` with every control character, bidi override, separator and lone surrogate escaped
    visibly, except those in `keep` (e.g. "\\n\\t" for a multi-line block); printable Unicode stays."""
    s = str(text)
    if s.isprintable():  # False for any Cc, Cs, Cf (bidi included), Zl, Zp character
        return s  # the common case, and fast
    return "".join(_visible(c) if _unsafe(c, keep) else c for c in s)


def terminal(text: Any) -> str:
    """One line that cannot move the cursor, retitle the window, recolour or reorder the screen."""
    return printable(text)


def json_safe(value: Any) -> Any:
    """`value` (a JSON-ready tree) with lone surrogates escaped visibly in every string, keys included,
    so the document encodes as UTF-8; json.dumps escapes the other control characters itself."""
    if isinstance(value, str):
        return value if value.isascii() else "".join(_visible(c) if unicodedata.category(c) == "Cs" else c for c in value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. Anything else is
# forbidden even as a character reference, so it is replaced (visibly), not escaped.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml(text: Any) -> str:
    """Text an XML 1.0 document can hold; markup characters are left for the serializer (ElementTree)."""
    s = printable(text, keep="\n\t")  # also no ESC, CR, bidi overrides for a CI page to render
    return _XML_ILLEGAL.sub(lambda m: _visible(m.group()), s)


def _one_line(text: Any, limit: int | None) -> str:
    s = " ".join(printable(text, keep="\n\t\r").split())  # whitespace (newlines included) -> one space
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


# Characters with a meaning in GitHub-flavoured Markdown inline text (emphasis, code, links, images,
# strikethrough, table cells, escapes); a backslash makes each literal (CommonMark: any ASCII punctuation).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~!#])")


def markdown(text: Any, limit: int | None = None) -> str:
    """One line of literal text for a Markdown paragraph, list item or table cell (pipes escaped):
    no emphasis, links, code, HTML or new rows can come out of it."""
    import html as _html  # here: its import loads html.entities, which every command would pay for

    s = _html.escape(_one_line(text, limit), quote=False)  # <tag>, &entity; -> literal text
    return _MARKDOWN_SPECIAL.sub(r"\\\1", s)


def markdown_code(text: Any, in_table: bool = False) -> str:
    """An inline code span showing `text` literally: a backtick fence longer than any run inside."""
    s = _one_line(text, None)
    fence = "`" * (max((len(r) for r in re.findall("`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or (s.startswith(" ") and s.strip()) else ""
    if in_table:
        s = s.replace("|", "\\|")  # GFM splits cells before parsing code spans
    return f"{fence}{pad}{s}{pad}{fence}"


def html(text: Any, limit: int | None = None) -> str:
    """One line of literal text inside an HTML element (e.g. <summary>), where Markdown is not parsed."""
    import html as _html

    return _html.escape(_one_line(text, limit), quote=True)


def markdown_block(text: Any) -> tuple[str, str]:
    """(fence, body) for a fenced code block showing multi-line `text` literally: the fence is longer
    than any backtick run in the body, so nothing inside can close it."""
    body = printable(text, keep="\n\t")
    fence = "`" * max(3, max((len(r) for r in re.findall("`+", body)), default=0) + 1)
    return fence, body


# GitHub Actions workflow commands (`::error file=F,line=N,title=T::MESSAGE`), escaped as the runner
# unescapes them (actions/toolkit, packages/core/src/command.ts: escapeData, escapeProperty): the data
# loses only %, CR and LF, a property also `:` and `,`, which would end it or start the message.
_GITHUB_DATA = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_GITHUB_PROPERTY = {**_GITHUB_DATA, ":": "%3A", ",": "%2C"}


def github_data(text: Any) -> str:
    """A workflow command's message: one line the runner shows as `text` (newlines included), with no
    other control character, bidi override or lone surrogate left to reach the log."""
    return "".join(_GITHUB_DATA.get(c, c) for c in printable(text, keep="\r\n"))


def github_property(text: Any) -> str:
    """A workflow command's property value (file=, title=): it can neither end early nor add a property."""
    return "".join(_GITHUB_PROPERTY.get(c, c) for c in printable(text, keep="\r\n"))
def html_block(text: Any) -> str:
    """Multi-line literal text for an HTML <pre> (a mutant's diff, a counterexample): lines kept, markup
    and every control character, bidi override and lone surrogate made harmless and visible."""
    import html as _html

    return _html.escape(printable(text, keep="\n\t"), quote=True)
