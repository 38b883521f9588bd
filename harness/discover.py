"""Finding contract files, and the repository root rule their bindings resolve against.

`discover` turns the paths a caller named into contract files (directories searched for
*.yaml / *.yml, hidden directories skipped, each file once); `find_repo_root` is the nearest
ancestor holding pyproject.toml or .git, never the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from harness.contract_doc import NO_ID
from harness.model import Problem, SourceLocation

CONTRACT_SUFFIXES = (".yaml", ".yml")
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


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Problem]]:
    """Contract files named by `paths` (directories searched for *.yaml/*.yml), as spelled."""
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                found = sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix in CONTRACT_SUFFIXES
                    and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
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
            candidates = [path]
        else:
            problems.append(
                Problem(SourceLocation(display_path(path), 1), NO_ID, "no such file or directory; check the path")
            )
            continue
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                files.append(candidate)
    return files, problems

