"""`harness audit`: GO for a complete, clean evidence set whose guards have teeth; NO-GO (exit 1) with the
reason for each way a release can be unfit; exit 2 for bad input with nothing written; the audit
directory holds byte-identical copies of what was audited and is replaced as a whole.

The evidence and teeth come from one real verify + teeth run of a tiny committed project; the NO-GO
cases are that evidence with one thing changed. (What the rendered page shows: test_audit_html.py.)"""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import jsonschema
import pytest

from harness import audit as audit_lib
from harness import record
from harness.diff import diff_markdown, diff_to_dict
from harness.model import Outcome, SourceLocation
from harness.schema import load_schema

from tests.harness.audit_support import (
    Run,
    audit_cli,
    commit_all,
    parse_dom,
    real_run,
    signed_run,
    tamper,
    with_result,
    with_survivor,
    waiver,
    with_waivers,
    write_set,
)

TODAY = date(2026, 12, 1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return real_run(tmp_path_factory.mktemp("audit") / "tiny")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The tiny project whose pyproject.toml names its attestation key, verified, given teeth and signed."""
    return signed_run(tmp_path_factory.mktemp("audit-signed") / "tiny")


def _reports(tmp_path: Path, run: Run, evidence=None, teeth=None, **extra: str) -> Path:
    reports = tmp_path / "reports"
    write_set(reports, run.sha, run.evidence if evidence is None else evidence, run.teeth if teeth is None else teeth, extra)
    return reports


def test_the_real_run_is_go_and_the_audit_directory_holds_the_audited_files_byte_for_byte(run: Run) -> None:
    assert run.evidence.totals["passed"] == 1 and run.evidence.totals["not_run"] == 1, run.evidence.totals
    proc = audit_cli(run.root, "--release", "v1.0.0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"harness audit: v1.0.0 at {run.sha[:12]}: GO" in proc.stdout
    out = run.root / "reports" / "releases" / "v1.0.0"
    assert sorted(p.name for p in out.iterdir()) == ["audit.html", "audit.json", "audit.md", "evidence.json", "teeth.json"]
    for name in ("evidence.json", "teeth.json"):
        assert (out / name).read_bytes() == (run.root / "reports" / run.sha / name).read_bytes()
    recorded = json.loads((out / "audit.json").read_text())
    jsonschema.validate(recorded, load_schema("audit"))  # `harness schema audit` publishes it
    assert recorded["verdict"] == "GO" and recorded["reasons"] == [] and recorded["commit"] == run.sha
    assert recorded["digests"]["evidence.json"] == audit_lib.sha256((out / "evidence.json").read_bytes())
    # The CUDA falsifier was not run on this CPU machine: tolerated, and said.
    assert any("FALSIFY-GPU-001: needs CUDA" in w for w in recorded["warnings"]), recorded["warnings"]


def test_require_cuda_makes_the_missing_cuda_leg_no_go(run: Run, tmp_path: Path) -> None:
    proc = audit_cli(run.root, "--release", "v1.0.0", "--require-cuda", "--out", str(tmp_path / "a"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NO-GO: FALSIFY-GPU-001: needs CUDA and was not run on CUDA (not_run: requires CUDA" in proc.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("falsified", "FALSIFY-CLAMP-001: falsified: clamp(30, 0, 10) was 30"),
        ("partial", "the run was restricted (k=FALSIFY-CLAMP-*): a release needs the commit's full evidence"),
        ("interrupted", "the run was interrupted: the evidence is incomplete"),
        ("dirty", "the evidence was made from a tree with uncommitted changes"),
        ("survivor", "INV-CLAMP-001: mutant tinypkg.guard:clamp/"),
        ("no teeth", "no teeth results for this commit: run `harness teeth contracts/ --out"),
        ("deferred", "FALSIFY-CLAMP-001: deferred: until 2027-01-01 (a release needs it run)"),
    ],
)
def test_each_no_go_reason_exits_1_and_is_printed(run: Run, tmp_path: Path, change: str, expected: str) -> None:
    evidence, teeth = run.evidence, run.teeth
    if change == "falsified":
        evidence = with_result(evidence, "FALSIFY-CLAMP-001", outcome=Outcome.FALSIFIED, reason="clamp(30, 0, 10) was 30")
    elif change == "partial":
        evidence = dataclasses.replace(evidence, selection={"k": ["FALSIFY-CLAMP-*"]})
    elif change == "interrupted":
        evidence = dataclasses.replace(evidence, complete=False)
    elif change == "dirty":
        evidence = dataclasses.replace(evidence, dirty=True)
    elif change == "survivor":
        teeth = with_survivor(teeth)
    elif change == "deferred":
        evidence = with_result(evidence, "FALSIFY-CLAMP-001", outcome=Outcome.DEFERRED, reason="until 2027-01-01")
    reports = _reports(tmp_path, run, evidence, teeth)
    if change == "no teeth":
        (reports / run.sha / "teeth.json").unlink()
    proc = audit_cli(run.root, "--release", "v1.0.0", "--reports", str(reports))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{run.sha[:12]}: NO-GO" in proc.stdout
    assert expected in proc.stdout, proc.stdout
    recorded = json.loads((reports / "releases" / "v1.0.0" / "audit.json").read_text())
    jsonschema.validate(recorded, load_schema("audit"))
    assert recorded["verdict"] == "NO-GO" and any(expected in r for r in recorded["reasons"])


def test_missing_evidence_is_bad_input_naming_the_command_that_makes_it(run: Run, tmp_path: Path) -> None:
    proc = audit_cli(run.root, "--release", "v1.0.0", "--reports", str(tmp_path / "empty"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"holds no evidence.json for commit {run.sha[:12]}: make it with `harness verify contracts/ --out {tmp_path / 'empty'}`" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "empty" / "releases").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--release", "../up"], "--release '../up': a tag is letters, digits and . _ + -"),
        (["--release", "v1", "--commit", "no-such-ref"], "--commit no-such-ref: not a commit in"),
        (["--release", "v1", "--history", "-1"], "argument --history: -1: must be at least 0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(run: Run, args: list[str], expected: str) -> None:
    proc = audit_cli(run.root, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreadable_evidence_file_is_bad_input_naming_it(run: Run, tmp_path: Path) -> None:
    reports = _reports(tmp_path, run)
    (reports / run.sha / "evidence.json").write_text("{not json")
    proc = audit_cli(run.root, "--release", "v1", "--reports", str(reports))
    assert proc.returncode == 2
    assert f"{reports / run.sha / 'evidence.json'}:1: not JSON" in proc.stderr


def test_a_second_audit_of_a_tag_replaces_the_first_as_a_whole_and_a_failed_write_keeps_it(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = _reports(tmp_path, run)
    first = audit_lib.release_audit("v2", reports=reports, repo_root=run.root, today=TODAY)
    out = reports / "releases" / "v2"
    (out / "stray.txt").write_text("left by hand")
    before = (out / "audit.json").read_bytes()
    # A full disk half way through: the previous audit stays, whole.
    def full(path: Path, text: str) -> None:
        if path.name == "audit.html":
            raise OSError(28, "No space left on device")
        record.create_file(path, text)

    monkeypatch.setattr(record, "_create", full)
    with pytest.raises(audit_lib.AuditNotWritten, match="No space left on device"):
        audit_lib.release_audit("v2", reports=reports, repo_root=run.root, today=TODAY)
    assert (out / "audit.json").read_bytes() == before and (out / "stray.txt").exists()
    monkeypatch.undo()
    second = audit_lib.release_audit("v2", reports=reports, repo_root=run.root, today=TODAY)
    assert first.decision.go and second.decision.go
    assert sorted(p.name for p in out.iterdir()) == ["audit.html", "audit.json", "audit.md", "evidence.json", "teeth.json"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no staging directory left behind"


def test_the_previous_release_is_the_newest_other_audit_and_its_diff_is_shown(run: Run, tmp_path: Path) -> None:
    reports = _reports(tmp_path, run)
    audit_lib.release_audit("v1.0.0", reports=reports, repo_root=run.root, today=TODAY)
    audit_lib.release_audit("v1.1.0", reports=reports, repo_root=run.root, today=TODAY)
    broken = with_result(run.evidence, "FALSIFY-CLAMP-001", outcome=Outcome.FALSIFIED, reason="clamp(30, 0, 10) was 30")
    write_set(reports, run.sha, broken)
    third = audit_lib.release_audit("v2.0.0", reports=reports, repo_root=run.root, today=TODAY)
    assert third.previous is not None and third.previous.tag == "v1.1.0"
    assert not third.decision.go and third.decision.diff.regressed is True
    recorded = json.loads((reports / "releases" / "v2.0.0" / "audit.json").read_text())
    assert [c.falsifier_id for c in third.decision.diff.regressions] == ["FALSIFY-CLAMP-001"]
    assert recorded["previous_release"] == "v1.1.0"
    assert recorded["diff"] == json.loads(json.dumps(diff_to_dict(third.decision.diff)))
    assert recorded["diff"]["regressed"] is True
    markdown = (reports / "releases" / "v2.0.0" / "audit.md").read_text()
    assert "Previous release v1.1.0" in markdown and diff_markdown(third.decision.diff).strip() in markdown
    page = parse_dom((reports / "releases" / "v2.0.0" / "audit.html").read_text(encoding="utf-8"))
    diff = page.by_id("diff")
    assert diff is not None and "regressed: yes" in diff.text() and "FALSIFY-CLAMP-001" in diff.text()


@pytest.mark.parametrize("edited", ["evidence.json", "teeth.json", "attestation.dsse.json"])
def test_an_attestation_that_does_not_verify_is_no_go_naming_the_edited_file(signed: Run, tmp_path: Path, edited: str) -> None:
    reports = tmp_path / "reports"
    shutil.copytree(signed.root / "reports" / signed.sha, reports / signed.sha)
    tamper(reports / signed.sha / edited)
    result = audit_lib.release_audit("v3", reports=reports, repo_root=signed.root, today=TODAY)
    assert not result.decision.go and result.attestation is not None and not result.attestation.valid
    problems = [r for r in result.decision.reasons if r.startswith("attestation: ")]
    assert problems and all(edited in p for p in problems), result.decision.reasons
    out = reports / "releases" / "v3"
    assert (out / "attestation.dsse.json").read_bytes() == (reports / signed.sha / "attestation.dsse.json").read_bytes()
    assert json.loads((out / "audit.json").read_text())["attestation"]["valid"] is False


def test_a_required_attestation_that_is_missing_is_no_go_and_a_valid_one_go(signed: Run, tmp_path: Path) -> None:
    from harness.attest import verify_attestation

    missing = audit_lib.decide(signed.evidence, signed.teeth, attestation=None, attestation_required=True, today=TODAY,
                               attest_command=f"harness attest reports/{signed.sha} --key KEY")
    assert f"no attestation, and [tool.harness] attestation_public_key requires one: run `harness attest reports/{signed.sha} --key KEY`" in missing.reasons
    check = verify_attestation(signed.root / "reports" / signed.sha, repo_root=signed.root, commit=signed.sha)
    assert check.valid, check.problems
    good = audit_lib.decide(signed.evidence, signed.teeth, attestation=check, attestation_required=True, today=TODAY)
    assert good.go, good.reasons
    # Another commit's attestation copied beside this evidence: named, never a pass.
    other = verify_attestation(signed.root / "reports" / signed.sha, repo_root=signed.root, commit="0" * 40)
    assert not other.valid


def test_waivers_cover_a_failure_until_they_expire(run: Run) -> None:
    failing = with_result(run.evidence, "FALSIFY-CLAMP-001", outcome=Outcome.FALSIFIED, reason="clamp(30, 0, 10) was 30")
    # Something must have passed besides (a release where nothing was verified is NO-GO, waivers or not).
    failing = with_result(failing, "FALSIFY-GPU-001", outcome=Outcome.PASSED, reason="")
    where = SourceLocation("contracts/waivers.yaml", 3)
    soon = waiver("FALSIFY-CLAMP-*", "known, fix in #12", "ana", TODAY + timedelta(days=5), None, where)
    waived = audit_lib.decide(with_waivers(failing, (soon,)), run.teeth, today=TODAY)
    assert waived.go, waived.reasons
    assert any(w.startswith("FALSIFY-CLAMP-001") for w in waived.waived) and waived.expiring
    expired = dataclasses.replace(soon, expires=TODAY - timedelta(days=1))
    refused = audit_lib.decide(with_waivers(failing, (expired,)), run.teeth, today=TODAY)
    assert not refused.go and any("expired" in r for r in refused.reasons), refused.reasons


def test_cuda_falsifiers_are_read_from_the_contract_files_verified(run: Run) -> None:
    assert audit_lib.cuda_falsifiers(run.evidence, run.root) == {"FALSIFY-GPU-001"}
    changed = dataclasses.replace(run.evidence, contracts=tuple(dataclasses.replace(c, sha256="sha256:" + "0" * 64) for c in run.evidence.contracts))
    assert audit_lib.cuda_falsifiers(changed, run.root) == frozenset()  # not the file verified: not trusted


def test_nothing_verified_is_no_go(run: Run) -> None:
    nothing = with_result(run.evidence, "FALSIFY-CLAMP-001", outcome=Outcome.NOT_RUN, reason="requires package x")
    decision = audit_lib.decide(nothing, run.teeth, today=TODAY)
    assert not decision.go and "no falsifier passed: nothing was verified" in decision.reasons


def test_run_verifies_and_runs_teeth_first_through_the_library(tmp_path: Path) -> None:
    from tests.harness.audit_support import make_project

    root = tmp_path / "fresh"
    sha = make_project(root)
    proc = audit_cli(root, "--release", "v0.1.0", "--run", "--history", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"v0.1.0 at {sha[:12]}: GO" in proc.stdout
    assert (root / "reports" / sha / "evidence.json").is_file() and (root / "reports" / sha / "teeth.json").is_file()
    assert (root / "reports" / "releases" / "v0.1.0" / "teeth.json").read_bytes() == (root / "reports" / sha / "teeth.json").read_bytes()
    # --run runs the checked-out tree: another --commit is refused before anything runs.
    commit_all(root, "second")
    refused = audit_cli(root, "--release", "v0.1.0", "--run", "--commit", sha)
    assert refused.returncode == 2 and "--run runs the falsifiers of the checked-out tree" in refused.stderr


def test_an_unwritable_out_is_bad_input_and_nothing_is_written(run: Run, tmp_path: Path) -> None:
    reports = _reports(tmp_path, run)
    (tmp_path / "a-file").write_text("")
    proc = audit_cli(run.root, "--release", "v1", "--reports", str(reports), "--out", str(tmp_path / "a-file" / "v1"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"--out {tmp_path / 'a-file' / 'v1'}: " in proc.stderr and "choose another --out DIR" in proc.stderr
    assert not (reports / "releases").exists()


def test_a_cuda_leg_run_on_a_gpu_is_go_under_require_cuda_and_names_the_gpu(run: Run) -> None:
    on_gpu = with_result(run.evidence, "FALSIFY-GPU-001", outcome=Outcome.PASSED, reason="returned without an AssertionError")
    on_gpu = dataclasses.replace(on_gpu, environment={**on_gpu.environment, "gpus": ["NVIDIA H200"], "gpu": "NVIDIA H200"})
    cuda = audit_lib.cuda_falsifiers(on_gpu, run.root)
    audit = audit_lib.assemble("v1", on_gpu, run.teeth, commit=run.sha, today=TODAY, files={}, require_cuda=True, cuda=cuda)
    assert audit.decision.go, audit.decision.reasons
    rows = {r.falsifier: r for _, rows in audit_lib.falsifier_rows(audit) for r in rows}
    assert rows["FALSIFY-GPU-001"].cuda == "ran on CUDA (NVIDIA H200)" and rows["FALSIFY-CLAMP-001"].cuda == ""


def test_a_real_attestation_makes_it_go_and_an_edit_after_signing_or_its_absence_no_go(tmp_path: Path) -> None:
    signed = signed_run(tmp_path / "signed")
    root, sha = signed.root, signed.sha
    proc = audit_cli(root, "--release", "v1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = root / "reports" / "releases" / "v1"
    assert (out / "attestation.dsse.json").read_bytes() == (root / "reports" / sha / "attestation.dsse.json").read_bytes()
    assert json.loads((out / "audit.json").read_text())["attestation"]["valid"] is True
    # teeth.json edited after signing: the attestation no longer verifies, and the audit names it.
    tamper(root / "reports" / sha / "teeth.json")
    proc = audit_cli(root, "--release", "v1")
    assert proc.returncode == 1 and "NO-GO: attestation: " in proc.stdout and "teeth.json" in proc.stdout, proc.stdout
    # Required by [tool.harness] attestation_public_key, and absent.
    (root / "reports" / sha / "attestation.dsse.json").unlink()
    proc = audit_cli(root, "--release", "v1")
    assert proc.returncode == 1
    assert f"no attestation, and [tool.harness] attestation_public_key requires one: run `harness attest reports/{sha} --key KEY`" in proc.stdout


def test_a_waiver_recorded_by_verify_is_go_until_the_audit_day_passes_its_expiry(tmp_path: Path) -> None:
    import harness
    from tests.harness.audit_support import make_project

    root = tmp_path / "waived"
    make_project(root)
    with (root / "checks.py").open("a") as fh:
        fh.write("\n\ndef known_bug():\n    assert clamp(5, 10, 0) == 5, 'clamp with low > high'\n")
    (root / "contracts" / "known.yaml").write_text(
        "id: tiny-known-v1\nversion: 1.0.0\ntitle: Known\ndescription: A known failure.\ninvariants:\n"
        "  - id: INV-KNOWN-001\n    kind: safety\n    statement: clamp tolerates swapped bounds.\n"
        "    guards: [tinypkg.guard:clamp]\nfalsifiers:\n  - id: FALSIFY-KNOWN-001\n    attacks: [INV-KNOWN-001]\n"
        "    prediction: it holds.\n    if_fails: it does not.\n    binding:\n      python: checks:known_bug\n    timeout_s: 60\n"
    )
    expires = date.today() + timedelta(days=30)
    (root / "contracts" / "waivers.yaml").write_text(
        f"waivers:\n  - falsifier: FALSIFY-KNOWN-*\n    reason: swapped bounds, fix in #7\n    owner: ana\n    expires: {expires.isoformat()}\n"
    )
    commit_all(root, "a known failure, waived")
    evidence = harness.verify([root / "contracts"], out=root / "reports")
    assert [r.outcome for r in evidence.results if r.id == "FALSIFY-KNOWN-001"] == [Outcome.FALSIFIED]
    harness.teeth([root / "contracts"], out=root / "reports")
    go = audit_lib.release_audit("v1", reports=root / "reports", repo_root=root, today=date.today())
    assert go.decision.go, go.decision.reasons
    assert any(w.startswith("FALSIFY-KNOWN-001") for w in go.decision.waived)
    late = audit_lib.release_audit("v1", reports=root / "reports", repo_root=root, today=expires + timedelta(days=1))
    assert not late.decision.go and any("expired" in r for r in late.decision.reasons), late.decision.reasons
    recorded = json.loads((root / "reports" / "releases" / "v1" / "audit.json").read_text())
    assert recorded["verdict"] == "NO-GO"


def test_the_gates_waiver_warnings_are_the_audits_notes(run: Run) -> None:
    # verify prints the gate's warnings (a waiver that waives nothing); the audit must not drop them.
    idle = waiver("FALSIFY-CLAMP-001", "was flaky", "ana", TODAY + timedelta(days=60), None, SourceLocation("contracts/waivers.yaml", 2))
    decision = audit_lib.decide(with_waivers(run.evidence, (idle,)), run.teeth, today=TODAY)
    assert decision.go, decision.reasons
    assert "waiver FALSIFY-CLAMP-001 (contracts/waivers.yaml:2) waives nothing: every falsifier it matches passed; remove it" in decision.warnings


def test_an_unbound_falsifier_is_an_error_in_the_audit_the_diff_and_the_attestation(run: Run, tmp_path: Path) -> None:
    # `harness import pv` writes `binding: {unbound: TEXT}` for prose; verify records it as error, and no
    # consumer of the evidence may read it as anything but a failure.
    import harness
    from harness.attest import predicate_lists, predicate_result
    from harness.diff import diff_evidence
    from tests.harness.audit_support import make_project

    root = tmp_path / "prose"
    make_project(root)
    contract = root / "contracts" / "tiny.yaml"
    contract.write_text(contract.read_text() + (
        "  - id: FALSIFY-PROSE-001\n    attacks: [INV-CLAMP-001]\n    prediction: it holds.\n    if_fails: it does not.\n"
        "    binding:\n      unbound: proptest over random bounds\n"
    ))
    commit_all(root, "an imported prose falsifier")
    evidence = harness.verify([root / "contracts"], out=root / "reports")
    (prose,) = [r for r in evidence.results if r.id == "FALSIFY-PROSE-001"]
    assert prose.outcome is Outcome.ERROR and prose.reason.startswith("unbound: no runnable test is bound")
    decision = audit_lib.decide(evidence, None, today=TODAY)
    assert not decision.go
    assert any(r.startswith("FALSIFY-PROSE-001: error: unbound: no runnable test is bound") for r in decision.reasons), decision.reasons
    d = diff_evidence(run.evidence, evidence, today=TODAY)
    assert d.regressed and [c.falsifier_id for c in d.regressions] == ["FALSIFY-PROSE-001"]
    assert "FALSIFY-PROSE-001" in predicate_lists(evidence)["failedTests"] and predicate_result(evidence) == "FAILED"


def test_an_artifact_release_with_a_gate_not_run_for_want_of_a_parameter_is_no_go(run: Run) -> None:
    # A contract run WITH parameters verified an artifact: a gate of it skipped because another parameter was
    # not given (a model released without its card) must not be GO; the same not_run in a contract given no
    # parameters at all (the code audit, where the model contract has no artifact) stays a note.
    from harness.model import ParameterKind, ParameterValue

    first = run.evidence.contracts[0].falsifiers[0].id
    needs = "needs parameter card (harness verify contracts/tiny.yaml --param card=PATH)"
    skipped = with_result(run.evidence, first, outcome=Outcome.NOT_RUN, reason=needs)
    note_only = audit_lib.decide(skipped, run.teeth, today=TODAY)
    assert not any(first in r for r in note_only.reasons) and f"{first}: not_run: {needs}" in note_only.warnings
    checkpoint = ParameterValue("checkpoint", ParameterKind.PATH, "m.safetensors", "/w/m.safetensors", "ab" * 32)
    contracts = (dataclasses.replace(skipped.contracts[0], parameters=(checkpoint,)), *skipped.contracts[1:])
    artifact = audit_lib.decide(dataclasses.replace(skipped, contracts=contracts), run.teeth, today=TODAY)
    assert not artifact.go
    assert f"{first}: not_run: {needs}: {contracts[0].id} was verified with parameters (checkpoint), so a release of that artifact needs every gate run" in artifact.reasons
    assert not any(w.startswith(f"{first}: not_run") for w in artifact.warnings)
