"""A command binding's `count_pattern`: what it may look like, and counting with it.

Public API:

    count_group_problem(pattern: str) -> str | None    # why the pattern cannot count tests, or None
    count_tests(pattern: str, output: str) -> int      # raises CountError
    CountError                                         # a ValueError with a one-line reason
    MAX_COUNT_DIGITS                                   # a count longer than this is not a test count

    python -m harness.count PATTERN OUTPUT_FILE RESULT_FILE    # harness.execute runs this as a child

The pattern comes from a contract and the output from the command under test, so a pattern such
as ``(?:a|a)*(\\d+)`` can backtrack for ever on that output. harness.execute therefore never
matches in its own process: it runs this module as a child under the falsifier's deadline and
kills it there, exactly like the falsifier itself.

The rule `count_group_problem` enforces is structural (read from the parsed pattern, not by
trying inputs): exactly one capturing group; that group sits in the pattern's main sequence (not
inside a repetition, an alternative or a lookaround), so every match sets it; and it matches only
digits, at least one: a sequence of digit atoms (``\\d``, ``[0-9]``, a class of digits or a digit),
each possibly repeated, with at least one atom that must occur. ``(\\d+)``, ``([0-9]{1,4})``
qualify; ``(\\d*)``, ``(\\w+)``, ``(\\d+)?`` and ``(\\d+)|none`` do not, because the group could be
empty or text, and "no number" must never be read as a count.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from harness.atomic import write_atomic

try:  # Python 3.11+
    import re._constants as _c
    import re._parser as _parser
except ImportError:  # Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

# No test run counts 10**18 tests; a longer "count" is a pattern matching something else, and
# int() of a 5,000-digit string would raise Python's conversion-limit ValueError.
MAX_COUNT_DIGITS = 18
FLAGS = re.MULTILINE

_DIGIT_RANGE = (ord("0"), ord("9"))
_REPEATS = tuple(
    op for op in (getattr(_c, name, None) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")) if op is not None
)
# Non-capturing wrappers that still take part in every match of the sequence they sit in.
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)


class CountError(ValueError):
    """The command's output could not be counted; the message says why, on one line."""


def _is_digit_item(op: Any, arg: Any) -> bool:
    if op is _c.LITERAL:
        return _DIGIT_RANGE[0] <= arg <= _DIGIT_RANGE[1]
    if op is _c.IN:
        return bool(arg) and all(
            (sub_op is _c.CATEGORY and sub_arg is _c.CATEGORY_DIGIT)
            or (sub_op is _c.LITERAL and _DIGIT_RANGE[0] <= sub_arg <= _DIGIT_RANGE[1])
            or (sub_op is _c.RANGE and _DIGIT_RANGE[0] <= sub_arg[0] <= sub_arg[1] <= _DIGIT_RANGE[1])
            for sub_op, sub_arg in arg
        )
    return False


def _min_digits(items: Any) -> int | None:
    """The fewest digits `items` (a parsed sequence) can match, or None if it can match a non-digit."""
    total = 0
    for op, arg in items:
        if _is_digit_item(op, arg):
            total += 1
        elif op in _REPEATS:
            low, _high, body = arg
            inner = _min_digits(body)
            if inner is None:
                return None
            total += low * inner
        elif op is _c.SUBPATTERN and arg[0] is None:  # (?:...) or a flags group
            inner = _min_digits(arg[-1])
            if inner is None:
                return None
            total += inner
        else:
            return None
    return total


def _find_group(items: Any) -> Any | None:
    """The capturing group's body if it sits in the main sequence of `items` (through (?:...)), else None."""
    for op, arg in items:
        if op is _c.SUBPATTERN:
            if arg[0] is not None:
                return arg[-1]
            found = _find_group(arg[-1])
            if found is not None:
                return found
        elif _ATOMIC is not None and op is _ATOMIC:
            found = _find_group(arg)
            if found is not None:
                return found
    return None


def count_group_problem(pattern: str) -> str | None:
    """Why `pattern` cannot count tests (see the module docstring for the rule), or None."""
    try:
        compiled = re.compile(pattern, FLAGS)
        parsed = _parser.parse(pattern, FLAGS)
    except re.error as exc:
        return f"is not a valid regex ({exc}); fix it"
    if compiled.groups != 1:
        return (
            f"has {compiled.groups} groups; it needs exactly one, capturing the test count, e.g. '(\\d+) passed'"
        )
    body = _find_group(list(parsed))
    if body is None:
        return (
            "has its group inside a repetition, an alternative or a lookaround, so a match may leave it "
            "unset; put the group in the main pattern, e.g. '(\\d+) passed'"
        )
    least = _min_digits(list(body))
    if least is None or least < 1:
        what = "text other than digits" if least is None else "an empty string"
        return (
            f"has a group that can match {what}, not a count; capture one or more digits only, "
            "e.g. '(\\d+) passed'"
        )
    return None


def count_tests(pattern: str, output: str) -> int:
    """The sum of the numbers `pattern`'s group captures in `output` (0 when it never matches).

    Summed: test runners such as cargo print one "N passed" line per test binary. Run this only
    in a child with a deadline (see the module docstring); it may take as long as the regex does.
    """
    total = 0
    for found in re.findall(pattern, output, FLAGS):
        text = found[0] if isinstance(found, tuple) else found
        if not text.isdecimal() or len(text) > MAX_COUNT_DIGITS:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise CountError(f"count_pattern {pattern!r} captured {shown!r}, which is not a test count")
        total += int(text)
    return total


def main(argv: list[str]) -> int:
    """Child entry point: count and write {"count": N} or {"error": reason} to RESULT_FILE."""
    pattern, output_file, result_file = argv
    output = Path(output_file).read_text(encoding="utf-8", errors="replace")
    try:
        result: dict[str, Any] = {"count": count_tests(pattern, output)}
    except (CountError, re.error) as exc:
        result = {"error": str(exc)}
    write_atomic(result_file, json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
