"""Vacuity: a falsifier that passes without executing any guard of the invariants it attacks is `vacuous`,
never `passed`; evidence records the guards executed and the guard lines covered (harness.guard_coverage)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness import guard_coverage
from harness.guard_coverage import GuardError, resolve
from harness.report import render_summary

from tests.harness.verify_support import entries, falsifier, make_project, read_evidence, run_verify

GUARD_MODULE = textwrap.dedent(
    '''
    def check(value):
        """Refuses negative values."""
        if value < 0:
            raise ValueError(f"negative: {value}")
        return value


    class Gate:
        def admit(self, value):
            return check(value) >= 0

        def unused(self):
            return None


    import functools


    def logged(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)
        return wrapper


    class Decorated:
        @logged
        def admit(self, value):
            return value >= 0  # DECORATED BODY
    '''
)
GUARD_LINES = [4, 6]  # the body lines of fx_guarded.check that a non-negative value runs
# The body line of Decorated.admit: its decorator's wrapper is not the method's code (harness.line_probe unwraps).
DECORATED_LINES = [next(i for i, line in enumerate(GUARD_MODULE.splitlines(), 1) if "DECORATED BODY" in line)]

# A re-export, as pretrain.checkpoint re-exports the format modules' functions.
API_MODULE = "from fx_guarded import check\n\n__all__ = ['check']\n"

# A CLI the falsifiers drive with `python -m fx_cli`, from another working directory.
CLI_MODULE = textwrap.dedent(
    '''
    import sys

    from fx_guarded import check

    if __name__ == "__main__":
        if sys.argv[1:] == ["import-only"]:
            sys.exit(0)
        print(check(int(sys.argv[1])))
    '''
)

FALSIFIERS = textwrap.dedent(
    '''
    import os
    import subprocess
    import sys
    import tempfile

    import fx_guarded

    ROOT = os.path.dirname(os.path.abspath(__file__))


    def _cli(*args):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
        with tempfile.TemporaryDirectory() as elsewhere:
            return subprocess.run([sys.executable, "-m", "fx_cli", *args], cwd=elsewhere, env=env,
                                  capture_output=True, text=True, check=True).stdout


    def never_calls_the_guard():
        assert sorted([2, 1]) == [1, 2]


    def calls_the_guard():
        assert fx_guarded.check(3) == 3


    def through_the_cli():
        assert _cli("5").strip() == "5"


    def cli_imports_the_guard_only():
        _cli("import-only")


    def imports_the_guard_only():
        from fx_guarded import check  # the def line ran long ago; the body never runs
        assert callable(check)


    def falsified_without_the_guard():
        assert 1 + 1 == 3, "1 + 1 is not 3"


    def through_the_class():
        assert fx_guarded.Gate().admit(1)


    def _in_a_fork_worker():
        assert fx_guarded.check(2) == 2


    def through_a_fork_worker():
        import multiprocessing

        worker = multiprocessing.get_context("fork").Process(target=_in_a_fork_worker)
        worker.start()
        worker.join()
        assert worker.exitcode == 0


    def through_a_decorated_method():
        assert fx_guarded.Decorated().admit(1)
    '''
)

BOUND_TESTS = textwrap.dedent(
    '''
    import fx_guarded


    def test_calls_the_guard():
        assert fx_guarded.check(0) == 0


    def test_never_calls_the_guard():
        assert "a" in "abc"
    '''
)


def _contract() -> str:
    invariants = [
        ("INV-VAC-001", "[fx_guarded:check]"),
        ("INV-VAC-002", "[fx_api:check]"),  # a re-export: resolves to fx_guarded.py
        ("INV-VAC-003", "[fx_guarded:Gate]"),  # a class: all its methods
    ]
    lines = ["id: fx-vacuity-v1", "version: 1.0.0", "title: Vacuity fixtures", "description: Guards run or not.", "invariants:"]
    for inv, guards in invariants:
        lines += [f"  - id: {inv}", "    kind: safety", "    statement: The fixture holds.", f"    guards: {guards}"]
    lines += ["  - id: INV-VAC-004", "    kind: safety", "    statement: No guards named."]
    lines += ["  - id: INV-VAC-005", "    kind: safety", "    statement: The fixture holds.", "    guards: [fx_guarded:Decorated]"]
    cases = [
        falsifier("FALSIFY-VAC-001", '{python: "fx_vac:never_calls_the_guard"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-002", '{python: "fx_vac:calls_the_guard"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-003", '{python: "fx_vac:through_the_cli"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-004", '{python: "fx_vac:cli_imports_the_guard_only"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-005", '{python: "fx_vac:imports_the_guard_only"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-006", '{python: "fx_vac:falsified_without_the_guard"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-007", '{python: "fx_vac:calls_the_guard"}', attacks="INV-VAC-002"),
        falsifier("FALSIFY-VAC-008", '{python: "fx_vac:through_the_class"}', attacks="INV-VAC-003"),
        falsifier("FALSIFY-VAC-009", '{python: "fx_vac:through_a_fork_worker"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-012", '{python: "fx_vac:through_a_decorated_method"}', attacks="INV-VAC-005"),
        falsifier("FALSIFY-VAC-010", '{pytest: "tests/test_vac_bound.py::test_calls_the_guard"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-011", '{pytest: "tests/test_vac_bound.py::test_never_calls_the_guard"}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-020", '{command: [sh, -c, "exit 0"]}', attacks="INV-VAC-001"),
        falsifier("FALSIFY-VAC-030", '{python: "fx_vac:never_calls_the_guard"}', attacks="INV-VAC-004"),
    ]
    return "\n".join(lines) + "\nfalsifiers:\n" + "".join(cases)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("vacuity")
    make_project(root, {"vac.yaml": _contract()})
    for name, text in {"fx_guarded.py": GUARD_MODULE, "fx_api.py": API_MODULE, "fx_cli.py": CLI_MODULE, "fx_vac.py": FALSIFIERS}.items():
        (root / name).write_text(text)
    (root / "tests" / "test_vac_bound.py").write_text(BOUND_TESTS)
    out = root / "out"
    proc = run_verify(root, "contracts", "--out", str(out), "-j", "2")
    evidence_path = out / "uncommitted" / "evidence.json"
    assert evidence_path.exists(), proc.stdout + proc.stderr
    return proc, read_evidence(evidence_path), root


def _result(run: tuple[Any, dict[str, Any], Path], fid: str) -> dict[str, Any]:
    return entries(run[1])[fid]


def test_a_pass_that_never_calls_its_guard_is_vacuous_and_fails_the_run(run) -> None:
    proc, evidence, _ = run
    r = _result(run, "FALSIFY-VAC-001")
    assert r["outcome"] == "vacuous"
    assert "missed fx_guarded:check" in r["reason"] and "call a guard from the falsifier" in r["reason"]
    assert r["guards_executed"] == [] and r["guard_lines"] == {"fx_guarded:check": []}
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("VACUOUS FALSIFY-VAC-001 ("))
    assert "passed without executing any guard" in line and "missed fx_guarded:check" in line
    assert evidence["totals"]["vacuous"] == 4


def test_a_falsifier_that_calls_its_guard_passes_with_the_lines_it_ran(run) -> None:
    r = _result(run, "FALSIFY-VAC-002")
    assert r["outcome"] == "passed", r["reason"]
    assert r["guards_executed"] == ["fx_guarded:check"]
    assert r["guard_lines"] == {"fx_guarded:check": GUARD_LINES}


def test_a_guard_reached_only_through_a_python_m_subprocess_in_another_cwd_counts(run) -> None:
    r = _result(run, "FALSIFY-VAC-003")
    assert r["outcome"] == "passed", r["reason"]
    assert r["guards_executed"] == ["fx_guarded:check"]
    assert r["guard_lines"] == {"fx_guarded:check": GUARD_LINES}


def test_a_guard_reached_only_in_a_forked_worker_counts(run) -> None:
    # multiprocessing's fork workers: the inherited probes' record would die with the worker; it is measured
    # by coverage.py from the fork on and saved when it exits (os._exit included).
    r = _result(run, "FALSIFY-VAC-009")
    assert r["outcome"] == "passed", r["reason"]
    assert r["guard_lines"] == {"fx_guarded:check": GUARD_LINES}


def test_a_decorated_method_of_a_class_guard_counts_its_own_body(run) -> None:
    r = _result(run, "FALSIFY-VAC-012")
    assert r["outcome"] == "passed", r["reason"]
    assert r["guard_lines"] == {"fx_guarded:Decorated": DECORATED_LINES}


@pytest.mark.parametrize("fid", ["FALSIFY-VAC-004", "FALSIFY-VAC-005"])
def test_importing_a_guard_without_calling_it_is_vacuous(run, fid: str) -> None:
    # FALSIFY-VAC-004's subprocess imports fx_guarded while measured: only its def lines run.
    r = _result(run, fid)
    assert r["outcome"] == "vacuous", r["reason"]
    assert r["guard_lines"] == {"fx_guarded:check": []}


def test_a_falsified_falsifier_stays_falsified_whatever_it_executed(run) -> None:
    r = _result(run, "FALSIFY-VAC-006")
    assert r["outcome"] == "falsified"
    assert r["guards_executed"] == []


def test_a_reexported_guard_resolves_to_where_it_is_defined(run) -> None:
    r = _result(run, "FALSIFY-VAC-007")
    assert r["outcome"] == "passed", r["reason"]
    assert r["guards_executed"] == ["fx_api:check"]
    assert r["guard_lines"] == {"fx_api:check": GUARD_LINES}


def test_a_class_guard_counts_any_of_its_methods(run) -> None:
    r = _result(run, "FALSIFY-VAC-008")
    assert r["outcome"] == "passed", r["reason"]
    assert r["guards_executed"] == ["fx_guarded:Gate"]
    assert r["guard_lines"] == {"fx_guarded:Gate": [11]}  # admit's body; unused() never ran


def test_pytest_bindings_are_measured_too(run) -> None:
    held = _result(run, "FALSIFY-VAC-010")
    assert held["outcome"] == "passed", held["reason"]
    assert held["guards_executed"] == ["fx_guarded:check"] and held["guard_lines"]["fx_guarded:check"]
    vacuous = _result(run, "FALSIFY-VAC-011")
    assert vacuous["outcome"] == "vacuous" and "missed fx_guarded:check" in vacuous["reason"]
    assert vacuous["tests_executed"] == 1


def test_command_bindings_and_invariants_without_guards_are_not_measured(run) -> None:
    for fid in ("FALSIFY-VAC-020", "FALSIFY-VAC-030"):
        r = _result(run, fid)
        assert r["outcome"] == "passed", r["reason"]
        assert r["guards_executed"] is None and r["guard_lines"] is None


def test_the_summary_shows_guard_coverage(run) -> None:
    summary = render_summary(run[1])
    assert "| Guards |" in summary
    row = next(line for line in summary.splitlines() if "FALSIFY-VAC-002" in line)
    assert "1/1 guards, 2 lines" in row
    row = next(line for line in summary.splitlines() if "FALSIFY-VAC-020" in line)
    assert "| n/a |" in row
    assert "### Vacuous" in summary


def test_nothing_is_left_behind_in_the_project(run) -> None:
    root = run[2]
    assert not list(root.rglob(".coverage*")) and not list(root.rglob("*.pth"))


# ---------------------------------------------------------------------------------------- resolving


def test_resolve_follows_a_reexport_to_the_defining_file() -> None:
    span = resolve("harness.guard_coverage:GuardError")
    assert span.file.endswith("harness/guard_coverage.py")
    span = resolve("harness:read_evidence")  # re-exported by harness/__init__.py
    assert span.file.endswith("harness/record.py") and span.lines


def test_resolve_counts_body_lines_not_the_def_line() -> None:
    import inspect

    from harness import guard_coverage as module

    _, first = inspect.getsourcelines(module.summary)
    span = resolve("harness.guard_coverage:summary")
    assert first not in span.lines and min(span.lines) > first
    method = resolve("harness.guard_coverage:Measurement.finish")
    assert method.lines < resolve("harness.guard_coverage:Measurement").lines


@pytest.mark.parametrize(
    "guard, message",
    [
        ("no_such_module_fx:f", "cannot import no_such_module_fx"),
        ("harness.guard_coverage:no_such_function", "has no attribute no_such_function"),
        ("harness.guard_coverage:GUARDS_ENV", "not a function, method or class"),
        ("harness.guard_coverage", "not of the form module:qualname"),
    ],
)
def test_resolve_names_what_is_wrong(guard: str, message: str) -> None:
    with pytest.raises(GuardError, match=message):
        resolve(guard)


def test_an_unresolvable_guard_is_named_in_the_vacuous_reason() -> None:
    reason = guard_coverage.judge("passed", ["a:b"], {"a:b": []}, {"a:b": "cannot import a: ModuleNotFoundError"})
    assert reason is not None and "missed a:b (a:b: cannot import a" in reason


def test_the_gate_fails_a_vacuous_result_without_strict_and_junit_shows_a_failure(run) -> None:
    import xml.etree.ElementTree as ET

    import harness
    from harness.record import evidence_from_dict
    from harness.report import render_junit

    verdict = harness.verdict(evidence_from_dict(run[1]), harness.Policy(strict=False))
    assert verdict.exit_code == 1
    assert any(r.startswith("FALSIFY-VAC-001: vacuous: passed without executing any guard") for r in verdict.reasons)
    root = ET.fromstring(render_junit(run[1]))
    case = next(c for c in root.iter("testcase") if c.get("name") == "FALSIFY-VAC-001")
    failure = case.find("failure")
    assert failure is not None and "missed fx_guarded:check" in (failure.get("message") or "")
    assert int(root.get("failures") or 0) == 1 + 4  # FALSIFY-VAC-006 falsified, four vacuous


def test_a_pass_whose_child_reported_no_measurement_is_vacuous() -> None:
    # A python child that ends before folding in its measurement (or a forged result) must not read as a pass.
    from harness import execute
    from harness.model import Binding, BindingKind, Falsifier, Outcome, SourceLocation

    f = Falsifier("FALSIFY-X-001", ("INV-X-001",), "p", "f", Binding(BindingKind.PYTHON, target="m:f"), SourceLocation("c.yaml", 1))
    ran, lines, reason = execute._vacuity(f, execute._Verdict(Outcome.PASSED, "returned"), ("m:g",))
    assert ran == () and lines == {"m:g": ()}
    assert reason is not None and "missed m:g" in reason and "reported no guard coverage" in reason
    malformed = execute._guard_data({"guard_lines": {"m:g": ["1"]}})
    assert malformed is None


def test_a_subprocess_still_runs_the_environments_own_sitecustomize(tmp_path: Path) -> None:
    # harness/probe_site/sitecustomize.py goes first on a measured falsifier's PYTHONPATH (harness.subprocess_probe):
    # the environment's own sitecustomize must still run after it, as it would have.
    import json
    import os
    import sys

    from harness import subprocess_probe

    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITECUSTOMIZE_RAN'] = '1'\n")
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "PYTHONPATH": str(own)}
    env |= subprocess_probe.environment(data, [str(tmp_path / "nothing.py")], env)
    code = "import os, json; print(json.dumps(os.environ.get('OWN_SITECUSTOMIZE_RAN')))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == "1"
    assert list(data.glob("probe-*.json")), "the probed subprocess wrote no record"


def test_a_subprocess_that_ends_with_os_exit_still_reports_its_guard_lines(tmp_path: Path) -> None:
    import os
    import sys

    from harness import subprocess_probe

    guarded = tmp_path / "sp_guarded.py"
    guarded.write_text("def check(v):\n    return v + 1\n")
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env |= subprocess_probe.environment(data, [os.path.realpath(guarded)], env)
    code = "import os, sp_guarded; sp_guarded.check(1); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True)
    saved = subprocess_probe.read_saved(data)
    assert set(saved) == {os.path.realpath(guarded)} and 2 in saved[os.path.realpath(guarded)]  # the body line ran
