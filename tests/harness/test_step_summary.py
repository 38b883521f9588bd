"""`harness verify` under GitHub Actions: summary.md appended to `$GITHUB_STEP_SUMMARY`, never truncating it,
and a summary that cannot be written is a warning that changes neither the verdict nor the exit status."""

from __future__ import annotations

from pathlib import Path

from harness.step_summary import append_step_summary

from tests.harness.verify_support import contract_text, falsifier, make_project, run_verify

PASSING = [falsifier("FALSIFY-SUM-001", '{python: "fx_falsifiers:holds"}')]
FAILING = [*PASSING, falsifier("FALSIFY-SUM-002", '{python: "fx_falsifiers:falsified"}')]


def test_verify_appends_its_summary_to_the_step_summary_file(tmp_path: Path) -> None:
    make_project(tmp_path, {"c.yaml": contract_text("sum-v1", FAILING)})
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("# an earlier step's summary\n")
    first = run_verify(tmp_path, "contracts", "--out", "out", GITHUB_STEP_SUMMARY=str(step_summary))
    assert first.returncode == 1, first.stdout + first.stderr
    summary = (tmp_path / "out" / "uncommitted" / "summary.md").read_text()
    assert "FALSIFY-SUM-002" in summary
    assert step_summary.read_text() == "# an earlier step's summary\n" + summary + "\n"
    second = run_verify(tmp_path, "contracts", "--out", "out", GITHUB_STEP_SUMMARY=str(step_summary))
    assert second.returncode == 1
    again = (tmp_path / "out" / "uncommitted" / "summary.md").read_text()
    # Appended again, never truncated: both runs' summaries are there, after the earlier step's.
    assert step_summary.read_text() == "# an earlier step's summary\n" + summary + "\n" + again + "\n"
    assert "warning" not in second.stderr


def test_an_unwritable_step_summary_is_a_warning_and_changes_no_exit_status(tmp_path: Path) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING), "bad.yaml": contract_text("bad-v1", FAILING).replace("SUM-001", "SUM-009")})
    target = tmp_path / "a-directory"
    target.mkdir()
    passing = run_verify(tmp_path, "contracts/ok.yaml", "--out", "out", GITHUB_STEP_SUMMARY=str(target))
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert f"harness: warning: could not append the summary to $GITHUB_STEP_SUMMARY ({target}): Is a directory" in passing.stderr
    failing = run_verify(tmp_path, "contracts/bad.yaml", "--out", "out", GITHUB_STEP_SUMMARY=str(target))
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "could not append the summary" in failing.stderr
    # The evidence is written as without the variable.
    assert (tmp_path / "out" / "uncommitted" / "evidence.json").is_file()


def test_without_the_variable_nothing_is_written(tmp_path: Path) -> None:
    assert append_step_summary("# x\n", {}) is None
    assert append_step_summary("# x\n", {"GITHUB_STEP_SUMMARY": ""}) is None
    target = tmp_path / "s.md"
    assert append_step_summary("# x", {"GITHUB_STEP_SUMMARY": str(target)}) is None
    assert target.read_text() == "# x\n\n"
