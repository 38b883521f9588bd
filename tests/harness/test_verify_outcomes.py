"""Every way a falsifier can end, classified by one real `harness verify` run over a fixture project."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness.verify_support import contract_text, entries, falsifier, make_project, read_evidence, run_verify

CASES = [
    falsifier("FALSIFY-FX-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-FX-002", '{python: "fx_falsifiers:falsified"}'),
    falsifier("FALSIFY-FX-003", '{python: "fx_falsifiers:hypothesis_falsified"}'),
    falsifier("FALSIFY-FX-004", '{python: "fx_falsifiers:raises"}'),
    falsifier("FALSIFY-FX-005", '{python: "fx_falsifiers:hang"}', "timeout_s: 1"),
    falsifier("FALSIFY-FX-006", '{python: "fx_falsifiers:exits"}'),
    falsifier("FALSIFY-FX-007", '{python: "fx_falsifiers:segfaults"}'),
    falsifier("FALSIFY-FX-008", '{python: "fx_missing_module:anything"}'),
    falsifier("FALSIFY-FX-010", '{pytest: "tests/test_bound.py::test_no_such_test"}'),
    falsifier("FALSIFY-FX-011", '{pytest: "tests/test_bound.py::test_skipped_only"}'),
    falsifier("FALSIFY-FX-012", '{pytest: {k: "bound_one or bound_two", paths: [tests]}, min_tests: 2}'),
    falsifier("FALSIFY-FX-013", '{pytest: "tests/test_bound.py::test_broken_case"}'),
    falsifier("FALSIFY-FX-014", '{pytest: {k: "bound_one", paths: [tests]}, min_tests: 2}'),
    falsifier("FALSIFY-FX-020", '{command: [sh, -c, "echo 7 passed"], count_pattern: "(\\\\d+) passed", min_tests: 5}'),
    falsifier("FALSIFY-FX-021", '{command: [sh, -c, "echo found a counterexample: x=3; exit 4"]}'),
    falsifier("FALSIFY-FX-022", '{command: [sh, -c, "echo 1 passed"], count_pattern: "(\\\\d+) passed", min_tests: 3}'),
    falsifier("FALSIFY-FX-023", '{command: [no-such-program-fx, --flag]}'),
    falsifier("FALSIFY-FX-030", '{python: "fx_falsifiers:holds"}', "requires: {cuda: true}"),
    falsifier("FALSIFY-FX-031", '{python: "fx_falsifiers:holds"}', "requires: {packages: [no_such_package_fx]}"),
    falsifier("FALSIFY-FX-032", '{python: "fx_falsifiers:holds"}', 'deferred: {reason: "needs the 7B checkpoint", until: 2999-01-31}'),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("project")
    make_project(root, {"fx.yaml": contract_text("fx-outcomes-v1", CASES)})
    out = root / "out"
    # -j 2: every kind of result must also survive the trip from an xdist worker to the controller.
    proc = run_verify(root, "contracts", "--out", str(out), "-j", "2")
    evidence_path = out / "uncommitted" / "evidence.json"
    assert evidence_path.exists(), proc.stdout + proc.stderr
    return proc, read_evidence(evidence_path), root


def result(run: tuple[Any, dict[str, Any], Path], fid: str) -> dict[str, Any]:
    return entries(run[1])[fid]


def test_every_falsifier_is_recorded_and_the_run_fails(run) -> None:
    proc, evidence, _ = run
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted(entries(evidence)) == sorted(c.split("id: ")[1].split("\n")[0] for c in CASES)
    assert evidence["complete"] is True
    assert evidence["totals"] == {"passed": 3, "falsified": 4, "error": 10, "not_run": 2, "deferred": 1, "flaky": 0, "vacuous": 0}
    assert "harness: 3 passed, 4 falsified, 10 error, 2 not_run, 1 deferred" in proc.stdout


def test_progress_prints_one_plain_line_per_falsifier(run) -> None:
    stdout = run[0].stdout
    assert "PASSED FALSIFY-FX-001 (" in stdout
    assert "FALSIFIED FALSIFY-FX-002 (" in stdout
    assert "NOT_RUN FALSIFY-FX-030 (" in stdout
    assert "evidence: " in stdout and "evidence.json" in stdout


def test_passing_python_falsifier(run) -> None:
    r = result(run, "FALSIFY-FX-001")
    assert r["outcome"] == "passed"
    assert r["counterexample"] is None
    assert r["invariant"] == ["INV-FX-001"]
    assert r["binding"]["target"] == "fx_falsifiers:holds"


def test_assertion_is_falsified_with_its_message_as_counterexample(run) -> None:
    r = result(run, "FALSIFY-FX-002")
    assert r["outcome"] == "falsified"
    assert "1 + 1 was 2, predicted 3" in r["counterexample"]


def test_hypothesis_failure_records_the_falsifying_example(run) -> None:
    r = result(run, "FALSIFY-FX-003")
    assert r["outcome"] == "falsified"
    # hypothesis notes the failing call; its wording changed ("Falsifying example" -> "Failing test case").
    assert "_below_ten(" in r["counterexample"]
    assert "x=10" in r["counterexample"]  # shrunk to the smallest counterexample


def test_other_exception_is_an_error_not_a_falsification(run) -> None:
    r = result(run, "FALSIFY-FX-004")
    assert r["outcome"] == "error"
    assert "ValueError: the falsifier itself is broken" in r["reason"]
    assert r["counterexample"] is None


def test_hang_is_killed_at_the_timeout(run) -> None:
    r = result(run, "FALSIFY-FX-005")
    assert r["outcome"] == "error"
    assert r["reason"].startswith("timed out after 1s")
    assert r["duration_s"] < 30


def test_os_exit_is_an_error_naming_the_status(run) -> None:
    r = result(run, "FALSIFY-FX-006")
    assert r["outcome"] == "error"
    assert r["reason"].startswith("exited with status 3 without reporting")


def test_death_by_signal_is_an_error_naming_the_signal(run) -> None:
    r = result(run, "FALSIFY-FX-007")
    assert r["outcome"] == "error"
    assert r["reason"].startswith("killed by signal SIGSEGV")


def test_unimportable_target_is_an_error(run) -> None:
    r = result(run, "FALSIFY-FX-008")
    assert r["outcome"] == "error"
    assert "cannot import fx_missing_module:anything" in r["reason"]


def test_pytest_binding_matching_no_tests_is_an_error(run) -> None:
    r = result(run, "FALSIFY-FX-010")
    assert r["outcome"] == "error"
    assert r["tests_matched"] == 0
    assert r["tests_executed"] == 0


def test_pytest_binding_whose_tests_all_skip_is_an_error(run) -> None:
    r = result(run, "FALSIFY-FX-011")
    assert r["outcome"] == "error"
    assert (r["tests_matched"], r["tests_executed"]) == (1, 0)
    assert "skipped" in r["reason"]


def test_pytest_binding_that_matches_and_passes_records_counts(run) -> None:
    r = result(run, "FALSIFY-FX-012")
    assert r["outcome"] == "passed", r["reason"]
    assert (r["tests_matched"], r["tests_executed"]) == (2, 2)


def test_pytest_binding_with_a_failing_test_is_falsified_with_the_failure(run) -> None:
    r = result(run, "FALSIFY-FX-013")
    assert r["outcome"] == "falsified"
    assert "test_broken_case" in r["counterexample"]
    assert "assert [1, 2] == [1, 3]" in r["counterexample"]


def test_pytest_binding_below_min_tests_is_an_error(run) -> None:
    r = result(run, "FALSIFY-FX-014")
    assert r["outcome"] == "error"
    assert r["tests_matched"] == 1
    assert "min_tests 2" in r["reason"]


def test_command_exit_zero_with_enough_counted_tests_passes(run) -> None:
    r = result(run, "FALSIFY-FX-020")
    assert r["outcome"] == "passed"
    assert r["tests_matched"] == 7


def test_command_nonzero_exit_is_falsified_with_output_tail(run) -> None:
    r = result(run, "FALSIFY-FX-021")
    assert r["outcome"] == "falsified"
    assert r["reason"] == "exited with status 4"
    assert "found a counterexample: x=3" in r["counterexample"]


def test_command_counting_fewer_than_min_tests_is_an_error(run) -> None:
    r = result(run, "FALSIFY-FX-022")
    assert r["outcome"] == "error"
    assert r["tests_matched"] == 1
    assert "min_tests 3" in r["reason"]


def test_command_not_found_is_an_error(run) -> None:
    r = result(run, "FALSIFY-FX-023")
    assert r["outcome"] == "error"
    assert "command not found: no-such-program-fx" in r["reason"]


def test_cuda_requirement_on_a_cpu_machine_is_not_run(run) -> None:
    r = result(run, "FALSIFY-FX-030")
    assert r["outcome"] == "not_run"
    assert r["reason"] == "requires CUDA"


def test_missing_package_is_not_run(run) -> None:
    r = result(run, "FALSIFY-FX-031")
    assert (r["outcome"], r["reason"]) == ("not_run", "requires package no_such_package_fx")


def test_deferred_falsifier_records_reason_and_expiry(run) -> None:
    r = result(run, "FALSIFY-FX-032")
    assert r["outcome"] == "deferred"
    assert "2999-01-31" in r["reason"] and "needs the 7B checkpoint" in r["reason"]


def test_evidence_header_describes_the_run(run) -> None:
    _, evidence, _ = run
    assert evidence["commit"] is None and evidence["dirty"] is None
    assert evidence["command"] == ["harness", "verify", "contracts", "--out", str(run[2] / "out"), "-j", "2"]
    env = evidence["environment"]
    assert env["python"].count(".") == 2 and env["os"] and env["cpu"]
    (contract,) = evidence["contracts"]
    assert contract["id"] == "fx-outcomes-v1" and contract["path"] == "contracts/fx.yaml"
    assert len(contract["sha256"]) == 64


def test_junit_and_summary_are_written_next_to_the_evidence(run) -> None:
    import xml.etree.ElementTree as ET

    _, _, root = run
    directory = root / "out" / "uncommitted"
    suites = ET.parse(directory / "junit.xml").getroot()
    assert suites.get("tests") == str(len(CASES))
    assert (suites.get("failures"), suites.get("errors"), suites.get("skipped")) == ("4", "10", "3")
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    assert cases["FALSIFY-FX-002"].find("failure") is not None
    assert cases["FALSIFY-FX-005"].find("error").get("message").startswith("timed out after 1s")
    summary = (directory / "summary.md").read_text()
    assert "| `FALSIFY-FX-002` |" in summary
    assert "1 + 1 was 2, predicted 3" in summary  # counterexample section
    assert "- `FALSIFY-FX-030`: requires CUDA" in summary  # not_run reasons
    assert "3 passed, 4 falsified, 10 error, 2 not_run, 1 deferred" in summary


def test_a_falsifier_that_returns_a_value_is_an_error_not_a_pass(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-RET-001", '{python: "fx_falsifiers:returns_verdict"}'),
        falsifier("FALSIFY-RET-002", '{python: "fx_falsifiers:generator"}'),
    ]
    make_project(tmp_path, {"ret.yaml": contract_text("ret-v1", cases)})
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = entries(read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json"))
    assert found["FALSIFY-RET-001"]["outcome"] == "error"
    assert "returned False instead of None" in found["FALSIFY-RET-001"]["reason"]
    assert found["FALSIFY-RET-002"]["outcome"] == "error"
    assert "returned <generator object" in found["FALSIFY-RET-002"]["reason"]


def test_a_background_process_left_behind_does_not_turn_a_pass_into_a_timeout(tmp_path: Path) -> None:
    cases = [falsifier("FALSIFY-BG-001", '{python: "fx_falsifiers:leaves_background_process"}', "timeout_s: 10")]
    make_project(tmp_path, {"bg.yaml": contract_text("bg-v1", cases)})
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = entries(read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json"))["FALSIFY-BG-001"]
    assert (r["outcome"], r["reason"]) == ("passed", "returned without an AssertionError")


def test_package_requirements_with_version_specifiers_are_checked_against_the_installed_version(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-PKG-001", '{python: "fx_falsifiers:holds"}', 'requires: {packages: ["pytest>=1", "PyYAML"]}'),
        falsifier("FALSIFY-PKG-002", '{python: "fx_falsifiers:holds"}', 'requires: {packages: ["pytest<1"]}'),
    ]
    make_project(tmp_path, {"pkg.yaml": contract_text("pkg-v1", cases)})
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = entries(read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json"))
    assert found["FALSIFY-PKG-001"]["outcome"] == "passed", found["FALSIFY-PKG-001"]["reason"]
    assert found["FALSIFY-PKG-002"]["outcome"] == "not_run"
    assert found["FALSIFY-PKG-002"]["reason"].startswith("requires package pytest<1 (installed: ")
