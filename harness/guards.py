"""Where a guard (`module:qualname`) is defined: its source file, qualname and line range.

    locate_guards(root, guards, *, timeout_s=120.0) -> dict[str, GuardSite]

The guards are imported in ONE isolated child per repository root (harness.isolation, like
harness.resolve): the harness never imports project code in its own process. A re-export
(`pretrain.checkpoint:read_header` defined in `pretrain.formats.safetensors`) resolves to where the
function is defined, since that file is the one a mutant must change. A guard whose source is not a
Python file inside the repository (a C extension, an installed package, a command binding's project)
is `skipped` with that reason.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.isolation import child_env, describe_exit, run_isolated

# Runs in the child; self-contained (the repository under check need not have the harness).
_LOCATE_CHILD = r"""
import importlib, inspect, json, sys
guards, out_path, root = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
found = {}
for guard in guards:
    module_name, _, attr_path = guard.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        obj = inspect.unwrap(obj)
        kind = "class" if inspect.isclass(obj) else "function"
        if inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj):
            found[guard] = {"file": None, "builtin": f"{guard} is built in or compiled"}
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            raise TypeError(f"{guard} is a {type(obj).__name__}, not a function, method or class")
        try:
            source = inspect.getsourcefile(obj)
        except TypeError:  # a built-in or an extension module's function: no Python source
            found[guard] = {"file": None, "builtin": f"{guard} is built in or compiled"}
            continue
        lines, start = inspect.getsourcelines(obj)
        found[guard] = {"file": source, "qualname": obj.__qualname__, "kind": kind,
                        "lines": [start, start + len(lines) - 1], "module": obj.__module__}
    except BaseException as exc:
        found[guard] = {"error": f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]}
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(found, f)
"""


@dataclass(frozen=True)
class GuardSite:
    """One guard as resolved: `resolved`, or `skipped` with the reason."""

    guard: str
    status: str  # "resolved" | "skipped"
    reason: str | None = None
    file: str | None = None  # repository-relative path of the defining module
    qualname: str | None = None  # as defined there (a re-export's defining name)
    lines: tuple[int, int] | None = None  # first and last line of the definition


def locate_guards(root: Path, guards: Iterable[str], *, timeout_s: float = 120.0) -> dict[str, GuardSite]:
    """Resolve every guard in one child interpreter rooted at `root`."""
    wanted = list(dict.fromkeys(guards))
    if not wanted:
        return {}
    root = root.resolve()
    with tempfile.TemporaryDirectory(prefix="harness-guards-") as tmp:
        out_path = Path(tmp) / "guards.json"
        run = run_isolated(
            [sys.executable, "-c", _LOCATE_CHILD, json.dumps(wanted), str(out_path), str(root)],
            root, timeout_s, child_env(root),
        )
        if not out_path.exists():
            why = f"resolving the guards {describe_exit(run, timeout_s)}: {run.output.strip()[-300:]}"
            return {g: GuardSite(g, "skipped", why) for g in wanted}
        found = json.loads(out_path.read_text(encoding="utf-8"))
    return {g: _site(g, found.get(g, {"error": "not reported"}), root) for g in wanted}


def _site(guard: str, data: dict[str, object], root: Path) -> GuardSite:
    if "error" in data:
        return GuardSite(guard, "skipped", f"does not resolve: {data['error']}")
    source = data.get("file")
    if not isinstance(source, str) or not source.endswith(".py"):
        what = source or data.get("builtin") or "none found"
        return GuardSite(guard, "skipped", f"its source is not a Python file ({what}); teeth mutate Python source only")
    path = Path(source).resolve()
    if not path.is_relative_to(root):
        return GuardSite(guard, "skipped", f"its source {path} is outside the repository {root}; only the repository's own code is mutated")
    first, last = data["lines"]  # type: ignore[misc]
    qualname = str(data["qualname"])
    if "<locals>" in qualname:
        return GuardSite(guard, "skipped", f"it is defined inside a function ({qualname}); name a module-level function, method or class")
    return GuardSite(guard, "resolved", None, path.relative_to(root).as_posix(), qualname, (int(first), int(last)))
