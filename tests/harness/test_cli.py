"""The `harness` command itself: a help text written for its users, and --version."""

from __future__ import annotations

import subprocess
import sys

import harness
from harness.cli import version

from tests.harness.verify_support import REPO, harness_env


def harness_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=REPO, env=harness_env(), capture_output=True, text=True, timeout=60
    )


def test_help_describes_the_tool_its_commands_and_exit_codes_to_a_user() -> None:
    proc = harness_cli("--help")
    assert proc.returncode == 0, proc.stderr
    description = proc.stdout.split("\n\n")[1]
    assert description.startswith("Check contracts") and "evidence" in description
    assert "wired here" not in proc.stdout and "COMMAND_MODULES" not in proc.stdout  # the maintainers' note is a comment
    for command in ("validate", "verify", "schema"):
        assert f"    {command} " in proc.stdout
    for code in ("0", "1", "2", "3", "130"):
        assert f"\n  {code} " in proc.stdout


def test_help_examples_run_as_printed() -> None:
    proc = harness_cli("--help")
    examples = [line.split("  ")[1].strip() for line in proc.stdout.splitlines() if line.startswith("  harness ")]
    assert "harness validate contracts/" in examples and "harness schema evidence" in examples
    # The verify examples run this repository's whole contract suite: tests/test_repository_contracts.py does.
    for example in ("harness validate contracts/", "harness schema evidence"):
        run = harness_cli(*example.split()[1:])
        assert run.returncode == 0, run.stdout + run.stderr


def test_version_prints_the_version_and_exits_0() -> None:
    proc = harness_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"harness {version()}\n"
    assert version() in (harness.__version__, __import__("importlib.metadata").metadata.version("contract-harness"))
