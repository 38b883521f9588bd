"""The schema check's fast path (jsonschema-rs) may make validation faster, never more permissive.

harness.schema_check trusts jsonschema-rs only when it calls a document valid; these tests hold it to
jsonschema, the reference, on what it accepts: Python's whitespace class written out for both engines,
every pattern of the schema on strings built to probe it, and whole contracts mutated at random.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import schema_check
from harness.contract_doc import ContractDoc, Problems
from harness.load import load_contract_file
from harness.schema import load_schema

jsonschema_rs = pytest.importorskip("jsonschema_rs")

REPO = Path(__file__).resolve().parents[2]
ALL_CHARS = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
# Characters the two engines' own classes disagree on, and the ones the schema's patterns name.
PROBE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u180e\x00\x7f"
ALPHABET = PROBE + "aAzZ09_-.:/+[]INVFALSIFY-xv1\u0661\uff10\u00e9"


def _patterns(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        for value in node.values():
            found |= _patterns(value)
        return found
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node)) if node else set()
    return set()


SCHEMA_PATTERNS = sorted(_patterns(load_schema("contract")))


def _rust_rejects(pattern: str, strings: list[str], *, mostly_rejected: bool = False) -> set[int]:
    """Indices of `strings` jsonschema-rs's `pattern` does not match; one call, so every code point is cheap.
    `mostly_rejected`: ask for the matches instead (an error per string is the slow part)."""
    item: dict[str, Any] = {"type": "string", "pattern": pattern}
    validator = jsonschema_rs.validator_for({"type": "array", "items": {"not": item} if mostly_rejected else item})
    errors = {error.instance_path[0] for error in validator.iter_errors(strings)}
    return set(range(len(strings))) - errors if mostly_rejected else errors


def test_python_whitespace_is_what_re_means_by_backslash_s() -> None:
    spelled = re.compile(f"[{schema_check.PYTHON_WHITESPACE}]")
    assert [c for c in ALL_CHARS if spelled.fullmatch(c)] == [c for c in ALL_CHARS if re.fullmatch(r"\s", c)]


@pytest.mark.parametrize("pattern", [r"\s", r"\S", r"^[^\s-][^\s]*$(?!\n)"])
def test_rewritten_whitespace_classes_match_re_on_every_code_point(pattern: str) -> None:
    # Unrewritten, jsonschema-rs accepts "\x1c" as non-space text where re (and so jsonschema) refuses it.
    rejected = _rust_rejects(schema_check.python_whitespace_pattern(pattern), ALL_CHARS, mostly_rejected=pattern == r"\s")
    expected = {i for i, c in enumerate(ALL_CHARS) if not re.search(pattern, c)}
    assert {hex(ord(ALL_CHARS[i])) for i in rejected ^ expected} == set()


def test_the_schema_has_patterns_to_check() -> None:
    assert r"\S" in SCHEMA_PATTERNS and any(r"\s" in p for p in SCHEMA_PATTERNS)


@pytest.mark.parametrize("pattern", SCHEMA_PATTERNS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_schema_pattern_agrees_with_re(pattern: str, data: st.DataObject) -> None:
    # Strings near the pattern's own language: a matching sample with characters inserted, replaced or
    # appended (a trailing newline is what `$` alone lets through in re), and arbitrary short text.
    samples = {
        "INV-A-001", "FALSIFY-A-001", "a-v1", "1.0.0", "2027-01-31", "https://x.y/z", "tests/t.py::t", "m.n:f.g",
        "m:f/replace_op/0123abcd", "text",
    }
    base = data.draw(st.sampled_from(sorted(samples)))
    pos = data.draw(st.integers(min_value=0, max_value=len(base)))
    piece = data.draw(st.text(alphabet=ALPHABET, max_size=3))
    how = data.draw(st.sampled_from(["insert", "replace", "append", "free"]))
    text = {
        "insert": base[:pos] + piece + base[pos:],
        "replace": base[:pos] + piece + base[pos + 1 :],
        "append": base + piece,
        "free": piece,
    }[how]
    rust = not _rust_rejects(schema_check.python_whitespace_pattern(pattern), [text])
    assert rust == bool(re.search(pattern, text)), (pattern, text)


def _valid_contract() -> dict[str, Any]:
    data = load_contract_file(REPO / "contracts" / "apr-pretrain-from-init-v1.yaml").data
    data = copy.deepcopy(data)
    data["references"] = ["a reference", {"title": "T", "url": "https://example.com/x"}]
    data["changelog"] = [{"version": "1.0.0", "date": "2026-01-01", "change": "First."}]
    data["falsifiers"].append(
        {
            "id": "FALSIFY-EXTRA-001", "attacks": [data["invariants"][0]["id"]], "prediction": "p", "if_fails": "f",
            "binding": {"command": ["sh", "-c", "true"], "count_pattern": "(\\d+) passed", "min_tests": 1},
            "requires": {"cuda": False, "packages": ["x>=1"], "min_memory_gib": 1.5}, "timeout_s": 3,
            "deferred": {"reason": "r", "until": "2999-01-01"},
        }
    )
    data["falsifiers"].append(
        {"id": "FALSIFY-EXTRA-002", "attacks": [data["invariants"][0]["id"]], "prediction": "p", "if_fails": "f",
         "binding": {"pytest": {"k": "a and b", "paths": ["tests"]}, "min_tests": 2}}
    )
    return data


VALID = _valid_contract()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, prefix + (i,))
    return out


PATHS = _paths(VALID)[1:]
values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, 1, 1.0, 0.5, -1, True])
    | st.text(alphabet=ALPHABET, max_size=8) | st.sampled_from(["INV-X-001", "FALSIFY-X-001", "x-v1", "1.0.0", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["python", "k", "id", "x", "paths"]), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=250, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "add-key"]), values), min_size=1, max_size=3))
def test_fast_path_never_accepts_what_jsonschema_refuses(edits: list[tuple[tuple[Any, ...], str, Any]]) -> None:
    data = copy.deepcopy(VALID)
    for path, how, value in edits:
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if how == "set":
                parent[last] = value
            elif how == "delete":
                del parent[last]
            elif isinstance(parent[last], dict):
                parent[last]["unexpected"] = value
            else:
                parent[last] = {"wrapped": value}
        except (KeyError, IndexError, TypeError):
            continue
    fast = schema_check.fast_validator()
    assert fast is not None
    try:
        says_valid = fast(data)
    except Exception:  # a value it cannot take: schema_check falls back to jsonschema
        return
    if says_valid:
        assert list(schema_check._schema_validator().iter_errors(data)) == [], json.dumps(data, default=str)[:500]


def test_both_validators_accept_this_repository_contracts() -> None:
    fast = schema_check.fast_validator()
    assert fast is not None
    for path in sorted((REPO / "contracts").glob("*.yaml")):
        data = load_contract_file(path).data
        assert fast(data) and schema_check._schema_validator().is_valid(data), path


def test_problems_are_the_same_without_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An invalid document always reaches jsonschema; switching the fast path off changes nothing a user sees.
    bad = copy.deepcopy(VALID)
    bad["falsifiers"][0]["id"] = "FALSIFY-lower-001"
    bad["falsifiers"][1]["binding"]["min_tests"] = "2"
    bad["invariants"][0]["kind"] = "safty"
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(bad))
    doc = ContractDoc(display="c.yaml", path=path, root=tmp_path, loaded=load_contract_file(path))

    def problems() -> list[str]:
        sink = Problems()
        schema_check.check_schema(doc, sink)
        return [str(p) for p in sink.sorted()]

    with_fast = problems()
    monkeypatch.setattr(schema_check, "_fast", schema_check._no_fast_path)
    assert schema_check.fast_validator() is None
    assert problems() == with_fast
    assert len(with_fast) == 3 and "did you mean 'safety'" in " ".join(with_fast)
