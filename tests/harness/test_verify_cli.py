"""`harness verify` as a user drives it: exit codes, --strict, -k, -j, output directories,
concurrent runs, Ctrl-C, and `pytest` running contracts through the plugin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.verify_support import (
    REPO,
    contract_text,
    entries,
    fake_installation,
    falsifier,
    harness_env,
    make_project,
    plugin_args,
    read_evidence,
    run_verify,
    verify_argv,
)

PASSING = [
    falsifier("FALSIFY-OK-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-OK-002", '{command: [sh, -c, "exit 0"]}'),
]


def test_all_held_exits_0(tmp_path: Path) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING)})
    proc = run_verify(tmp_path, "contracts/ok.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # --out defaults to reports/ under the current directory.
    evidence = read_evidence(tmp_path / "reports" / "uncommitted" / "evidence.json")
    assert evidence["totals"]["passed"] == 2
    assert "harness: 2 passed, 0 falsified, 0 error, 0 not_run, 0 deferred" in proc.stdout


def test_invalid_contract_exits_2_runs_nothing_and_names_file_and_line(tmp_path: Path) -> None:
    broken = contract_text("broken-v1", PASSING).replace("FALSIFY-OK-002", "FALSIFY-ok-2")
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING[:1]), "broken.yaml": broken})
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 2
    assert "contracts/broken.yaml:" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("contracts/broken.yaml:"))
    assert line.split(":")[1].isdigit()
    assert "nothing was run" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_strict_fails_on_not_run_and_deferred(tmp_path: Path) -> None:
    cases = [
        PASSING[0],
        falsifier("FALSIFY-OK-003", '{python: "fx_falsifiers:holds"}', "requires: {packages: [no_such_package_fx]}"),
        falsifier("FALSIFY-OK-004", '{python: "fx_falsifiers:holds"}', 'deferred: {reason: "later", until: 2999-12-31}'),
    ]
    make_project(tmp_path, {"c.yaml": contract_text("strict-v1", cases)})
    lenient = run_verify(tmp_path, "contracts", "--out", "out")
    strict = run_verify(tmp_path, "contracts", "--out", "out", "--strict")
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert strict.returncode == 1
    totals = read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")["totals"]
    assert (totals["not_run"], totals["deferred"]) == (1, 1)


def test_k_selects_by_falsifier_contract_or_invariant_id(tmp_path: Path) -> None:
    a = contract_text("alpha-v1", [falsifier("FALSIFY-ALPHA-001", '{python: "fx_falsifiers:holds"}', attacks="INV-ALPHA-001")], ("INV-ALPHA-001",))
    b = contract_text(
        "beta-v1",
        [
            falsifier("FALSIFY-BETA-001", '{python: "fx_falsifiers:holds"}', attacks="INV-BETA-001"),
            falsifier("FALSIFY-BETA-002", '{python: "fx_falsifiers:falsified"}', attacks="INV-BETA-002"),
        ],
        ("INV-BETA-001", "INV-BETA-002"),
    )
    make_project(tmp_path, {"a.yaml": a, "b.yaml": b})
    for pattern, expected, code in [
        ("FALSIFY-BETA-00?", {"FALSIFY-BETA-001", "FALSIFY-BETA-002"}, 1),  # glob on the falsifier id
        ("alpha", {"FALSIFY-ALPHA-001"}, 0),  # substring of the contract id
        ("INV-BETA-001", {"FALSIFY-BETA-001"}, 0),  # the attacked invariant
    ]:
        proc = run_verify(tmp_path, "contracts", "--out", "out", "-k", pattern)
        assert proc.returncode == code, (pattern, proc.stdout, proc.stderr)
        # A selected run is published apart from the commit's evidence (test_verify_partial.py), at the path printed.
        out = tmp_path / proc.stdout.rsplit("evidence: ", 1)[1].strip()
        assert out.parent.parent == tmp_path / "out" / "uncommitted" / "partial", proc.stdout
        assert set(entries(read_evidence(out))) == expected, pattern
    nothing = run_verify(tmp_path, "contracts", "--out", "out", "-k", "NO-SUCH-ID")
    assert nothing.returncode == 2
    assert "no falsifier matches -k NO-SUCH-ID" in nothing.stderr


def test_parallel_run_records_the_same_results_as_serial(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-PAR-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-PAR-002", '{python: "fx_falsifiers:falsified"}'),
        falsifier("FALSIFY-PAR-003", '{python: "fx_falsifiers:raises"}'),
        falsifier("FALSIFY-PAR-004", '{python: "fx_falsifiers:exits"}'),
        falsifier("FALSIFY-PAR-005", '{python: "fx_falsifiers:segfaults"}'),
        falsifier("FALSIFY-PAR-006", '{command: [sh, -c, "echo 4 passed"], count_pattern: "(\\\\d+) passed"}'),
    ]
    make_project(tmp_path, {"par.yaml": contract_text("par-v1", cases)})
    serial = run_verify(tmp_path, "contracts", "--out", "serial", "-j", "1")
    parallel = run_verify(tmp_path, "contracts", "--out", "parallel", "-j", "2")
    assert serial.returncode == parallel.returncode == 1

    def essence(out: str) -> list[tuple[str, str, str, object]]:
        evidence = read_evidence(tmp_path / out / "uncommitted" / "evidence.json")
        return [(f["id"], f["outcome"], f["reason"], f["tests_matched"]) for f in entries(evidence).values()]

    assert essence("parallel") == essence("serial")
    assert len(essence("parallel")) == len(cases)


def test_two_concurrent_runs_into_one_directory_both_leave_valid_files(tmp_path: Path) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING)})
    procs = [
        subprocess.Popen(verify_argv("contracts", "--out", "out"), cwd=tmp_path, env=harness_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
    directory = tmp_path / "out" / "uncommitted"
    read_evidence(directory / "evidence.json")
    assert sorted(p.name for p in directory.iterdir()) == ["evidence.json", "junit.xml", "summary.md"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


def test_evidence_goes_under_the_full_commit_and_records_dirtiness(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project, {"ok.yaml": contract_text("ok-v1", PASSING)})
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "fixture")
    sha = _git(project, "rev-parse", "HEAD")
    out = tmp_path / "evidence"  # outside the repository, so writing it does not dirty the tree
    assert run_verify(project, "contracts", "--out", str(out)).returncode == 0
    clean = read_evidence(out / sha / "evidence.json")
    assert (clean["commit"], clean["dirty"]) == (sha, False)

    (project / "fx_falsifiers.py").write_text((project / "fx_falsifiers.py").read_text() + "\n# edit\n")
    assert run_verify(project, "contracts", "--out", str(out)).returncode == 0
    assert read_evidence(out / sha / "evidence.json")["dirty"] is True


def test_outside_a_git_checkout_evidence_is_uncommitted(tmp_path: Path) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING)})
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 0
    assert read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")["commit"] is None
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["uncommitted"]


def interrupt_while_hanging(tmp_path: Path, cases: list[str], signum: int) -> tuple[int, str, str, int]:
    """Run verify, send `signum` once the hanging falsifier has started; (exit code, stdout, stderr, its pid)."""
    make_project(tmp_path, {"interrupt.yaml": contract_text("interrupt-v1", cases)})
    pid_file = tmp_path / "hang.pid"
    proc = subprocess.Popen(
        verify_argv("contracts", "--out", "out"), cwd=tmp_path, env=harness_env(FX_PID_FILE=str(pid_file)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the hanging falsifier never started"
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err, int(pid_file.read_text())


def test_ctrl_c_writes_incomplete_evidence_and_exits_130(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-INT-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-INT-002", '{python: "fx_falsifiers:hang"}', "timeout_s: 120"),
        falsifier("FALSIFY-INT-003", '{python: "fx_falsifiers:holds"}'),
    ]
    code, out, err, pid = interrupt_while_hanging(tmp_path, cases, signal.SIGINT)
    assert code == 130, out + err
    evidence = read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")
    assert evidence["complete"] is False
    assert set(entries(evidence)) == {"FALSIFY-INT-001"}
    assert "INTERRUPTED" in out
    # The hanging falsifier's process was killed with the run, not left behind.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_pytest_runs_contract_files_through_the_plugin(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-PLG-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-PLG-002", '{python: "fx_falsifiers:falsified"}', attacks="INV-PLG-002"),
        falsifier("FALSIFY-PLG-003", '{python: "fx_falsifiers:holds"}', "requires: {packages: [no_such_package_fx]}"),
    ]
    make_project(tmp_path, {"plg.yaml": contract_text("plg-v1", cases, ("INV-FX-001", "INV-PLG-002"))})
    # Ordinary YAML next to contracts is not claimed by the plugin.
    (tmp_path / "contracts" / "settings.yaml").write_text("lr: 0.1\nsteps: 10\n")
    base = [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "-rs"]
    proc = subprocess.run([*base, "contracts"], cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed, 1 skipped" in proc.stdout
    assert "FALSIFIED FALSIFY-PLG-002" in proc.stdout and "1 + 1 was 2, predicted 3" in proc.stdout
    assert "not_run: requires package no_such_package_fx" in proc.stdout
    # pytest's own -k sees the attacked invariant ids.
    only = subprocess.run([*base, "contracts", "-k", "INV-PLG-002"], cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120)
    assert "1 failed, 2 deselected" in only.stdout, only.stdout + only.stderr


def test_plugin_is_inert_in_an_ordinary_test_run(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'plain'\n")
    (tmp_path / "config.yaml").write_text("id: not-a-contract\nsteps: 3\n")
    (tmp_path / "test_plain.py").write_text("def test_it():\n    assert True\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_verify_is_a_subcommand_of_the_harness_cli() -> None:
    from harness.cli import build_parser

    args = build_parser().parse_args(["verify", "contracts", "-k", "X", "-j", "2", "--strict", "--out", "d"])
    assert (args.paths, args.select, args.jobs, args.strict, args.out) == (["contracts"], ["X"], 2, True, "d")
    assert args.func.__module__ == "harness.verify_cli"


def test_schema_subcommand_prints_the_evidence_schema() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "schema", "evidence"], cwd=REPO, env=harness_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_pytest_reports_an_invalid_contract_as_a_collection_error_with_its_line(tmp_path: Path) -> None:
    broken = contract_text("broken-v1", PASSING).replace("attacks: [INV-FX-001]", "attacks: [INV-NOPE-001]", 1)
    make_project(tmp_path, {"broken.yaml": broken})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "contracts"],
        cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr  # pytest: errors during collection
    assert "INV-NOPE-001" in proc.stdout
    assert "contracts/broken.yaml:" in proc.stdout
    assert "harness validate" in proc.stdout


def test_terminal_output_shows_a_progress_bar_and_the_same_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from harness.model import Binding, BindingKind, FalsifierResult, Outcome
    from harness.verify_cli import Display

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    stream = Terminal()
    display = Display(2, stream)
    assert display._progress is not None  # rich is driving a live bar
    binding = Binding(BindingKind.PYTHON, target="m:f")
    display.result(FalsifierResult("FALSIFY-A-001", "a-v1", ("INV-A-001",), Outcome.PASSED, "ok", 0.4, binding))
    display.result(FalsifierResult("FALSIFY-A-002", "a-v1", ("INV-A-001",), Outcome.NOT_RUN, "requires CUDA", 0.0, binding))
    display.close()
    text = stream.getvalue()
    assert "PASSED FALSIFY-A-001 (0.4s)" in text
    assert "NOT_RUN FALSIFY-A-002 (0.0s): requires CUDA" in text


def test_installed_entry_point_makes_plain_pytest_run_contracts(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project, {"ok.yaml": contract_text("ok-v1", [*PASSING, falsifier("FALSIFY-OK-003", '{python: "fx_falsifiers:falsified"}')])})
    site = fake_installation(tmp_path / "site")
    env = harness_env()
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(site)])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "contracts"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout + proc.stderr
    # verify's own session must not register the plugin twice when the entry point exists.
    run = subprocess.run(verify_argv("contracts", "--out", "out"), cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert read_evidence(project / "out" / "uncommitted" / "evidence.json")["totals"]["falsified"] == 1


def test_a_run_where_no_falsifier_ran_says_so_and_fails_under_strict(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-NONE-001", '{python: "fx_falsifiers:holds"}', "requires: {packages: [no_such_package_fx]}"),
        falsifier("FALSIFY-NONE-002", '{python: "fx_falsifiers:holds"}', 'deferred: {reason: "later", until: 2999-12-31}'),
    ]
    make_project(tmp_path, {"c.yaml": contract_text("none-ran-v1", cases)})
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    # Nothing falsified or in error: exit 0 by the exit-code contract, but never silently.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no falsifier ran (1 not_run, 1 deferred)" in proc.stderr
    directory = tmp_path / "out" / "uncommitted"
    assert read_evidence(directory / "evidence.json")["totals"]["passed"] == 0
    assert "Nothing verified" in (directory / "summary.md").read_text()
    strict = run_verify(tmp_path, "contracts", "--out", "out", "--strict")
    assert strict.returncode == 1, strict.stdout + strict.stderr


def test_out_that_is_a_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING)})
    (tmp_path / "taken").write_text("not a directory")
    proc = run_verify(tmp_path, "contracts", "--out", "taken")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "harness verify: --out taken:" in proc.stderr and "not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "PASSED" not in proc.stdout  # refused up front, not after the run
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_sigterm_stops_the_run_like_ctrl_c_and_leaves_no_falsifier_running(tmp_path: Path) -> None:
    # A cancelled CI job sends SIGTERM: the hanging falsifier's process group must die with the run.
    cases = [
        falsifier("FALSIFY-TERM-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-TERM-002", '{python: "fx_falsifiers:hang"}', "timeout_s: 120"),
    ]
    code, out, err, pid = interrupt_while_hanging(tmp_path, cases, signal.SIGTERM)
    assert code == 130, out + err
    evidence = read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")
    assert evidence["complete"] is False
    assert set(entries(evidence)) == {"FALSIFY-TERM-001"}
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)