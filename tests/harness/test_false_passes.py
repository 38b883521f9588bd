"""Issue #10, section 1: every path to a false `passed` found so far, reproduced through a real `harness verify`.

Each case here gave `passed` (or left a process running) before the fix: an interrupted pytest session,
a result forged by the falsifier's own code, and a daemon that escaped the falsifier's process group.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.verify_support import contract_text, entries, falsifier, make_project, read_evidence, run_verify

ATTACKS = textwrap.dedent(
    '''
    import atexit
    import json
    import os
    import sys
    import time
    from pathlib import Path


    def forge_result_file():
        # The child's result path is its argv[2]: write a pass there and leave before the child does.
        Path(sys.argv[2]).write_text(json.dumps({"outcome": "passed", "reason": "forged", "counterexample": None}))
        os._exit(0)


    def forge_in_atexit():
        def forge():
            Path(sys.argv[2]).write_text(json.dumps({"outcome": "passed", "reason": "forged", "counterexample": None}))
        atexit.register(forge)
        assert False, "the invariant is broken"


    def _daemon(name):
        # fork, setsid, fork: the grandchild sits in a new session, out of reach of killpg.
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                Path(name).write_text(str(os.getpid()))
                time.sleep(600)
                os._exit(0)
            os._exit(0)
        deadline = time.monotonic() + 20
        while not Path(name).exists() and time.monotonic() < deadline:
            time.sleep(0.02)


    def daemon_then_pass():
        _daemon("daemon-pass.pid")


    def daemon_then_exit():
        _daemon("daemon-exit.pid")
        os._exit(0)


    def daemon_then_hang():
        _daemon("daemon-hang.pid")
        time.sleep(600)
    '''
)

INTERRUPTED_TESTS = textwrap.dedent(
    '''
    def test_1():
        pass


    def test_2():
        raise KeyboardInterrupt


    def test_3():
        assert False
    '''
)

EXITED_TESTS = INTERRUPTED_TESTS.replace("raise KeyboardInterrupt", 'import pytest; pytest.exit("stop", returncode=0)')

SKIPPING_TESTS = textwrap.dedent(
    '''
    import pytest


    def test_runs():
        pass


    @pytest.mark.skip(reason="needs the 7B checkpoint")
    def test_needs_checkpoint():
        pass
    '''
)

FORGING_TESTS = textwrap.dedent(
    '''
    import json
    import os


    def test_forges_the_count_file():
        counts = {"collected": 5, "passed": 5, "failed": 0, "skipped": 0, "errors": 0,
                  "collect_errors": [], "failures": [], "exitstatus": 0}
        with open(os.environ["HARNESS_COUNT_FILE"], "w") as handle:
            json.dump(counts, handle)
        os._exit(0)


    def test_broken():
        assert False
    '''
)

CASES = [
    falsifier("FALSIFY-FP-001", '{pytest: "tests/test_interrupted.py"}'),
    falsifier("FALSIFY-FP-002", '{pytest: "tests/test_exited.py"}'),
    falsifier("FALSIFY-FP-003", '{pytest: "tests/test_skipping.py"}'),
    falsifier("FALSIFY-FP-004", '{pytest: "tests/test_forging.py"}'),
    falsifier("FALSIFY-FP-010", '{python: "fx_attacks:forge_result_file"}'),
    falsifier("FALSIFY-FP-011", '{python: "fx_attacks:forge_in_atexit"}'),
    falsifier("FALSIFY-FP-020", '{python: "fx_attacks:daemon_then_pass"}'),
    falsifier("FALSIFY-FP-021", '{python: "fx_attacks:daemon_then_exit"}'),
    falsifier("FALSIFY-FP-022", '{python: "fx_attacks:daemon_then_hang"}', "timeout_s: 5"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("attacks")
    make_project(root, {"fp.yaml": contract_text("fp-v1", CASES)})
    (root / "fx_attacks.py").write_text(ATTACKS)
    for name, text in [
        ("test_interrupted.py", INTERRUPTED_TESTS), ("test_exited.py", EXITED_TESTS),
        ("test_skipping.py", SKIPPING_TESTS), ("test_forging.py", FORGING_TESTS),
    ]:
        (root / "tests" / name).write_text(text)
    proc = run_verify(root, "contracts", "--out", "out", "-j", "2", timeout=300)
    evidence = root / "out" / "uncommitted" / "evidence.json"
    assert evidence.exists(), proc.stdout + proc.stderr
    return proc, read_evidence(evidence), root


def result(run: tuple[Any, dict[str, Any], Path], fid: str) -> dict[str, Any]:
    return entries(run[1])[fid]


def test_the_run_fails(run) -> None:
    assert run[0].returncode == 1, run[0].stdout + run[0].stderr


def test_a_keyboard_interrupt_in_a_bound_test_is_an_error_not_a_pass(run) -> None:
    r = result(run, "FALSIFY-FP-001")
    assert r["outcome"] == "error", r["reason"]
    assert "interrupted" in r["reason"] and "KeyboardInterrupt" in r["reason"]
    assert (r["tests_matched"], r["tests_executed"]) == (3, 1)


def test_pytest_exit_with_status_zero_in_a_bound_test_is_an_error_not_a_pass(run) -> None:
    r = result(run, "FALSIFY-FP-002")
    assert r["outcome"] == "error", r["reason"]
    assert "interrupted" in r["reason"] and "stop" in r["reason"]
    assert "2 of 3 matched tests never ran" in r["reason"]


def test_a_skip_is_counted_as_a_skip_with_its_reason(run) -> None:
    r = result(run, "FALSIFY-FP-003")
    assert r["outcome"] == "passed", r["reason"]
    assert (r["tests_matched"], r["tests_executed"], r["tests_skipped"], r["tests_failed"]) == (2, 1, 1, 0)
    assert "needs the 7B checkpoint" in r["reason"]


def test_a_bound_test_that_forges_the_count_file_is_an_error_not_a_pass(run) -> None:
    r = result(run, "FALSIFY-FP-004")
    assert r["outcome"] == "error", r["reason"]
    assert r["tests_executed"] != 5
    assert "result record" in r["reason"]


def test_a_python_falsifier_that_writes_a_pass_to_its_result_path_is_an_error(run) -> None:
    r = result(run, "FALSIFY-FP-010")
    assert r["outcome"] == "error", r["reason"]
    assert "forged" in r["reason"] or "not authentic" in r["reason"]


def test_an_atexit_hook_cannot_turn_an_assertion_into_a_pass(run) -> None:
    r = result(run, "FALSIFY-FP-011")
    assert r["outcome"] == "falsified", r["reason"]
    assert "the invariant is broken" in r["counterexample"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie no one has reaped yet is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


@pytest.mark.parametrize(
    ("fid", "pid_file", "outcome"),
    [
        ("FALSIFY-FP-020", "daemon-pass.pid", "passed"),
        ("FALSIFY-FP-021", "daemon-exit.pid", "error"),
        ("FALSIFY-FP-022", "daemon-hang.pid", "error"),
    ],
)
def test_a_double_forked_daemon_does_not_outlive_its_falsifier(run, fid: str, pid_file: str, outcome: str) -> None:
    assert result(run, fid)["outcome"] == outcome, result(run, fid)["reason"]
    pid = int((run[2] / pid_file).read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, 9)  # leave no daemon behind on the test machine either
        pytest.fail(f"the daemon {pid} of {fid} is still running after verify returned")
