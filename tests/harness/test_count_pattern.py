"""count_pattern: matching untrusted output is bounded by the falsifier's timeout, and only a
pattern whose group must capture digits (and min_tests only with a count) gets past validate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.validate import validate

from tests.harness.verify_support import contract_text, entries, falsifier, make_project, read_evidence, run_verify

# 40,000 'a's and no digit: (?:a|a)* tries 2**40000 ways before giving up.
CATASTROPHIC = falsifier(
    "FALSIFY-FX-001",
    """{command: [sh, -c, "head -c 40000 /dev/zero | tr '\\\\0' a"], count_pattern: "(?:a|a)*(\\\\d+)"}""",
    "timeout_s: 3",
)
HUGE_COUNT = falsifier(
    "FALSIFY-FX-002",
    """{command: [sh, -c, "printf '%05000d passed' 7"], count_pattern: "(\\\\d+) passed"}""",
)
COUNTED = falsifier(
    "FALSIFY-FX-003",
    """{command: [sh, -c, "echo 2 passed; echo 3 passed"], count_pattern: "(\\\\d+) passed", min_tests: 5}""",
)


def verify(tmp_path: Path, cases: list[str]) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    root = tmp_path / "project"
    make_project(root, {"fx.yaml": contract_text("fx-count-v1", cases)})
    # The subprocess timeout only stops a regression from hanging the suite; it is not what is tested.
    proc = run_verify(root, "contracts", "--out", str(root / "out"), timeout=240)
    evidence = root / "out" / "uncommitted" / "evidence.json"
    assert evidence.exists(), proc.stdout + proc.stderr
    return proc, entries(read_evidence(evidence))


def test_matching_is_bounded_by_the_timeout_and_recorded_as_an_error(tmp_path: Path) -> None:
    proc, results = verify(tmp_path, [CATASTROPHIC, HUGE_COUNT, COUNTED])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    hung = results["FALSIFY-FX-001"]
    assert hung["outcome"] == "error"
    assert "did not finish matching the command's output within the falsifier's timeout" in hung["reason"]
    assert "simplify the pattern" in hung["reason"]
    huge = results["FALSIFY-FX-002"]
    assert huge["outcome"] == "error"
    assert "which is not a test count" in huge["reason"]
    # Counting itself still works, summed over the lines, in its child.
    assert results["FALSIFY-FX-003"]["outcome"] == "passed" and results["FALSIFY-FX-003"]["tests_matched"] == 5


VALID = """\
id: cp-demo-v1
version: 1.0.0
title: Demo
invariants:
  - {id: INV-CP-001, kind: safety, statement: s}
falsifiers:
  - id: FALSIFY-CP-001
    attacks: [INV-CP-001]
    prediction: p
    if_fails: f
    binding:
      command: [sh, -c, "echo 3 passed"]
"""


def problems(tmp_path: Path, binding_extra: str) -> list[str]:
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "c.yaml"
    path.write_text(VALID + "".join(f"      {line}\n" for line in binding_extra.splitlines()))
    _, found = validate([path], check_bindings=False)
    return [str(p) for p in found]


@pytest.mark.parametrize(
    "pattern, why",
    [
        (r"(\d*) passed", "can match an empty string"),
        (r"(\w+) passed", "can match text other than digits"),
        (r"(\d+(?:\.\d+)?)", "can match text other than digits"),
        (r"(\d+)? passed", "inside a repetition, an alternative or a lookaround"),
        (r"(\d+) passed|none", "inside a repetition, an alternative or a lookaround"),
        (r"passed", "has 0 groups"),
        (r"(\d+) of (\d+)", "has 2 groups"),
        (r"(\d+", "is not a valid regex"),
    ],
)
def test_a_count_pattern_whose_group_can_capture_a_non_number_is_a_problem(tmp_path: Path, pattern: str, why: str) -> None:
    found = problems(tmp_path, f"count_pattern: '{pattern}'")
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'c.yaml'}:13: FALSIFY-CP-001: count_pattern "), found
    assert why in found[0]


@pytest.mark.parametrize("pattern", [r"(\d+) passed", r"test result: ok\. ([0-9]+) passed", r"(?:ran )(\d{1,6})", r"(?i)(\d\d*) PASSED"])
def test_a_count_pattern_capturing_digits_is_accepted(tmp_path: Path, pattern: str) -> None:
    assert problems(tmp_path, f"count_pattern: '{pattern}'\nmin_tests: 3") == []


def test_min_tests_on_a_command_needs_a_count_pattern_and_the_fix_it_prints_works(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "min_tests: 2")
    assert found.startswith(f"{tmp_path / 'c.yaml'}:13: FALSIFY-CP-001: min_tests on a command binding needs count_pattern")
    # The message's suggestion, pasted into the binding as printed, is accepted.
    suggestion = found.split("add e.g. ", 1)[1].split(", or remove", 1)[0]
    assert yaml.safe_load(suggestion) == {"count_pattern": r"(\d+) passed"}
    assert problems(tmp_path, f"{suggestion}\nmin_tests: 2") == []


def test_verify_refuses_min_tests_without_a_count_pattern(tmp_path: Path) -> None:
    root = tmp_path / "project"
    case = falsifier("FALSIFY-FX-001", '{command: [sh, -c, "echo 1 passed"], min_tests: 2}')
    make_project(root, {"fx.yaml": contract_text("fx-count-v1", [case])})
    proc = run_verify(root, "contracts", "--out", str(root / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    problem_lines = [l for l in proc.stdout.splitlines() if "FALSIFY-FX-001" in l]
    assert len(problem_lines) == 1 and "min_tests on a command binding needs count_pattern" in problem_lines[0]
    assert "Traceback" not in proc.stderr
    assert not (root / "out" / "uncommitted" / "evidence.json").exists()
