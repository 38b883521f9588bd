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
