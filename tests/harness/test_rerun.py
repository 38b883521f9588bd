"""`harness verify --rerun N`: a failing falsifier run again; attempts that disagree are `flaky`, never passed."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.gate import Policy, verdict
from harness.model import Attempt, Binding, BindingKind, Contract, Falsifier, FalsifierResult, Outcome, SourceLocation
from harness.rerun import run_with_reruns
from tests.harness.test_verify_evidence import make_result, sample_evidence
from tests.harness.verify_support import contract_text, entries, falsifier, make_project, read_evidence, run_verify

FLAKY_MODULE = textwrap.dedent(
    '''
    import os
    from pathlib import Path


    def fails_once():
        # The state lives in a file, so the second attempt (a fresh child process) sees the first.
        marker = Path(os.environ["FX_STATE_DIR"]) / "fails_once.ran"
        if not marker.exists():
            marker.write_text("1")
            raise AssertionError("the first attempt fails")


    def always_fails():
        assert 1 + 1 == 3, "1 + 1 was 2, predicted 3"


    def holds():
        assert True
    '''
)

CASES = [
    falsifier("FALSIFY-RR-001", '{python: "fx_flaky:fails_once"}'),
    falsifier("FALSIFY-RR-002", '{python: "fx_flaky:always_fails"}'),
    falsifier("FALSIFY-RR-003", '{python: "fx_flaky:holds"}'),
]


@pytest.fixture(scope="module")
def rerun_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("rerun")
    make_project(root, {"rr.yaml": contract_text("fx-rerun-v1", CASES)})
    (root / "fx_flaky.py").write_text(FLAKY_MODULE)
    state = root / "state"
    state.mkdir()
    # -j 2: the reruns happen where the item runs, in the xdist worker.
    proc = run_verify(root, "contracts", "--out", "out", "--rerun", "2", "-j", "2", FX_STATE_DIR=str(state))
    evidence = root / "out" / "uncommitted"
    assert (evidence / "evidence.json").exists(), proc.stdout + proc.stderr
    return proc, read_evidence(evidence / "evidence.json"), evidence


def test_a_falsifier_that_fails_then_passes_is_flaky_with_both_attempts(rerun_run) -> None:
    proc, evidence, _ = rerun_run
    r = entries(evidence)["FALSIFY-RR-001"]
    assert r["outcome"] == "flaky"
    assert [a["outcome"] for a in r["attempts"]] == ["falsified", "passed"]
    assert r["attempts"][0]["reason"] == "AssertionError: the first attempt fails"
    assert r["reason"].startswith("flaky: falsified, then passed (2 attempts); attempt 1: AssertionError: the first attempt fails")
    assert r["counterexample"] == "the first attempt fails"  # the failure stays visible, and replayable
    assert evidence["totals"]["flaky"] == 1 and evidence["totals"]["passed"] == 1
    assert "FLAKY FALSIFY-RR-001" in proc.stdout


def test_flaky_fails_the_gate(rerun_run) -> None:
    proc, _, _ = rerun_run
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_a_consistent_failure_keeps_falsified_with_every_attempt(rerun_run) -> None:
    _, evidence, _ = rerun_run
    r = entries(evidence)["FALSIFY-RR-002"]
    assert r["outcome"] == "falsified"
    assert [a["outcome"] for a in r["attempts"]] == ["falsified"] * 3
    assert r["reason"] == "AssertionError: 1 + 1 was 2, predicted 3"
    assert r["duration_s"] == pytest.approx(sum(a["duration_s"] for a in r["attempts"]), abs=0.01)


def test_a_pass_is_not_rerun(rerun_run) -> None:
    _, evidence, _ = rerun_run
    r = entries(evidence)["FALSIFY-RR-003"]
    assert (r["outcome"], r["attempts"]) == ("passed", [])


def test_the_summary_and_junit_show_flaky_falsifiers_with_their_attempts(rerun_run) -> None:
    _, _, directory = rerun_run
    summary = (directory / "summary.md").read_text()
    flaky = summary.split("### Flaky", 1)[1]
    assert "`FALSIFY-RR-001`" in flaky
    assert "attempt 1: falsified" in flaky and "attempt 2: passed" in flaky
    junit = (directory / "junit.xml").read_text()
    assert 'message="flaky: falsified, then passed' in junit


def test_the_command_records_rerun(rerun_run) -> None:
    _, evidence, _ = rerun_run
    assert evidence["command"][-4:] == ["-j", "2", "--rerun", "2"]


def test_a_negative_rerun_is_bad_input(tmp_path: Path) -> None:
    make_project(tmp_path, {"rr.yaml": contract_text("fx-rerun-v1", CASES[2:])})
    (tmp_path / "fx_flaky.py").write_text(FLAKY_MODULE)
    proc = run_verify(tmp_path, "contracts", "--out", "out", "--rerun", "-1")
    assert proc.returncode == 2
    assert "--rerun -1: must be at least 0" in proc.stderr
    assert not (tmp_path / "out" / "uncommitted").exists()


# ---------------------------------------------------------------------------------------- the mechanism


def _falsifier() -> tuple[Falsifier, Contract]:
    f = Falsifier("FALSIFY-X-001", ("INV-X-001",), "p", "i", Binding(BindingKind.PYTHON, target="m:f"), SourceLocation("x", 1))
    return f, Contract("x-v1", "1", "t", "d", "x.yaml", "a" * 64, (), (f,))


def _scripted(*outcomes: Outcome) -> tuple[list[Outcome], Any]:
    ran: list[Outcome] = []

    def run(falsifier: Falsifier, contract: Contract, root: Path) -> FalsifierResult:
        outcome = outcomes[len(ran)]
        ran.append(outcome)
        return make_result(outcome, reason=f"{outcome.value} #{len(ran)}", duration_s=1.0)

    return ran, run


def test_reruns_stop_at_the_first_attempt_that_differs() -> None:
    ran, run = _scripted(Outcome.ERROR, Outcome.FALSIFIED, Outcome.PASSED)
    result = run_with_reruns(*_falsifier(), Path("."), 5, run)
    assert ran == [Outcome.ERROR, Outcome.FALSIFIED]
    assert result.outcome is Outcome.FLAKY
    assert result.attempts == (Attempt(Outcome.ERROR, "error #1", 1.0), Attempt(Outcome.FALSIFIED, "falsified #2", 1.0))
    assert result.duration_s == 2.0


@pytest.mark.parametrize("outcome", [Outcome.PASSED, Outcome.NOT_RUN, Outcome.DEFERRED])
def test_only_failures_are_rerun(outcome: Outcome) -> None:
    ran, run = _scripted(outcome, Outcome.FALSIFIED)
    result = run_with_reruns(*_falsifier(), Path("."), 3, run)
    assert ran == [outcome]
    assert (result.outcome, result.attempts) == (outcome, ())


def test_without_rerun_a_failure_runs_once() -> None:
    ran, run = _scripted(Outcome.FALSIFIED, Outcome.PASSED)
    result = run_with_reruns(*_falsifier(), Path("."), 0, run)
    assert ran == [Outcome.FALSIFIED]
    assert (result.outcome, result.attempts) == (Outcome.FALSIFIED, ())


def test_flaky_fails_the_gate_even_without_strict() -> None:
    flaky = dataclasses.replace(make_result(Outcome.FLAKY), attempts=(Attempt(Outcome.FALSIFIED, "x", 1.0), Attempt(Outcome.PASSED, "y", 1.0)))
    from harness.record import evidence_from_dict

    gate = verdict(evidence_from_dict(sample_evidence([flaky, make_result(Outcome.PASSED, id="FALSIFY-X-002")])), Policy(strict=False))
    assert (gate.passed, gate.exit_code) == (False, 1)
    assert gate.reasons[0].startswith("FALSIFY-X-001: flaky: ")
