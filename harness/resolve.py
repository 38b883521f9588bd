"""Checks that bindings point at something real, each in a subprocess so the validator stays safe.

Public API:

    check_python_targets(root, targets, *, zero_arg=frozenset(), timeout_s=120.0) -> dict[str, str | None]
    collect_pytest(root, nodes, k_exprs, *, timeout_s=300.0) -> PytestCollection
    check_program(root, program) -> str | None

Python targets (``module:function``) are imported in ONE child interpreter per repository root,
each distinct module once. The child writes a line before and after each import, so a module
that crashes the interpreter (segfault, ``os._exit``) or hangs is named in the problem and the
remaining modules are checked in a fresh child. Each function returns ``None`` for a target that
resolves, else a one-line reason.

Pytest bindings are checked by one child per repository root (harness.collect_child), which
collects every path once with ``pytest.main(["--collect-only", ...])`` and makes each ``-k``
selection through pytest's own ``-k`` deselection hook, so its semantics (names, parents, markers)
are exactly those of a real run.

Every child runs through harness.isolation, like a falsifier: its own process group (killed as a
whole), the same environment, stdin from /dev/null, output captured to a bounded file.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from harness.isolation import ProcessRun, child_env, exit_of, run_isolated

# Runs in the child. Self-contained: it must not import harness (the repo under check may not have it).
_IMPORT_CHILD = r"""
import importlib, inspect, json, sys
spec_path, out_path, root = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
with open(spec_path, encoding="utf-8") as f:
    spec = json.load(f)
out = open(out_path, "a", encoding="utf-8", buffering=1)
def emit(*parts):
    out.write("\t".join(parts) + "\n")
    out.flush()
for module_name, checks in spec:
    emit("B", module_name)
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        reason = f"module {module_name!r} does not import: {type(exc).__name__}: {exc}".replace("\n", " ")
        for target, _ in checks:
            emit("R", target, reason)
        emit("E", module_name)
        continue
    for target, zero_arg in checks:
        obj = module
        attr_path = target.partition(":")[2]
        reason = ""
        walked = module_name
        for part in attr_path.split("."):
            try:
                obj = getattr(obj, part)
            except BaseException:
                reason = f"{walked!r} has no attribute {part!r}"
                break
            walked += ("." if walked != module_name else ":") + part
        if not reason and not callable(obj):
            reason = f"{target} is not callable (it is of type {type(obj).__name__})"
        if not reason and zero_arg:
            try:
                sig = inspect.signature(obj)
                required = [p.name for p in sig.parameters.values()
                            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            except (TypeError, ValueError):
                required = []
            if required:
                reason = f"{target} takes required arguments ({', '.join(required)}); a falsifier is called with none"
        emit("R", target, reason)
    emit("E", module_name)
"""


def _describe_exit(run: ProcessRun, timeout_s: float) -> str:
    end = exit_of(run)
    if end.how == "timeout":
        return f"hung for more than {timeout_s:g} s"
    if end.how == "signal":
        return f"was killed by {end.signal}"
    return f"exited the interpreter with status {end.status}"


def check_python_targets(
    root: Path,
    targets: Iterable[str],
    *,
    zero_arg: Iterable[str] = frozenset(),
    timeout_s: float = 120.0,
) -> dict[str, str | None]:
    """Import each target's module in a child interpreter; None for a target that resolves."""
    zero = set(zero_arg)
    by_module: dict[str, list[tuple[str, bool]]] = {}
    for target in dict.fromkeys(targets):
        module_name = target.partition(":")[0]
        by_module.setdefault(module_name, []).append((target, target in zero))
    results: dict[str, str | None] = {}
    pending = list(by_module.items())
    with tempfile.TemporaryDirectory(prefix="harness-import-") as tmp:
        attempt = 0
        while pending:
            attempt += 1
            spec_path = Path(tmp, f"spec{attempt}.json")
            out_path = Path(tmp, f"out{attempt}.txt")
            spec_path.write_text(json.dumps(pending), encoding="utf-8")
            out_path.write_text("", encoding="utf-8")
            # The imported modules' own output is captured (and bounded) but never parsed: the
            # protocol goes to out_path, so a module printing protocol-like lines cannot forge a result.
            run = run_isolated(
                [sys.executable, "-c", _IMPORT_CHILD, str(spec_path), str(out_path), str(root)],
                root, timeout_s, child_env(root),
            )
            started: str | None = None
            finished: set[str] = set()
            for line in out_path.read_text(encoding="utf-8", errors="replace").splitlines():
                kind, _, rest = line.partition("\t")
                if kind == "B":
                    started = rest
                elif kind == "E":
                    finished.add(rest)
                    started = None
                elif kind == "R":
                    target, _, reason = rest.partition("\t")
                    results[target] = reason or None
            culprit = started
            if culprit is None and len(finished) < len(pending):
                # The child died before it announced the next module (e.g. at start-up).
                culprit = next(name for name, _ in pending if name not in finished)
            remaining = []
            for module_name, checks in pending:
                if module_name in finished:
                    continue
                if module_name == culprit:
                    reason = f"importing module {module_name!r} {_describe_exit(run, timeout_s)}"
                    for target, _ in checks:
                        results[target] = reason
                    continue
                remaining.append((module_name, checks))
            pending = remaining
    return results


@dataclass
class PytestCollection:
    """What one collection run found: counts per node id and per -k key, or why it failed."""

    node_counts: dict[str, int] = field(default_factory=dict)
    k_counts: dict[str, int | str] = field(default_factory=dict)  # str: the expression is invalid
    errors: list[tuple[str, str]] = field(default_factory=list)  # (nodeid, last line) of collection errors
    failure: str | None = None  # the whole run failed; every binding in this root is unverified


def _norm_node(node: str) -> str:
    """The node id as pytest reports it: `./a/../b//t.py::x` -> `b/t.py::x`."""
    file_part, sep, rest = node.partition("::")
    return posixpath.normpath(file_part) + sep + rest


def collect_pytest(
    root: Path,
    nodes: Sequence[str],
    k_exprs: dict[str, tuple[str, Sequence[str]]],
    *,
    timeout_s: float = 300.0,
) -> PytestCollection:
    """Collect (never run) the given node ids and -k selections in one child from `root`.

    `nodes` must name files that exist (the caller reports missing files without running pytest);
    `k_exprs` maps a caller-chosen key to (expression, paths).
    """
    result = PytestCollection()
    args = [_norm_node(node).split("::", 1)[0] for node in nodes]
    for _, paths in k_exprs.values():
        args.extend(paths)
    args = list(dict.fromkeys(args))
    if not args:
        return result
    with tempfile.TemporaryDirectory(prefix="harness-collect-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        out_path = Path(tmp) / "out.json"
        spec_path.write_text(
            json.dumps({"root": str(root), "args": args, "k": {key: [e, list(p)] for key, (e, p) in k_exprs.items()}}),
            encoding="utf-8",
        )
        run = run_isolated(
            [sys.executable, "-m", "harness.collect_child", str(spec_path), str(out_path)],
            root, timeout_s, child_env(root),
        )
        if run.timed_out:
            result.failure = f"pytest --collect-only ran for more than {timeout_s:g} s"
            return result
        data = json.loads(out_path.read_text(encoding="utf-8")) if out_path.exists() else None
        if data is None or data["failed"] is not None:
            status = data["failed"] if data is not None else run.returncode
            tail = run.output.strip().splitlines()[-3:]
            result.failure = f"pytest --collect-only failed (exit {status}): " + " | ".join(tail)
            return result
    items: list[str] = data["items"]
    # One pass over the items per distinct file keeps this linear in the number of tests.
    by_file: dict[str, list[str]] = {}
    for item in items:
        by_file.setdefault(item.split("::", 1)[0], []).append(item)
    for node in nodes:
        norm = _norm_node(node)
        file_part = norm.split("::", 1)[0]
        if norm == file_part and (root / file_part).is_dir():
            prefix = "" if file_part == "." else file_part.rstrip("/") + "/"
            count = sum(len(v) for k, v in by_file.items() if k.startswith(prefix))
        elif norm == file_part:
            count = len(by_file.get(file_part, ()))
        else:
            count = sum(
                1 for item in by_file.get(file_part, ())
                if item == norm or item.startswith(norm + "::") or item.startswith(norm + "[")
            )
        result.node_counts[node] = count
    result.k_counts = data["k"]
    result.errors = [(e["nodeid"], e["message"]) for e in data["errors"]]
    return result


def check_program(root: Path, program: str) -> str | None:
    """None when the command's program can be run: a repository-relative path or a name on PATH."""
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program)
        if not path.is_absolute():
            path = root / path
        if not path.is_file():
            return f"program {program!r} does not exist (looked for {path})"
        if not os.access(path, os.X_OK):
            return f"program {program!r} is not executable; run: chmod +x {program}"
        return None
    if shutil.which(program) is None:
        return f"program {program!r} is not found on PATH; install it or use a repository-relative path"
    return None
