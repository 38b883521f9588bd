"""`harness validate`: every class of problem is reported as FILE:LINE: ID: message, all of them, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

import harness.bindings as bindings_module
from harness.cli import main
from harness.model import BindingKind
from harness.validate import default_test_paths, find_repo_root, validate, validate_report

from tests.cli_env import cli_env

REPO = Path(__file__).resolve().parents[2]

CHECKS_PY = '''\
def holds():
    return None

def needs_argument(x):
    return x

class Gate:
    @staticmethod
    def check():
        return None

NOT_CALLABLE = 3
'''

TESTS_PY = '''\
import pytest

def test_alpha():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_beta(n):
    pass

@pytest.mark.slow
def test_gamma():
    pass
'''

VALID = """\
id: hv-demo-v1
version: 1.0.0
title: Demo contract
description: |
  Free text.
references:
  - "plain reference"
  - {title: A page, url: "https://example.com/x"}
changelog:
  - {version: 1.0.0, date: 2026-11-24, change: First version.}
invariants:
  - id: INV-HV-DEMO-001
    kind: safety
    statement: It holds.
    guards: [hvfix.checks:holds, hvfix.checks:Gate.check]
    proof_obligations: [The error names both sides.]
  - id: INV-HV-DEMO-002
    kind: bound
    statement: It is bounded.
falsifiers:
  - id: FALSIFY-HV-DEMO-001
    attacks: [INV-HV-DEMO-001]
    prediction: holds returns.
    if_fails: It does not hold.
    binding: {python: hvfix.checks:holds}
  - id: FALSIFY-HV-DEMO-002
    attacks: [INV-HV-DEMO-001, INV-HV-DEMO-002]
    prediction: test_beta passes twice.
    if_fails: It is unbounded.
    binding: {pytest: "tests/test_things.py::test_beta", min_tests: 2}
  - id: FALSIFY-HV-DEMO-003
    attacks: [INV-HV-DEMO-002]
    prediction: the slow tests pass.
    if_fails: It is unbounded.
    binding: {pytest: {k: "slow or alpha", paths: [tests]}, min_tests: 2}
  - id: FALSIFY-HV-DEMO-004
    attacks: [INV-HV-DEMO-002]
    prediction: the command passes.
    if_fails: It is unbounded.
    binding: {command: [python, -c, "print('3 passed')"], count_pattern: "(\\\\d+) passed", min_tests: 3}
    requires: {cuda: true, packages: [transformers], min_memory_gib: 4}
    timeout_s: 120
    deferred: {reason: needs the 7B checkpoint, until: 2027-01-31}
"""

# VALID with its pytest bindings swapped for python ones (same lines): for tests about other
# bindings, so they do not pay for a pytest collection run.
PY_ONLY = VALID.replace(
    'binding: {pytest: "tests/test_things.py::test_beta", min_tests: 2}', "binding: {python: hvfix.checks:holds}"
).replace('binding: {pytest: {k: "slow or alpha", paths: [tests]}, min_tests: 2}', "binding: {python: hvfix.checks:holds}")
assert "pytest:" not in PY_ONLY

TODAY = date(2026, 11, 24)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A tiny repository: pyproject.toml, an importable package with bindable functions, a test file."""
    root = tmp_path / "repo"
    (root / "hvfix").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'hvfix'\n")
    (root / "hvfix" / "__init__.py").write_text("")
    (root / "hvfix" / "checks.py").write_text(CHECKS_PY)
    (root / "tests").mkdir()
    (root / "tests" / "test_things.py").write_text(TESTS_PY)
    (root / "contracts").mkdir()
    return root


def write(root: Path, text: str, name: str = "demo.yaml") -> Path:
    path = root / "contracts" / name
    path.write_text(textwrap.dedent(text))
    return path


def line(text: str, fragment: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `fragment`."""
    hits = [i for i, l in enumerate(textwrap.dedent(text).splitlines(), 1) if fragment in l]
    assert len(hits) >= occurrence, f"{fragment!r} not in the contract text"
    return hits[occurrence - 1]


def problems_of(*paths: Path, bindings: bool = True) -> list[str]:
    # bindings=False where a test is about another check: resolving bindings costs a pytest run.
    _, problems = validate(list(paths), today=TODAY, check_bindings=bindings)
    return [str(p) for p in problems]


def assert_problem(problems: list[str], path: Path, line_no: int, subject: str, *fragments: str) -> None:
    prefix = f"{path}:{line_no}: {subject}: "
    matching = [p for p in problems if p.startswith(prefix) and all(f in p for f in fragments)]
    assert matching, f"no problem starting {prefix!r} containing {fragments}; got:\n" + "\n".join(problems)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


# --- the valid case -------------------------------------------------------------------------------

def test_valid_contract_exits_0_with_summary(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(repo, VALID)
    code, out, _ = run_cli(capsys, str(repo / "contracts"))
    assert code == 0, out
    assert out == ["1 contract, 2 invariants, 4 falsifiers: valid"]


def test_valid_contract_becomes_model_values(repo: Path) -> None:
    path = write(repo, VALID)
    result = validate_report([path], today=TODAY)
    assert result.problems == ()
    (contract,) = result.contracts
    assert result.roots == {"hv-demo-v1": repo.resolve()}
    assert contract.path == "contracts/demo.yaml"
    assert len(contract.sha256) == 64
    assert contract.invariants[0].location.path == "contracts/demo.yaml"
    assert contract.invariants[1].location.line == line(VALID, "INV-HV-DEMO-002", 1)
    f1, f2, f3, f4 = contract.falsifiers
    assert f1.binding.kind is BindingKind.PYTHON and f1.binding.target == "hvfix.checks:holds"
    assert f2.binding.kind is BindingKind.PYTEST and f2.binding.min_tests == 2
    assert f3.binding.k == "slow or alpha" and f3.binding.paths == ("tests",)
    assert f4.binding.argv == ("python", "-c", "print('3 passed')") and f4.binding.count_pattern == r"(\d+) passed"
    assert f4.requires.cuda and f4.requires.packages == ("transformers",) and f4.requires.min_memory_gib == 4.0
    assert f4.timeout_s == 120.0 and f1.timeout_s == 300.0
    assert f4.deferred is not None and f4.deferred.until == date(2027, 1, 31)
    assert f1.location.line == line(VALID, "FALSIFY-HV-DEMO-001")


# --- schema problems -------------------------------------------------------------------------------

def test_unknown_keys_get_did_you_mean(repo: Path) -> None:
    text = VALID.replace("title: Demo contract", "tittle: Demo contract").replace(
        "    timeout_s: 120", "    timeuot_s: 120"
    ).replace('paths: [tests]}', 'pths: [tests]}')
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, line(text, "tittle"), "hv-demo-v1", "unknown key 'tittle'", "did you mean 'title'?")
    assert_problem(problems, path, 1, "hv-demo-v1", "missing required key 'title'")
    assert_problem(problems, path, line(text, "timeuot_s"), "FALSIFY-HV-DEMO-004", "unknown key 'timeuot_s'", "'timeout_s'")
    assert_problem(problems, path, line(text, "pths"), "FALSIFY-HV-DEMO-003", "unknown key 'pths'", "'paths'")
    assert_problem(problems, path, line(text, "pths"), "FALSIFY-HV-DEMO-003", "missing required key 'paths'")


def test_every_missing_key_is_reported(repo: Path) -> None:
    text = VALID.replace("    prediction: holds returns.\n    if_fails: It does not hold.\n", "")
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    falsifier_line = line(text, "id: FALSIFY-HV-DEMO-001")
    assert_problem(problems, path, falsifier_line, "FALSIFY-HV-DEMO-001", "missing required key 'prediction'")
    assert_problem(problems, path, falsifier_line, "FALSIFY-HV-DEMO-001", "missing required key 'if_fails'")


def test_wrong_types_and_forms_name_the_key(repo: Path) -> None:
    text = (
        VALID.replace("version: 1.0.0\ntitle", "version: 1.0\ntitle")
        .replace("kind: bound", "kind: bonud")
        .replace("id: INV-HV-DEMO-002", "id: inv-hv-demo-002")
        .replace("timeout_s: 120", "timeout_s: -5")
    )
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, 2, "hv-demo-v1", "version must be a string", 'quote it: "1.0"')
    assert_problem(problems, path, line(text, "kind: bonud"), "inv-hv-demo-002", "'bonud' is not one of", "did you mean 'bound'?")
    assert_problem(problems, path, line(text, "inv-hv-demo-002"), "inv-hv-demo-002", "INV-NAME-001")
    assert_problem(problems, path, line(text, "timeout_s: -5"), "FALSIFY-HV-DEMO-004", "timeout_s must be > 0")


def test_nan_and_infinite_numbers_are_refused(repo: Path) -> None:
    text = VALID.replace("timeout_s: 120", "timeout_s: .nan").replace("min_memory_gib: 4", "min_memory_gib: .inf")
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, line(text, ".nan"), "FALSIFY-HV-DEMO-004", "timeout_s must be a finite number")
    assert_problem(problems, path, line(text, ".inf"), "FALSIFY-HV-DEMO-004", "min_memory_gib must be a finite number")


def test_binding_must_be_exactly_one_kind(repo: Path) -> None:
    text = VALID.replace(
        "binding: {python: hvfix.checks:holds}", 'binding: {python: hvfix.checks:holds, command: ["true"]}'
    ).replace('binding: {pytest: "tests/test_things.py::test_beta", min_tests: 2}', "binding: {min_tests: 2}")
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, line(text, "command: [\"true\"]"), "FALSIFY-HV-DEMO-001", "has python and command", "keep one")
    assert_problem(problems, path, line(text, "binding: {min_tests: 2}"), "FALSIFY-HV-DEMO-002", "needs exactly one of python, pytest or command")


def test_count_pattern_needs_one_group_and_python_takes_no_min_tests(repo: Path) -> None:
    text = VALID.replace('count_pattern: "(\\\\d+) passed"', 'count_pattern: "passed"').replace(
        "binding: {python: hvfix.checks:holds}", "binding: {python: hvfix.checks:holds, min_tests: 2}"
    )
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, line(text, "count_pattern"), "FALSIFY-HV-DEMO-004", "has 0 groups", "exactly one")
    assert_problem(problems, path, line(text, "hvfix.checks:holds, min_tests"), "FALSIFY-HV-DEMO-001", "min_tests applies only to pytest and command")


# --- cross-file problems ---------------------------------------------------------------------------

def test_duplicate_ids_across_files(repo: Path) -> None:
    first = write(repo, VALID, "a.yaml")
    second = write(repo, VALID, "b.yaml")
    problems = problems_of(repo / "contracts", bindings=False)
    assert_problem(problems, second, 1, "hv-demo-v1", "duplicate id", f"already defined at {first}:1")
    inv_line = line(VALID, "id: INV-HV-DEMO-001")
    assert_problem(problems, second, inv_line, "INV-HV-DEMO-001", "duplicate id", f"{first}:{inv_line}")
    fal_line = line(VALID, "id: FALSIFY-HV-DEMO-003")
    assert_problem(problems, second, fal_line, "FALSIFY-HV-DEMO-003", "duplicate id", f"{first}:{fal_line}")
    assert not any(str(first) + ":" in p.split(": ")[0] for p in problems if "duplicate id" in p)


def test_unknown_invariant_and_unattacked_invariant(repo: Path) -> None:
    text = VALID.replace("attacks: [INV-HV-DEMO-001, INV-HV-DEMO-002]", "attacks: [INV-HV-DEMO-001, INV-HV-DEMO-020]")
    text = text.replace("attacks: [INV-HV-DEMO-002]", "attacks: [INV-HV-DEMO-001]")
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(
        problems, path, line(text, "INV-HV-DEMO-020"), "FALSIFY-HV-DEMO-002",
        "attacks unknown invariant 'INV-HV-DEMO-020'", "did you mean 'INV-HV-DEMO-002'?",
    )
    assert_problem(problems, path, line(text, "id: INV-HV-DEMO-002"), "INV-HV-DEMO-002", "no falsifier attacks this invariant")


def test_missing_dependency_and_cycles(repo: Path) -> None:
    a = VALID.replace("title: Demo contract", "title: A\ndepends_on: [hv-b-v1, hv-missing-v1]").replace("HV-DEMO", "HV-A")
    b = VALID.replace("id: hv-demo-v1", "id: hv-b-v1").replace("title: Demo contract", "title: B\ndepends_on: [hv-c-v1]")
    b = b.replace("HV-DEMO", "HV-B")
    c = VALID.replace("id: hv-demo-v1", "id: hv-c-v1").replace("title: Demo contract", "title: C\ndepends_on: [hv-demo-v1]")
    c = c.replace("HV-DEMO", "HV-C")
    pa, pb, pc = write(repo, a, "a.yaml"), write(repo, b, "b.yaml"), write(repo, c, "c.yaml")
    problems = problems_of(repo / "contracts", bindings=False)
    assert_problem(problems, pa, line(a, "depends_on"), "hv-demo-v1", "'hv-missing-v1', which is not among the contracts")
    cycles = [p for p in problems if "dependency cycle" in p]
    assert len(cycles) == 1, problems
    assert "hv-demo-v1 -> hv-b-v1 -> hv-c-v1 -> hv-demo-v1" in cycles[0]
    assert cycles[0].startswith(f"{pc}:{line(c, 'depends_on')}: hv-c-v1: ")
    assert pb  # written so the cycle exists


def test_expired_deferral(repo: Path) -> None:
    text = VALID.replace("until: 2027-01-31", "until: 2026-11-23")
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, line(text, "until: 2026-11-23"), "FALSIFY-HV-DEMO-004", "deferral expired on 2026-11-23")
    # The same deferral is fine the day it is written.
    assert validate([path], today=date(2026, 11, 23), check_bindings=False)[1] == []


# --- dangling bindings -----------------------------------------------------------------------------

def test_python_bindings_that_do_not_resolve(repo: Path) -> None:
    text = PY_ONLY.replace("binding: {python: hvfix.checks:holds}", "binding: {python: hvfix.checks:vanished}")
    extra = """\
  - id: FALSIFY-HV-DEMO-005
    attacks: [INV-HV-DEMO-001]
    prediction: p
    if_fails: f
    binding: {python: hvfix.nomodule:holds}
  - id: FALSIFY-HV-DEMO-006
    attacks: [INV-HV-DEMO-001]
    prediction: p
    if_fails: f
    binding: {python: hvfix.checks:NOT_CALLABLE}
  - id: FALSIFY-HV-DEMO-007
    attacks: [INV-HV-DEMO-001]
    prediction: p
    if_fails: f
    binding: {python: hvfix.checks:needs_argument}
"""
    text += extra
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "hvfix.checks:vanished"), "FALSIFY-HV-DEMO-001",
                   "hvfix.checks:vanished does not resolve", "no attribute 'vanished'")
    assert_problem(problems, path, line(text, "hvfix.nomodule:holds"), "FALSIFY-HV-DEMO-005",
                   "hvfix.nomodule:holds does not resolve", "No module named 'hvfix.nomodule'")
    assert_problem(problems, path, line(text, "NOT_CALLABLE"), "FALSIFY-HV-DEMO-006", "not callable")
    assert_problem(problems, path, line(text, "needs_argument"), "FALSIFY-HV-DEMO-007", "takes required arguments (x)")


def test_crashing_imports_are_problems_not_crashes(repo: Path) -> None:
    (repo / "hvfix" / "exits.py").write_text("import os\nos._exit(3)\n")
    (repo / "hvfix" / "segfaults.py").write_text("import ctypes\nctypes.string_at(0)\n")
    text = PY_ONLY.replace("binding: {python: hvfix.checks:holds}", "binding: {python: hvfix.exits:f}") + """\
  - id: FALSIFY-HV-DEMO-005
    attacks: [INV-HV-DEMO-001]
    prediction: p
    if_fails: f
    binding: {python: hvfix.segfaults:f}
  - id: FALSIFY-HV-DEMO-006
    attacks: [INV-HV-DEMO-001]
    prediction: p
    if_fails: f
    binding: {python: hvfix.checks:vanished}
"""
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "hvfix.exits:f"), "FALSIFY-HV-DEMO-001",
                   "importing module 'hvfix.exits' exited the interpreter with status 3")
    assert_problem(problems, path, line(text, "hvfix.segfaults:f"), "FALSIFY-HV-DEMO-005",
                   "importing module 'hvfix.segfaults' was killed by SIGSEGV")
    # Modules after the crashes are still checked.
    assert_problem(problems, path, line(text, "hvfix.checks:vanished"), "FALSIFY-HV-DEMO-006", "no attribute 'vanished'")


def test_guards_that_do_not_resolve(repo: Path) -> None:
    text = PY_ONLY.replace("guards: [hvfix.checks:holds, hvfix.checks:Gate.check]", "guards: [hvfix.checks:Gate.missing]")
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "guards"), "INV-HV-DEMO-001", "guards: hvfix.checks:Gate.missing does not resolve",
                   "'hvfix.checks:Gate' has no attribute 'missing'")


def test_missing_package_declared_in_requires_is_not_a_dangling_binding(repo: Path) -> None:
    (repo / "hvfix" / "heavy.py").write_text("import hv_not_installed_pkg\n\ndef f():\n    pass\n")
    text = PY_ONLY.replace("binding: {python: hvfix.checks:holds}", "binding: {python: hvfix.heavy:f}\n    requires: {packages: [hv-not-installed-pkg]}")
    path = write(repo, text)
    assert problems_of(path) == []
    path.write_text(text.replace("\n    requires: {packages: [hv-not-installed-pkg]}", ""))
    assert any("No module named 'hv_not_installed_pkg'" in p for p in problems_of(path))


def test_pytest_bindings_that_collect_too_little(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []
    real = bindings_module.collect_pytest

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(bindings_module, "collect_pytest", spy)
    text = (
        VALID.replace("tests/test_things.py::test_beta", "tests/test_things.py::test_delta")
        .replace('k: "slow or alpha"', 'k: "slow"')
        .replace('binding: {python: hvfix.checks:holds}', 'binding: {pytest: {k: "alpha and", paths: [tests]}}')
    )
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "test_delta"), "FALSIFY-HV-DEMO-002",
                   "tests/test_things.py::test_delta collects nothing", "--collect-only")
    assert_problem(problems, path, line(text, 'k: "slow"'), "FALSIFY-HV-DEMO-003",
                   "-k 'slow'", "collects 1 tests, fewer than min_tests 2")
    assert_problem(problems, path, line(text, "alpha and"), "FALSIFY-HV-DEMO-001", "invalid -k expression")
    assert len(calls) == 1, "all pytest bindings of one repository are collected in one run"


def test_pytest_binding_to_a_file_or_directory_counts_its_tests(repo: Path) -> None:
    text = VALID.replace('"tests/test_things.py::test_beta", min_tests: 2', '"tests/test_things.py", min_tests: 5')
    text = text.replace("binding: {python: hvfix.checks:holds}", "binding: {pytest: tests, min_tests: 5}")
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, '"tests/test_things.py"'), "FALSIFY-HV-DEMO-002",
                   "collects 4 tests, fewer than min_tests 5")
    assert_problem(problems, path, line(text, "pytest: tests,"), "FALSIFY-HV-DEMO-001",
                   "collects 4 tests, fewer than min_tests 5")


def test_pytest_node_in_a_missing_file_is_reported_without_running_pytest(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> object:
        raise AssertionError("pytest was run for a binding whose file does not exist")

    monkeypatch.setattr(bindings_module, "collect_pytest", must_not_run)
    text = VALID.replace("tests/test_things.py::test_beta", "tests/test_gone.py::test_beta").replace(
        "paths: [tests]", "paths: [tests/nowhere]"
    )
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "test_gone"), "FALSIFY-HV-DEMO-002", "file tests/test_gone.py does not exist")
    assert_problem(problems, path, line(text, "tests/nowhere"), "FALSIFY-HV-DEMO-003", "path tests/nowhere does not exist")


def test_pytest_collection_error_is_named(repo: Path) -> None:
    (repo / "tests" / "test_broken.py").write_text("import hv_no_such_module\n\ndef test_x():\n    pass\n")
    text = VALID.replace("tests/test_things.py::test_beta", "tests/test_broken.py::test_x")
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "test_broken"), "FALSIFY-HV-DEMO-002", "collects nothing", "hv_no_such_module")


def test_command_programs_that_cannot_run(repo: Path) -> None:
    (repo / "scripts").mkdir()
    (repo / "scripts" / "check.sh").write_text("#!/bin/sh\nexit 0\n")  # not executable
    text = PY_ONLY.replace(
        'binding: {python: hvfix.checks:holds}', "binding: {command: [hv-no-such-program-xyz, --flag]}"
    ).replace('command: [python, -c, "print(\'3 passed\')"]', "command: [scripts/check.sh]")
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "hv-no-such-program-xyz"), "FALSIFY-HV-DEMO-001",
                   "'hv-no-such-program-xyz' is not found on PATH")
    assert_problem(problems, path, line(text, "scripts/check.sh"), "FALSIFY-HV-DEMO-004", "is not executable", "chmod +x")
    (repo / "scripts" / "check.sh").chmod(0o755)
    assert not any("check.sh" in p for p in problems_of(path))


# --- reporting -------------------------------------------------------------------------------------

def test_all_problems_are_listed_not_just_the_first(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        VALID.replace("title: Demo contract", "tittle: Demo contract")
        .replace("kind: bound", "kind: bonud")
        .replace("until: 2027-01-31", "until: 2020-01-01")
        .replace("binding: {python: hvfix.checks:holds}", "binding: {python: hvfix.checks:vanished}")
    )
    path = write(repo, text)
    broken = write(repo, "id: hv-broken-v1\ntitle: [unclosed\n", "broken.yaml")
    code, out, err = run_cli(capsys, str(repo / "contracts"))
    assert code == 2
    expected = [
        (broken, 3, "-", "flow sequence started on line 2"),
        (path, line(text, "tittle"), "hv-demo-v1", "unknown key 'tittle'"),
        (path, line(text, "bonud"), "INV-HV-DEMO-002", "'bonud'"),
        (path, line(text, "until:"), "FALSIFY-HV-DEMO-004", "deferral expired"),
        (path, line(text, "vanished"), "FALSIFY-HV-DEMO-001", "vanished"),
    ]
    for p, n, subject, fragment in expected:
        assert_problem(out, p, n, subject, fragment)
    assert all(": " in l and l.split(":")[1].isdigit() for l in out), out
    assert f"{len(out)} problems in 2 files" in err


def test_load_errors_are_reported_per_file(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tabs = write(repo, "id: hv-t-v1\ninvariants:\n\t- id: INV-A-001\n", "tabs.yaml")
    dup = write(repo, "id: hv-d-v1\nversion: 1.0.0\nid: hv-e-v1\n", "dup.yaml")
    top = write(repo, "- a\n", "top.yaml")
    empty = write(repo, "", "empty.yaml")
    (repo / "contracts" / "latin.yaml").write_bytes(b"id: hv-l-v1\ntitle: caf\xe9\n")
    code, out, _ = run_cli(capsys, str(repo / "contracts"))
    assert code == 2
    assert_problem(out, tabs, 3, "-", "tab character")
    assert_problem(out, dup, 3, "-", "duplicate key 'id'")
    assert_problem(out, top, 1, "-", "top level must be a mapping")
    assert_problem(out, empty, 1, "-", "file is empty")
    assert_problem(out, repo / "contracts" / "latin.yaml", 2, "-", "not UTF-8")


def test_missing_path_and_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, out, _ = run_cli(capsys, str(tmp_path / "absent.yaml"), str(tmp_path / "empty"))
    assert code == 2
    assert_problem(out, tmp_path / "absent.yaml", 1, "-", "no such file or directory")
    assert_problem(out, tmp_path / "empty", 1, "-", "no contract files")


def test_paths_resolve_against_the_repo_root_not_the_cwd(repo: Path, tmp_path: Path) -> None:
    write(repo, VALID)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = cli_env(REPO)
    relative = os.path.relpath(repo / "contracts", elsewhere)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", relative],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "1 contract, 2 invariants, 4 falsifiers: valid"
    # Problems are named by the path as typed, so they are clickable from the caller's cwd.
    write(repo, PY_ONLY.replace("hvfix.checks:holds}", "hvfix.checks:vanished}", 1))
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", relative],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout.startswith(f"{relative}/demo.yaml:{line(VALID, 'python: hvfix')}: FALSIFY-HV-DEMO-001: "), proc.stdout


def test_find_repo_root(repo: Path, tmp_path: Path) -> None:
    (repo / "contracts" / "deep").mkdir()
    assert find_repo_root(repo / "contracts" / "deep" / "x.yaml") == repo.resolve()
    assert find_repo_root(repo / "contracts") == repo.resolve()
    bare = tmp_path / "bare"
    bare.mkdir()
    # No marker anywhere up to / would fall back to the file's own directory; tmp_path has none
    # unless the system temp dir is inside a repository.
    root = find_repo_root(bare / "c.yaml")
    assert root == bare.resolve() or (root / "pyproject.toml").exists() or (root / ".git").exists()


def test_no_bindings_flag_skips_resolution(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(repo, VALID.replace("hvfix.checks:holds}", "hvfix.checks:vanished}"))
    code, out, _ = run_cli(capsys, "--no-bindings", str(repo / "contracts"))
    assert code == 0, out


def test_pytest_that_cannot_start_is_reported_per_binding(repo: Path) -> None:
    (repo / "tests" / "conftest.py").write_text("raise RuntimeError('conftest boom')\n")
    path = write(repo, VALID)
    problems = problems_of(path)
    assert_problem(problems, path, line(VALID, "test_things.py::test_beta"), "FALSIFY-HV-DEMO-002",
                   "could not be checked", "pytest --collect-only failed", "conftest boom")
    assert_problem(problems, path, line(VALID, "slow or alpha"), "FALSIFY-HV-DEMO-003", "could not be checked")


def test_hypothesis_falsifier_counts_as_zero_argument(repo: Path) -> None:
    (repo / "hvfix" / "prop.py").write_text(
        "from hypothesis import given, settings, strategies as st\n\n"
        "@settings(max_examples=5, deadline=None, derandomize=True)\n"
        "@given(st.integers())\n"
        "def falsify_roundtrip(n):\n"
        "    assert int(str(n)) == n\n"
    )
    path = write(repo, PY_ONLY.replace("binding: {python: hvfix.checks:holds}", "binding: {python: hvfix.prop:falsify_roundtrip}", 1))
    assert problems_of(path) == []


def test_pytest_binding_paths_must_stay_inside_the_repository(repo: Path) -> None:
    text = (
        VALID.replace('"tests/test_things.py::test_beta", min_tests: 2', '"../elsewhere/test_x.py"')
        .replace("binding: {python: hvfix.checks:holds}", f"binding: {{pytest: {{k: alpha, paths: [{repo / 'tests'}]}}}}")
    )
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "../elsewhere"), "FALSIFY-HV-DEMO-002", "leads outside the repository root")
    assert_problem(problems, path, line(text, "k: alpha"), "FALSIFY-HV-DEMO-001", "is absolute", "relative to the repository root")


def test_a_k_expression_written_as_a_string_selects_from_the_configured_testpaths(repo: Path) -> None:
    # `pytest: "-k EXPR"` is the shorthand: it searches what the project's own pytest run would.
    (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    assert default_test_paths(repo) == ("tests",)
    text = VALID.replace('"tests/test_things.py::test_beta", min_tests: 2', '"-k beta"')
    contracts, problems = validate([write(repo, text)])
    assert problems == []
    binding = {f.id: f.binding for c in contracts for f in c.falsifiers}["FALSIFY-HV-DEMO-002"]
    assert (binding.k, binding.paths, binding.min_tests) == ("beta", ("tests",), 1)


def test_a_k_shorthand_that_collects_nothing_is_a_problem(repo: Path) -> None:
    text = VALID.replace('"tests/test_things.py::test_beta", min_tests: 2', '"-k no_such_test_anywhere"')
    path = write(repo, text)
    problems = problems_of(path)
    assert_problem(problems, path, line(text, "no_such_test_anywhere"), "FALSIFY-HV-DEMO-002",
                   "-k 'no_such_test_anywhere'", "collects nothing")


def test_without_configured_testpaths_the_k_shorthand_searches_the_repository_root(tmp_path: Path) -> None:
    assert default_test_paths(tmp_path) == (".",)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = checks missing\n")
    (tmp_path / "checks").mkdir()
    assert default_test_paths(tmp_path) == ("checks",)


def test_pytest_node_ids_are_matched_after_normalising_the_path(repo: Path) -> None:
    text = VALID.replace('"tests/test_things.py::test_beta", min_tests: 2', '"./tests/../tests//test_things.py::test_beta", min_tests: 2')
    text = text.replace("binding: {python: hvfix.checks:holds}", "binding: {pytest: ., min_tests: 4}")
    assert problems_of(write(repo, text)) == []


def test_a_wrong_type_says_what_to_write_instead(repo: Path) -> None:
    text = VALID.replace("attacks: [INV-HV-DEMO-002]", "attacks: INV-HV-DEMO-002", 1).replace("timeout_s: 120", "timeout_s: true")
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, line(text, "attacks: INV-HV-DEMO-002"), "FALSIFY-HV-DEMO-003",
                   "attacks must be a list, not a string", "write it as a list: [INV-HV-DEMO-002]")
    assert_problem(problems, path, line(text, "timeout_s: true"), "FALSIFY-HV-DEMO-004",
                   "timeout_s must be a number, not a boolean", "write a number here")


def test_a_package_requirement_that_does_not_parse_is_a_problem(repo: Path) -> None:
    text = VALID.replace("packages: [transformers]", 'packages: ["transformers >= "]')
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, line(text, "transformers >= "), "FALSIFY-HV-DEMO-004",
                   "'transformers >= ' is not a package name or requirement")


def test_one_contract_file_can_be_validated_when_its_dependency_is_beside_it(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = VALID.replace("title: Demo contract", "title: A\ndepends_on: [hv-b-v1]").replace("HV-DEMO", "HV-A")
    b = VALID.replace("id: hv-demo-v1", "id: hv-b-v1").replace("HV-DEMO", "HV-B")
    pa = write(repo, a, "a.yaml")
    write(repo, b, "b.yaml")
    code, out, _ = run_cli(capsys, "--no-bindings", str(pa))
    assert code == 0, out
    assert out == ["1 contract, 2 invariants, 4 falsifiers: valid"]
    (repo / "contracts" / "b.yaml").unlink()
    code, out, _ = run_cli(capsys, "--no-bindings", str(pa))
    assert code == 2
    assert_problem(out, pa, line(a, "depends_on"), "hv-demo-v1", "'hv-b-v1', which is not among the contracts validated nor in")


@pytest.mark.parametrize("poison", ["title: !!bool safety", 'title: !!int ""', "timeout_s: " + "9" * 5000, "\t- x"])
def test_a_poisoned_sibling_is_named_not_a_crash(repo: Path, capsys: pytest.CaptureFixture[str], poison: str) -> None:
    # a.yaml depends on hv-b-v1; b.yaml beside it cannot be read. That used to crash validating a.yaml.
    a = VALID.replace("title: Demo contract", "title: A\ndepends_on: [hv-b-v1]").replace("HV-DEMO", "HV-A")
    pa = write(repo, a, "a.yaml")
    pb = write(repo, f"id: hv-b-v1\n{poison}\n", "b.yaml")
    code, out, err = run_cli(capsys, "--no-bindings", str(pa))
    assert code == 2, out
    assert_problem(out, pa, line(a, "depends_on"), "hv-demo-v1", "'hv-b-v1', which is not among", f"unreadable there: {pb}:2: ")
    assert len(out) == 1 and "Traceback" not in err


def test_a_contract_outside_any_repository_says_which_root_its_bindings_used(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    if find_repo_root(bare) != bare.resolve():
        pytest.skip("the temp directory is inside a repository here")
    text = PY_ONLY.replace("binding: {python: hvfix.checks:holds}", "binding: {pytest: tests/test_things.py}", 1)
    path = bare / "demo.yaml"
    path.write_text(text)
    problems = problems_of(path)
    assert_problem(
        problems, path, line(text, "pytest: tests/test_things.py"), "FALSIFY-HV-DEMO-001",
        "file tests/test_things.py does not exist",
        f"; resolved against {bare.resolve()} (no pyproject.toml or .git found above {path}",
    )
    # Inside a repository the root is the marker's directory, and nothing more needs saying.
    (bare / "pyproject.toml").write_text("")
    assert all("resolved against" not in p for p in problems_of(path))


def test_a_value_yaml_read_as_a_number_or_boolean_is_quoted_as_written(repo: Path) -> None:
    # YAML reads 1.10 as 1.1 and yes as True; quoting those would change what the author meant.
    text = VALID.replace("version: 1.0.0\ntitle: Demo contract", "version: 1.10\ntitle: yes")
    path = write(repo, text)
    problems = problems_of(path, bindings=False)
    assert_problem(problems, path, 2, "hv-demo-v1", "version must be a string, not a number", 'quote it: "1.10"')
    assert_problem(problems, path, 3, "hv-demo-v1", "title must be a string, not a boolean", 'quote it: "yes"')
