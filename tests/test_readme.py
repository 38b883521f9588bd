"""README.md's commands run as printed, and the output it quotes is the output they give.

The incident walk-through is the project's front page: each of its commands runs here in a fresh
directory, exactly as printed (console scripts on PATH, no rewriting), and must exit with the code its
trailing comment states (`# exit N: ...`; no such comment means 0). A comment line right under a
command (`#   text`) quotes that command's output: each must match a line the command printed, with
`...` standing for any text. So the README cannot drift from the code it documents.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from tests.cli_env import ROOT, cli_env

README = ROOT / "README.md"
EXIT_COMMENT = re.compile(r"#\s*exit (\d+)\b")


@dataclass
class Step:
    command: str
    line: int
    exit_code: int = 0
    quoted: list[str] = field(default_factory=list)


def fenced_block(text: str, heading: str) -> tuple[list[str], int]:
    """The lines of the first ```bash block under `heading`, and the README line it starts on."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    begin = next(i for i in range(start, len(lines)) if lines[i].startswith("```bash")) + 1
    end = next(i for i in range(begin, len(lines)) if lines[i].startswith("```"))
    return lines[begin:end], begin + 1


def parse_steps(block: list[str], first_line: int) -> list[Step]:
    steps: list[Step] = []
    for offset, line in enumerate(block):
        if not line.strip():
            continue
        if line.startswith("#"):
            assert steps, f"README.md:{first_line + offset}: a quoted output line before any command"
            steps[-1].quoted.append(line.lstrip("#").strip())
            continue
        command, _, comment = line.partition("  #")
        match = EXIT_COMMENT.search("#" + comment) if comment else None
        steps.append(Step(command.strip(), first_line + offset, int(match.group(1)) if match else 0))
    return steps


def quoted_matches(quote: str, output: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in quote.split("..."))
    return any(re.search(pattern, line) for line in output.splitlines())


def test_parse_steps_reads_exit_codes_and_quotes() -> None:
    steps = parse_steps(["a --x  # exit 2: refused", "#   error: ... here", "", "b  # note"], 10)
    assert [(s.command, s.line, s.exit_code, s.quoted) for s in steps] == [
        ("a --x", 10, 2, ["error: ... here"]),
        ("b", 13, 0, []),
    ]
    assert quoted_matches("error: ... here", "x\nerror: it is here\n")
    assert not quoted_matches("error: ... here", "error: it is there\n")


@pytest.mark.slow
def test_incident_walkthrough_runs_as_printed(tmp_path: Path) -> None:
    block, first_line = fenced_block(README.read_text(encoding="utf-8"), "## The incident, end to end")
    steps = parse_steps(block, first_line)
    assert len(steps) >= 6, "the walk-through lost its steps"
    env = cli_env()
    # The console scripts of the interpreter running the tests, as a user's shell would find them.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for step in steps:
        proc = subprocess.run(
            ["bash", "-c", step.command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == step.exit_code, (
            f"README.md:{step.line}: `{step.command}` exited {proc.returncode}, the README says "
            f"{step.exit_code}\n{output[-3000:]}"
        )
        for quote in step.quoted:
            assert quoted_matches(quote, output), (
                f"README.md:{step.line}: the README quotes {quote!r}, but `{step.command}` printed:\n{output[-3000:]}"
            )

    # The point of the walk-through: the resumed run starts at the loss the checkpoint recorded.
    records = [json.loads(line) for line in (tmp_path / "runs/resume/metrics.jsonl").read_text().splitlines()]
    step0 = next(r for r in records if r.get("step") == 0 and "val_loss" in r)
    header = subprocess.run(
        ["pretrain", "inspect", "runs/fixed.safetensors", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    recorded = float(json.loads(header.stdout)["metadata"]["val_loss"])
    assert step0["val_loss"] == pytest.approx(recorded, rel=0.02)


SYNOPSIS_SECTIONS = ("## The harness CLI", "## pretrain")
FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def synopsis_commands(text: str, heading: str) -> list[tuple[str, str, set[str]]]:
    """(program, subcommand or "", flags) for each command in the plain ``` block under `heading`."""
    lines = text.splitlines()
    start = lines.index(heading)
    begin = next(i for i in range(start, len(lines)) if lines[i] == "```") + 1
    end = next(i for i in range(begin, len(lines)) if lines[i].startswith("```"))
    commands: list[list[str]] = []
    for line in lines[begin:end]:
        text_part = line.split("  #", 1)[0]
        if line.startswith((" ", "\t")) and commands:
            commands[-1].append(text_part)
        elif line.strip():
            commands.append([text_part])
    result = []
    for parts in commands:
        words = " ".join(parts).split()
        # `harness --help` documents the program's own flags; `harness verify ...` a subcommand's.
        subcommand = "" if words[1].startswith("-") else words[1]
        rest = words[1:] if not subcommand else words[2:]
        result.append((words[0], subcommand, set(FLAG.findall(" ".join(rest))) - {"-h", "--help"}))
    return result


def real_options(program: str, subcommand: str) -> list[set[str]]:
    """The option strings of each flag `program subcommand` takes (`{"-o", "--output"}` is one flag)."""
    command = importlib.import_module(f"{program}.cli").build_parser()
    if subcommand:
        subparsers = next(a for a in command._actions if isinstance(a, argparse._SubParsersAction))
        command = subparsers.choices[subcommand]
    return [set(a.option_strings) for a in command._actions if a.option_strings and a.dest != "help"]


@pytest.mark.parametrize("heading", SYNOPSIS_SECTIONS)
def test_cli_synopsis_matches_the_real_flags(heading: str) -> None:
    """Every flag the README's synopsis shows exists, and every flag a command has is shown."""
    commands = synopsis_commands(README.read_text(encoding="utf-8"), heading)
    assert commands, f"no synopsis block under {heading!r}"
    for program, subcommand, shown in commands:
        options = real_options(program, subcommand)
        unknown = shown - set().union(*options)
        assert not unknown, f"README shows {sorted(unknown)} for `{program} {subcommand}`, which has no such flag"
        missing = [sorted(o) for o in options if not o & shown]
        assert not missing, f"`{program} {subcommand}` takes {missing}, missing from README's synopsis"


def test_evidence_example_is_valid_evidence() -> None:
    """The README's abridged evidence.json validates against the schema `harness schema evidence` prints."""
    text = README.read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))
    schema = json.loads(
        subprocess.run(
            [sys.executable, "-m", "harness", "schema", "evidence"],
            cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120, check=True,
        ).stdout
    )
    jsonschema.validate(example, schema)
