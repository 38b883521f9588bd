"""`harness` as a library: `harness.verify()` returns the Evidence the CLI writes, `harness.read_evidence()`
reads it back, `harness.verdict()` decides the gate, and a run validates and collects its contracts once."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

import harness
import harness.plugin
import harness.validate
from harness.model import Binding, BindingKind, ContractResult, Evidence, FalsifierResult, Outcome
from harness.record import EvidenceError, evidence_schema, evidence_to_dict

from tests.harness.verify_support import REPO, contract_text, falsifier, harness_env, make_project, read_evidence, run_verify

FALSIFIERS = [
    falsifier("FALSIFY-LIB-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-LIB-002", '{python: "fx_falsifiers:falsified"}'),
    falsifier("FALSIFY-LIB-003", '{python: "fx_falsifiers:hypothesis_falsified"}'),
    falsifier("FALSIFY-LIB-004", '{python: "fx_falsifiers:raises"}'),
    falsifier("FALSIFY-LIB-005", "{pytest: {k: bound, paths: [tests]}, min_tests: 2}"),  # test_broken_case fails
    falsifier("FALSIFY-LIB-006", '{python: "fx_falsifiers:holds"}', "requires: {cuda: true}"),
    falsifier("FALSIFY-LIB-007", '{python: "fx_falsifiers:holds"}', "deferred: {reason: later, until: 2999-01-31}"),
]
COMMAND = ["harness", "verify", "contracts", "--out", "out"]


def _in_process_env(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    """What harness_env gives the CLI's process: no GPU (so `requires CUDA` reads the same everywhere), CI set."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("CI", "1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same contracts run once through the CLI and once through harness.verify(), in one project
    (messages quote the project's paths)."""
    project = tmp_path_factory.mktemp("lib")
    make_project(project, {"lib.yaml": contract_text("lib-v1", FALSIFIERS), "other.yaml": contract_text(
        "other-v1", [falsifier("FALSIFY-OTHER-001", '{python: "fx_falsifiers:holds"}', attacks="INV-OTHER-001")],
        invariants=("INV-OTHER-001",))})
    proc = run_verify(project, *COMMAND[2:])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    with pytest.MonkeyPatch.context() as mp:
        _in_process_env(mp, project)
        # The command the evidence records is the caller's to give; the CLI's, to compare the rest.
        evidence = harness.verify(["contracts"], out="lib-out", command=COMMAND)
    return {
        "cli": read_evidence(project / "out" / "uncommitted" / "evidence.json"),
        "lib": evidence,
        "lib_dir": project / "lib-out" / "uncommitted",
    }


def _normalised(document: dict[str, Any]) -> dict[str, Any]:
    """Evidence without what differs between two runs of the same thing: clocks, durations, the machine."""
    doc = json.loads(json.dumps(document))
    for key in ("started_at", "finished_at", "duration_s", "environment"):
        doc[key] = None
    for contract in doc["contracts"]:
        for entry in contract["falsifiers"]:
            entry["duration_s"] = None
    return doc


def test_library_run_gives_the_evidence_the_cli_writes(runs: dict[str, Any]) -> None:
    library = evidence_to_dict(runs["lib"])
    lib, cli = _normalised(library), _normalised(runs["cli"])
    assert json.dumps(lib, indent=1).splitlines() == json.dumps(cli, indent=1).splitlines()
    assert runs["cli"]["totals"] == {"passed": 2, "falsified": 3, "error": 1, "not_run": 1, "deferred": 1, "flaky": 0, "vacuous": 0}


def test_read_evidence_round_trips_a_real_run(runs: dict[str, Any]) -> None:
    evidence = runs["lib"]
    assert isinstance(evidence, Evidence)
    # The commit directory and the file itself both read back to the value verify returned.
    assert harness.read_evidence(runs["lib_dir"]) == evidence
    assert harness.read_evidence(runs["lib_dir"] / "evidence.json") == evidence
    on_disk = json.loads((runs["lib_dir"] / "evidence.json").read_text())
    assert evidence_to_dict(harness.read_evidence(runs["lib_dir"])) == on_disk
    by_id = {r.id: r for r in evidence.results}
    assert by_id["FALSIFY-LIB-002"].outcome is Outcome.FALSIFIED
    assert "1 + 1 was 2" in (by_id["FALSIFY-LIB-002"].counterexample or "")
    assert by_id["FALSIFY-LIB-005"].binding.paths == ("tests",)
    assert [c.id for c in evidence.contracts] == ["lib-v1", "other-v1"]


def test_the_verdict_of_a_real_run_is_the_cli_exit_code(runs: dict[str, Any]) -> None:
    gate = harness.verdict(runs["lib"], harness.Policy())
    assert (gate.passed, gate.exit_code) == (False, 1)
    assert [line.split(":")[0] for line in gate.reasons] == ["FALSIFY-LIB-002", "FALSIFY-LIB-003", "FALSIFY-LIB-004", "FALSIFY-LIB-005"]


# ---------------------------------------------------------------------------------------- verdict


def _result(fid: str, outcome: Outcome, reason: str = "why\nmore") -> FalsifierResult:
    counterexample = "x=3" if outcome is Outcome.FALSIFIED else None
    return FalsifierResult(fid, "v-v1", ("INV-V-001",), outcome, reason, 0.5, Binding(BindingKind.PYTHON, "m:f"),
                           counterexample=counterexample)


def _evidence(*outcomes: Outcome, complete: bool = True) -> Evidence:
    results = tuple(_result(f"FALSIFY-V-{i:03d}", o) for i, o in enumerate(outcomes, 1))
    return Evidence(
        schema_version=1, harness_version="0.1.0", commit=None, dirty=None, complete=complete,
        started_at="2026-12-01T08:00:00.000+00:00", finished_at="2026-12-01T08:00:01.000+00:00", duration_s=1.0,
        command=("harness", "verify", "contracts"), environment={},
        totals={o.value: outcomes.count(o) for o in Outcome},
        contracts=(ContractResult("v-v1", "1.0.0", "contracts/v.yaml", "0" * 64, results),),
    )


P, F, E, N, D = Outcome.PASSED, Outcome.FALSIFIED, Outcome.ERROR, Outcome.NOT_RUN, Outcome.DEFERRED


@pytest.mark.parametrize(
    ("outcomes", "strict", "exit_code", "failing"),
    [
        ((P, P), False, 0, []),
        ((P, N, D), False, 0, []),
        ((P, N, D), True, 1, ["FALSIFY-V-002: not_run: why", "FALSIFY-V-003: deferred: why"]),
        ((P, F), False, 1, ["FALSIFY-V-002: falsified: why"]),
        ((E, P), True, 1, ["FALSIFY-V-001: error: why"]),
        ((N,), True, 1, ["FALSIFY-V-001: not_run: why"]),
    ],
)
def test_verdict_on_hand_built_evidence(outcomes: tuple[Outcome, ...], strict: bool, exit_code: int, failing: list[str]) -> None:
    gate = harness.verdict(_evidence(*outcomes), harness.Policy(strict=strict))
    assert (gate.exit_code, gate.passed, list(gate.reasons), gate.warnings) == (exit_code, exit_code == 0, failing, ())


def test_verdict_warns_when_nothing_was_verified() -> None:
    gate = harness.verdict(_evidence(N, D))
    assert (gate.exit_code, gate.passed, gate.reasons) == (0, True, ())
    assert gate.warnings and gate.warnings[0].startswith("no falsifier ran (1 not_run, 1 deferred), so nothing was verified")


def test_verdict_of_an_interrupted_run_is_130_whatever_it_found() -> None:
    gate = harness.verdict(_evidence(P, F, complete=False), harness.Policy(strict=True))
    assert (gate.exit_code, gate.passed) == (130, False)
    assert gate.reasons == ("the run was interrupted: the evidence is incomplete",)


# ---------------------------------------------------------------------------------------- read_evidence errors


def _write(path: Path, document: Any) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def _valid_document() -> dict[str, Any]:
    return evidence_to_dict(_evidence(P, F))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema_version": 1,\n  "commit": nope}', "evidence.json:2: not JSON: Expecting value"),
        ([1, 2], "evidence.json: not an evidence document (a JSON object is expected, found list)"),
        ({**_valid_document(), "schema_version": 2}, "evidence.json: schema_version 2: harness 0.1.0 reads evidence schema version 1 only"),
        ({"harness_version": "0.1.0"}, "evidence.json: schema_version null: harness 0.1.0 reads"),
        ({**_valid_document(), "complete": "yes"}, "evidence.json: breaks the evidence schema: complete: 'yes' is not of type 'boolean'"),
    ],
    ids=["not-json", "not-an-object", "future-version", "no-version", "schema-violation"],
)
def test_read_evidence_refuses_what_it_cannot_read_in_one_line(tmp_path: Path, content: Any, message: str) -> None:
    path = _write(tmp_path / "evidence.json", content)
    with pytest.raises(EvidenceError) as info:
        harness.read_evidence(path)
    text = str(info.value)
    assert text.startswith(str(path.parent)) and message in text, text
    assert "\n" not in text


def test_read_evidence_names_a_directory_without_evidence(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match=r"holds no evidence.json") as info:
        harness.read_evidence(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(EvidenceError, match=r"missing.json: no such file"):
        harness.read_evidence(tmp_path / "missing.json")


def test_schema_describes_exactly_the_evidence_types() -> None:
    schema = evidence_schema()
    names = [f.name for f in fields(Evidence)]
    assert names == list(schema["properties"]) and sorted(names) == sorted(schema["required"])
    contract = schema["$defs"]["contract"]
    names = [f.name for f in fields(ContractResult)]
    assert names == list(contract["properties"]) and sorted(names) == sorted(contract["required"])
    # Serialised in field order: evidence.json reads in the order the schema documents.
    assert list(evidence_to_dict(_evidence(P))) == list(schema["properties"])


# ---------------------------------------------------------------------------------------- once per run


def _many_contracts(project: Path, count: int) -> None:
    make_project(project, {
        f"n{i}.yaml": contract_text(f"n{i}-v1", [falsifier(f"FALSIFY-N{i}-001", '{python: "fx_falsifiers:holds"}',
                                                           attacks=f"INV-N{i}-001")], invariants=(f"INV-N{i}-001",))
        for i in range(count)
    })


def test_a_run_validates_once_and_collects_each_contract_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _many_contracts(tmp_path, 40)
    _in_process_env(monkeypatch, tmp_path)
    calls = {"validate": 0, "collect_file": 0}
    real_validate, real_collect_file = harness.validate.validate_report, harness.plugin.pytest_collect_file

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        calls["validate"] += 1
        return real_validate(*args, **kwargs)

    def counting_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
        calls["collect_file"] += 1
        return real_collect_file(file_path, parent)

    monkeypatch.setattr(harness.validate, "validate_report", counting_validate)
    monkeypatch.setattr(harness.plugin, "pytest_collect_file", counting_collect_file)
    evidence = harness.verify(["contracts"], out=None, select=["FALSIFY-N39-001"])
    assert [(r.id, r.outcome) for r in evidence.results] == [("FALSIFY-N39-001", Outcome.PASSED)]
    # One validation (the controller's), one collection per contract file: not one per file, not N per file.
    assert calls == {"validate": 1, "collect_file": 40}


class _Vandal(harness.Observer):
    """Overwrites every contract file once the controller has validated them, before pytest starts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def started(self, total: int) -> None:
        for path in self.directory.glob("*.yaml"):
            path.write_text("id: [this is not a contract\n")


def test_xdist_workers_run_the_controllers_contracts_without_reading_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    _many_contracts(tmp_path, 4)
    _in_process_env(monkeypatch, tmp_path)
    evidence = harness.verify(["contracts"], out="out", jobs=2, observer=_Vandal(tmp_path / "contracts"))
    assert sorted((r.id, r.outcome.value) for r in evidence.results) == [(f"FALSIFY-N{i}-001", "passed") for i in range(4)]
    assert harness.read_evidence(tmp_path / "out" / "uncommitted") == evidence


def test_library_invalid_input_is_an_exception_naming_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _many_contracts(tmp_path, 1)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(harness.InvalidInput, match=r"no falsifier matches -k NOPE in 1 contract file"):
        harness.verify(["contracts"], out=None, select=["NOPE"])
    (tmp_path / "contracts" / "n0.yaml").write_text(contract_text("n0-v1", [falsifier("FALSIFY-N0-001", "{python: 'x:y'}", attacks="INV-NOPE-001")]))
    with pytest.raises(harness.InvalidInput) as info:
        harness.verify(["contracts"], out=None)
    assert any("INV-NOPE-001" in p and "n0.yaml:" in p for p in info.value.problems)
    assert not (tmp_path / "reports").exists()


def test_evidence_is_frozen() -> None:
    evidence = _evidence(P)
    with pytest.raises(AttributeError):
        evidence.complete = False  # type: ignore[misc]
    assert replace(evidence, complete=False).complete is False


def _readme_example() -> str:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("## Use it as a library")
    begin = lines.index("```python", start) + 1
    return "\n".join(lines[begin:lines.index("```", begin)]) + "\n"


def test_readme_library_example_runs_as_printed(tmp_path: Path) -> None:
    make_project(tmp_path, {"lib.yaml": contract_text("lib-v1", FALSIFIERS[:2])})
    proc = subprocess.run(
        [sys.executable, "-c", _readme_example()], cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "PASSED FALSIFY-LIB-001", "FALSIFIED FALSIFY-LIB-002", "exit", "1", "FALSIFY-LIB-002: falsified: AssertionError: 1 + 1 was 2, predicted 3",
    ]
