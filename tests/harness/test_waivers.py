"""Waivers (contracts/waivers.yaml, docs/waivers.md): loaded like contracts, recorded in the evidence, applied
by the gate only: a waived failure passes while its true outcome stays in evidence.json; an expired waiver, or
one matching nothing, fails; a bad file is FILE:LINE and exit 2 with nothing run."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

import harness
from harness import clock
from harness.gate import Policy, verdict
from harness.model import Binding, BindingKind, ContractResult, Evidence, FalsifierResult, Outcome, SourceLocation, Waiver
from harness.record import evidence_from_dict, evidence_json, evidence_problems, evidence_to_dict
from harness.schema import load_schema
from harness.waivers import WaiversError, load_waivers

from tests.harness.verify_support import REPO, contract_text, falsifier, harness_env, make_project, read_evidence

DOC = REPO / "docs" / "waivers.md"
TODAY = date(2026, 12, 1)


# ---------------------------------------------------------------------------------------- the gate


def _result(fid: str, outcome: Outcome) -> FalsifierResult:
    return FalsifierResult(fid, "w-v1", ("INV-W-001",), outcome, f"{outcome.value} because\nmore", 0.5,
                           Binding(BindingKind.PYTHON, "m:f"), counterexample="x" if outcome is Outcome.FALSIFIED else None)


def _waiver(pattern: str, expires: date, line: int = 2) -> Waiver:
    return Waiver(pattern, "known, fix underway", "team-a", expires, None, SourceLocation("contracts/waivers.yaml", line))


def _evidence(outcomes: dict[str, Outcome], waivers: tuple[Waiver, ...], selection: dict | None = None) -> Evidence:
    results = tuple(_result(fid, o) for fid, o in outcomes.items())
    return Evidence(
        schema_version=1, harness_version="0.1.0", commit=None, dirty=None, complete=True,
        started_at="2026-12-01T08:00:00.000+00:00", finished_at="2026-12-01T08:00:01.000+00:00", duration_s=1.0,
        command=("harness", "verify", "contracts"),
        environment={"python": "3.11.7", "os": "Linux", "cpu": "x86_64", "torch": None, "cuda": None, "gpu": None},
        totals={o.value: list(outcomes.values()).count(o) for o in Outcome},
        contracts=(ContractResult("w-v1", "1.0.0", "contracts/w.yaml", "0" * 64, results),),
        selection=selection, waivers=waivers,
    )


P, F, E = Outcome.PASSED, Outcome.FALSIFIED, Outcome.ERROR


def test_a_waived_failure_passes_the_gate_and_is_listed_as_waived() -> None:
    evidence = _evidence({"FALSIFY-W-001": P, "FALSIFY-W-002": F}, (_waiver("FALSIFY-W-002", date(2027, 6, 30)),))
    gate = verdict(evidence, Policy(today=TODAY))
    assert (gate.passed, gate.exit_code, gate.reasons, gate.expiring) == (True, 0, (), ())
    [waived] = gate.waived
    assert waived.startswith("FALSIFY-W-002: falsified: falsified because (waived by waiver FALSIFY-W-002 (contracts/waivers.yaml:2)")
    # The evidence is untouched: the true outcome is what it records.
    assert [r.outcome for r in evidence.results] == [P, F]


def test_a_glob_waives_every_falsifier_it_matches_and_only_those() -> None:
    evidence = _evidence({"FALSIFY-W-001": F, "FALSIFY-W-002": E, "FALSIFY-X-003": F}, (_waiver("FALSIFY-W-*", date(2027, 1, 1)),))
    gate = verdict(evidence, Policy(today=TODAY))
    assert gate.exit_code == 1
    assert gate.reasons == ("FALSIFY-X-003: falsified: falsified because",)
    assert [w.split(":")[0] for w in gate.waived] == ["FALSIFY-W-001", "FALSIFY-W-002"]


def test_an_expired_waiver_fails_the_gate_and_waives_nothing() -> None:
    evidence = _evidence({"FALSIFY-W-001": F}, (_waiver("FALSIFY-W-001", date(2026, 11, 30)),))
    gate = verdict(evidence, Policy(today=TODAY))
    assert (gate.passed, gate.exit_code, gate.waived) == (False, 1, ())
    assert gate.reasons == (
        "FALSIFY-W-001: falsified: falsified because",
        "waiver FALSIFY-W-001 (contracts/waivers.yaml:2) expired on 2026-11-30 (owner: team-a): fix the falsifier and "
        "remove the waiver, or renew it with a new expires: and reason",
    )


def test_a_waiver_is_in_force_through_its_expiry_day_and_named_when_expiring_within_14_days() -> None:
    evidence = _evidence({"FALSIFY-W-001": F}, (_waiver("FALSIFY-W-001", TODAY),))
    gate = verdict(evidence, Policy(today=TODAY))
    assert gate.exit_code == 0
    assert gate.expiring == ("waiver FALSIFY-W-001 (contracts/waivers.yaml:2) expires on 2026-12-01, in 0 days (owner: team-a)",)
    assert verdict(_evidence({"FALSIFY-W-001": F}, (_waiver("FALSIFY-W-001", date(2026, 12, 16)),)), Policy(today=TODAY)).expiring == ()


def test_a_waiver_matching_no_falsifier_fails_a_full_run_and_warns_in_a_partial_one() -> None:
    waivers = (_waiver("FALSIFY-GONE-001", date(2027, 1, 1)),)
    full = verdict(_evidence({"FALSIFY-W-001": P}, waivers), Policy(today=TODAY))
    assert full.exit_code == 1
    assert full.reasons == (
        "waiver FALSIFY-GONE-001 (contracts/waivers.yaml:2) matches no falsifier in the evidence: fix its id or glob, or remove it",
    )
    partial = verdict(_evidence({"FALSIFY-W-001": P}, waivers, selection={"k": ["W-001"]}), Policy(today=TODAY))
    assert partial.exit_code == 0 and any("matches no falsifier" in w for w in partial.warnings)


def test_a_run_whose_only_results_are_waived_failures_says_nothing_was_verified() -> None:
    gate = verdict(_evidence({"FALSIFY-W-001": F}, (_waiver("FALSIFY-W-001", date(2027, 1, 1)),)), Policy(today=TODAY))
    assert gate.exit_code == 0
    assert gate.warnings == ("no falsifier passed (1 failing, waived), so nothing was verified",)


def test_without_a_date_the_waivers_are_not_applied() -> None:
    gate = verdict(_evidence({"FALSIFY-W-001": F}, (_waiver("FALSIFY-W-001", date(2099, 1, 1)),)), Policy())
    assert gate.exit_code == 1 and gate.reasons == ("FALSIFY-W-001: falsified: falsified because",)
    assert gate.waived == () and any("not applied" in w for w in gate.warnings)


def test_evidence_records_waivers_and_reads_them_back() -> None:
    evidence = _evidence({"FALSIFY-W-001": F}, (_waiver("FALSIFY-W-*", date(2027, 1, 31)),))
    data = json.loads(json.dumps(evidence_to_dict(evidence)))
    assert data["waivers"] == [{
        "falsifier": "FALSIFY-W-*", "reason": "known, fix underway", "owner": "team-a", "expires": "2027-01-31",
        "link": None, "path": "contracts/waivers.yaml", "line": 2,
    }]
    assert evidence_problems(data) == []
    assert evidence_from_dict(data) == evidence


# ---------------------------------------------------------------------------------------- the file


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "contracts" / "waivers.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "waivers.yaml:1: -: file is empty (or just null); a waivers file needs `waivers:`"),
        ("- falsifier: X\n", "waivers.yaml:1: -: the top level must be a mapping (waivers: [...]), found a list"),
        ("waivers:\n  - falsifier: FALSIFY-A-001\n    reason: r\n    ownr: me\n    expires: 2027-01-01\n",
         "waivers.yaml:4: FALSIFY-A-001: unknown key 'ownr' in waivers[0] (did you mean 'owner'?); fix or remove it"),
        ("waivers:\n  - falsifier: FALSIFY-A-001\n    reason: r\n    owner: me\n",
         "waivers.yaml:2: FALSIFY-A-001: waivers[0] is missing required key 'expires'; add it (see docs/waivers.md)"),
        ("waivers:\n  - falsifier: FALSIFY-A-001\n    reason: r\n    owner: me\n    expires: 2027-02-30\n",
         "waivers.yaml:5: FALSIFY-A-001: expires '2027-02-30' is not a real date; write YYYY-MM-DD"),
        ("waivers:\n  - falsifier: FALSIFY-A-001\n    reason: r\n    owner: me\n    expires: next week\n",
         "waivers.yaml:5: FALSIFY-A-001: waivers[0].expires 'next week' is not a date YYYY-MM-DD; fix the value"),
        ("waivers:\n  - falsifier: FALSIFY A\n    reason: r\n    owner: me\n    expires: 2027-01-01\n",
         "waivers.yaml:2: FALSIFY A: waivers[0].falsifier 'FALSIFY A' is not a falsifier id or an fnmatch glob"),
        ("waivers:\n  - &a {falsifier: X, reason: r, owner: o, expires: 2027-01-01}\n",
         "waivers.yaml:2: -: YAML anchors and aliases (&name / *name) are not allowed"),
    ],
)
def test_a_bad_waivers_file_is_refused_with_its_line(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(WaiversError) as raised:
        load_waivers(path)
    problem = problem.replace("waivers.yaml", str(path), 1)
    assert any(str(p).startswith(problem) for p in raised.value.problems), [str(p) for p in raised.value.problems]


def test_load_waivers_reads_every_field_with_repository_relative_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "waivers:\n  - falsifier: FALSIFY-A-*\n    reason: r\n    owner: me\n    expires: 2027-01-31\n"
                            "    link: https://example.com/1\n")
    assert load_waivers(path) == (
        Waiver("FALSIFY-A-*", "r", "me", date(2027, 1, 31), "https://example.com/1", SourceLocation("contracts/waivers.yaml", 2)),
    )


def test_the_waivers_schema_is_published() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "schema", "waivers"], env=harness_env(), capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout) == load_schema("waivers")


# ---------------------------------------------------------------------------------------- real runs


def _project(tmp_path: Path, waivers: str | None) -> Path:
    make_project(tmp_path, {"fx.yaml": contract_text("fx-v1", [
        falsifier("FALSIFY-FX-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-FX-002", '{python: "fx_falsifiers:falsified"}'),
    ])})
    if waivers is not None:
        (tmp_path / "contracts" / "waivers.yaml").write_text(waivers)
    return tmp_path


def _harness(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=harness_env(), capture_output=True,
                          text=True, timeout=300)


WAIVED = "waivers:\n  - falsifier: FALSIFY-FX-002\n    reason: known\n    owner: team-a\n    expires: 2099-12-31\n"


def test_verify_records_the_true_outcome_of_a_waived_failure_and_exits_0(tmp_path: Path) -> None:
    _project(tmp_path, WAIVED)
    proc = _harness(tmp_path, "verify", "contracts/", "--out", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FALSIFIED FALSIFY-FX-002" in proc.stdout
    assert "harness: WAIVED FALSIFY-FX-002: falsified: AssertionError: 1 + 1 was 2" in proc.stdout
    assert "harness: waiver in force: FALSIFY-FX-002 until 2099-12-31" in proc.stdout
    evidence = read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")
    outcomes = {f["id"]: f["outcome"] for c in evidence["contracts"] for f in c["falsifiers"]}
    assert outcomes == {"FALSIFY-FX-001": "passed", "FALSIFY-FX-002": "falsified"}
    assert evidence["totals"]["falsified"] == 1
    assert [w["falsifier"] for w in evidence["waivers"]] == ["FALSIFY-FX-002"]
    summary = (tmp_path / "out" / "uncommitted" / "summary.md").read_text()
    assert "### Waivers" in summary and "FALSIFY-FX-002 (falsified)" in summary
    # The library's gate on the evidence read back agrees with the exit code.
    read_back = harness.read_evidence(tmp_path / "out" / "uncommitted")
    assert verdict(read_back, Policy(today=TODAY)).exit_code == 0 and verdict(read_back, Policy()).exit_code == 1


def test_verify_warns_of_a_waiver_expiring_within_14_days(tmp_path: Path) -> None:
    soon = clock.today() + timedelta(days=5)
    _project(tmp_path, WAIVED.replace("2099-12-31", soon.isoformat()))
    proc = _harness(tmp_path, "verify", "contracts/", "--out", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        f"harness: warning: waiver FALSIFY-FX-002 (contracts/waivers.yaml:2) expires on {soon.isoformat()}, in 5 days "
        "(owner: team-a): fix the falsifier, or renew the waiver with a new expires: and reason"
    ) in proc.stderr.splitlines()
    assert f"until {soon.isoformat()}, 5 days left" in proc.stdout
    summary = (tmp_path / "out" / "uncommitted" / "summary.md").read_text()
    assert f"⚠️ {soon.isoformat()}, in " in summary


def test_verify_without_the_waiver_fails_and_a_bad_waivers_file_runs_nothing(tmp_path: Path) -> None:
    _project(tmp_path, None)
    assert _harness(tmp_path, "verify", "contracts/", "--out", "out").returncode == 1
    (tmp_path / "contracts" / "waivers.yaml").write_text(WAIVED.replace("2099-12-31", "2099-13-01"))
    proc = _harness(tmp_path, "verify", "contracts/", "--out", "out2")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "contracts/waivers.yaml:5: FALSIFY-FX-002: expires '2099-13-01' is not a real date; write YYYY-MM-DD" in proc.stdout
    assert not (tmp_path / "out2").exists()
    proc = _harness(tmp_path, "verify", "contracts/", "--out", "out2", "--waivers", "missing.yaml")
    assert proc.returncode == 2 and "missing.yaml:1: -: cannot read file" in proc.stdout


def test_verify_and_validate_take_waivers_from_another_path(tmp_path: Path) -> None:
    _project(tmp_path, None)
    (tmp_path / "elsewhere.yaml").write_text(WAIVED)
    proc = _harness(tmp_path, "verify", "contracts/", "--out", "out", "--waivers", "elsewhere.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evidence = read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")
    assert evidence["waivers"][0]["path"] == "elsewhere.yaml"
    assert "--waivers" in evidence["command"]
    (tmp_path / "elsewhere.yaml").write_text(WAIVED.replace("FALSIFY-FX-002", "FALSIFY-FX-009"))
    proc = _harness(tmp_path, "validate", "contracts/", "--waivers", "elsewhere.yaml")
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [
        "elsewhere.yaml:2: FALSIFY-FX-009: waiver matches no falsifier of the contracts; fix the id or glob, or remove the waiver"
    ]


# ---------------------------------------------------------------------------------------- the doc


def _sessions() -> list[list[tuple[str, list[str]]]]:
    blocks = [b.split("```", 1)[0] for b in DOC.read_text(encoding="utf-8").split("```console\n")[1:]]
    sessions = []
    for block in blocks:
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        sessions.append(steps)
    return sessions


def _shown_in(line: str, output: list[str]) -> bool:
    pattern = ".*".join(re.escape(part) for part in line.split("..."))
    return any(re.fullmatch(pattern, printed) for printed in output)


def test_the_doc_example_runs_as_printed(tmp_path: Path) -> None:
    sessions = _sessions()
    assert len(sessions) == 2 and any(cmd.startswith("harness verify") for cmd, _ in sessions[0])
    status: int | None = None
    for steps in sessions:
        for command, shown in steps:
            argv = shlex.split(command)
            if argv[0] == "cat":
                (tmp_path / argv[1]).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / argv[1]).write_text("".join(f"{line}\n" for line in shown))
            elif argv[0] == "harness":
                proc = _harness(tmp_path, *argv[1:])
                output = proc.stdout.splitlines() + proc.stderr.splitlines()
                missing = [line for line in shown if not _shown_in(line, output)]
                assert not missing, f"{DOC}: `{command}` did not print {missing}; it printed:\n" + "\n".join(output)
                status = proc.returncode
            elif command == "echo $?":
                assert shown == [str(status)], f"{DOC}: `{steps}`"
            else:
                pytest.fail(f"{DOC} shows a command this test cannot replay: {command}")
    # The true outcome of the waived falsifier stayed in the evidence of the first session's run.
    evidence = read_evidence(tmp_path / "reports" / "uncommitted" / "evidence.json")
    assert {f["id"]: f["outcome"] for c in evidence["contracts"] for f in c["falsifiers"]}["FALSIFY-DEMO-ZERO-001"] == "falsified"


# ---------------------------------------------------------------------------------------- merge


def _shard(index: int, fid: str, waivers: tuple[Waiver, ...]) -> Evidence:
    selected = [["w-v1", "FALSIFY-W-001"], ["w-v1", "FALSIFY-W-002"]]
    shard = {
        "index": index, "total": 2, "owns": [["w-v1", fid]], "selected": selected,
        "contracts": [{"id": "w-v1", "version": "1.0.0", "path": "contracts/w.yaml", "sha256": "0" * 64}],
        "split": "hash", "basis": "0" * 12,
    }
    outcome = F if fid == "FALSIFY-W-002" else P
    return dataclasses.replace(_evidence({fid: outcome}, waivers, selection={"shard": f"{index}/2"}), shard=shard)


def test_merge_keeps_the_shards_waivers_and_refuses_shards_with_different_ones(tmp_path: Path) -> None:
    waivers = (_waiver("FALSIFY-W-002", date(2099, 1, 1)),)
    for index, fid in ((1, "FALSIFY-W-001"), (2, "FALSIFY-W-002")):
        (tmp_path / f"s{index}").mkdir()
        (tmp_path / f"s{index}" / "evidence.json").write_text(evidence_json(_shard(index, fid, waivers)))
    merged = harness.merge([tmp_path / "s1", tmp_path / "s2"])
    assert merged.waivers == waivers and verdict(merged, Policy(today=TODAY)).exit_code == 0
    proc = _harness(tmp_path, "merge", "s1", "s2", "--out", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "harness: WAIVED FALSIFY-W-002: falsified" in proc.stdout
    (tmp_path / "s2" / "evidence.json").write_text(evidence_json(_shard(2, "FALSIFY-W-002", ())))
    with pytest.raises(harness.MergeError, match="mixed waivers"):
        harness.merge([tmp_path / "s1", tmp_path / "s2"])
