"""harness.isolation: the one way every child (validation probe or falsifier) is run and classified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import isolation
from harness.isolation import Exit, child_env, describe_exit, exit_of, run_isolated


def run_sh(tmp_path: Path, script: str, timeout_s: float = 30.0) -> isolation.ProcessRun:
    return run_isolated(["sh", "-c", script], tmp_path, timeout_s, child_env(tmp_path))


def test_exit_status_signal_and_timeout_are_classified_in_one_place(tmp_path: Path) -> None:
    exited = run_sh(tmp_path, "echo bye; exit 3")
    assert (exit_of(exited), exited.output) == (Exit("exited", status=3), "bye\n")
    assert describe_exit(exited, 30) == "exited with status 3 without reporting"
    killed = run_sh(tmp_path, "kill -SEGV $$")
    assert exit_of(killed) == Exit("signal", signal="SIGSEGV")
    assert describe_exit(killed, 30) == "killed by signal SIGSEGV"
    hung = run_sh(tmp_path, "sleep 30", timeout_s=0.5)
    assert (exit_of(hung), hung.returncode) == (Exit("timeout"), None)
    assert describe_exit(hung, 0.5) == "timed out after 0.5s"


def test_stdin_is_dev_null_so_a_child_reading_input_cannot_wait(tmp_path: Path) -> None:
    run = run_sh(tmp_path, "cat; echo read-eof", timeout_s=20)
    assert (exit_of(run), run.output) == (Exit("exited", status=0), "read-eof\n")


def test_only_the_tail_of_a_flood_is_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "OUTPUT_KEEP", 10)
    run = run_sh(tmp_path, "printf '%s' 0123456789abcdefghij")
    assert run.output == "abcdefghij"


def test_every_child_gets_the_repository_and_the_harness_on_pythonpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    env = child_env(tmp_path)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), isolation.HARNESS_PARENT, "/elsewhere"]
    assert env["PYTHONUNBUFFERED"] == "1" and "PYTEST_DISABLE_PLUGIN_AUTOLOAD" not in env


DAEMON = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "        time.sleep(600)\n"
    "    os._exit(0)\n"
    "while not os.path.exists(sys.argv[1]) or not open(sys.argv[1]).read():\n"
    "    time.sleep(0.02)\n"
)


def _gone(pid: int) -> bool:
    """Dead, or a zombie: the supervisor reaps what it kills, so a zombie here would be init's to reap."""
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    os.kill(pid, 9)  # leave nothing running on the machine that ran the test
    return False


@pytest.mark.skipif(not isolation.supervised(), reason="the subreaper supervisor is Linux only")
@pytest.mark.parametrize("end", ["exit", "timeout"])
def test_a_daemon_in_a_new_session_is_ended_with_its_child(tmp_path: Path, end: str) -> None:
    import sys

    pid_file = tmp_path / "daemon.pid"
    script = DAEMON + ("time.sleep(600)\n" if end == "timeout" else "")
    run = run_isolated([sys.executable, "-c", script, str(pid_file)], tmp_path, 1 if end == "timeout" else 30, child_env(tmp_path))
    assert exit_of(run) == (Exit("timeout") if end == "timeout" else Exit("exited", status=0))
    assert _gone(int(pid_file.read_text())), "the double-forked daemon outlived its child"


@pytest.mark.skipif(not isolation.supervised(), reason="the subreaper supervisor is Linux only")
def test_ctrl_c_while_a_child_runs_ends_its_daemons_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "daemon.pid"
    real_wait = subprocess.Popen.wait
    calls = []

    def interrupted_wait(self, timeout=None):  # type: ignore[no-untyped-def]
        calls.append(timeout)
        if len(calls) == 1:  # the harness's wait for the child: Ctrl-C arrives once the daemon runs
            while not pid_file.exists() or not pid_file.read_text():
                time.sleep(0.02)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        run_isolated([sys.executable, "-c", DAEMON + "time.sleep(600)\n", str(pid_file)], tmp_path, 60, child_env(tmp_path))
    assert _gone(int(pid_file.read_text()))


def test_a_program_that_cannot_be_started_raises_like_popen(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_isolated(["no-such-program-isolation"], tmp_path, 10, child_env(tmp_path))
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        run_isolated([str(script)], tmp_path, 10, child_env(tmp_path))
