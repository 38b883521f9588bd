"""Ids, paths, dates and versions match as a whole: a trailing newline is not a valid value.

Python's `$` also matches just before a final newline, and jsonschema applies a schema `pattern`
with re.search, so `^...$` let `"FALSIFY-X-001\n"` or `"tests/missing.py\n"` through.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.schema import load_schema, schema_names
from harness.validate import validate

END = "$(?!\\n)"  # the end anchor that means "end of string" both in Python's re and in ECMA-262


def patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from patterns(value)


END_ANCHORED = sorted({p for name in schema_names() for p in patterns(load_schema(name)) if "$" in p})


def test_the_schemas_have_end_anchored_patterns() -> None:
    assert len(END_ANCHORED) >= 8


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_no_schema_pattern_accepts_a_trailing_newline(data: st.DataObject) -> None:
    pattern = data.draw(st.sampled_from(END_ANCHORED))
    # A value the pattern is meant to accept, generated from the pattern itself (minus the guard).
    value = data.draw(st.from_regex(pattern.removesuffix(END).removesuffix("$").removeprefix("^"), fullmatch=True))
    assert re.search(pattern, value), (pattern, value)
    assert not re.search(pattern, value + "\n"), f"{pattern} accepts {value!r} plus a newline"


CONTRACT = """\
id: {cid}
version: {version}
title: Demo
depends_on: [{dep}]
references:
  - {{title: x, url: {url}}}
changelog:
  - {{version: 1.0.0, date: {date}, change: First.}}
invariants:
  - id: {inv}
    kind: safety
    statement: It holds.
    guards: [{target}]
falsifiers:
  - id: {fid}
    attacks: [{inv}]
    prediction: p
    if_fails: f
    binding: {{pytest: {node}}}
  - id: FALSIFY-NL-002
    attacks: [{inv}]
    prediction: p
    if_fails: f
    binding: {{python: {target}}}
  - id: FALSIFY-NL-003
    attacks: [{inv}]
    prediction: p
    if_fails: f
    binding: {{pytest: {{k: x, paths: [{node}]}}}}
    deferred: {{reason: r, until: {date}}}
"""
VALUES = {
    "cid": "nl-demo-v1", "version": "1.0.0", "dep": "nl-other-v1", "url": "https://example.com/x",
    "date": "2027-01-31", "inv": "INV-NL-001", "target": "pkg.mod:fn", "fid": "FALSIFY-NL-001",
    "node": "tests/missing.py",
}
# field -> (line of the value, where the problem is reported)
LINES = {"cid": [1], "version": [2], "dep": [4], "url": [6], "date": [8, 30], "inv": [10, 16, 21, 26],
         "target": [13, 24], "fid": [15], "node": [19, 29]}


@pytest.mark.parametrize("field", sorted(VALUES))
def test_a_trailing_newline_in_any_id_or_path_is_a_problem(tmp_path: Path, field: str) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "other.yaml").write_text(textwrap.dedent("""\
        id: nl-other-v1
        version: 1.0.0
        title: Other
        invariants: [{id: INV-NLO-001, kind: safety, statement: s}]
        falsifiers: [{id: FALSIFY-NLO-001, attacks: [INV-NLO-001], prediction: p, if_fails: f, binding: {python: a:b}}]
        """))
    good = {k: f'"{v}"' for k, v in VALUES.items()}
    path = tmp_path / "c.yaml"
    path.write_text(CONTRACT.format(**good))
    _, problems = validate([path], check_bindings=False)
    assert [str(p) for p in problems] == []
    path.write_text(CONTRACT.format(**{**good, field: f'"{VALUES[field]}\\n"'}))
    _, problems = validate([path], check_bindings=False)
    lines = {p.location.line for p in problems}
    assert set(LINES[field]) <= lines, [str(p) for p in problems]
    assert all("\n" not in str(p) for p in problems)
