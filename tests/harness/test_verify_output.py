"""What `harness verify` and `harness validate` leave behind and print when the input or the world is
hostile: falsifier messages with control characters and lone surrogates, contracts under non-UTF-8
directory names, a closed stdout, SIGTERM during start-up, a full disk, a falsifier that scribbles
over `reports/`, and the umask the evidence must honour."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest

import harness

from tests.harness.verify_support import (
    REPO,
    contract_text,
    entries,
    falsifier,
    harness_env,
    make_project,
    plugin_args,
    read_evidence,
    run_verify,
    verify_argv,
)

EVIDENCE_SET = ["evidence.json", "junit.xml", "summary.md"]

HOSTILE_MODULE = textwrap.dedent(
    r'''
    from pathlib import Path


    def surrogate():
        raise AssertionError("bad \udcff byte")


    def repaints():
        # Retitles the window, erases the line and, after a bare CR, pretends the falsifier passed.
        raise AssertionError("\x1b]0;pwned\x07\x1b[2K\rPASSED \u202eDEILSAF\x1b[31m <b>|`x`|</b>\x00\x0c")


    def clobbers_reports():
        # A falsifier that walks reports/ (cwd-relative, as any test might) and overwrites what it finds.
        for path in Path("reports").rglob("*"):
            if path.is_file():
                path.write_text("garbage")
        (Path("reports") / "uncommitted").mkdir(parents=True, exist_ok=True)
        (Path("reports") / "uncommitted" / "planted.txt").write_text("garbage")
    '''
)

PASSING = [
    falsifier("FALSIFY-OUT-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-OUT-002", '{python: "fx_falsifiers:falsified"}'),
]


def hostile_project(root: Path) -> Path:
    """A project whose falsifiers raise hostile messages, with its contract under a non-UTF-8 directory."""
    contracts = make_project(root, {})
    (root / "fx_hostile.py").write_text(HOSTILE_MODULE)
    odd = Path(os.fsdecode(os.fsencode(str(contracts)) + b"/dir\xff"))
    odd.mkdir()
    (odd / "hostile.yaml").write_text(
        contract_text(
            "hostile-v1",
            [
                falsifier("FALSIFY-HOST-001", '{python: "fx_hostile:surrogate"}'),
                falsifier("FALSIFY-HOST-002", '{python: "fx_hostile:repaints"}'),
                falsifier("FALSIFY-HOST-003", '{python: "fx_falsifiers:holds"}'),
            ],
        )
    )
    return contracts


def test_hostile_messages_and_a_non_utf8_path_are_recorded_escaped_in_all_three_files(tmp_path: Path) -> None:
    hostile_project(tmp_path)
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # falsified, and nothing crashed
    assert "Traceback" not in proc.stderr
    directory = tmp_path / "out" / "uncommitted"
    assert sorted(p.name for p in directory.iterdir()) == EVIDENCE_SET

    evidence = read_evidence(directory / "evidence.json")  # strict UTF-8, schema-valid
    found = entries(evidence)
    assert found["FALSIFY-HOST-001"]["outcome"] == "falsified"
    assert "bad \\udcff byte" in found["FALSIFY-HOST-001"]["reason"]
    assert "\\udcff" in evidence["contracts"][0]["path"]

    ET.parse(directory / "junit.xml")
    cases = {case.name: case for suite in junitparser.JUnitXml.fromfile(str(directory / "junit.xml")) for case in suite}
    assert isinstance(cases["FALSIFY-HOST-002"].result[0], junitparser.Failure)
    assert "\\x1b]0;pwned" in cases["FALSIFY-HOST-002"].result[0].message

    summary = (directory / "summary.md").read_text(encoding="utf-8")
    assert "\x1b" not in summary and "\r" not in summary
    table_row = next(ln for ln in summary.splitlines() if ln.startswith("| `FALSIFY-HOST-002`"))
    assert table_row.endswith("| AssertionError: \\\\x1b\\]0;pwned\\\\x07\\\\x1b\\[2K |")  # shown, escaped, one row

    # The terminal sees no control character: the FALSIFIED line cannot be repainted as PASSED.
    for stream in (proc.stdout, proc.stderr):
        assert not any(c in stream for c in "\x1b\r\x07\x00\x0c\u202e")
    line = next(ln for ln in proc.stdout.splitlines() if "FALSIFY-HOST-002" in ln)
    assert line.startswith("FALSIFIED FALSIFY-HOST-002") and "\\x1b]0;pwned\\x07\\x1b[2K" in line


def test_an_all_passing_run_under_a_non_utf8_directory_exits_0_with_all_three_files(tmp_path: Path) -> None:
    contracts = make_project(tmp_path, {})
    odd = Path(os.fsdecode(os.fsencode(str(contracts)) + b"/\xff"))
    odd.mkdir()
    (odd / "ok.yaml").write_text(contract_text("ok-v1", PASSING[:1]))
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    directory = tmp_path / "out" / "uncommitted"
    assert sorted(p.name for p in directory.iterdir()) == EVIDENCE_SET
    assert read_evidence(directory / "evidence.json")["contracts"][0]["path"] == "contracts/\\udcff/ok.yaml"


def test_plain_pytest_shows_hostile_falsifier_messages_escaped(tmp_path: Path) -> None:
    hostile_project(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "-rA", "contracts"], cwd=tmp_path,
        env=harness_env(), capture_output=True, text=True, errors="backslashreplace", timeout=120,
    )  # pytest itself prints the contract's path with its raw \xff byte
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FALSIFIED FALSIFY-HOST-002" in proc.stdout and "\\x1b]0;pwned\\x07" in proc.stdout
    assert not any(c in proc.stdout + proc.stderr for c in "\x1b\r\x07\x00\u202e")


def test_validate_escapes_file_names_and_messages_it_prints(tmp_path: Path) -> None:
    directory = tmp_path / "contracts"
    directory.mkdir()
    (directory / "evil\x1b[2J\r.yaml").write_text("id: [unclosed\n")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", "contracts"], cwd=tmp_path, env=harness_env(),
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "evil\\x1b[2J\\x0d.yaml" in proc.stdout
    assert "\x1b" not in proc.stdout + proc.stderr and "\r" not in proc.stdout + proc.stderr


def closed_stdout_run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is already gone, as `| head -1` leaves it: every write is EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(argv, cwd=cwd, env=harness_env(), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    return subprocess.CompletedProcess(argv, proc.returncode, "", proc.stderr)


def test_verify_into_a_closed_pipe_still_writes_all_evidence_and_exits_with_the_runs_status(tmp_path: Path) -> None:
    make_project(tmp_path, {"out.yaml": contract_text("out-v1", PASSING)})
    proc = closed_stdout_run(verify_argv("contracts", "--out", "out"), tmp_path)
    assert proc.returncode == 1, proc.stderr  # the run's own status: one falsified
    assert proc.stderr == ""  # quietly: no BrokenPipeError, no 'Exception ignored'
    directory = tmp_path / "out" / "uncommitted"
    assert sorted(p.name for p in directory.iterdir()) == EVIDENCE_SET
    assert set(entries(read_evidence(directory / "evidence.json"))) == {"FALSIFY-OUT-001", "FALSIFY-OUT-002"}


@pytest.mark.parametrize(("text", "code"), [("id: [unclosed\n", 2), (contract_text("ok-v1", PASSING[:1]), 0)])
def test_validate_into_a_closed_pipe_exits_quietly_with_its_status(tmp_path: Path, text: str, code: int) -> None:
    (tmp_path / "c.yaml").write_text(text)
    proc = closed_stdout_run([sys.executable, "-m", "harness", "validate", "--no-bindings", "c.yaml"], tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "Exception ignored" not in proc.stderr


def console_script_argv() -> list[str]:
    """What the installed `harness` console script runs: its entry point from pyproject.toml, called."""
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["harness"]
    module, function = target.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


@pytest.mark.parametrize("launcher", ["python -m harness", "console script"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_is_an_interrupt_like_ctrl_c(tmp_path: Path, launcher: str, signum: int) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING[:1])})
    # A stand-in for a slow heavy import (pytest, jsonschema, torch): it says it started, then sleeps.
    slow = tmp_path / "slow_imports"
    slow.mkdir()
    marker = tmp_path / "importing"
    (slow / "pytest.py").write_text(f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('x')\ntime.sleep(60)\n")
    env = harness_env()
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"].split(os.pathsep)[0], str(slow), *env["PYTHONPATH"].split(os.pathsep)[1:]])
    argv = [*console_script_argv(), "verify", "contracts"] if launcher == "console script" else verify_argv("contracts")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "never reached the slow import"
            time.sleep(0.02)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert err == "harness: interrupted\n"


FULL_DISK_DRIVER = textwrap.dedent(
    """
    import errno, sys
    import harness.record as record

    create = record._create

    def full_disk(path, text):
        if path.name == "summary.md":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        create(path, text)

    record._create = full_disk
    from harness.cli import main
    sys.exit(main())
    """
)


def test_a_full_disk_after_the_run_exits_3_names_the_file_and_keeps_every_result_marked_incomplete(tmp_path: Path) -> None:
    make_project(tmp_path, {"out.yaml": contract_text("out-v1", PASSING)})
    assert run_verify(tmp_path, "contracts", "--out", "out").returncode == 1
    directory = tmp_path / "out" / "uncommitted"

    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_DRIVER, "verify", "contracts", "--out", "out"], cwd=tmp_path,
        env=harness_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "out/uncommitted/summary.md: No space left on device" in proc.stderr
    assert "re-run `harness verify contracts --out out`" in proc.stderr
    # The run's results were journaled as they arrived (test_verify_durable.py), so the directory is this
    # run's, every result in it, marked incomplete (it was the previous set, which this run superseded when
    # it started); nothing half-written, nothing claiming completeness, no staging left over.
    assert "holds the results recorded as they arrived, marked incomplete" in proc.stderr
    evidence = harness.read_evidence(directory)
    assert evidence.complete is False
    assert {r.id: r.outcome.value for r in evidence.results} == {"FALSIFY-OUT-001": "passed", "FALSIFY-OUT-002": "falsified"}
    assert sorted(p.name for p in directory.iterdir()) == ["evidence.json", "results.jsonl"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["uncommitted"]


def test_garbage_a_falsifier_writes_into_the_previous_set_is_replaced_as_a_whole(tmp_path: Path) -> None:
    make_project(tmp_path, {"out.yaml": contract_text("out-v1", PASSING)})
    (tmp_path / "fx_hostile.py").write_text(HOSTILE_MODULE)
    assert run_verify(tmp_path, "contracts", "--out", "reports").returncode == 1
    (tmp_path / "contracts" / "out.yaml").write_text(
        contract_text("out-v1", [*PASSING, falsifier("FALSIFY-OUT-003", '{python: "fx_hostile:clobbers_reports"}')])
    )
    proc = run_verify(tmp_path, "contracts", "--out", "reports")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    directory = tmp_path / "reports" / "uncommitted"
    # The falsifier overwrote the old set and planted a file mid-run; the run's own set replaced all of it.
    assert sorted(p.name for p in directory.iterdir()) == EVIDENCE_SET
    evidence = read_evidence(directory / "evidence.json")
    assert entries(evidence)["FALSIFY-OUT-003"]["outcome"] == "passed"
    ET.parse(directory / "junit.xml")
    assert "garbage" not in (directory / "summary.md").read_text()
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["uncommitted"]


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_evidence_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    make_project(tmp_path, {"ok.yaml": contract_text("ok-v1", PASSING[:1])})
    proc = subprocess.run(
        verify_argv("contracts", "--out", "out"), cwd=tmp_path, env=harness_env(), capture_output=True, text=True,
        timeout=120, umask=umask,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    directory = tmp_path / "out" / "uncommitted"
    assert stat.S_IMODE(directory.stat().st_mode) == dir_mode
    assert {name: stat.S_IMODE((directory / name).stat().st_mode) for name in EVIDENCE_SET} == dict.fromkeys(EVIDENCE_SET, file_mode)
    json.loads((directory / "evidence.json").read_text())
