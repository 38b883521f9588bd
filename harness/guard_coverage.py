"""Vacuity: which guards of the attacked invariants ran while a falsifier ran (harness.line_probe, coverage.py).

A falsifier that passes without executing the code that upholds its invariant proves nothing. The parent
(harness.execute) hands the guards (`module:qualname`, the `guards` of the invariants a falsifier attacks)
to the child in $HARNESS_GUARDS; the child (harness.child, or the child pytest through
harness.pytest_counter) resolves each guard to its defining file and body lines and measures them while the
falsifier runs: on Python 3.11 with slipcover by probes in the guards' code (harness.line_probe; a tracer
would slow every frame), in its python subprocesses too (harness.subprocess_probe), and in forked workers
with coverage.py; else everywhere with coverage.py on the guards' files, through coverage's
`[run] patch = subprocess` (its environment variable and the .pth file its wheel installs). Nothing is
written outside a private temp directory. It folds {guard: covered body lines} into the result it
reports, before that result is written. The parent then turns a pass that executed no guard into
`vacuous` (`judge`).

Why body lines: a `def` line (and its decorators) runs when the module is imported, whether or not the
guard is ever called, so only the lines of the body count. A one-line function (`def f(): return x`) has
no body line of its own and can therefore never count as executed: give it a body line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import line_probe, subprocess_probe

GUARDS_ENV = "HARNESS_GUARDS"
# Outer coverage requests (a CI measuring the harness itself) must not start a second tracer in the
# falsifier's child: our own measurement is the one that runs there.
_OUTER_COVERAGE_ENV = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
# subprocess: children of the same interpreter measure themselves (COVERAGE_PROCESS_CONFIG + coverage's .pth);
# _exit: a child that ends with os._exit still saves; fork: a forked worker measures itself.
_PATCHES = ("subprocess", "_exit", "fork")


class GuardError(ValueError):
    """A guard that cannot be resolved to Python source; the message says which and why."""


@dataclass(frozen=True)
class GuardSpan:
    """Where a guard's body is: its defining file (absolute, real path) and the line numbers of its body."""

    guard: str
    file: str
    lines: frozenset[int]


# ---------------------------------------------------------------------------------------- parent side


def guards_of(attacks: Iterable[str], invariants: Iterable[Any]) -> tuple[str, ...]:
    """The union, in contract order without repeats, of the `guards` of the invariants in `attacks`."""
    wanted = set(attacks)
    found: dict[str, None] = {}
    for invariant in invariants:
        if invariant.id in wanted:
            found.update(dict.fromkeys(invariant.guards))
    return tuple(found)


def with_guards(env: dict[str, str], guards: Sequence[str]) -> dict[str, str]:
    """`env` for a child that measures `guards` (unchanged when there are none: nothing to measure)."""
    if guards:
        env = {k: v for k, v in env.items() if k not in _OUTER_COVERAGE_ENV}
        env[GUARDS_ENV] = json.dumps(list(guards))
    return env


def executed(guards: Sequence[str], guard_lines: Mapping[str, Sequence[int]] | None) -> tuple[str, ...] | None:
    """The guards that ran a body line, in `guards` order; None when nothing was measured."""
    if guard_lines is None:
        return None
    return tuple(g for g in guards if guard_lines.get(g))


def judge(
    outcome: str, guards: Sequence[str], guard_lines: Mapping[str, Sequence[int]] | None,
    unresolved: Mapping[str, str] | None = None,
) -> str | None:
    """The reason a would-be pass is vacuous, or None when it stands (or was not measured, or did not pass)."""
    ran = executed(guards, guard_lines)
    if outcome != "passed" or ran is None or ran:
        return None
    missed = ", ".join(guards)
    why = ""
    if unresolved:
        why = " (" + "; ".join(f"{g}: {reason}" for g, reason in unresolved.items()) + ")"
    return (
        f"passed without executing any guard of the invariants it attacks; missed {missed}{why}; "
        "call a guard from the falsifier (directly or through the CLI it drives), or fix the contract's guards"
    )


def summary(guards_executed: Sequence[str] | None, guard_lines: Mapping[str, Sequence[int]] | None) -> str:
    """`2/3 guards, 41 lines`, or `n/a` when not measured (command bindings, invariants without guards)."""
    if guards_executed is None or guard_lines is None:
        return "n/a"
    lines = sum(len(v) for v in guard_lines.values())
    return f"{len(guards_executed)}/{len(guard_lines)} guards, {lines} line{'' if lines == 1 else 's'}"


# ---------------------------------------------------------------------------------------- resolving


def _lookup(guard: str) -> Any:
    module_name, sep, qualname = guard.partition(":")
    if not sep or not module_name or not qualname:
        raise GuardError("not of the form module:qualname")
    try:
        obj: Any = importlib.import_module(module_name)
    except BaseException as exc:  # noqa: BLE001 - a broken import is the guard's problem, reported as such
        raise GuardError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    for part in qualname.split("."):
        try:
            obj = inspect.getattr_static(obj, part) if inspect.isclass(obj) else getattr(obj, part)
        except AttributeError:
            raise GuardError(f"{module_name} has no attribute {qualname}") from None
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    return inspect.unwrap(obj) if callable(obj) else obj


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    body = list(node.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # a docstring is no statement that runs
    lines: set[int] = set()
    for stmt in body:
        lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    # Statement lines come from the body only; the decorators and the signature run at import time. A body
    # that shares the def line cannot be told apart from the import, so that line never counts.
    lines.discard(node.lineno)
    return lines


def _methods(node: ast.ClassDef) -> Iterable[ast.FunctionDef | ast.AsyncFunctionDef]:
    for child in node.body:
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield child
        elif isinstance(child, ast.ClassDef):
            yield from _methods(child)


def _find(tree: ast.AST, kind: type | tuple[type, ...], name: str, first_line: int) -> Any:
    for node in ast.walk(tree):
        if isinstance(node, kind) and node.name == name:
            decorated = min([d.lineno for d in node.decorator_list] + [node.lineno])
            if first_line in (decorated, node.lineno):
                return node
    return None


def resolve(guard: str) -> GuardSpan:
    """`module:qualname` -> the file that defines it and its body lines (a re-export resolves to where the
    function is defined). Raises GuardError for anything that is not a Python function, method or class."""
    obj = _lookup(guard)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        raise GuardError(f"is a {type(obj).__name__}, not a function, method or class with Python source")
    try:
        source_file = inspect.getsourcefile(obj)
        _, first_line = inspect.getsourcelines(obj)
    except (OSError, TypeError) as exc:
        raise GuardError(f"has no Python source: {exc}") from None
    if source_file is None:
        raise GuardError("has no Python source file")
    tree = ast.parse(Path(source_file).read_text(encoding="utf-8"), source_file)
    if inspect.isclass(obj):
        node = _find(tree, ast.ClassDef, obj.__name__, first_line)
        lines = set().union(*(_body_lines(m) for m in _methods(node))) if node is not None else set()
    else:
        node = _find(tree, (ast.FunctionDef, ast.AsyncFunctionDef), obj.__code__.co_name, obj.__code__.co_firstlineno)
        lines = _body_lines(node) if node is not None else set()
    if node is None:
        raise GuardError(f"its definition was not found in {source_file}")
    return GuardSpan(guard, os.path.realpath(source_file), frozenset(lines))


# ---------------------------------------------------------------------------------------- child side


def _coverage_rc(directory: Path, files: Iterable[str]) -> Path:
    rc = directory / "coveragerc"
    include = "".join(f"\n    {f}" for f in sorted(set(files)))
    rc.write_text(
        "[run]\n"
        # Python 3.12+: sys.monitoring, which stops reporting a line once seen and never reports unmeasured
        # files, instead of the C tracer, which puts every frame of the interpreter on its slow tracing path.
        f"core = {'sysmon' if sys.version_info >= (3, 12) else 'ctrace'}\n"
        f"data_file = {directory / 'data' / '.coverage'}\n"
        "parallel = true\n"
        # Only the guards' files are measured: everything else is the tracer's cheapest path.
        f"include ={include}\n"
        f"patch = {', '.join(_PATCHES)}\n"
        "disable_warnings = no-data-collected, module-not-imported, module-not-measured, couldnt-parse, "
        "include-ignored, no-ctracer\n",
        encoding="utf-8",
    )
    return rc


class Measurement:
    """One falsifier's guard measurement in the child: `start()` before the falsifier runs, `finish()` after,
    before the result is written (the child may end with os._exit: no atexit hook is relied upon)."""

    def __init__(self, guards: Sequence[str]) -> None:
        self.guards = tuple(guards)
        self.spans: dict[str, GuardSpan] = {}
        self.unresolved: dict[str, str] = {}
        self._cov: Any = None
        self._probe: line_probe.LineProbe | None = None
        self._rc: Path | None = None
        self._dir: Path | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_exit: Any = None

    def start(self, after_import: str | None = None) -> None:
        """Resolve the guards and start measuring; `after_import` (the falsifier's module) is imported first,
        unmeasured: tracing its imports (torch, transformers) would cost more than the falsifier's own run."""
        if after_import:
            try:
                importlib.import_module(after_import)
            except BaseException:  # noqa: BLE001 - the child imports it again and reports the failure itself
                pass
        for guard in self.guards:
            try:
                self.spans[guard] = resolve(guard)
            except GuardError as exc:
                self.unresolved[guard] = str(exc)
        if not self.spans:
            return
        self._dir = Path(tempfile.mkdtemp(prefix="harness-guards-"))
        (self._dir / "data").mkdir()
        self._rc = _coverage_rc(self._dir, (s.file for s in self.spans.values()))
        self._saved_env = {k: os.environ.get(k) for k in _OUTER_COVERAGE_ENV}
        self._saved_exit = os._exit
        if line_probe.AVAILABLE:
            # This process: probes in the guards' own code (no tracer, harness.line_probe). Its python
            # subprocesses and forks: coverage.py with the same rc, as below (they save to the data directory).
            self._probe = line_probe.LineProbe(_lookup(g) for g in self.spans)
            # Its python subprocesses probe the guards' files too (harness.subprocess_probe), saving beside.
            probe_env = subprocess_probe.environment(self._dir / "data", (s.file for s in self.spans.values()), os.environ)
            self._saved_env.update({k: os.environ.get(k) for k in probe_env})
            for key in _OUTER_COVERAGE_ENV:
                os.environ.pop(key, None)
            os.environ.update(probe_env)
            _ForkHook.measuring = self
            _ForkHook.install()
            return
        import coverage  # only a measured child pays for the import

        self._cov = coverage.Coverage(config_file=str(self._rc))
        self._cov.start()

    def _measure_fork(self) -> None:
        """In a process forked from this one while measuring (multiprocessing's fork workers): coverage.py
        measures it and saves at its exit (os._exit included, the rc's patches), as coverage's fork patch did."""
        self._probe = None  # the inherited probes' record dies with this process; the tracer's is saved
        try:
            import coverage

            coverage.Coverage(config_file=str(self._rc)).start()
        except Exception:  # noqa: BLE001 - unmeasured reads as "no guard ran here", never breaks the worker
            pass

    def finish(self) -> dict[str, Any]:
        """Stop measuring, combine this process's data with its subprocesses', clean up; the result fields."""
        covered: dict[str, set[int]] = {}
        if self._cov is not None or self._probe is not None:
            try:
                ran = self._probe.lines() if self._probe is not None else {}
                if self._probe is not None:
                    _ForkHook.measuring = None
                    self._probe.restore()
                else:
                    self._cov.stop()
                    self._cov.save()
                for file, lines in self._saved_data().items():
                    ran.setdefault(file, set()).update(lines)
                for guard, span in self.spans.items():
                    covered[guard] = ran.get(span.file, set()) & span.lines
            except Exception as exc:  # noqa: BLE001 - unmeasured must read as "no guard ran", never crash the child
                covered = {}
                for guard in self.spans:
                    self.unresolved[guard] = f"coverage measurement failed: {type(exc).__name__}: {exc}"
            finally:
                self._restore()
        lines = {g: sorted(covered.get(g, ())) for g in self.guards}
        return {"guard_lines": lines, "guards_unresolved": dict(self.unresolved)}

    def _saved_data(self) -> dict[str, set[int]]:
        """{real path: lines} saved in the data directory: by the subprocesses' probes (harness.subprocess_probe),
        and by coverage.py (this process's tracer, or forked workers'); coverage is imported only when it saved."""
        assert self._dir is not None
        found = subprocess_probe.read_saved(self._dir / "data")
        if self._cov is None and not any((self._dir / "data").glob(".coverage*")):
            return found
        import coverage

        combined = self._cov if self._cov is not None else coverage.Coverage(config_file=str(self._rc))
        combined.combine(strict=False)
        data = combined.get_data()
        for file in data.measured_files():
            found.setdefault(os.path.realpath(file), set()).update(data.lines(file) or ())
        return found

    def _restore(self) -> None:
        os._exit = self._saved_exit  # type: ignore[assignment] - coverage's _exit patch saves a stopped tracer
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


class _ForkHook:
    """os.register_at_fork cannot be undone: one hook per process, measuring whichever Measurement is current."""

    measuring: Measurement | None = None
    installed_in: int | None = None

    @classmethod
    def install(cls) -> None:
        if cls.installed_in != os.getpid():
            cls.installed_in = os.getpid()
            os.register_at_fork(after_in_child=cls._after_fork)

    @classmethod
    def _after_fork(cls) -> None:
        if cls.measuring is not None:
            cls.measuring._measure_fork()


def from_env() -> Measurement | None:
    """The measurement the parent asked for in $HARNESS_GUARDS, or None when it asked for none."""
    text = os.environ.get(GUARDS_ENV)
    if not text:
        return None
    # Subprocesses of the falsifier are measured through coverage, not by measuring again themselves.
    os.environ.pop(GUARDS_ENV, None)
    return Measurement(json.loads(text))


_current: Measurement | None = None


def start_from_env() -> None:
    """Start the measurement $HARNESS_GUARDS asks for (a no-op without it): for hook-style callers (pytest)."""
    global _current
    _current = from_env()
    if _current is not None:
        _current.start()


def finish_current() -> dict[str, Any]:
    """The result fields of the measurement start_from_env started; {} when none was."""
    global _current
    if _current is None:
        return {}
    measurement, _current = _current, None
    return measurement.finish()
