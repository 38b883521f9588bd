"""A recorded failure can be run again: `harness replay FALSIFY-ID` with hypothesis's blob applied."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import hypothesis
import pytest

from harness.model import Binding, BindingKind, Outcome
from harness.replay_record import parse_failure, record
from tests.harness.verify_support import contract_text, entries, falsifier, harness_env, make_project, read_evidence, run_verify

PROPERTY_TESTS = textwrap.dedent(
    '''
    from hypothesis import given, settings, strategies as st


    @settings(derandomize=True, database=None)
    @given(st.integers(min_value=0, max_value=1000))
    def test_below_ten(x):
        assert x < 10


    def test_plain():
        assert 1 == 1
    '''
)

CASES = [
    falsifier("FALSIFY-RP-001", '{python: "fx_falsifiers:hypothesis_falsified"}'),
    falsifier("FALSIFY-RP-002", '{python: "fx_falsifiers:falsified"}'),
    falsifier("FALSIFY-RP-003", '{pytest: {k: "below_ten or plain", paths: [tests/test_property.py]}}'),
    falsifier("FALSIFY-RP-004", '{python: "fx_falsifiers:holds"}'),
]


def replay_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "replay", *args], cwd=cwd, env=harness_env(), capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A project whose verify (evidence under reports/, where replay looks by default) found the failures."""
    root = tmp_path_factory.mktemp("replay")
    make_project(root, {"rp.yaml": contract_text("fx-replay-v1", CASES)})
    (root / "tests" / "test_property.py").write_text(PROPERTY_TESTS)
    proc = run_verify(root, "contracts", "--out", "reports")
    evidence = root / "reports" / "uncommitted" / "evidence.json"
    assert proc.returncode == 1 and evidence.exists(), proc.stdout + proc.stderr
    return root, read_evidence(evidence)


def fresh_copy(recorded: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(recorded[0], copy)
    return copy


def test_a_falsified_hypothesis_falsifier_records_its_blob(recorded) -> None:
    r = entries(recorded[1])["FALSIFY-RP-001"]
    replay = r["replay"]
    assert (replay["kind"], replay["hypothesis_version"]) == ("hypothesis", hypothesis.__version__)
    assert replay["target"] == "python: fx_falsifiers:hypothesis_falsified"
    [example] = replay["examples"]
    assert example["test"] == "_below_ten"
    assert example["example"] == "Failing test case: _below_ten(\n    x=10,\n)"
    assert example["blob"] and f"@reproduce_failure('{hypothesis.__version__}', b'{example['blob']}')" in r["counterexample"]


def test_a_pytest_hypothesis_binding_records_the_failing_node_id(recorded) -> None:
    replay = entries(recorded[1])["FALSIFY-RP-003"]["replay"]
    assert replay["kind"] == "hypothesis"
    [example] = replay["examples"]
    assert example["test"] == "tests/test_property.py::test_below_ten"
    assert "x=10," in example["example"] and example["blob"]


def test_a_plain_failure_is_replayed_by_running_it_again(recorded) -> None:
    replay = entries(recorded[1])["FALSIFY-RP-002"]["replay"]
    assert (replay["kind"], replay["examples"], replay["hypothesis_version"]) == ("rerun", [], None)
    assert entries(recorded[1])["FALSIFY-RP-004"]["replay"] is None  # a pass has nothing to replay


def test_replay_reproduces_the_hypothesis_failure_with_the_same_counterexample(recorded) -> None:
    proc = replay_cli(recorded[0], "FALSIFY-RP-001")  # default evidence: reports/<commit>/
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("harness replay: FALSIFY-RP-001 (python: fx_falsifiers:hypothesis_falsified): reproduced: falsified: ")
    assert "counterexample:\n  Failing test case: _below_ten(\n      x=10,\n  )" in proc.stdout
    assert f"applied @reproduce_failure('{hypothesis.__version__}', ...) to _below_ten" in proc.stdout


def test_replay_applies_the_blob_to_a_pytest_test_by_node_id(recorded) -> None:
    root = recorded[0]
    proc = replay_cli(root, "FALSIFY-RP-003", "--evidence", str(root / "reports" / "uncommitted" / "evidence.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "reproduced: falsified: 1 of 2 matched tests failed" in proc.stdout
    assert "  Failing test case: test_below_ten(\n      x=10,\n  )" in proc.stdout
    assert "to tests/test_property.py::test_below_ten" in proc.stdout


def test_replay_of_a_plain_failure_reruns_it(recorded) -> None:
    proc = replay_cli(recorded[0], "FALSIFY-RP-002", "--evidence", str(recorded[0] / "reports" / "uncommitted"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "reproduced: falsified: AssertionError: 1 + 1 was 2, predicted 3" in proc.stdout
    assert "applied" not in proc.stdout


def test_after_the_fix_replay_says_it_did_not_reproduce(recorded, tmp_path: Path) -> None:
    root = fresh_copy(recorded, tmp_path)
    module = root / "fx_falsifiers.py"
    module.write_text(module.read_text().replace("assert x < 10", "assert x <= 1000"))
    proc = replay_cli(root, "FALSIFY-RP-001")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "did not reproduce: hypothesis ran the recorded example and it no longer fails" in proc.stdout
    tests = root / "tests" / "test_property.py"
    tests.write_text(tests.read_text().replace("assert x < 10", "assert x <= 1000"))
    proc = replay_cli(root, "FALSIFY-RP-003")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "did not reproduce" in proc.stdout


def test_replay_of_a_fixed_plain_failure_says_it_passes_now(recorded, tmp_path: Path) -> None:
    root = fresh_copy(recorded, tmp_path)
    module = root / "fx_falsifiers.py"
    module.write_text(module.read_text().replace("assert total == 3", "assert total == 2"))
    proc = replay_cli(root, "FALSIFY-RP-002")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "did not reproduce: the falsifier passes now" in proc.stdout


def test_an_unknown_id_is_bad_input_naming_the_known_ids(recorded) -> None:
    proc = replay_cli(recorded[0], "FALSIFY-RP-404")
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert "FALSIFY-RP-404: no such falsifier in " in line
    assert line.endswith("it records FALSIFY-RP-001, FALSIFY-RP-002, FALSIFY-RP-003, FALSIFY-RP-004")


def test_a_result_that_did_not_fail_is_bad_input(recorded) -> None:
    proc = replay_cli(recorded[0], "FALSIFY-RP-004")
    assert proc.returncode == 2
    assert "FALSIFY-RP-004 was passed in " in proc.stderr and "there is no failure to replay" in proc.stderr


def test_a_changed_contract_is_bad_input_by_sha256(recorded, tmp_path: Path) -> None:
    root = fresh_copy(recorded, tmp_path)
    contract = root / "contracts" / "rp.yaml"
    contract.write_text(contract.read_text().replace("The fixture holds.", "The fixture holds, changed."))
    proc = replay_cli(root, "FALSIFY-RP-001")
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    recorded_sha = recorded[1]["contracts"][0]["sha256"]
    assert "the contract changed since the evidence was recorded" in line
    assert f"sha256 {recorded_sha} then" in line


@pytest.mark.parametrize("content", ["{not json", '{"schema_version": 1}'])
def test_unreadable_evidence_is_bad_input(recorded, tmp_path: Path, content: str) -> None:
    bad = tmp_path / "evidence.json"
    bad.write_text(content)
    proc = replay_cli(recorded[0], "FALSIFY-RP-001", "--evidence", str(bad))
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"harness replay: {bad}")


def test_no_evidence_for_this_commit_is_bad_input(tmp_path: Path) -> None:
    make_project(tmp_path, {"rp.yaml": contract_text("fx-replay-v1", CASES)})
    proc = replay_cli(tmp_path, "FALSIFY-RP-001")
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line == (
        f"harness replay: no evidence for this uncommitted tree in {tmp_path.resolve()}/reports/uncommitted; run harness "
        "verify first, or name the evidence with --evidence PATH"
    )


def test_a_blob_that_cannot_be_applied_is_said_and_the_falsifier_runs_as_it_is(recorded, tmp_path: Path) -> None:
    evidence = json.loads((recorded[0] / "reports" / "uncommitted" / "evidence.json").read_text())
    for entry in evidence["contracts"][0]["falsifiers"]:
        if entry["replay"] and entry["replay"]["kind"] == "hypothesis":
            entry["replay"]["hypothesis_version"] = "0.0.1"
    other = tmp_path / "evidence.json"
    other.write_text(json.dumps(evidence))
    proc = replay_cli(recorded[0], "FALSIFY-RP-001", "--evidence", str(other))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # hypothesis finds the failure again by searching
    assert (
        "harness replay: the recorded blob could not be applied to _below_ten: the blob was recorded with hypothesis "
        f"0.0.1; this is hypothesis {hypothesis.__version__}; the falsifier was run as it is"
    ) in proc.stderr
    assert "applied @reproduce_failure" not in proc.stdout


def test_the_library_call_returns_what_the_cli_prints(recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    outcome = harness.replay("FALSIFY-RP-001", cwd=recorded[0])
    assert outcome.reproduced is True
    assert outcome.result.outcome is Outcome.FALSIFIED
    assert outcome.applied == ("_below_ten",)
    assert "x=10" in outcome.result.counterexample
    with pytest.raises(harness.ReplayError, match="no such falsifier"):
        harness.replay("FALSIFY-NOPE", cwd=recorded[0])


# ---------------------------------------------------------------------------------------- parsing


def test_the_blob_and_example_are_read_from_a_pytest_failure_text() -> None:
    text = (
        ">       assert x < 10\nE       assert 10 < 10\nE       Failing test case: test_x(\nE           x=10,\nE       )\n"
        "E       \nE       You can reproduce this test case by temporarily adding "
        "@reproduce_failure('6.170.17', b'AEEK') as a decorator on your test function\n"
    )
    assert parse_failure(text) == ("test_x", "Failing test case: test_x(\n    x=10,\n)", "6.170.17", "AEEK")


def test_a_failure_without_a_blob_still_records_its_example() -> None:
    entry = record(Binding(BindingKind.PYTHON, target="m:f"), Outcome.FALSIFIED, "boom\nFalsifying example: f(\n    x=1,\n)")
    assert entry is not None
    assert entry["kind"] == "rerun"
    assert entry["examples"] == [{"test": "f", "example": "Falsifying example: f(\n    x=1,\n)", "blob": None}]


def test_the_environment_that_changes_a_run_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    entry = record(Binding(BindingKind.COMMAND, argv=("false",)), Outcome.FALSIFIED, "exited 1")
    assert entry is not None and entry["env"]["PYTHONHASHSEED"] == "7" and "HYPOTHESIS_PROFILE" not in entry["env"]
    assert json.dumps(entry)  # JSON-ready as evidence needs it


# ---------------------------------------------------------------------------------------- the child's print_blob

PRINT_BLOB_MODULE = textwrap.dedent(
    '''
    from hypothesis import given, settings, strategies as st


    @settings(derandomize=True, database=None)
    @given(st.integers(min_value=0, max_value=1000))
    def _default(x):
        assert x < 10


    @settings(derandomize=True, database=None, print_blob=False)
    @given(st.integers(min_value=0, max_value=1000))
    def _no_blob(x):
        assert x < 10


    def uses_the_default():
        _default()


    def turns_the_blob_off():
        _no_blob()
    '''
)


@pytest.fixture
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside CI (hypothesis's own "ci" profile prints blobs anyway), so it is the harness that turns it on."""
    ci = ("CI", "GITHUB_ACTIONS", "TF_BUILD", "BUILDKITE", "CIRCLECI", "CIRRUS_CI", "CODEBUILD_BUILD_ID", "GITLAB_CI")
    for name in (*ci, "HEROKU_TEST_RUN_ID", "TEAMCITY_VERSION", "bamboo.buildKey"):
        monkeypatch.delenv(name, raising=False)


def run_one(root: Path, binding: Binding) -> Any:
    from harness.execute import run_falsifier
    from harness.model import Contract, Falsifier, SourceLocation

    (root / "pyproject.toml").write_text("[project]\nname = 'fixture'\nversion = '0'\n")
    f = Falsifier("FALSIFY-PB-001", ("INV-PB-001",), "p", "i", binding, SourceLocation("x.yaml", 1))
    return run_falsifier(f, Contract("pb-v1", "1", "t", "d", "x.yaml", "a" * 64, (), (f,)), root)


@pytest.mark.parametrize(("target", "has_blob"), [("uses_the_default", True), ("turns_the_blob_off", False)])
def test_the_child_prints_the_blob_unless_the_falsifier_says_otherwise(
    tmp_path: Path, outside_ci: None, target: str, has_blob: bool
) -> None:
    (tmp_path / "fx_blob.py").write_text(PRINT_BLOB_MODULE)
    result = run_one(tmp_path, Binding(BindingKind.PYTHON, target=f"fx_blob:{target}"))
    assert result.outcome is Outcome.FALSIFIED
    assert result.replay is not None
    [example] = result.replay["examples"]
    assert "x=10," in example["example"]
    assert (example["blob"] is not None, result.replay["kind"]) == (has_blob, "hypothesis" if has_blob else "rerun")


def test_the_pytest_child_prints_the_blob_too(tmp_path: Path, outside_ci: None) -> None:
    (tmp_path / "test_property.py").write_text(PROPERTY_TESTS)
    result = run_one(tmp_path, Binding(BindingKind.PYTEST, target="test_property.py::test_below_ten"))
    assert result.outcome is Outcome.FALSIFIED
    [example] = result.replay["examples"]
    assert example["test"] == "test_property.py::test_below_ten" and example["blob"]
