"""docs/ci/'s GitHub Actions workflow and GitLab CI job parse, have the shape docs/ci/README.md describes
(verify on every push, diff on pull/merge requests, the release audit on tags, reports/ kept as an
artifact), install as README.md says, and name only commands that exist: every `harness ...`,
`pretrain ...` and `python -m ...` in their scripts is checked against the real argparse parsers
(subcommand and every flag) or, for another module, against what this interpreter can import; and each
file validates against its CI system's published schema."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_env import ROOT

GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
INSTALL_HEADING = "## Set up and test (fresh machine, Python 3.11+)"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def readme_install() -> str:
    """The install command README.md prints under its set-up heading."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(INSTALL_HEADING)
    begin = next(i for i in range(start, len(lines)) if lines[i].startswith("```bash")) + 1
    return lines[begin].strip()


# --- the scripts and the commands in them ----------------------------------------------------------

@dataclass(frozen=True)
class Command:
    where: str  # file: job / step, for the failure message
    argv: tuple[str, ...]


_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", "{", "}", "!"}
_REDIRECTS = re.compile(r"^(>>?|<<?<?)&?$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "exec", "time", "command"}


def commands_in(script: str, where: str) -> list[Command]:
    """Each simple command of a shell script, as words, with assignments, redirections and keywords
    around it dropped; `$(...)` substitutions count as one word (what runs inside is checked where it
    stands as a command of its own)."""
    text = script.replace("\\\n", " ")
    found: list[Command] = []
    for line in text.splitlines():
        line = re.sub(r"\$\([^()]*\)", "SUBST", line)  # one level is all these scripts use
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        skip_next = False
        tokens = [*lexer, ";"]
        for i, token in enumerate(tokens):
            if skip_next:
                skip_next = False
                continue
            if token in _SEPARATORS or token.endswith((";", "&&", "||")):
                if words:
                    found.append(Command(where, tuple(words)))
                words = []
            elif _REDIRECTS.match(token):
                skip_next = True  # its target
            elif token.isdigit() and _REDIRECTS.match(tokens[i + 1]):
                continue  # the descriptor of `2> file`
            elif not words and (token in _KEYWORDS or _ASSIGNMENT.match(token) or token == "["):
                continue
            else:
                words.append(token)
    return found


def github_scripts() -> list[tuple[str, str]]:
    data = load(GITHUB)
    scripts = []
    for job_name, job in data["jobs"].items():
        for i, step in enumerate(job["steps"]):
            if "run" in step:
                scripts.append((f"{GITHUB.name}: {job_name} / {step.get('name', i)}", step["run"]))
    return scripts


def gitlab_scripts() -> list[tuple[str, str]]:
    data = load(GITLAB)
    scripts = [(f"{GITLAB.name}: default / before_script", line) for line in data["default"]["before_script"]]
    for job_name, job in data.items():
        if isinstance(job, dict) and "script" in job:
            scripts += [(f"{GITLAB.name}: {job_name} / script", line) for line in job["script"]]
    return scripts


def all_commands() -> list[Command]:
    return [c for where, script in github_scripts() + gitlab_scripts() for c in commands_in(script, where)]


# --- the real parsers ------------------------------------------------------------------------------

@cache
def subparsers_of(program: str) -> dict[str, argparse.ArgumentParser]:
    parser = importlib.import_module(f"{program}.cli").build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def problems_of(program: str, words: tuple[str, ...]) -> list[str]:
    """Why `program words...` would not parse: an unknown subcommand or flag."""
    commands = subparsers_of(program)
    if not words or words[0] not in commands:
        return [f"{program} has no subcommand {words[0] if words else '(none)'!r} (it has {', '.join(sorted(commands))})"]
    parser = commands[words[0]]
    options = {s for a in parser._actions for s in a.option_strings}
    problems = []
    for word in words[1:]:
        if word == "--":
            break
        if word.startswith("-") and not re.fullmatch(r"-[0-9.]+", word) and word.split("=", 1)[0] not in options:
            problems.append(f"`{program} {words[0]}` has no flag {word!r}")
    return problems


def check(command: Command) -> list[str]:
    argv = command.argv
    if argv[0] in ("harness", "pretrain"):
        return problems_of(argv[0], argv[1:])
    if argv[0] in ("python", "python3") and len(argv) > 2 and argv[1] == "-m":
        module = argv[2]
        if module in ("harness", "pretrain"):
            return problems_of(module, argv[3:])
        if importlib.util.find_spec(module) is None:
            return [f"python -m {module}: no such module here"]
    return []


def test_the_command_extraction_reads_shell_as_a_shell_does() -> None:
    script = (
        'read -r a b <<< "$(gh run list --json x)"\n'
        'if [ -z "$a" ] || ! harness diff "x/$a" y --md d.md; then\n'
        "  echo no >&2; exit 0\n"
        "fi\n"
        'KEY=1 harness attest "reports/$(git rev-parse HEAD)" --key "$KEY" 2> err.txt && rm -f err.txt\n'
        "python3 -m pip install torch==2.13.0 && python3 -m pip install -e '.[dev]'  # install\n"
        "harness verify contracts/ \\\n  --out reports | tee log\n"
    )
    argvs = [c.argv for c in commands_in(script, "t")]
    assert ("harness", "diff", "x/$a", "y", "--md", "d.md") in argvs
    assert ("harness", "attest", "reports/SUBST", "--key", "$KEY") in argvs
    assert ("python3", "-m", "pip", "install", "-e", ".[dev]") in argvs
    assert ("harness", "verify", "contracts/", "--out", "reports") in argvs
    assert ("tee", "log") in argvs and ("rm", "-f", "err.txt") in argvs
    assert check(Command("t", ("harness", "verify", "contracts/", "--no-such-flag"))) == [
        "`harness verify` has no flag '--no-such-flag'"
    ]
    assert check(Command("t", ("harness", "frobnicate")))[0].startswith("harness has no subcommand 'frobnicate'")
    assert check(Command("t", ("python3", "-m", "no_such_module_anywhere"))) == ["python -m no_such_module_anywhere: no such module here"]


def test_every_command_in_the_recipes_exists() -> None:
    commands = all_commands()
    named = {c.argv[1] for c in commands if c.argv[0] == "harness"}
    # What the recipes are for; if one disappears, so does the gate it stands for.
    assert {"validate", "verify", "diff", "teeth", "attest", "audit"} <= named, named
    problems = [f"{c.where}: `{shlex.join(c.argv)}`: {p}" for c in commands for p in check(c)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("path", "schema"), [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")], ids=["github", "gitlab"])
def test_each_recipe_matches_its_ci_systems_schema(path: Path, schema: str) -> None:
    """Against the published schemas (GitHub workflows: SchemaStore's; GitLab CI: gitlab-org/gitlab's own),
    as check-jsonschema vendors them (offline): a misspelt key or a wrong type fails here, not in a team's
    first pipeline."""
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_every_script_is_valid_shell(path: Path) -> None:
    for where, script in github_scripts() if path == GITHUB else gitlab_scripts():
        proc = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"{where}: {proc.stderr}"


# --- the shape of each recipe ----------------------------------------------------------------------

def test_the_github_workflow_gates_pushes_pull_requests_and_tags() -> None:
    data = load(GITHUB)
    # YAML 1.1 reads the key `on` as true; GitHub reads it as "on".
    triggers = data.get("on", data.get(True))
    assert set(triggers) == {"push", "pull_request"}
    assert triggers["push"]["branches"] == ["**"] and triggers["push"]["tags"]
    verify, release = data["jobs"]["verify"], data["jobs"]["release"]
    assert "if" not in verify, "verify runs on every push and pull request"
    runs = [s.get("run", "") for s in verify["steps"]]
    assert readme_install() in runs, "the workflow installs as README.md says"
    assert any(r.startswith("harness verify contracts/") for r in runs)
    uploads = [s for s in verify["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert any(s["with"]["path"] == "reports/" and s["with"]["name"] == "harness-reports" for s in uploads)
    (diff,) = [s for s in verify["steps"] if "harness diff" in s.get("run", "")]
    assert "github.event_name == 'pull_request'" in diff["if"]
    assert "gh run download" in diff["run"] and "--name harness-reports" in diff["run"]
    assert verify["permissions"]["actions"] == "read"
    assert release["if"] == "startsWith(github.ref, 'refs/tags/')" and release["needs"] == "verify"
    release_runs = " ".join(s.get("run", "") for s in release["steps"])
    for command in ("harness teeth", "harness attest", 'harness audit --release "$TAG"'):
        assert command in release_runs
    assert readme_install() in [s.get("run", "") for s in release["steps"]]
    # No `${{ }}` inside a script: values reach the shell through env:, so a branch or tag name is never code.
    for job in data["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step.get("name")


def test_the_gitlab_job_gates_pushes_merge_requests_and_tags() -> None:
    data = load(GITLAB)
    assert data["stages"] == ["verify", "compare", "release"]
    assert data["default"]["before_script"] == [readme_install()]
    verify, diff, release = data["verify"], data["diff"], data["release"]
    assert "rules" not in verify, "verify runs in every pipeline"
    assert any(line.startswith("harness verify contracts/") for line in verify["script"])
    assert verify["artifacts"]["paths"] == ["reports/"] and verify["artifacts"]["when"] == "always"
    assert diff["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}] and diff["needs"] == ["verify"]
    assert any("jobs/artifacts/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME/download?job=verify" in line for line in diff["script"])
    assert any(line.startswith("harness diff ") for line in diff["script"])
    assert release["rules"] == [{"if": "$CI_COMMIT_TAG"}]
    script = " ".join(release["script"])
    for command in ("harness teeth", "harness attest", 'harness audit --release "$CI_COMMIT_TAG"'):
        assert command in script
    workflow_ifs = [r["if"] for r in data["workflow"]["rules"]]
    assert '$CI_PIPELINE_SOURCE == "merge_request_event"' in workflow_ifs and "$CI_COMMIT_TAG" in workflow_ifs
