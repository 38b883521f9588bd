"""The falsifier's side of replay, run inside its child process (harness.child, harness.replay_pytest).

Two jobs, both around hypothesis and both inert in a project without it:

- `prepare()`, before the falsifier is imported: when hypothesis gets imported, load a settings profile
  that is the current one plus `print_blob=True`, so a failure's notes carry the
  `@reproduce_failure(version, blob)` hint that harness.replay_record keeps. Settings a falsifier sets
  itself (`@settings(print_blob=False)`, a profile it loads) still win; hypothesis is imported lazily,
  so a falsifier that never uses it pays nothing.
- `reproducing(...)`, under `harness replay` ($HARNESS_REPLAY set): the recorded blob applied to the
  failing @given test (hypothesis's own `reproduce_failure` mechanism), and the example it prints added
  to the failure's notes, so the counterexample reads as it did when recorded. What was applied (or why
  not) goes to $HARNESS_REPLAY_REPORT for the parent to show.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

REPLAY_VAR = "HARNESS_REPLAY"  # JSON: {"hypothesis_version": ..., "examples": [{"test", "blob", ...}]}
REPORT_VAR = "HARNESS_REPLAY_REPORT"  # a file: {"applied": [...], "not_applied": {test: why}}
PROFILE = "harness-print-blob"


def _print_blob(hypothesis: ModuleType) -> None:
    settings = hypothesis.settings
    if settings.default.print_blob:
        return
    settings.register_profile(PROFILE, parent=settings.default, print_blob=True)
    settings.load_profile(PROFILE)


class _ThenLoader(importlib.abc.Loader):
    """`loader`, then `then(module)` once the module has executed. A wrapper, not a patched loader:
    one loader object may load many modules (pytest's assertion rewriter does)."""

    def __init__(self, loader: Any, then: Callable[[ModuleType], None]) -> None:
        self._loader, self._then = loader, then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._then(module)

    def __getattr__(self, name: str) -> Any:  # resource readers, get_code, is_package...
        return getattr(self._loader, name)


class _WhenImported(importlib.abc.MetaPathFinder):
    """Runs `then(module)` right after `name` is first imported (a one-shot import hook)."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = None
        for finder in sys.meta_path:  # the finders after us (site-packages, editable installs)
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenLoader(spec.loader, self.then)
        return spec


def prepare() -> None:
    """Turn hypothesis's print_blob on for this process, now or when hypothesis is imported."""
    if "hypothesis" in sys.modules:
        _print_blob(sys.modules["hypothesis"])
    elif not any(isinstance(f, _WhenImported) for f in sys.meta_path):
        sys.meta_path.insert(0, _WhenImported("hypothesis", _print_blob))


# ---------------------------------------------------------------------------------------- replay


def requested() -> dict[str, Any] | None:
    """The replay asked for through $HARNESS_REPLAY, or None in an ordinary run."""
    text = os.environ.get(REPLAY_VAR)
    return json.loads(text) if text else None


# What this replay did, written to $HARNESS_REPLAY_REPORT: the tests the blobs were applied to, those
# they could not be applied to (and why), and each failed test's kind of failure (pytest bindings).
_STATE: dict[str, Any] = {"applied": [], "not_applied": {}, "failed": {}}


def report(applied: list[str] | None = None, not_applied: dict[str, str] | None = None) -> None:
    """Add to this replay's report and write it out (the parent reads it after the child ends)."""
    _STATE["applied"] += applied or []
    _STATE["not_applied"].update(not_applied or {})
    target = os.environ.get(REPORT_VAR)
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(_STATE, handle)


def failed(test: str, did_not_reproduce: bool) -> None:
    _STATE["failed"][test] = "did_not_reproduce" if did_not_reproduce else "failed"


def reproducing(test: Callable[..., Any], version: str, blob: str) -> Callable[..., Any]:
    """`test` (a @given function) run with the blob as hypothesis's `@reproduce_failure` would run it,
    the example it prints added to the failure's notes."""
    from hypothesis import __version__ as installed
    from hypothesis.reporting import with_reporter

    if version != installed:
        raise ValueError(f"the blob was recorded with hypothesis {version}; this is hypothesis {installed}")
    test._hypothesis_internal_use_reproduce_failure = (version, blob.encode("ascii"))  # type: ignore[attr-defined]

    @functools.wraps(test)
    def replayed(*args: Any, **kwargs: Any) -> Any:
        printed: list[str] = []
        try:
            with with_reporter(printed.append):
                return test(*args, **kwargs)
        except BaseException as exc:
            if printed and hasattr(exc, "add_note"):
                exc.add_note("\n".join(map(str, printed)))
            raise

    return replayed


def _is_given(value: Any) -> bool:
    return callable(value) and hasattr(value, "hypothesis") and hasattr(value.hypothesis, "inner_test")


def apply(module: ModuleType, func: Callable[..., Any]) -> Callable[..., Any]:
    """Under replay, the recorded blobs applied to a python falsifier: to `func` itself when it is the
    failing @given test, else to the @given function of that name in its module (which `func` calls).
    Returns what to call: `func`, or `func` replaying."""
    replay = requested()
    if replay is None:
        return func
    applied: list[str] = []
    not_applied: dict[str, str] = {}
    for example in replay.get("examples", []):
        name, blob = example["test"], example.get("blob")
        if not blob:
            not_applied[name] = "hypothesis printed no blob for it"
            continue
        own = _is_given(func) and func.hypothesis.inner_test.__name__ == name
        target = func if own else getattr(module, name, None)
        if not _is_given(target):
            not_applied[name] = f"no @given function {name} in {module.__name__}"
            continue
        try:
            wrapped = reproducing(target, replay["hypothesis_version"], blob)
        except ValueError as exc:
            not_applied[name] = str(exc)
            continue
        if own:
            func = wrapped
        else:
            setattr(module, name, wrapped)
        applied.append(name)
    report(applied, not_applied)
    return func
