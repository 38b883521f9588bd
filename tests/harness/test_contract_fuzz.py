"""Fuzzing contract YAML: whatever the file holds, loading raises LoadError or validation returns
problems (one line each), never anything else: the way test_checkpoint_fuzz covers safetensors headers."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.load import LoadError, load_contract_file
from harness.validate import validate

VALID = """\
id: fz-demo-v1
version: 1.0.0
title: Demo
depends_on: [fz-other-v1]
invariants:
  - id: INV-FZ-001
    kind: safety
    statement: It holds.
falsifiers:
  - id: FALSIFY-FZ-001
    attacks: [INV-FZ-001]
    prediction: p
    if_fails: f
    binding: {command: [sh, -c, "echo 1 passed"], count_pattern: "(\\\\d+) passed", min_tests: 1}
    timeout_s: 30
    deferred: {reason: r, until: 2999-01-31}
"""
SIBLING = "id: fz-other-v1\nversion: 1.0.0\ntitle: T\ninvariants: []\nfalsifiers: []\n"

TAGS = ["!!bool", "!!int", "!!float", "!!str", "!!null", "!!binary", "!!timestamp", "!!set", "!!omap", "!!map",
        "!!seq", "!!python/object/apply:os.system", "!!python/name:os.system", "!", "!local", "!<tag:x.org,2002:y>"]
# Text that means something to YAML or to a terminal.
ESCAPES = ["\\x00", "\\x01", "\\x1b[2J", "\\x7f", "\\x85", "\\u009b", "\\ud800", "\\udfff", "\\U0010ffff",
           "\\N", "\\L", "\\P", "\\_", "\\t", "\\n", "\\r", "\\0", "\\e", "\\uFFFE"]

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=1, max_value=8000).map(lambda n: "9" * n),
    st.sampled_from(["0x", "0x1F", "0o17", "0b101", "0b", "017", "1_000", "190:20:30", "1:2:3:4:5:6:7:8",
                     "-0", "+12", ".5", "1.", "1e3", "1.0e+400", "-.inf", ".NaN", "1__2", "0x_1", "-0b1"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
) | st.lists(st.sampled_from(ESCAPES), max_size=3).map(lambda parts: '"' + "".join(parts) + '"')
plain_words = st.sampled_from(["yes", "No", "on", "OFF", "~", "null", "true", "=", "<<", "-", "?", ":", "2027-01-31",
                               "2026-02-30", "- a", "*x", "&x y", "|", ">", "'", '"', "{", "[", "#c", "@", "`"])


@st.composite
def scalars(draw: st.DrawFn) -> str:
    value = draw(st.one_of(numbers, text, plain_words))
    if draw(st.booleans()):
        value = f"{draw(st.sampled_from(TAGS))} {value}"
    return value


@st.composite
def nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=1, max_value=3000))
    if draw(st.booleans()):
        return "[" * depth + draw(scalars()) + "]" * depth
    return "{a: " * depth + draw(scalars()) + "}" * depth


@st.composite
def contracts(draw: st.DrawFn) -> str:
    lines = VALID.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        kind = draw(st.sampled_from(["replace-value", "insert-key", "raw-char", "truncate"]))
        if kind == "replace-value" and ": " in lines[i]:
            key = lines[i].split(": ", 1)[0]
            lines[i] = f"{key}: {draw(st.one_of(scalars(), nested()))}"
        elif kind == "insert-key":
            indent = len(lines[i]) - len(lines[i].lstrip(" -"))
            key = draw(st.sampled_from(["timeout_s", "min_tests", "title", "id", "x", "count_pattern", "until"]))
            lines.insert(i + 1, " " * indent + f"{key}: {draw(st.one_of(scalars(), nested()))}")
        elif kind == "raw-char":
            char = draw(st.characters(blacklist_categories=("Cs",)))
            at = draw(st.integers(min_value=0, max_value=len(lines[i])))
            lines[i] = lines[i][:at] + char + lines[i][at:]
        else:
            lines = lines[: i + 1]
    return "\n".join(lines) + "\n"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(source=contracts())
def test_any_contract_text_loads_or_is_refused_cleanly(source: str) -> None:
    with tempfile.TemporaryDirectory(prefix="harness-fuzz-") as tmp:
        directory = Path(tmp)
        (directory / "pyproject.toml").write_text("")
        # A sibling for depends_on, and the fuzzed file beside it, so sibling loading is fuzzed too.
        (directory / "other.yaml").write_text(SIBLING)
        path = directory / "c.yaml"
        path.write_text(source, encoding="utf-8")
        try:
            load_contract_file(path)
        except LoadError as exc:
            assert isinstance(exc.line, int) and exc.line >= 1
            assert exc.message and "\n" not in exc.message
        contracts_found, problems = validate([path], check_bindings=False)
        assert bool(contracts_found) != bool(problems)
        for problem in problems:
            assert "\n" not in str(problem), str(problem)
        # The same text as the sibling of another contract must not break that one either.
        (directory / "other.yaml").write_text(source, encoding="utf-8")
        path.write_text(VALID, encoding="utf-8")
        validate([path], check_bindings=False)
