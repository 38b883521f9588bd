"""Finding contract files, and the repository root rule their bindings resolve against.

`discover` turns the paths a caller named into contract files (directories searched for
*.yaml / *.yml, hidden directories and waivers.yaml skipped, each file once); `find_repo_root` is the nearest
ancestor holding pyproject.toml or .git, never the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from harness.contract_doc import NO_ID
from harness.model import Problem, SourceLocation

CONTRACT_SUFFIXES = (".yaml", ".yml")
# The waivers file beside the contracts (harness.waivers): YAML, but never a contract, so a directory walk skips it.
WAIVERS_FILE = "waivers.yaml"
ROOT_MARKERS = ("pyproject.toml", ".git")


def find_repo_root(path: str | os.PathLike[str]) -> Path:
    """The nearest ancestor of `path` (a file or directory) holding pyproject.toml or .git.

    Falls back to the directory of `path` itself when no ancestor has a marker, so a contract
    outside any repository still resolves its bindings next to itself, never against the cwd.
    """
    return locate_repo_root(path)[0]


def locate_repo_root(path: str | os.PathLike[str]) -> tuple[Path, bool]:
    """(root, whether a marker was found); see find_repo_root."""
    start = Path(path).resolve()
    if not start.is_dir():
        start = start.parent
    for candidate in (start, *start.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate, True
    return start, False


def display_path(path: Path) -> str:
    """`path` as the caller spelled it, with forward slashes when relative, for FILE:LINE problems."""
    return path.as_posix() if not path.is_absolute() else str(path)


def _contract_files_under(top: Path) -> list[tuple[Path, Path]]:
    """(path as spelled under `top`, resolved path) of each *.yaml / *.yml file below `top`, sorted.

    What `top.rglob("*")` filtered to contract files would give (hidden files and directories skipped,
    symlinked directories listed but not entered, unreadable subdirectories skipped), in one scandir per
    directory: each resolved path is the directory's, resolved once, plus the name, unless the file
    itself is a symlink (10,000 files are 10,000 stats, not 60,000)."""
    found: list[tuple[Path, Path]] = []
    stack = [(str(top), os.path.realpath(top))]
    while stack:
        directory, real = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except PermissionError:
            if directory == str(top):
                raise
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, os.path.join(real, entry.name)))
            elif Path(entry.name).suffix in CONTRACT_SUFFIXES and entry.name != WAIVERS_FILE and entry.is_file():
                resolved = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real, entry.name)
                found.append((Path(entry.path), Path(resolved)))
    found.sort()
    return found


def discover_resolved(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[Path, Path]], list[Problem]]:
    """As `discover`, each file with its resolved path: (as spelled, resolved)."""
    files: list[tuple[Path, Path]] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                found = _contract_files_under(path)
            except OSError as exc:
                problems.append(
                    Problem(
                        SourceLocation(display_path(path), 1), NO_ID,
                        f"cannot list this directory ({exc.strerror or exc}); check its permissions",
                    )
                )
                continue
            if not found:
                problems.append(
                    Problem(
                        SourceLocation(display_path(path), 1),
                        NO_ID,
                        "no contract files (*.yaml, *.yml) in this directory; pass a directory that holds contracts",
                    )
                )
            candidates = found
        elif path.exists():
            candidates = [(path, path.resolve())]
        else:
            problems.append(
                Problem(SourceLocation(display_path(path), 1), NO_ID, "no such file or directory; check the path")
            )
            continue
        for candidate, key in candidates:
            if key not in seen:
                seen.add(key)
                files.append((candidate, key))
    return files, problems


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Problem]]:
    """Contract files named by `paths` (directories searched for *.yaml/*.yml), as spelled."""
    files, problems = discover_resolved(paths)
    return [spelled for spelled, _ in files], problems
