"""Counting a command binding's tests from the junit XML file it writes (`junit: PATH`).

Public API:

    count_junit(path: Path) -> JunitCounts    # raises JunitError
    JunitCounts, JunitError, MAX_JUNIT_BYTES

pytest (--junitxml), cargo-nextest, go-junit-report and jest-junit all write the same shape:
`<testsuites>` (or a bare `<testsuite>`), `<testsuite>` elements, and one `<testcase>` per test whose
children say how it ended: `<failure>` or `<error>` (failed), `<skipped>` (skipped), none (passed).
Only `<testcase>` elements are counted, wherever they sit; the `tests=`/`failures=` attributes of the
suites are a summary the writer may get wrong and are ignored. Other children (nextest's
`<flakyFailure>`/`<rerunFailure>` of a test that passed on a retry, `<system-out>`, `<properties>`)
do not change a test's outcome.

Parsed with the stdlib's expat (pyexpat) in streaming mode, not a tree: nothing is kept but the
counts and the first failures, so a large file costs no memory; the file is refused above
MAX_JUNIT_BYTES before parsing; and any DOCTYPE is refused outright (junit XML never needs one), which
rules out entity expansion ("billion laughs") and external entities whatever expat's version. Neither
junitparser nor ElementTree was used: both build the whole tree, and neither refuses a DTD.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

MAX_JUNIT_BYTES = 64 * 2**20
MAX_DEPTH = 256
MAX_FAILURES_KEPT = 20
MAX_FAILURE_TEXT = 2000


class JunitError(ValueError):
    """The junit file is absent, too large, hostile or not junit XML; the message says which, on one line."""


@dataclass
class JunitCounts:
    matched: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)  # "name: message\ntext" of the first failing tests
    skips: list[str] = field(default_factory=list)  # "name: reason" of the first skipped tests

    @property
    def executed(self) -> int:
        return self.passed + self.failed


class _Counter:
    def __init__(self) -> None:
        self.counts = JunitCounts()
        self.depth = 0
        self.case: str | None = None  # the testcase being read, with its outcome so far
        self.case_depth = 0
        self.outcome = "passed"
        self.detail: list[str] = []
        self.reading_text = False
        self.text_len = 0
        self.seen_root = False

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise JunitError(f"nested deeper than {MAX_DEPTH} elements")
        if self.depth == 1:
            if tag not in ("testsuites", "testsuite"):
                raise JunitError(f"its root element is <{tag}>, not <testsuites> or <testsuite>")
            self.seen_root = True
        if tag == "testcase" and self.case is None:
            classname, name = attrs.get("classname", ""), attrs.get("name", "")
            self.case = f"{classname}::{name}" if classname else name or "<unnamed testcase>"
            self.case_depth, self.outcome, self.detail, self.text_len = self.depth, "passed", [], 0
        elif self.case is not None and self.depth == self.case_depth + 1:
            if tag in ("failure", "error"):
                self.outcome = "failed"
                self.detail.append(f"{tag}: {attrs.get('message', '')}".rstrip(": "))
                self.reading_text = True
            elif tag == "skipped" and self.outcome == "passed":
                self.outcome = "skipped"
                self.detail.append(attrs.get("message", ""))

    def text(self, data: str) -> None:
        if self.reading_text and self.text_len < MAX_FAILURE_TEXT:
            self.detail.append(data[: MAX_FAILURE_TEXT - self.text_len])
            self.text_len += len(data)

    def end(self, tag: str) -> None:
        if self.case is not None and self.depth == self.case_depth + 1:
            self.reading_text = False
        if self.case is not None and self.depth == self.case_depth:
            c = self.counts
            c.matched += 1
            if self.outcome == "failed":
                c.failed += 1
                if len(c.failures) < MAX_FAILURES_KEPT:
                    c.failures.append(f"{self.case}: {''.join(self.detail).strip()}"[: MAX_FAILURE_TEXT + 200])
            elif self.outcome == "skipped":
                c.skipped += 1
                if len(c.skips) < MAX_FAILURES_KEPT:
                    c.skips.append(f"{self.case}: {''.join(self.detail).strip() or 'no reason given'}"[:300])
            else:
                c.passed += 1
            self.case = None
        self.depth -= 1


def _refuse_dtd(*_: object) -> None:
    raise JunitError("it has a DOCTYPE; junit XML needs none, and entity declarations are refused")


def count_junit(path: Path) -> JunitCounts:
    """The tests in the junit XML file at `path`; raises JunitError saying what is wrong with it."""
    try:
        if not path.is_file():
            raise JunitError("the command wrote no junit file there" if not path.exists() else "it is not a regular file")
        size = path.stat().st_size
    except OSError as exc:
        raise JunitError(f"cannot read it: {exc.strerror}") from None
    if size > MAX_JUNIT_BYTES:
        raise JunitError(f"it holds {size} bytes, more than the {MAX_JUNIT_BYTES} a junit file may")
    counter = _Counter()
    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.StartElementHandler = counter.start
    parser.EndElementHandler = counter.end
    parser.CharacterDataHandler = counter.text
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(2**20):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except xml.parsers.expat.ExpatError as exc:
        raise JunitError(f"it is not well-formed XML ({xml.parsers.expat.errors.messages[exc.code]} at line {exc.lineno})") from None
    except OSError as exc:
        raise JunitError(f"cannot read it: {exc.strerror}") from None
    if not counter.seen_root:
        raise JunitError("it holds no XML element")
    return counter.counts
