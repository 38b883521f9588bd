"""Guard lines in a falsifier's python subprocesses by slipcover's probes, as in its own process (Python 3.11).

harness.guard_coverage measures the falsifier's own process with harness.line_probe; its python
subprocesses (`python -m pretrain train ...` from a CLI test, torchrun's workers) start with $HARNESS_GUARD_PROBE
and harness/probe_site on their PYTHONPATH, whose sitecustomize calls `start_from_env`: every module loaded from
one of the guards' files is compiled with probes in all its code (nothing else is touched, no tracer runs), and at
the process's end (interpreter exit, or os._exit) the lines that ran are written to the measurement's private
directory as probe-<pid>-<token>.json, which the falsifier's process reads back (`read_saved`). Their own
subprocesses inherit both variables and are measured alike; forked workers record in their own memory and write
their own file when they end.

Where coverage.py measured subprocesses before (Python 3.12+, or no slipcover), this module is not used. A
subprocess given an environment that drops PYTHONPATH is not measured, as with coverage.py's variable.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import secrets
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.line_probe import LineProbe

ENV = "HARNESS_GUARD_PROBE"
SITE_DIR = str(Path(__file__).resolve().parent / "probe_site")
PREFIX = "probe-"


def environment(data_dir: Path, files: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that make the python subprocesses of this process probe `files` (real paths) and save to
    `data_dir`: $HARNESS_GUARD_PROBE, and probe_site first on PYTHONPATH."""
    path = environ.get("PYTHONPATH", "")
    return {
        ENV: json.dumps({"dir": str(data_dir), "files": sorted(set(files))}),
        "PYTHONPATH": os.pathsep.join(p for p in (SITE_DIR, path) if p),
    }


def read_saved(data_dir: Path) -> dict[str, set[int]]:
    """{real path: lines} of every probe file the subprocesses wrote into `data_dir` (a torn one is skipped:
    its process died while writing, as a process killed before writing saves nothing)."""
    found: dict[str, set[int]] = {}
    for file in data_dir.glob(PREFIX + "*.json"):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            for path, lines in data.items():
                if isinstance(path, str) and isinstance(lines, list):
                    found.setdefault(path, set()).update(n for n in lines if type(n) is int)
    return found


# ---------------------------------------------------------------------------------------- in the subprocess


class _ProbedLoader(importlib.abc.Loader):
    """The source loader of a guard file, returning its code with probes in it (a module import and runpy's
    `python -m` alike go through get_code)."""

    def __init__(self, loader: Any, recorder: _Recorder) -> None:
        self._loader, self._recorder = loader, recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def get_code(self, fullname: str) -> Any:
        code = self._loader.get_code(fullname)
        return self._recorder.probe(code) if code is not None else None

    def exec_module(self, module: Any) -> None:
        code = self.get_code(module.__name__)
        if code is None:
            raise ImportError(f"cannot load {module.__name__}: no code")
        exec(code, module.__dict__)  # noqa: S102 - what SourceLoader.exec_module does, with the probed code


class _Finder(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: asks the others, and wraps the loader of a spec whose origin is a guard file."""

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        origin = spec.origin
        if isinstance(origin, str) and os.path.realpath(origin) in self._recorder.files \
                and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            spec.loader = _ProbedLoader(spec.loader, self._recorder)
        return spec


class _Recorder:
    def __init__(self, data_dir: str, files: Iterable[str]) -> None:
        self.dir = data_dir
        self.files = frozenset(files)
        self._probe = LineProbe()
        self._saved_by: int | None = None  # the pid that wrote this process's file

    def probe(self, code: Any) -> Any:
        return self._probe.instrument(code)

    def save(self) -> None:
        """Write this process's lines once (a forked worker, with its own pid, writes its own file)."""
        if self._saved_by == os.getpid():
            return
        self._saved_by = os.getpid()
        lines = {path: sorted(ran) for path, ran in self._probe.lines().items()}
        target = os.path.join(self.dir, f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}.json")
        try:
            with open(target + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(lines, handle)
            os.replace(target + ".tmp", target)  # read_saved never sees half a file
        except OSError:
            pass  # the directory is gone (the falsifier's process ended first): nothing to report to


def start_from_env() -> None:
    """In a python subprocess (probe_site's sitecustomize): probe the guard files $HARNESS_GUARD_PROBE names."""
    try:
        spec = json.loads(os.environ.get(ENV, ""))
        recorder = _Recorder(spec["dir"], spec["files"])
    except Exception:  # noqa: BLE001 - no measurement asked for, or none possible: the process runs as it would
        return
    sys.meta_path.insert(0, _Finder(recorder))
    import atexit

    atexit.register(recorder.save)
    exit_now = os._exit

    def _exit(status: int) -> None:  # multiprocessing's workers, and our own children, end this way
        recorder.save()
        exit_now(status)

    os._exit = _exit
