"""Evidence survives the harness being killed: every result is journaled (results.jsonl, fsynced) in
the controller as it arrives, under a skeleton evidence.json that says `complete: false`, so a
SIGKILL of `harness verify` (a falsifier that kills its parent or its parent's group, the OOM killer)
leaves every result recorded so far, readable and never a pass. Verify's publish replaces only its
own files: what other commands (`harness teeth`) wrote into the commit directory stays."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

import harness
from harness.model import Binding, BindingKind, FalsifierResult, Outcome
from harness.record import EvidenceError, Journal, JournalWarning, make_evidence, read_evidence, start_run

from tests.harness.verify_support import (
    contract_text,
    entries,
    falsifier,
    harness_env,
    make_project,
    verify_argv,
)
from tests.harness.verify_support import read_evidence as read_evidence_json

# Walks up its parent chain to the `harness verify` process (under -j N an xdist worker sits between)
# and kills it, or its whole process group, with SIGKILL: nothing in the harness runs afterwards. It
# waits for the journal to hold a line first, so under -j 2 the falsifier before it has been recorded.
KILLER_MODULE = textwrap.dedent(
    '''
    import os
    import signal
    import time
    from pathlib import Path


    def _harness_pid():
        pid = os.getppid()
        while pid > 1:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\\0")
            if b"verify" in args and any(b"harness" in a for a in args):
                return pid
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        raise AssertionError("no harness verify process above this falsifier")


    def _after_the_first_result():
        journal = Path(os.environ["FX_JOURNAL"])
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.read_bytes().count(b"\\n") >= 1):
            assert time.monotonic() < deadline, "the first result was never journaled"
            time.sleep(0.05)


    def kills_the_harness():
        _after_the_first_result()
        os.kill(_harness_pid(), signal.SIGKILL)
        time.sleep(5)


    def kills_the_harness_group():
        _after_the_first_result()
        os.killpg(os.getpgid(_harness_pid()), signal.SIGKILL)
        time.sleep(5)
    '''
)


def _killed_run(tmp_path: Path, killer: str, *flags: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    make_project(tmp_path, {"kill.yaml": contract_text("kill-v1", [
        falsifier("FALSIFY-KILL-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-KILL-002", f'{{python: "fx_killer:{killer}"}}'),
        falsifier("FALSIFY-KILL-003", '{python: "fx_falsifiers:holds"}'),
    ])})
    (tmp_path / "fx_killer.py").write_text(KILLER_MODULE)
    directory = tmp_path / "out" / "uncommitted"
    proc = subprocess.run(
        verify_argv("contracts", "--out", "out", *flags), cwd=tmp_path,
        env=harness_env(FX_JOURNAL=str(directory / "results.jsonl")),
        capture_output=True, text=True, timeout=180,
        start_new_session=True,  # killpg of the harness's group must not reach this test's own
    )
    return proc, directory


@pytest.mark.parametrize(("killer", "flags"), [
    ("kills_the_harness", ()),
    ("kills_the_harness_group", ()),
    ("kills_the_harness", ("-j", "2")),
])
def test_a_falsifier_that_sigkills_the_harness_leaves_every_result_so_far_marked_incomplete(
    tmp_path: Path, killer: str, flags: tuple[str, ...]
) -> None:
    proc, directory = _killed_run(tmp_path, killer, *flags)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    evidence = harness.read_evidence(directory)
    assert evidence.complete is False and not evidence.is_full
    ids = [r.id for r in evidence.results]
    assert ids[0] == "FALSIFY-KILL-001" and "FALSIFY-KILL-002" not in ids
    if not flags:
        assert ids == ["FALSIFY-KILL-001"]
    assert evidence.results[0].outcome is Outcome.PASSED
    assert evidence.totals["passed"] == len(ids)
    gate = harness.verdict(evidence)
    assert not gate.passed and gate.exit_code == 130
    # A reader of evidence.json alone (jq, another tool) is told the same: incomplete, not a pass.
    assert read_evidence_json(directory / "evidence.json")["complete"] is False
    # Nothing there claims completeness: the summary and junit of a killed run do not exist.
    assert not (directory / "summary.md").exists() and not (directory / "junit.xml").exists()


def _result(fid: str, outcome: Outcome = Outcome.PASSED) -> FalsifierResult:
    return FalsifierResult(
        id=fid, contract_id="x-v1", invariant=("INV-X-001",), outcome=outcome, reason="r", duration_s=0.5,
        binding=Binding(BindingKind.PYTHON, target="m:f"), counterexample="c" if outcome is Outcome.FALSIFIED else None,
    )


def _running(tmp_path: Path) -> tuple[Path, Journal]:
    from tests.harness.test_verify_evidence import make_contract, make_falsifier

    contract = make_contract(make_falsifier("FALSIFY-X-001"), make_falsifier("FALSIFY-X-002"), make_falsifier("FALSIFY-X-003"))
    skeleton = make_evidence(
        [contract], {}, commit=None, dirty=None, complete=False, started_at="2026-12-01T08:00:00.000+00:00",
        finished_at="2026-12-01T08:00:00.000+00:00", duration_s=0.0, command=["harness", "verify", "contracts"],
        environment={"python": "3.11.7", "os": "Linux", "cpu": "x86_64", "torch": None, "cuda": None, "gpu": None},
        keep_empty=True,
    )
    directory = tmp_path / "uncommitted"
    return directory, start_run(directory, skeleton)


def test_a_running_run_reads_back_as_its_results_so_far(tmp_path: Path) -> None:
    directory, journal = _running(tmp_path)
    assert harness.read_evidence(directory).results == ()
    journal.append(_result("FALSIFY-X-002", Outcome.FALSIFIED))
    journal.append(_result("FALSIFY-X-001"))
    journal.close()
    evidence = harness.read_evidence(directory)
    assert evidence.complete is False
    assert [(r.id, r.outcome) for r in evidence.results] == [("FALSIFY-X-002", Outcome.FALSIFIED), ("FALSIFY-X-001", Outcome.PASSED)]
    assert evidence.totals["falsified"] == 1 and evidence.totals["passed"] == 1
    assert harness.read_evidence(directory / "evidence.json") == evidence


def test_a_torn_last_journal_line_is_ignored_and_said(tmp_path: Path) -> None:
    directory, journal = _running(tmp_path)
    journal.append(_result("FALSIFY-X-001"))
    journal.close()
    with (directory / "results.jsonl").open("a") as fh:
        fh.write(json.dumps({"id": "FALSIFY-X-002", "contract_id": "x-v1"})[:20])  # the write the kill cut off
    with pytest.warns(JournalWarning, match=r"results.jsonl:2: ignored a torn last line"):
        evidence = harness.read_evidence(directory)
    assert [r.id for r in evidence.results] == ["FALSIFY-X-001"] and evidence.complete is False


def test_a_corrupt_journal_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    directory, journal = _running(tmp_path)
    journal.close()
    (directory / "results.jsonl").write_text("garbage\n" + json.dumps({"id": "x"}) + "\n")
    with pytest.raises(EvidenceError, match=r"results.jsonl:1: not a JSON result line"):
        read_evidence(directory)


def test_the_journal_is_dropped_when_the_run_finishes(tmp_path: Path) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", [falsifier("FALSIFY-OK-001", '{python: "fx_falsifiers:holds"}')])})
    proc = subprocess.run(verify_argv("contracts", "--out", "out"), cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    directory = tmp_path / "out" / "uncommitted"
    assert sorted(p.name for p in directory.iterdir()) == ["evidence.json", "junit.xml", "summary.md"]
    assert harness.read_evidence(directory).is_full


def test_verify_keeps_the_files_other_commands_wrote_and_replaces_its_own(tmp_path: Path) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", [falsifier("FALSIFY-OK-001", '{python: "fx_falsifiers:holds"}')])})

    def verify(*flags: str) -> None:
        proc = subprocess.run(verify_argv("contracts", "--out", "out", *flags), cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    verify()
    directory = tmp_path / "out" / "uncommitted"
    before = harness.read_evidence(directory)
    # What `harness teeth --out out` writes beside verify's files, and litter verify owns nothing of.
    (directory / "teeth.json").write_text('{"teeth": true}\n')
    (directory / "teeth.md").write_text("# teeth\n")
    (directory / "stray.txt").write_text("litter")
    verify("-k", "FALSIFY-OK-001")  # a partial run leaves the commit directory's files alone
    assert (directory / "teeth.json").read_text() == '{"teeth": true}\n'
    verify()
    assert (directory / "teeth.json").read_text() == '{"teeth": true}\n'
    assert (directory / "teeth.md").read_text() == "# teeth\n"
    assert sorted(p.name for p in directory.iterdir()) == ["evidence.json", "junit.xml", "summary.md", "teeth.json", "teeth.md"]
    after = harness.read_evidence(directory)
    assert after.is_full and after.started_at != before.started_at
    assert [r.id for r in after.results] == ["FALSIFY-OK-001"]
    assert entries(read_evidence_json(directory / "evidence.json"))["FALSIFY-OK-001"]["outcome"] == "passed"
