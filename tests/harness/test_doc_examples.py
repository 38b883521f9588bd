"""The `harness validate` sessions in docs/contract-format.md are replayed and must print what the doc shows.

A console block is a list of `$ COMMAND` lines each followed by its output. `cat FILE` blocks
write FILE (its shown content), `harness validate ...` runs this checkout's CLI from a fresh
project folder (one holding pyproject.toml) and must print the shown lines (stdout, then the
stderr count line), and `echo $?` must show its exit status.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_env import cli_env

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "contract-format.md"


def sessions() -> list[list[tuple[str, list[str]]]]:
    blocks = [b.split("```", 1)[0] for b in DOC.read_text(encoding="utf-8").split("```console\n")[1:]]
    out = []
    for block in blocks:
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"output before any command in a console block of {DOC}"
                steps[-1][1].append(line)
        out.append(steps)
    return out


SESSIONS = sessions()


def test_the_doc_shows_a_validate_session() -> None:
    assert any(cmd.startswith("harness validate") for steps in SESSIONS for cmd, _ in steps)


@pytest.mark.parametrize("steps", SESSIONS, ids=[f"block{i}" for i in range(len(SESSIONS))])
def test_console_session_prints_what_the_doc_shows(tmp_path: Path, steps: list[tuple[str, list[str]]]) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    status: int | None = None
    for command, shown in steps:
        argv = shlex.split(command)
        if argv[0] == "cat":
            (tmp_path / argv[1]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / argv[1]).write_text("".join(f"{line}\n" for line in shown))
        elif argv[:2] == ["harness", "validate"]:
            proc = subprocess.run(
                [sys.executable, "-m", "harness", *argv[1:]],
                cwd=tmp_path, env=cli_env(REPO), capture_output=True, text=True, timeout=120,
            )
            assert proc.stdout.splitlines() + proc.stderr.splitlines() == shown, proc.stdout + proc.stderr
            status = proc.returncode
        elif command == "echo $?":
            assert shown == [str(status)]
        else:
            pytest.fail(f"{DOC} shows a command this test cannot replay: {command}")
