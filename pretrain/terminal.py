"""Showing untrusted text (checkpoint metadata, tensor names, file names, config values) to a person.

Everything `pretrain inspect`/`stamp` print passes through here. A checkpoint's text is attacker-chosen:
a raw newline forges a line ("quality: 100/100 (ship-ready...)"), an escape sequence retitles or repaints
the terminal, and a lone surrogate (a file name's undecodable byte, via surrogateescape) makes print()
itself raise UnicodeEncodeError. So every non-printable character is shown as its Python escape, which
keeps each printed line one line, inert and encodable.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)  # surrogateescape's stand-ins for undecodable bytes 0x80..0xff


def _escape_char(c: str) -> str:
    if ord(c) in _SURROGATE_ESCAPES:
        return f"\\x{ord(c) - 0xDC00:02x}"  # the byte that was in the file name or argv
    return repr(c)[1:-1]  # \n, \x1b, \u2028, \ud800 ...


def escape(text: object) -> str:
    """`text` with every non-printable character (controls, escapes, surrogates) shown as an escape."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else _escape_char(c) for c in s)


def clip(text: object, width: int = 100) -> str:
    """escape(text), shortened to `width` characters with "..." when longer."""
    s = escape(text)
    return s if len(s) <= width else s[: width - 3] + "..."


def say(line: str = "", file: TextIO | None = None) -> None:
    """Print one line of output whose pieces may be untrusted; it stays one escaped line."""
    print(escape(line), file=file if file is not None else sys.stdout)


def error(message: str) -> int:
    """Print a one-line `pretrain: error: ...` to stderr and return exit code 2 (bad input)."""
    say(f"pretrain: error: {message}", file=sys.stderr)
    return 2


def unicode_safe(value: Any) -> Any:
    """`value` with every string made valid Unicode, for JSON that strict parsers accept.

    json.dumps writes a lone surrogate as a `\\udcff` escape, which is syntactically JSON but not
    Unicode, and strict parsers (jq, serde, browsers) reject or mangle it. Surrogates become the same
    visible escapes that `escape` prints, so text and JSON output agree.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return "".join(_escape_char(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {unicode_safe(k): unicode_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unicode_safe(v) for v in value]
    return value
