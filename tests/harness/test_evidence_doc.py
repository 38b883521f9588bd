"""docs/evidence-format.md's example evidence is what the code produces: the demo repository it
describes is built here, run with `harness verify contracts/`, and the documented document is held to
the real one (keys and shape everywhere, the falsifier entries value for value) and to the schema."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from harness.record import evidence_problems

from tests.harness.verify_support import REPO, read_evidence, run_verify

DOC = REPO / "docs" / "evidence-format.md"

DEMO_CONTRACT = textwrap.dedent(
    """\
    id: demo-sorting-v1
    version: 1.0.0
    title: Sorting and deduplication
    description: The demo repository's sorting helpers keep their promises.
    invariants:
      - id: INV-SORT-IDEMPOTENT-001
        kind: safety
        statement: Sorting a sorted list changes nothing.
        guards: [demo_sort:sort]
      - id: INV-DEDUPE-LENGTH-001
        kind: safety
        statement: Deduplication keeps every element.
    falsifiers:
      - id: FALSIFY-SORT-IDEMPOTENT-001
        attacks: [INV-SORT-IDEMPOTENT-001]
        prediction: sorted(sorted(xs)) == sorted(xs) for any list of integers.
        if_fails: sorted is not idempotent.
        binding: {python: "falsifiers.sorting:falsify_sorted_is_idempotent"}
      - id: FALSIFY-SORT-IDEMPOTENT-002
        attacks: [INV-SORT-IDEMPOTENT-001]
        prediction: The unit tests of sorted pass.
        if_fails: A sorting test fails.
        binding: {pytest: {k: sorted, paths: [tests]}, min_tests: 2}
      - id: FALSIFY-DEDUPE-LENGTH-001
        attacks: [INV-DEDUPE-LENGTH-001]
        prediction: Deduplication never shortens a list.
        if_fails: Deduplication drops elements.
        binding: {python: "falsifiers.sorting:falsify_dedupe_keeps_length"}
      - id: FALSIFY-DEDUPE-LENGTH-002
        attacks: [INV-DEDUPE-LENGTH-001]
        prediction: The same on a CUDA machine.
        if_fails: Deduplication drops elements on CUDA.
        binding: {python: "falsifiers.sorting:falsify_dedupe_keeps_length"}
        requires: {cuda: true}
    """
)

DEMO_FALSIFIERS = textwrap.dedent(
    '''\
    from hypothesis import given, settings, strategies as st

    from demo_sort import sort


    @settings(max_examples=100, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.integers()))
    def _sorted_is_idempotent(xs):
        assert sort(sort(xs)) == sort(xs)


    def falsify_sorted_is_idempotent():
        _sorted_is_idempotent()


    @settings(max_examples=100, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.integers(0, 3)))
    def _dedupe_keeps_length(xs):
        assert len(set(xs)) == len(xs), "deduplication dropped elements"


    def falsify_dedupe_keeps_length():
        _dedupe_keeps_length()
    '''
)

DEMO_TESTS = textwrap.dedent(
    """\
    from demo_sort import sort


    def test_sorted_orders():
        assert sort([3, 1, 2]) == [1, 2, 3]


    def test_sorted_keeps_duplicates():
        assert sort([2, 1, 2]) == [1, 2, 2]
    """
)

# The code INV-SORT-IDEMPOTENT-001's falsifiers must execute (its `guards`), so they are not vacuous.
DEMO_SORT = textwrap.dedent(
    """\
    def sort(xs):
        \"\"\"The demo's sort.\"\"\"
        return sorted(xs)
    """
)


def make_demo(root: Path) -> Path:
    """The demo repository docs/evidence-format.md describes."""
    (root / "contracts").mkdir(parents=True)
    (root / "falsifiers").mkdir()
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\nversion = '0'\n")
    (root / "contracts" / "sorting.yaml").write_text(DEMO_CONTRACT)
    (root / "falsifiers" / "__init__.py").write_text("")
    (root / "falsifiers" / "sorting.py").write_text(DEMO_FALSIFIERS)
    (root / "tests" / "test_sorting.py").write_text(DEMO_TESTS)
    (root / "demo_sort.py").write_text(DEMO_SORT)
    return root


def documented_example() -> dict[str, Any]:
    text = DOC.read_text()
    block = re.search(r"A real example.*?\n```json\n(.*?)\n```", text, re.S)
    assert block, f"{DOC} lost its example evidence.json"
    return json.loads(block.group(1))


def readme_example() -> dict[str, Any]:
    block = re.search(r"An abridged evidence.json:\n\n```json\n(.*?)\n```", (REPO / "README.md").read_text(), re.S)
    assert block, "README.md lost its abridged evidence.json"
    return json.loads(block.group(1))


def assert_abridged(abridged: Any, real: Any, where: str = "") -> None:
    """README's example may leave list items out, never invent or reorder a key."""
    if where.endswith("/guard_lines"):
        # Keyed by the falsifier's guards (data, not format): the same shape, guard -> line numbers.
        for value in (abridged, real):
            assert isinstance(value, dict) and all(isinstance(n, int) for lines in value.values() for n in lines), where
        return
    if where.endswith("/modules"):
        # Keyed by the files the falsifier imported (data, not format): the same shape, path -> "sha256:<hex>".
        for value in (abridged, real):
            assert isinstance(value, dict) and all(v.startswith("sha256:") for v in value.values()), where
        return
    if isinstance(abridged, dict):
        assert isinstance(real, dict) and list(abridged) == list(real), where
        for key in abridged:
            assert_abridged(abridged[key], real[key], f"{where}/{key}")
    elif isinstance(abridged, list) and abridged and isinstance(abridged[0], dict):
        assert isinstance(real, list) and real, where
        for item in abridged:
            assert_abridged(item, real[0], f"{where}/[]")


def shape(value: Any) -> Any:
    """Keys all the way down, and the JSON type of each leaf (null counted with anything)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def assert_same_shape(documented: Any, real: Any, where: str = "") -> None:
    """The same keys in the same order and lists of the same length all the way down, and the same
    leaf types, except where one side is null (commit, cuda, gpu are null on a machine without them)."""
    if isinstance(documented, dict):
        assert isinstance(real, dict) and list(documented) == list(real), where
        for key in documented:
            assert_same_shape(documented[key], real[key], f"{where}/{key}")
    elif isinstance(documented, list):
        assert isinstance(real, list) and len(documented) == len(real), where
        for i, (d, r) in enumerate(zip(documented, real)):
            assert_same_shape(d, r, f"{where}/{i}")
    else:
        assert "NoneType" in (documented, real) or documented == real, f"{where}: {documented} vs {real}"


def counterexample_core(counterexample: str | None) -> str | None:
    """The message and the failing call: the `@reproduce_failure('VERSION', ...)` hint after them names
    the installed hypothesis version."""
    return counterexample and counterexample.split("\n\n")[0]


def replay_core(replay: dict[str, Any] | None) -> dict[str, Any] | None:
    """The replay entry without what names the installed hypothesis release (its version, the blob's
    encoding of the example), the example in today's wording."""
    if replay is None:
        return None
    examples = [{"test": e["test"], "example": in_todays_wording(e["example"])} for e in replay["examples"]]
    return {**replay, "hypothesis_version": None, "examples": examples}


def in_todays_wording(counterexample: str | None) -> str | None:
    """hypothesis releases before 6.1xx called the failing call "Falsifying example"; the doc shows today's."""
    return counterexample and counterexample.replace("Falsifying example:", "Failing test case:")


def test_documented_example_is_schema_valid_and_shaped_like_a_real_run(tmp_path: Path) -> None:
    documented = documented_example()
    assert evidence_problems(documented) == []
    make_demo(tmp_path)
    proc = run_verify(tmp_path, "contracts/", "--out", "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    real = read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")

    assert_same_shape(shape(documented), shape(real))
    assert_abridged(readme_example(), real)
    assert list(documented["environment"]) == list(real["environment"])
    assert documented["totals"] == real["totals"]
    assert documented["command"][:3] == real["command"][:3] == ["harness", "verify", "contracts/"]
    [doc_contract], [real_contract] = documented["contracts"], real["contracts"]
    assert {k: v for k, v in doc_contract.items() if k != "falsifiers"} == {
        k: v for k, v in real_contract.items() if k != "falsifiers"
    }
    for doc_entry, real_entry in zip(doc_contract["falsifiers"], real_contract["falsifiers"], strict=True):
        assert list(doc_entry) == list(real_entry)
        for key in doc_entry:
            if key == "duration_s":
                continue
            if key == "counterexample":
                assert counterexample_core(doc_entry[key]) == counterexample_core(in_todays_wording(real_entry[key])), (
                    f"{doc_entry['id']}: {key}"
                )
            elif key == "replay":
                assert replay_core(doc_entry[key]) == replay_core(real_entry[key]), f"{doc_entry['id']}: {key}"
            else:
                assert doc_entry[key] == real_entry[key], f"{doc_entry['id']}: {key}"


def test_documented_terminal_output_is_what_verify_prints(tmp_path: Path) -> None:
    block = re.search(r"Output: .*?\n```\n(.*?)\n```", DOC.read_text(), re.S)
    assert block
    documented = block.group(1).splitlines()
    make_demo(tmp_path)
    proc = run_verify(tmp_path, "contracts/", "--out", "out")

    def strip_times(lines: list[str]) -> list[str]:
        return [re.sub(r"\(\d+\.\ds\)", "(Ts)", re.sub(r"evidence: \S+/evidence.json", "evidence: E", ln)) for ln in lines]

    assert strip_times(documented) == strip_times(proc.stdout.splitlines())
