"""Which files of the repository a falsifier's child imported or read, for `harness verify --changed-since`.

Child side (harness.child, harness.pytest_counter): `watch()` before the falsifier is imported, and
`Watch.finish(extra)` where the result record is assembled: the files of every `sys.modules` entry inside
the repository root (our cwd), every file there the process opened for reading (an audit hook on `open`:
data files, fixtures, configuration such as pyproject.toml), plus `extra` (the falsifier's own module; for
pytest the collected test modules and conftest.py files), as repository-relative POSIX paths in the signed
record (`imported_files`), or None with the reason (`imports_unmeasured`) when the list cannot be complete.
Bytecode caches and hidden directories (.git, .hypothesis) are left out: the run rewrites them itself.

It cannot be complete once the falsifier started a process that may run the repository's code (a Python
interpreter, a script, a shell, a program inside the repository, a fork; see `Watch`): whatever that process
imports is invisible from here. A Python audit hook notes every process started; that result's `modules`
is then None and `--changed-since` always runs it again.

Parent side (harness.execute): `hash_files(repo_root, paths)` -> {path: "sha256:<hex>"}. The parent hashes,
not the child: the child is the code under test, and hashing the listed paths here means a falsifier can
at most leave a file out (never vouch for content it did not have), and the child spends none of its
timeout on hashing. `current_hash` is the same hash for the selection in harness.incremental.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# The audit events of starting another process (https://docs.python.org/3/library/audit_events.html),
# and where in each event's arguments the program is.
_PROGRAM_ARG = {"subprocess.Popen": 0, "os.exec": 0, "os.posix_spawn": 0, "os.spawn": 1}
_ALWAYS_UNSEEN = frozenset({"os.system", "os.fork", "os.forkpty", "pty.spawn"})  # a shell, or this very process forked
# Programs that run another program they are given (a shell runs anything): never known to be harmless.
_LAUNCHERS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish", "env", "xargs", "nohup", "timeout", "nice", "setsid",
                        "sudo", "time", "stdbuf", "strace", "taskset", "numactl", "srun", "mpirun", "uv", "conda"})
_MAX_SPAWNS = 64
_MAX_OPENED = 100_000  # more files read than this: not measured (the listing would be the evidence's bulk)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_PYTHON_NAME = re.compile(r"(python|pypy)[0-9.]*[a-z]?$")
# Where a child forked from harness.fork_server finds the names of the modules the server held when it forked
# (a frozenset): the server refuses to fork for a repository any of them came from, so they need no resolving
# here (a server holding torch holds thousands). harness/fork_server.py spells the same name.
HELD_MODULE = "_harness_fork_server_held"


class Watch:
    """One child's record of what it imported; `finish` gives the result fields.

    Starting another process makes the list incomplete when that process can import or run this
    repository's code: a Python interpreter (a console script such as torchrun or pytest included, by its
    shebang), a program or script inside the repository, a shell or launcher (it may run either), or a fork
    of this process. Others (git, nvidia-smi, ldconfig that a library runs to probe the machine) cannot, and
    keep the measurement. The hook only notes the program; it is judged in `finish`, outside the hook."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.spawns: list[tuple[str, str, str | None]] = []  # (event, program, PATH it was looked up in)
        self.opened: set[str] = set()  # absolute paths opened for reading (data files, fixtures, configs)
        self.overflow = False

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        # Audit hooks cannot be removed and run on every audited call: a set lookup for anything else, and
        # nothing here may raise into the falsifier's call (a malformed event reads as unseeable).
        if event == "open":
            self._opened(args)
        elif event in _ALWAYS_UNSEEN:
            self._note(event, "", None)
        elif event in _PROGRAM_ARG:
            try:
                program = args[_PROGRAM_ARG[event]]
                argv = args[_PROGRAM_ARG[event] + 1]
                if program is None:  # subprocess without executable=: the program is argv[0]
                    program = argv if isinstance(argv, (str, bytes)) else argv[0]
                env = args[-1] if isinstance(args[-1], dict) else None
                path = (env or {}).get("PATH") if env is not None else None
                self._note(event, os.fsdecode(program), os.fsdecode(path) if path is not None else None)
            except Exception:  # noqa: BLE001
                self._note(event, "", None)

    def _opened(self, args: tuple[Any, ...]) -> None:
        """A file opened for reading (open(), os.open, the import system's own reads): its content is an input."""
        try:
            target, mode, flags = args[0], args[1], args[2]
            if isinstance(target, int):
                return  # an fd already open: its opening was seen
            if isinstance(mode, str) and any(c in mode for c in "wax+"):
                return
            if mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS:
                return
            if len(self.opened) >= _MAX_OPENED:
                self.overflow = True
                return
            self.opened.add(os.path.join(os.getcwd(), os.fsdecode(os.fspath(target))))
        except Exception:  # noqa: BLE001 - a read we cannot name: the listing is incomplete
            self.overflow = True

    def _note(self, event: str, program: str, path: str | None) -> None:
        if len(self.spawns) < _MAX_SPAWNS:
            self.spawns.append((event, program, path))
        elif not self.spawns or self.spawns[-1][1] != "":
            self.spawns[-1] = (event, "", None)  # too many to keep: the last one reads as unseeable

    def _unseeable(self, event: str, program: str, path: str | None) -> str | None:
        """Why a process started by `event` running `program` may have imported what we cannot see, or None."""
        if not program:
            return event
        found = program if os.sep in program else shutil.which(program, path=path)
        if found is None:
            return None  # nothing was started
        real = os.path.realpath(found)
        name = os.path.basename(real)
        if real.startswith(self.root + os.sep):
            return f"{event}: {program}, inside the repository"
        if _PYTHON_NAME.fullmatch(name) or real == os.path.realpath(sys.executable):
            return f"{event}: {program}, a Python interpreter"
        if name in _LAUNCHERS or os.path.basename(program) in _LAUNCHERS:
            return f"{event}: {program}, which runs other programs"
        try:
            with open(real, "rb") as handle:
                first = handle.readline(256)
        except OSError:
            return None
        if first.startswith(b"#!") and (b"python" in first or b"sh" in first):
            return f"{event}: {program}, a script"
        return None

    def _real(self, file: str, dirs: dict[str, str]) -> str:
        """os.path.realpath(file), resolving each directory once: a process holding torch has thousands of
        modules in a few hundred directories, and realpath stats every component of every path (over 100 ms
        per falsifier); only a file that is itself a link costs a realpath of its own."""
        if os.path.islink(file):
            return os.path.realpath(file)
        head, tail = os.path.split(os.path.abspath(file))
        real_head = dirs.get(head)
        if real_head is None:
            real_head = dirs[head] = os.path.realpath(head)
        return os.path.join(real_head, tail)

    def _relative(self, file: str | None, dirs: dict[str, str] | None = None) -> str | None:
        if not file:
            return None
        real = self._real(file, {} if dirs is None else dirs)
        if not real.startswith(self.root + os.sep) or not os.path.isfile(real):
            return None
        relative = Path(os.path.relpath(real, self.root))
        # Caches and tool state rewritten by the run itself (bytecode, .git, .hypothesis, .pytest_cache)
        # are no input of its verdict.
        if relative.suffix == ".pyc" or any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            return None
        return relative.as_posix()

    def finish(self, extra: Iterable[str | None] = ()) -> dict[str, Any]:
        """{"imported_files": sorted paths} or {"imported_files": None, "imports_unmeasured": why}."""
        for spawn in list(self.spawns):
            why = self._unseeable(*spawn)
            if why is not None:
                return {
                    "imported_files": None,
                    "imports_unmeasured": f"the falsifier started another process ({why}), whose imports cannot be seen",
                }
        if self.overflow:
            return {"imported_files": None, "imports_unmeasured": "the falsifier opened files that could not all be recorded"}
        found: set[str] = set()
        dirs: dict[str, str] = {}
        held = getattr(sys.modules.get(HELD_MODULE), "names", None)
        # Only the modules imported since the fork: reading an inherited module object at all writes to its
        # reference count, which copies its memory page (a few thousand page faults in a child of torch).
        names = sys.modules.keys() - held if isinstance(held, frozenset) else list(sys.modules)
        for name in names:
            file = getattr(sys.modules.get(name), "__file__", None)
            relative = self._relative(file, dirs) if isinstance(file, str) else None
            if relative is not None:
                found.add(relative)
        for file in [*extra, *self.opened]:
            relative = self._relative(file, dirs)
            if relative is not None:
                found.add(relative)
        return {"imported_files": sorted(found)}


def watch(root: str | None = None) -> Watch:
    """Start watching this process (the child: its cwd is the repository root)."""
    recorder = Watch(root or os.getcwd())
    sys.addaudithook(recorder._hook)
    return recorder


def module_file(module_name: str) -> str | None:
    """The file of an imported module (the falsifier's own), or None."""
    module = sys.modules.get(module_name)
    return getattr(module, "__file__", None) if module is not None else None


# ---------------------------------------------------------------------------------------- parent side


def file_hash(path: Path) -> str | None:
    """`sha256:<hex>` of a file's bytes, or None when it cannot be read (gone, a directory, no permission)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return "sha256:" + digest.hexdigest()


def hash_files(repo_root: Path, reported: Any) -> dict[str, str] | None:
    """The child's reported paths with their content hashes; None when it reported none (not measured),
    reported something malformed, or a path that leads outside the repository or cannot be read (a
    listing that cannot be trusted whole is no listing: the falsifier then always runs again)."""
    if not isinstance(reported, list) or not all(isinstance(p, str) for p in reported):
        return None
    root = Path(repo_root).resolve()
    hashes: dict[str, str] = {}
    for relative in reported:
        path = (root / relative).resolve()
        if Path(relative).is_absolute() or not path.is_relative_to(root):
            return None
        digest = file_hash(path)
        if digest is None:
            return None
        hashes[relative] = digest
    return dict(sorted(hashes.items()))


def changed(repo_root: Path, recorded: Mapping[str, str], cache: dict[Path, str | None] | None = None) -> list[str]:
    """The recorded paths whose current content differs from the recorded hash, or that are gone; `cache`
    (path -> hash) lets one plan hash each file once, however many falsifiers imported it."""
    root = Path(repo_root)
    cache = {} if cache is None else cache
    found = []
    for path, digest in recorded.items():
        file = root / path
        if file not in cache:
            cache[file] = file_hash(file)
        if cache[file] != digest:
            found.append(path)
    return found
