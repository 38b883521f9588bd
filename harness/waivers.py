"""Waivers: known failures accepted until a date, with a reason and an owner (contracts/waivers.yaml).

    load_waivers(path) -> tuple[Waiver, ...]            # raises WaiversError (FILE:LINE problems)
    read_waivers(path) -> (waivers, problems)           # the same, problems returned (harness validate)
    default_waivers_file(paths) -> Path | None          # the waivers.yaml of the first contracts directory
    waiver_problems(waivers, falsifier_ids, today, display) -> [Problem]   # expired / matching nothing
    check_waivers_file(path, falsifier_ids, today) -> [Problem]           # all of it, for harness validate
    expiring(waivers, today) -> [Waiver]                # in force, expiring within EXPIRING_DAYS

The file is read exactly as a contract is: `harness.load` (the same YAML rules, line map and errors),
the published JSON Schema `harness/schemas/waivers.schema.json` through `harness.schema_check` (the
same messages, "did you mean" included), then `expires` as a real calendar date. A waiver changes only
the verdict (`harness.gate`): the waived falsifier still runs and its true outcome is recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from harness.contract_doc import NO_ID, ContractDoc, Problems, dicts
from harness.discover import WAIVERS_FILE, display_path, locate_repo_root
from harness.gate import EXPIRING_DAYS, is_expired, is_expiring
from harness.load import LoadError, load_contract_file
from harness.model import Problem, SourceLocation, Waiver

__all__ = [
    "EXPIRING_DAYS", "WAIVERS_FILE", "WaiversError", "default_waivers_file", "describe", "expiring", "in_force",
    "check_waivers_file", "is_expired", "load_waivers", "read_waivers", "waiver_problems",
]

GUIDE = "docs/waivers.md"


class WaiversError(ValueError):
    """A waivers file that cannot be used; `problems` are its `FILE:LINE: FALSIFIER: message` lines, and
    `str(self)` is the first of them (the CLIs print them all and exit 2)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{self.problems[0]}{more}" if self.problems else "invalid waivers file")


class _WaiversDoc(ContractDoc):
    """A loaded waivers file: problems about an entry name its `falsifier` (a waiver has no id)."""

    def subject(self, path: Sequence[Any]) -> str:
        if len(path) >= 2 and path[0] == "waivers" and isinstance(path[1], int):
            entries = self.data.get("waivers")
            if isinstance(entries, list) and path[1] < len(entries) and isinstance(entries[path[1]], dict):
                name = entries[path[1]].get("falsifier")
                if isinstance(name, str) and name.isprintable():
                    return name
        return NO_ID


def default_waivers_file(paths: Iterable[str | os.PathLike[str]]) -> Path | None:
    """`waivers.yaml` in the first directory among `paths` (the contracts directory), when it is there."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidate = path / WAIVERS_FILE
            return candidate if candidate.exists() else None
    return None


def read_waivers(path: str | os.PathLike[str]) -> tuple[tuple[Waiver, ...], list[Problem]]:
    """(the waivers, []) or ((), every problem as FILE:LINE); FILE as `path` is spelled. Each Waiver's
    location is repository-relative (the nearest pyproject.toml or .git above), as a Contract's paths are,
    so evidence recorded from any working directory says the same."""
    path = Path(path)
    display = display_path(path)
    problems = Problems()
    try:
        loaded = load_contract_file(path, kind="waivers")
    except LoadError as exc:
        return (), [Problem(SourceLocation(display, exc.line), NO_ID, exc.message)]
    resolved = path.resolve()
    root, marked = locate_repo_root(resolved.parent)
    doc = _WaiversDoc(display=display, path=resolved, root=root, loaded=loaded, root_marked=marked)
    from harness import schema_check  # jsonschema only when there is a file to check

    schema_check.check_schema(doc, problems, schema="waivers", guide=GUIDE)
    if not doc.schema_ok:
        return (), problems.sorted()
    relative = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
    waivers = []
    for i, entry in dicts(doc.data, "waivers"):
        where = ("waivers", i, "expires")
        try:
            expires = date.fromisoformat(entry["expires"])
        except ValueError:
            problems.add(doc.loc(where), doc.subject(where), f"expires {entry['expires']!r} is not a real date; write YYYY-MM-DD")
            continue
        waivers.append(
            Waiver(
                falsifier=entry["falsifier"], reason=entry["reason"], owner=entry["owner"], expires=expires,
                link=entry.get("link"), location=SourceLocation(relative, loaded.line_of(("waivers", i))),
            )
        )
    found = problems.sorted()
    return (() if found else tuple(waivers)), found


def load_waivers(path: str | os.PathLike[str]) -> tuple[Waiver, ...]:
    """The waivers of the file at `path`; WaiversError naming FILE:LINE for anything wrong with it."""
    waivers, problems = read_waivers(path)
    if problems:
        raise WaiversError(problems)
    return waivers


def in_force(waivers: Iterable[Waiver], today: date) -> list[Waiver]:
    """The waivers not expired on `today`."""
    return [w for w in waivers if not is_expired(w, today)]


def expiring(waivers: Iterable[Waiver], today: date) -> list[Waiver]:
    """The waivers in force that expire within EXPIRING_DAYS of `today` (today included)."""
    return [w for w in waivers if is_expiring(w, today)]


def describe(waiver: Waiver, today: date | None = None) -> str:
    """`FALSIFY-X-* until 2027-01-31 (owner: team-a; contracts/waivers.yaml:3): reason`, with the days left."""
    left = ""
    if today is not None:
        days = (waiver.expires - today).days
        left = f", expired {-days} day{'s' if days != -1 else ''} ago" if days < 0 else f", {days} day{'s' if days != 1 else ''} left"
    link = f"; {waiver.link}" if waiver.link else ""
    return (
        f"{waiver.falsifier} until {waiver.expires.isoformat()}{left} (owner: {waiver.owner}; {waiver.location}{link}): "
        f"{waiver.reason.splitlines()[0] if waiver.reason else ''}"
    )


def waiver_problems(
    waivers: Iterable[Waiver], falsifier_ids: Iterable[str] | None, today: date, display: str | None = None
) -> list[Problem]:
    """An expired waiver, and one that matches none of `falsifier_ids` (not checked when None: the ids are
    not known), as problems at the waiver's line (FILE as `display` when given: the path as spelled)."""
    ids = None if falsifier_ids is None else list(falsifier_ids)
    problems = []
    for waiver in waivers:
        where = SourceLocation(display or waiver.location.path, waiver.location.line)
        if is_expired(waiver, today):
            problems.append(Problem(
                where, waiver.falsifier,
                f"waiver expired on {waiver.expires.isoformat()} (owner: {waiver.owner}); fix the falsifier and remove "
                "the waiver, or renew it with a new expires: and reason",
            ))
        if ids is not None and not any(waiver.matches(fid) for fid in ids):
            problems.append(Problem(
                where, waiver.falsifier,
                "waiver matches no falsifier of the contracts; fix the id or glob, or remove the waiver",
            ))
    return problems


def check_waivers_file(
    path: str | os.PathLike[str], falsifier_ids: Iterable[str] | None, today: date
) -> list[Problem]:
    """Every problem of the waivers file at `path` for `harness validate`: its load and schema problems,
    then each expired waiver and (when `falsifier_ids` is known: the contracts are valid) each waiver that
    matches none of them."""
    waivers, problems = read_waivers(path)
    if problems:
        return problems
    return waiver_problems(waivers, falsifier_ids, today, display_path(Path(path)))
