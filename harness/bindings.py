"""Checking that bindings resolve, through harness.resolve, one repository root at a time.

python targets and `guards:` import and are callable (one isolated child interpreter per
root), pytest node ids and -k expressions collect at least `min_tests` tests (one
`pytest --collect-only` per root), and a command's program exists. Paths resolve against the
contract's repository root, never the current directory. Also where `pytest: "-k EXPR"` looks.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from harness.contract_doc import ContractDoc, ProblemSink, Problems, dicts, strs
from harness.discover import ROOT_MARKERS
from harness.model import Problem, SourceLocation
from harness.resolve import check_program, check_python_targets, collect_pytest


# Used with fullmatch: `$` would also match before a trailing newline ("pkg.mod:fn\n").
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_MISSING_MODULE = re.compile(r"No module named '([^']+)'")


def _normalize_package(name: str) -> str:
    return re.split(r"[<>=!~\[; ]", name, maxsplit=1)[0].strip().lower().replace("-", "_")


class _FallbackRootProblems:
    """Binding problems of contracts with no repository marker above them say which root was used:
    "does not exist under ROOT" alone would not tell the author why it looked there."""

    def __init__(self, problems: ProblemSink, root: Path) -> None:
        self._problems = problems
        self._root = root

    def add(self, location: SourceLocation, subject: str, message: str) -> None:
        note = (
            f"; resolved against {self._root} (no {' or '.join(ROOT_MARKERS)} found above {location.path}: "
            "add a pyproject.toml at the repository root)"
        )
        self._problems.add(location, subject, message + note)


def check_bindings(docs: list[ContractDoc], problems: Problems) -> None:
    """Resolve every binding and guard of `docs`, grouped by repository root (one child of each kind per root)."""
    by_root: dict[tuple[Path, bool], list[ContractDoc]] = {}
    for doc in docs:
        by_root.setdefault((doc.root, doc.root_marked), []).append(doc)
    for (root, marked), root_docs in by_root.items():
        sink: ProblemSink = problems if marked else _FallbackRootProblems(problems, root)
        _check_python_bindings(root, root_docs, sink)
        _check_pytest_bindings(root, root_docs, sink)
        _check_command_bindings(root, root_docs, sink)


def _python_fix(reason: str, target: str) -> str:
    if reason.startswith("importing module"):
        return "make importing that module side-effect free (no exit, crash or endless work at import time)"
    if "does not import" in reason:
        command = shlex.join(["python", "-c", f"import {target.partition(':')[0]}"])
        return f"fix the module name or the import error ({command} from the repository root shows it)"
    if "has no attribute" in reason:
        return "fix the function name or define the function"
    if "required arguments" in reason:
        return "give those parameters defaults or bind a zero-argument function"
    return "bind a function"


def _check_python_bindings(root: Path, docs: list[ContractDoc], problems: ProblemSink) -> None:
    # (doc, path to the value, target, the falsifier or None for a guard); the subject and the declared
    # packages are worked out only for a target that does not resolve.
    uses: list[tuple[ContractDoc, tuple[Any, ...], str, Any]] = []
    for doc in docs:
        for i, inv in dicts(doc.data, "invariants"):
            for j, guard in strs(inv.get("guards")):
                if _TARGET.fullmatch(guard):
                    uses.append((doc, ("invariants", i, "guards", j), guard, None))
        for i, fal in dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            target = binding.get("python") if isinstance(binding, dict) else None
            if isinstance(target, str) and _TARGET.fullmatch(target):
                uses.append((doc, ("falsifiers", i, "binding", "python"), target, fal))
    if not uses:
        return
    results = check_python_targets(root, [u[2] for u in uses], zero_arg={u[2] for u in uses if u[3] is not None})
    for doc, path, target, fal in uses:
        reason = results.get(target)
        if reason is None:
            continue
        is_binding = fal is not None
        requires = fal.get("requires") if is_binding else None
        packages = requires.get("packages") if isinstance(requires, dict) else None
        declared = frozenset(_normalize_package(p) for _, p in strs(packages))
        missing = _MISSING_MODULE.search(reason)
        if missing and missing.group(1).split(".")[0].lower() in declared:
            # The falsifier says it needs this package; the runner reports it not_run where absent.
            continue
        what = "binding python:" if is_binding else "guards:"
        problems.add(doc.loc(path), doc.subject(path[:2]), f"{what} {target} does not resolve: {reason}; {_python_fix(reason, target)}")


def _outside_root(root: Path, relative: str) -> str | None:
    """Why a binding path is not a repository-relative path inside `root`, or None.

    An absolute path, or one that climbs out with `..` or through a symlink, would make the contract
    depend on one machine's layout or on the current directory of whoever runs it, and would run code
    the repository does not hold."""
    if Path(relative).is_absolute():
        return f"the path is absolute; write it relative to the repository root {root}"
    if os.path.normpath(relative).split(os.sep)[0] == os.pardir:
        return f"the path leads outside the repository root {root}; bind tests inside the repository"
    # A symlinked test directory is fine while it points inside the repository; one that leads out
    # of it is `..` by another name.
    try:
        real = (root / relative).resolve()
        inside = real.is_relative_to(root.resolve())
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        return f"the path cannot be resolved under the repository root {root} ({exc}); fix the path"
    if not inside:
        return f"the path leads outside the repository root {root} through a symlink (to {real}); bind tests inside the repository"
    return None


def _pytest_value(binding: Any, root: Path) -> Any:
    """A pytest binding's value with the `"-k EXPR"` shorthand expanded to its mapping form."""
    value = binding["pytest"]
    if isinstance(value, str) and (k_expr := k_shorthand(value)) is not None:
        return {"k": k_expr, "paths": list(default_test_paths(root))}
    return value


def _is_node_id(value: Any) -> bool:
    # Anything else is not a node id at all: the schema check has already said how to write it.
    return isinstance(value, str) and bool(value.strip()) and not value.startswith("-") and not any(c.isspace() for c in value)


def check_binding_paths(docs: list[ContractDoc], problems: Problems) -> None:
    """The static binding rules, which need no child process: every path a pytest binding names (a
    node id's file, a -k expression's `paths`) stays inside the contract's repository root.

    `harness validate` and `harness verify` (and a plain `pytest contracts/`) all apply these, so
    nothing outside the repository is ever run; the rules that import or collect are check_bindings."""
    for doc in docs:
        sink: ProblemSink = problems if doc.root_marked else _FallbackRootProblems(problems, doc.root)
        for i, fal in dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            if not isinstance(binding, dict) or "pytest" not in binding:
                continue
            subject = doc.subject(("falsifiers", i))
            path = ("falsifiers", i, "binding", "pytest")
            value = _pytest_value(binding, doc.root)
            if _is_node_id(value):
                outside = _outside_root(doc.root, value.split("::", 1)[0])
                if outside:
                    sink.add(doc.loc(path), subject, f"binding pytest: {value}: {outside}")
            elif isinstance(value, dict) and isinstance(value.get("k"), str):
                outside = [(p, why) for _, p in strs(value.get("paths")) if (why := _outside_root(doc.root, p))]
                if outside:
                    sink.add(doc.loc(path + ("paths",)), subject, f"binding pytest -k {value['k']!r}: {outside[0][0]}: {outside[0][1]}")


def _check_pytest_bindings(root: Path, docs: list[ContractDoc], problems: ProblemSink) -> None:
    nodes: list[tuple[ContractDoc, tuple[Any, ...], str, str, int]] = []
    ks: dict[str, tuple[ContractDoc, tuple[Any, ...], str, str, list[str], int]] = {}
    for doc in docs:
        for i, fal in dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            if not isinstance(binding, dict) or "pytest" not in binding:
                continue
            subject = doc.subject(("falsifiers", i))
            min_tests = binding.get("min_tests", 1)
            min_tests = min_tests if isinstance(min_tests, int) and not isinstance(min_tests, bool) else 1
            value = _pytest_value(binding, root)
            path = ("falsifiers", i, "binding", "pytest")
            if isinstance(value, str) and value.strip():
                if not _is_node_id(value):
                    continue
                file_part = value.split("::", 1)[0]
                if _outside_root(root, file_part):
                    continue  # check_binding_paths has reported it; nothing outside the root is collected
                exists = (root / file_part).is_file() or ("::" not in value and (root / file_part).is_dir())
                if not exists:
                    problems.add(
                        doc.loc(path), subject,
                        f"binding pytest: {value}: file {file_part} does not exist under the repository root {root}; "
                        "fix the path (repository-relative)",
                    )
                    continue
                nodes.append((doc, path, subject, value, min_tests))
            elif isinstance(value, dict) and isinstance(value.get("k"), str):
                paths = [p for _, p in strs(value.get("paths"))]
                if any(_outside_root(root, p) for p in paths):
                    continue  # check_binding_paths has reported it
                missing = [p for p in paths if not (root / p).exists()]
                if missing:
                    problems.add(
                        doc.loc(path + ("paths",)), subject,
                        f"binding pytest -k {value['k']!r}: path {missing[0]} does not exist under the repository root "
                        f"{root}; fix the path (repository-relative)",
                    )
                    continue
                if paths:
                    ks[str(len(ks))] = (doc, path, subject, value["k"], paths, min_tests)
    if not nodes and not ks:
        return
    collection = collect_pytest(
        root, list(dict.fromkeys(n[3] for n in nodes)), {key: (v[3], v[4]) for key, v in ks.items()}
    )
    errors_by_file: dict[str, str] = {}
    for nodeid, message in collection.errors:
        errors_by_file.setdefault(nodeid.split("::", 1)[0], message)
    for doc, path, subject, node, min_tests in nodes:
        if collection.failure:
            problems.add(doc.loc(path), subject, f"binding pytest: {node} could not be checked: {collection.failure}; run that pytest command to see why")
            continue
        count = collection.node_counts.get(node, 0)
        if count < min_tests:
            file_error = errors_by_file.get(node.split("::", 1)[0].removeprefix("./"))
            why = f" (collection error: {file_error})" if file_error else ""
            found = "collects nothing" if count == 0 else f"collects {count} tests, fewer than min_tests {min_tests}"
            problems.add(
                doc.loc(path), subject,
                f"binding pytest: {node} {found}{why}; check with: "
                f"{shlex.join(['python', '-m', 'pytest', '--collect-only', '-q', node])}",
            )
    for key, (doc, path, subject, expr, paths, min_tests) in ks.items():
        if collection.failure:
            problems.add(doc.loc(path), subject, f"binding pytest -k {expr!r} could not be checked: {collection.failure}")
            continue
        count = collection.k_counts.get(key, 0)
        if isinstance(count, str):
            problems.add(doc.loc(path + ("k",)), subject, f"binding pytest: {count}; fix the expression")
            continue
        if count < min_tests:
            found = "collects nothing" if count == 0 else f"collects {count} tests, fewer than min_tests {min_tests}"
            problems.add(
                doc.loc(path + ("k",)), subject,
                f"binding pytest -k {expr!r} in {' '.join(paths)} {found}; check with: "
                f"{shlex.join(['python', '-m', 'pytest', '--collect-only', '-q', '-k', expr, *paths])}",
            )


def _check_command_bindings(root: Path, docs: list[ContractDoc], problems: ProblemSink) -> None:
    cache: dict[str, str | None] = {}
    for doc in docs:
        for i, fal in dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            junit = binding.get("junit") if isinstance(binding, dict) else None
            if isinstance(junit, str) and junit:
                outside = _outside_root(root, junit)
                if outside:
                    problems.add(
                        doc.loc(("falsifiers", i, "binding", "junit")), doc.subject(("falsifiers", i)),
                        f"binding junit: {junit}: {outside.replace('bind tests', 'write the junit file')}",
                    )
            command = binding.get("command") if isinstance(binding, dict) else None
            for path, argv in _command_steps(command):
                if not argv or not isinstance(argv[0], str) or not argv[0]:
                    continue
                program = argv[0]
                if program not in cache:
                    cache[program] = check_program(root, program)
                if cache[program]:
                    problems.add(
                        doc.loc(("falsifiers", i, "binding", "command", *path, 0)), doc.subject(("falsifiers", i)),
                        f"binding command: {cache[program]}",
                    )


def _command_steps(command: Any) -> list[tuple[tuple[int, ...], list[Any]]]:
    """(path below `command`, argv) for one command (`[prog, ...]`) or each step of a chain (`[[prog, ...], ...]`)."""
    if not isinstance(command, list) or not command:
        return []
    if isinstance(command[0], list):
        return [((j,), step) for j, step in enumerate(command) if isinstance(step, list)]
    return [((), command)]


def unbound_warnings(docs: list[ContractDoc]) -> list[Problem]:
    """One warning per falsifier bound to no runnable test (`binding: {unbound: TEXT}`), in file order.

    Not a problem, so imported contracts still validate and the rest of them run; verify records each
    one as `error`, never `passed` (a deferred one is `deferred` until its date, and not warned about)."""
    found = []
    for doc in docs:
        for i, fal in dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            text = binding.get("unbound") if isinstance(binding, dict) else None
            if not isinstance(text, str) or "deferred" in fal:
                continue  # a deferred one is reported as deferred, and its expiry is an error of its own
            shown = " ".join(text.split())
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            found.append(Problem(
                doc.loc(("falsifiers", i, "binding", "unbound")), doc.subject(("falsifiers", i)),
                f"warning: unbound: no runnable test is bound ({shown!r}); verify records it as error until it "
                "has a python, pytest or command binding (or a deferral)",
                check="unbound",
            ))
    return found


_K_SHORTHAND = re.compile(r"-k\s+(\S.*)", re.S)


def k_shorthand(value: str) -> str | None:
    """The expression of a `pytest: "-k EXPR"` binding, or None when the value is a node id."""
    match = _K_SHORTHAND.fullmatch(value.strip())
    return match.group(1).strip() if match else None


def default_test_paths(root: Path) -> tuple[str, ...]:
    """Where `pytest: "-k EXPR"` looks: the repository's configured pytest `testpaths`, else the root.

    The shorthand must select what the project's own `pytest` run would, so it reads the same
    configuration pytest does (pyproject.toml, pytest.ini, tox.ini, setup.cfg) instead of guessing.
    """
    configured: list[str] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library
            tomllib = None  # type: ignore[assignment]
        if tomllib is not None:
            try:
                ini = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
                value = ini.get("ini_options", {}).get("testpaths", [])
                configured = [value] if isinstance(value, str) else [str(v) for v in value]
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                configured = []
    if not configured:
        import configparser

        for name, section in (("pytest.ini", "pytest"), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
            parser = configparser.ConfigParser()
            try:
                parser.read(root / name, encoding="utf-8")
            except (configparser.Error, UnicodeDecodeError):
                continue
            if parser.has_option(section, "testpaths"):
                configured = parser.get(section, "testpaths").split()
                break
    existing = tuple(p for p in configured if (root / p).exists() and not _outside_root(root, p))
    return existing or (".",)

