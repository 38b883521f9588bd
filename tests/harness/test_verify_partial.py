"""A partial run (`harness verify -k PATTERN`) never replaces the commit's full evidence: it records its
selection, goes to OUT/<sha>/partial/<slug>/ (deterministic, printed), says "partial run (-k ...)" in the
CLI and summary.md, and `Evidence.is_full` tells every consumer it is not the commit's evidence. A full
run replaces the commit's evidence and clears the partial runs it supersedes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import harness
from harness.record import evidence_dir, evidence_from_dict, evidence_to_dict, selection_slug

from tests.harness.verify_support import contract_text, falsifier, make_project, run_verify

CASES = [
    falsifier("FALSIFY-PART-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-PART-002", '{python: "fx_falsifiers:holds"}'),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_project(tmp_path, {"part.yaml": contract_text("part-v1", CASES)})
    return tmp_path


def _printed_evidence(proc: subprocess.CompletedProcess[str], cwd: Path) -> Path:
    return cwd / proc.stdout.rsplit("evidence: ", 1)[1].strip()


def test_a_k_run_does_not_replace_the_full_evidence_and_says_it_is_partial(project: Path) -> None:
    full = run_verify(project, "contracts", "--out", "out")
    assert full.returncode == 0, full.stdout + full.stderr
    commit_dir = project / "out" / "uncommitted"
    before = (commit_dir / "evidence.json").read_bytes()
    assert harness.read_evidence(commit_dir).is_full

    proc = run_verify(project, "contracts", "--out", "out", "-k", "PART-002")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The commit's full evidence is untouched, byte for byte.
    assert (commit_dir / "evidence.json").read_bytes() == before
    assert harness.read_evidence(commit_dir).is_full
    # The partial run is where the CLI says, under partial/, and says what it is.
    printed = _printed_evidence(proc, project)
    slug = selection_slug({"k": ["PART-002"]})
    assert printed == commit_dir / "partial" / slug / "evidence.json"
    assert "harness: 1 passed, 0 falsified, 0 error, 0 not_run, 0 deferred, 0 vacuous, 0 flaky (partial run (-k PART-002))" in proc.stdout
    partial = harness.read_evidence(printed.parent)
    assert partial.complete is True and partial.selection == {"k": ["PART-002"]} and not partial.is_full
    assert [r.id for r in partial.results] == ["FALSIFY-PART-002"]
    summary = (printed.parent / "summary.md").read_text()
    assert "partial run (-k PART-002)" in summary and "not the commit's full evidence" in summary
    assert 'name="harness verify (partial run (-k PART-002))"' in (printed.parent / "junit.xml").read_text()


def test_the_same_selection_goes_to_the_same_directory(project: Path) -> None:
    one = run_verify(project, "contracts", "--out", "out", "-k", "PART-001", "-k", "part-002")
    two = run_verify(project, "contracts", "--out", "out", "-k", "part-002", "-k", "PART-001")
    assert one.returncode == two.returncode == 0, one.stdout + one.stderr + two.stdout + two.stderr
    assert _printed_evidence(one, project) == _printed_evidence(two, project)
    # A different selection is a different partial run, beside it.
    other = run_verify(project, "contracts", "--out", "out", "-k", "PART-001")
    assert _printed_evidence(other, project).parent.parent == _printed_evidence(one, project).parent.parent
    assert _printed_evidence(other, project) != _printed_evidence(one, project)
    assert len(list((project / "out" / "uncommitted" / "partial").iterdir())) == 2


def test_a_full_run_replaces_the_commits_evidence_and_clears_stale_partial_runs(project: Path) -> None:
    assert run_verify(project, "contracts", "--out", "out", "-k", "PART-001").returncode == 0
    partial_dir = project / "out" / "uncommitted" / "partial"
    assert partial_dir.is_dir()
    # A partial run alone is no commit evidence at all.
    with pytest.raises(harness.EvidenceError, match="holds no evidence.json"):
        harness.read_evidence(project / "out" / "uncommitted")
    assert run_verify(project, "contracts", "--out", "out").returncode == 0
    assert not partial_dir.exists()
    assert harness.read_evidence(project / "out" / "uncommitted").is_full


def test_the_library_records_the_selection_and_it_round_trips(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    evidence = harness.verify(["contracts"], out="out", select=["PART-001"])
    assert evidence.selection == {"k": ["PART-001"]} and not evidence.is_full
    assert harness.read_evidence(evidence_dir("out", evidence.commit, evidence.selection)) == evidence
    assert evidence_from_dict(evidence_to_dict(evidence)) == evidence
    assert harness.read_evidence(harness.evidence_dir("out", evidence.commit, evidence.selection)).selection == {"k": ["PART-001"]}


def test_selection_slugs_are_deterministic_readable_and_safe() -> None:
    slug = selection_slug({"k": ["INIT-ARCH", "foo/../*"]})
    assert slug == selection_slug({"k": ["foo/../*", "init-arch"]})
    assert slug.startswith("k-foo-init-arch-") and "/" not in slug and ".." not in slug
    assert selection_slug({"k": ["a"]}) != selection_slug({"k": ["b"]})
    assert selection_slug({"shard": "2/8"}).startswith("shard-2-of-8-")
