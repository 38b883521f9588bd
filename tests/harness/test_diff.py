"""`harness diff A B`: a regression between two evidence files fails it (exit 1); recoveries, additions, removals,
not_run, contract changes without a version bump, teeth survivors, duration moves, waivers and partial runs are
shown in text, --json and --md; an unreadable input is exit 2 naming it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from harness import mutate
from harness import teeth_run as teeth
from harness.diff import diff_evidence, diff_markdown, diff_to_dict, diff_text
from harness.guards import GuardSite
from harness.model import Binding, BindingKind, ContractResult, Evidence, FalsifierResult, Outcome, SourceLocation, Waiver
from harness.record import evidence_json
from harness.teeth_record import write_teeth

from tests.harness.verify_support import contract_text, falsifier, harness_env, make_project

P, F, E, N, V = Outcome.PASSED, Outcome.FALSIFIED, Outcome.ERROR, Outcome.NOT_RUN, Outcome.VACUOUS
TODAY = date(2026, 12, 1)
ENVIRONMENT = {"python": "3.11.7", "os": "Linux", "cpu": "x86_64", "torch": None, "cuda": None, "gpu": None}


def _result(fid: str, outcome: Outcome, duration: float = 0.1) -> FalsifierResult:
    return FalsifierResult(fid, "d-v1", ("INV-D-001",), outcome, f"{outcome.value}: why", duration,
                           Binding(BindingKind.PYTHON, "m:f"), counterexample="x=1" if outcome is Outcome.FALSIFIED else None)


def _evidence(
    outcomes: dict[str, Outcome | tuple[Outcome, float]],
    *,
    commit: str = "a" * 40,
    version: str = "1.0.0",
    sha: str = "0" * 64,
    selection: dict | None = None,
    waivers: tuple[Waiver, ...] = (),
) -> Evidence:
    results = tuple(_result(fid, *(o if isinstance(o, tuple) else (o,))) for fid, o in outcomes.items())
    return Evidence(
        schema_version=1, harness_version="0.1.0", commit=commit, dirty=False, complete=True,
        started_at="2026-12-01T08:00:00.000+00:00", finished_at="2026-12-01T08:00:01.000+00:00", duration_s=1.0,
        command=("harness", "verify", "contracts"), environment=ENVIRONMENT,
        totals={o.value: sum(1 for r in results if r.outcome is o) for o in Outcome},
        contracts=(ContractResult("d-v1", version, "contracts/d.yaml", sha, results),),
        selection=selection, waivers=waivers,
    )


def _write(directory: Path, evidence: Evidence) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "evidence.json").write_text(evidence_json(evidence))
    return directory


def _diff(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "diff", *args], cwd=cwd, env=harness_env(), capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------------------------------- the CLI


def test_a_regression_between_two_evidence_files_fails_diff(tmp_path: Path) -> None:
    _write(tmp_path / "base", _evidence({"FALSIFY-D-001": P, "FALSIFY-D-002": F, "FALSIFY-D-003": P, "FALSIFY-D-004": P}))
    _write(tmp_path / "head", _evidence(
        {"FALSIFY-D-001": F, "FALSIFY-D-002": P, "FALSIFY-D-003": N, "FALSIFY-D-005": P}, commit="b" * 40,
    ))
    proc = _diff(tmp_path, "base/evidence.json", "head", "--md", "diff.md")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"harness diff: base {'a' * 12} (full run) -> head {'b' * 12} (full run)"
    for expected in (
        "REGRESSED FALSIFY-D-001 (d-v1): passed -> falsified: falsified: why",
        "RECOVERED FALSIFY-D-002 (d-v1): falsified -> passed: passed: why",
        "NOT VERIFIED FALSIFY-D-003 (d-v1): passed -> not_run: not_run: why",
        "ADDED FALSIFY-D-005 (d-v1): (new) -> passed: passed: why",
        "REMOVED FALSIFY-D-004 (d-v1): passed -> (removed): passed: why",
    ):
        assert expected in lines, proc.stdout
    assert lines[-1] == "harness diff: REGRESSED: 1 falsifier(s) regressed"
    markdown = (tmp_path / "diff.md").read_text()
    assert markdown.startswith("## harness diff: REGRESSED: 1 falsifier(s) regressed")
    assert "### Regressed\n\n- FALSIFY-D-001 (d-v1): passed → falsified" in markdown and "### Recovered" in markdown


def test_no_regression_exits_0_and_json_says_so(tmp_path: Path) -> None:
    _write(tmp_path / "base", _evidence({"FALSIFY-D-001": F, "FALSIFY-D-002": P}))
    _write(tmp_path / "head", _evidence({"FALSIFY-D-001": P, "FALSIFY-D-002": P}, commit="b" * 40))
    proc = _diff(tmp_path, "base", "head", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["regressed"] is False and data["regressions"] == []
    assert [c["falsifier_id"] for c in data["recovered"]] == ["FALSIFY-D-001"]


def test_a_contract_changed_without_a_version_bump_is_flagged(tmp_path: Path) -> None:
    _write(tmp_path / "base", _evidence({"FALSIFY-D-001": P}, sha="0" * 64))
    _write(tmp_path / "head", _evidence({"FALSIFY-D-001": P}, sha="1" * 64, commit="b" * 40))
    _write(tmp_path / "bumped", _evidence({"FALSIFY-D-001": P}, sha="1" * 64, version="1.1.0", commit="c" * 40))
    proc = _diff(tmp_path, "base", "head")
    assert proc.returncode == 1
    assert (
        f"CONTRACT NOT BUMPED d-v1 (contracts/d.yaml): the file changed (sha256 {'0' * 12} -> {'1' * 12}) but its version "
        "is still 1.0.0: bump its version"
    ) in proc.stdout.splitlines()
    bumped = _diff(tmp_path, "base", "bumped")
    assert bumped.returncode == 0 and "CONTRACT VERSION d-v1 (contracts/d.yaml): 1.0.0 -> 1.1.0" in bumped.stdout


def test_a_partial_run_is_named_in_text_json_and_markdown(tmp_path: Path) -> None:
    _write(tmp_path / "base", _evidence({"FALSIFY-D-001": P, "FALSIFY-D-002": P}))
    _write(tmp_path / "head", _evidence({"FALSIFY-D-001": P}, commit="b" * 40, selection={"k": ["D-001"]}))
    proc = _diff(tmp_path, "base", "head", "--md", "d.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(partial run (-k D-001))" in proc.stdout.splitlines()[0]
    assert "note: head is a partial run (-k D-001), not the commit's full evidence" in proc.stdout
    assert "REMOVED" not in proc.stdout and "1 falsifier(s) not compared" in proc.stdout
    assert "partial run (-k D-001)" in (tmp_path / "d.md").read_text()
    data = json.loads(_diff(tmp_path, "base", "head", "--json").stdout)
    assert data["head"]["full"] is False and data["head"]["run"] == "partial run (-k D-001)" and data["not_compared"] == 1


def test_unreadable_input_is_exit_2_naming_it(tmp_path: Path) -> None:
    _write(tmp_path / "base", _evidence({"FALSIFY-D-001": P}))
    (tmp_path / "broken.json").write_text("{not json")
    proc = _diff(tmp_path, "base", "broken.json")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == ["harness diff: broken.json:1: not JSON: Expecting property name enclosed in double quotes"]
    proc = _diff(tmp_path, "base", "no-such-thing")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("harness diff: no-such-thing: no such file or directory, and not a commit")
    (tmp_path / "empty").mkdir()
    proc = _diff(tmp_path, "empty", "base")
    assert proc.returncode == 2 and "empty holds no evidence.json" in proc.stderr
    (tmp_path / "base" / "teeth.json").write_text("[]")
    proc = _diff(tmp_path, "base", "base")
    assert proc.returncode == 2 and "teeth.json" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_a_waived_regression_is_shown_as_waived_and_does_not_fail(tmp_path: Path) -> None:
    waiver = Waiver("FALSIFY-D-*", "known", "team-a", date(2099, 1, 1), None, SourceLocation("contracts/waivers.yaml", 2))
    _write(tmp_path / "base", _evidence({"FALSIFY-D-001": P}))
    _write(tmp_path / "head", _evidence({"FALSIFY-D-001": F}, commit="b" * 40, waivers=(waiver,)))
    proc = _diff(tmp_path, "base", "head")
    assert proc.returncode == 0, proc.stdout
    assert "WAIVED FALSIFY-D-001 (d-v1): passed -> falsified (waived by contracts/waivers.yaml:2): falsified: why" in proc.stdout
    assert "WAIVER IN FORCE FALSIFY-D-* until 2099-01-01" in proc.stdout


# ---------------------------------------------------------------------------------------- the library


def test_waivers_expiring_within_14_days_and_expired_ones_are_shown() -> None:
    soon = Waiver("FALSIFY-D-001", "r", "o", date(2026, 12, 10), None, SourceLocation("contracts/waivers.yaml", 2))
    gone = Waiver("FALSIFY-D-002", "r", "o", date(2026, 11, 1), None, SourceLocation("contracts/waivers.yaml", 7))
    d = diff_evidence(_evidence({"FALSIFY-D-001": P, "FALSIFY-D-002": P}),
                      _evidence({"FALSIFY-D-001": F, "FALSIFY-D-002": F}, waivers=(soon, gone)), today=TODAY)
    assert [c.falsifier_id for c in d.waived] == ["FALSIFY-D-001"]
    assert [c.falsifier_id for c in d.regressions] == ["FALSIFY-D-002"]  # an expired waiver waives nothing
    assert (d.waivers_expiring, d.waivers_expired) == ((soon,), (gone,))
    text = diff_text(d)
    assert "WAIVER EXPIRING FALSIFY-D-001 until 2026-12-10, 9 days left (owner: o; contracts/waivers.yaml:2): r" in text
    assert any(line.startswith("WAIVER EXPIRED FALSIFY-D-002 until 2026-11-01, expired 30 day(s) ago") for line in text)


def test_a_new_falsifier_that_fails_and_a_vacuous_pass_are_regressions() -> None:
    d = diff_evidence(_evidence({"FALSIFY-D-001": P}), _evidence({"FALSIFY-D-001": V, "FALSIFY-D-002": E}), today=TODAY)
    assert d.regressed
    assert [(c.falsifier_id, c.base, c.head) for c in d.regressions] == [
        ("FALSIFY-D-001", "passed", "vacuous"), ("FALSIFY-D-002", None, "error"),
    ]


def test_duration_moves_beyond_noise_are_shown_and_never_a_regression() -> None:
    base = _evidence({"FALSIFY-D-001": (P, 1.0), "FALSIFY-D-002": (P, 0.1), "FALSIFY-D-003": (P, 4.0)})
    head = _evidence({"FALSIFY-D-001": (P, 2.5), "FALSIFY-D-002": (P, 0.45), "FALSIFY-D-003": (P, 1.0)})
    d = diff_evidence(base, head, today=TODAY)
    assert not d.regressed
    assert [(c.falsifier_id, c.base_s, c.head_s) for c in d.durations] == [("FALSIFY-D-001", 1.0, 2.5), ("FALSIFY-D-003", 4.0, 1.0)]
    assert "SLOWER FALSIFY-D-001 (d-v1): 1.00s -> 2.50s (2.5x)" in diff_text(d)
    assert "FASTER FALSIFY-D-003 (d-v1): 4.00s -> 1.00s (0.2x)" in diff_text(d)


def _teeth(status: str, commit: str | None = None) -> teeth.Teeth:
    source = "def check(size, limit):\n    return size <= limit\n"
    m = mutate.mutants(source, "pkg/mod.py", "pkg.mod:check", "check").mutants[0]
    mutant = teeth.MutantResult(
        id=m.id, guard=m.guard, function=m.function, operator=m.operator, path=m.path, line=m.line, diff=m.diff,
        status=status, reason="r", missed_by=("FALSIFY-D-001",) if status == teeth.SURVIVED else (),
        killed_by="FALSIFY-D-001" if status == "killed" else None,
    )
    inv = teeth.InvariantTeeth(
        contract_id="d-v1", id="INV-D-001", measurable=True, note=None,
        guards=(GuardSite("pkg.mod:check", "resolved", None, "pkg/mod.py", "check", (1, 2)),),
        falsifiers=(teeth.BaselineRun("FALSIFY-D-001", "d-v1", "passed", "ok", 0.5, True),), mutants=(mutant,), not_compiling=0,
    )
    return teeth.Teeth(
        schema_version=1, harness_version="0.1.0", commit=commit, dirty=False, complete=True,
        started_at="2026-12-01T00:00:00.000+00:00", finished_at="2026-12-01T00:00:01.000+00:00", duration_s=1.0,
        command=("harness", "teeth", "contracts/"), selection=(),
        contracts=(teeth.ContractDigest("d-v1", "1.0.0", "contracts/d.yaml", "0" * 64),),
        invariants=(inv,), totals=teeth.count_totals((inv,)),
    )


def test_a_killed_mutant_that_now_survives_is_a_regression(tmp_path: Path) -> None:
    _write(tmp_path / "base", _evidence({"FALSIFY-D-001": P}))
    _write(tmp_path / "head", _evidence({"FALSIFY-D-001": P}, commit="b" * 40))
    write_teeth(tmp_path / "base", _teeth("killed", "a" * 40))
    write_teeth(tmp_path / "head", _teeth(teeth.SURVIVED, "b" * 40))
    proc = _diff(tmp_path, "base", "head")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("TEETH SURVIVOR")]
    assert line.startswith("TEETH SURVIVOR INV-D-001 pkg.mod:check/") and line.endswith(": killed -> survived; missed by FALSIFY-D-001")
    assert proc.stdout.splitlines()[-1] == "harness diff: REGRESSED: 1 new teeth survivor(s)"
    back = _diff(tmp_path, "head", "base")
    assert back.returncode == 0 and "TEETH KILLED INV-D-001" in back.stdout


def test_the_dict_and_markdown_escape_and_carry_every_category() -> None:
    base = _evidence({"FALSIFY-D-001": P})
    head = dataclasses.replace(
        _evidence({"FALSIFY-D-001": F}),
        contracts=(ContractResult("d-v1", "1.0.0", "contracts/d.yaml", "0" * 64, (
            dataclasses.replace(_result("FALSIFY-D-001", F), reason="<script>alert(1)</script>\n| row |"),)),),
    )
    d = diff_evidence(base, head, today=TODAY)
    data = diff_to_dict(d)
    assert list(data)[0] == "regressed" and data["regressions"][0]["reason"] == "<script>alert(1)</script>"
    assert {"recovered", "unverified", "added", "removed", "unbumped", "new_survivors", "durations", "waivers_in_force"} <= set(data)
    markdown = diff_markdown(d)
    assert "<script>" not in markdown and "| row |" not in markdown


# ---------------------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_diff_between_two_commits_of_a_real_repository(tmp_path: Path) -> None:
    """Two `harness verify` runs at two commits, compared by ref: the evidence is looked up under reports/<sha>/."""
    make_project(tmp_path, {"fx.yaml": contract_text("fx-v1", [
        falsifier("FALSIFY-FX-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-FX-002", '{python: "fx_falsifiers:holds"}'),
    ])})

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True, capture_output=True)

    def verify() -> None:
        proc = subprocess.run([sys.executable, "-m", "harness", "verify", "contracts/"], cwd=tmp_path, env=harness_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("reports/\n")
    git("add", "-A")
    git("commit", "-qm", "base")
    verify()
    contract = tmp_path / "contracts" / "fx.yaml"
    contract.write_text(contract.read_text().replace('fx_falsifiers:holds"}\n', 'fx_falsifiers:falsified"}\n', 1)
                        .replace("version: 1.0.0", "version: 1.1.0"))
    git("commit", "-qam", "head")
    verify()
    proc = _diff(tmp_path, "HEAD~1", "HEAD")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSED FALSIFY-FX-001 (fx-v1): passed -> falsified: AssertionError: 1 + 1 was 2" in proc.stdout
    assert "CONTRACT VERSION fx-v1 (contracts/fx.yaml): 1.0.0 -> 1.1.0" in proc.stdout
    missing = _diff(tmp_path, "HEAD~1", "HEAD", "--reports", "elsewhere")
    assert missing.returncode == 2 and "elsewhere" in missing.stderr and "harness verify contracts/ --out elsewhere" in missing.stderr
