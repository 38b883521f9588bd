"""`harness verify` enforces every rule `harness validate` enforces on what it runs, through the same
code: a binding that leads outside the repository (`..`, an absolute path, a symlink) is refused with
validate's FILE:LINE message, exit 2, and nothing runs. The checks that import targets or collect tests
are left to the run itself, where they end as that falsifier's `error`, never `passed`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.validate import validate

from tests.harness.verify_support import (
    contract_text,
    entries,
    falsifier,
    harness_env,
    make_project,
    plugin_args,
    read_evidence,
    run_verify,
)

# A test outside the repository that records having run: verify must never get that far.
OUTSIDE_TEST = "from pathlib import Path\n\ndef test_outside():\n    Path(__file__).with_name('RAN').write_text('ran')\n"


def _project(tmp_path: Path, binding: str) -> tuple[Path, Path]:
    """(repository root, the directory outside it holding a test that must never run)."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "test_outside.py").write_text(OUTSIDE_TEST)
    root = tmp_path / "repo"
    make_project(root, {"escape.yaml": contract_text("escape-v1", [
        falsifier("FALSIFY-ESC-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-ESC-002", binding),
    ])})
    return root, outside


def _validate(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "validate", "contracts"], cwd=root, env=harness_env(),
        capture_output=True, text=True, timeout=120,
    )


def _escaping_bindings(tmp_path: Path) -> dict[str, str]:
    return {
        "dot-dot node id": '{pytest: "../elsewhere/test_outside.py::test_outside"}',
        "dot-dot -k paths": '{pytest: {k: outside, paths: ["../.."]}}',
        "absolute -k paths": f'{{pytest: {{k: outside, paths: ["{tmp_path / "elsewhere"}"]}}}}',
        "symlinked -k paths": '{pytest: {k: outside, paths: [linked]}}',
        "symlinked node id": '{pytest: "linked/test_outside.py::test_outside"}',
    }


@pytest.mark.parametrize("case", list(_escaping_bindings(Path("/x"))))
def test_verify_refuses_a_binding_outside_the_repository_with_validates_message(tmp_path: Path, case: str) -> None:
    root, outside = _project(tmp_path, _escaping_bindings(tmp_path)[case])
    (root / "linked").symlink_to(outside, target_is_directory=True)
    proc = run_verify(root, "contracts", "--out", "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    problem = [line for line in proc.stdout.splitlines() if line.startswith("contracts/escape.yaml:")]
    assert len(problem) == 1, proc.stdout
    assert "FALSIFY-ESC-002" in problem[0]
    assert "outside the repository root" in problem[0] or "is absolute" in problem[0]
    assert problem[0].split(":")[1].isdigit()
    assert "nothing was run" in proc.stderr and "Traceback" not in proc.stderr
    # Nothing ran: no evidence, and neither the outside test nor the valid falsifier beside it.
    assert not (root / "out").exists()
    assert not (outside / "RAN").exists()
    assert "PASSED" not in proc.stdout
    # validate says exactly the same, through the same rule.
    checked = _validate(root)
    assert checked.returncode == 2
    assert problem[0] in checked.stdout.splitlines()


def test_a_symlink_that_stays_inside_the_repository_is_fine(tmp_path: Path) -> None:
    root, _ = _project(tmp_path, '{pytest: {k: bound_one, paths: [linked]}}')
    (root / "linked").symlink_to(root / "tests", target_is_directory=True)
    proc = run_verify(root, "contracts", "--out", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert entries(read_evidence(root / "out" / "uncommitted" / "evidence.json"))["FALSIFY-ESC-002"]["outcome"] == "passed"


def test_the_checks_verify_leaves_to_the_run_end_as_errors_never_passes(tmp_path: Path) -> None:
    # validate imports targets, collects tests and looks programs up; verify does not repeat that
    # (a child per root) because running the falsifier is the same check, recorded with evidence.
    root = tmp_path / "repo"
    make_project(root, {"late.yaml": contract_text("late-v1", [
        falsifier("FALSIFY-LATE-001", '{python: "fx_missing_module:anything"}'),
        falsifier("FALSIFY-LATE-002", '{pytest: "tests/test_bound.py::test_no_such_test"}'),
        falsifier("FALSIFY-LATE-003", '{command: [no-such-program-late]}'),
    ])})
    checked = _validate(root)
    assert checked.returncode == 2
    assert sum("contracts/late.yaml:" in line for line in checked.stdout.splitlines()) == 3, checked.stdout
    proc = run_verify(root, "contracts", "--out", "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    outcomes = {fid: r["outcome"] for fid, r in entries(read_evidence(root / "out" / "uncommitted" / "evidence.json")).items()}
    assert outcomes == dict.fromkeys(["FALSIFY-LATE-001", "FALSIFY-LATE-002", "FALSIFY-LATE-003"], "error")


def test_plain_pytest_refuses_a_binding_outside_the_repository_too(tmp_path: Path) -> None:
    root, outside = _project(tmp_path, '{pytest: {k: outside, paths: ["../elsewhere"]}}')
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "contracts/escape.yaml"],
        cwd=root, env=harness_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "leads outside the repository root" in proc.stdout
    assert not (outside / "RAN").exists()


def test_a_binding_path_that_cannot_be_resolved_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    root, _ = _project(tmp_path, '{pytest: "loop/test_x.py::test_x"}')
    (root / "loop").symlink_to(root / "loop")
    _, problems = validate([root / "contracts"], check_bindings=False)
    assert [p.subject for p in problems] == ["FALSIFY-ESC-002"]
    assert "cannot be resolved under the repository root" in problems[0].message
