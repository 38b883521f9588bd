"""A contract file as the checks see it, and the sink the checks report problems into.

`ContractDoc` is one loaded file with its repository root: it turns a path into the data (a key
path such as ("falsifiers", 2, "binding")) into a `SourceLocation` and the id the problem is
about. `Problems` collects what every check finds and orders it by file, then line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from harness.load import LoadedDoc
from harness.model import Problem, SourceLocation

NO_ID = "-"


@dataclass
class ContractDoc:
    """One loaded contract file, with the repository root its bindings resolve against."""

    display: str  # as the caller spelled it
    path: Path  # absolute and resolved (validate resolves each file once; the checks compare these)
    root: Path
    loaded: LoadedDoc
    root_marked: bool = True  # False: no pyproject.toml or .git above, root is the file's own directory
    schema_ok: bool = True

    @property
    def data(self) -> dict[str, Any]:
        return self.loaded.data

    def loc(self, path: Sequence[Any]) -> SourceLocation:
        return SourceLocation(self.display, self.loaded.line_of(tuple(path)))

    def subject(self, path: Sequence[Any]) -> str:
        """The id of the innermost object along `path` that has one (else the contract id); an acknowledged
        mutant's `id` names a mutant, not an object of the contract, so its invariant is the subject."""
        nodes: list[Any] = [self.data]
        node: Any = self.data
        for part in path:
            if part == "equivalent_mutants":
                break
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
            nodes.append(node)
        for node in reversed(nodes):
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                return node["id"]
        return NO_ID

    @property
    def contract_id(self) -> str:
        cid = self.data.get("id")
        return cid if isinstance(cid, str) else NO_ID


class ProblemSink(Protocol):
    """Where a check reports a problem: `Problems`, or a wrapper that adds to each message."""

    def add(self, location: SourceLocation, subject: str, message: str) -> None: ...


class Problems:
    """Every problem the checks find, reported together, ordered by file (as first seen) then line."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, Problem]] = []
        self._order: dict[str, int] = {}
        self.check = ""  # the check now running; validate_report names each in turn

    def add(self, location: SourceLocation, subject: str, message: str) -> None:
        # An id that failed its pattern may hold a newline or a control character; shown as a
        # repr, as messages show values, it keeps the problem on one line.
        subject = subject if subject.isprintable() else repr(subject)
        order = self._order.setdefault(location.path, len(self._order))
        self.items.append((order, location.line, Problem(location, subject, message, self.check)))

    def sorted(self) -> list[Problem]:
        # Stable: problems on the same line keep the order the checks found them in.
        return [p for _, _, p in sorted(self.items, key=lambda t: (t[0], t[1]))]


def dicts(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """(index, item) for the mappings in the list `data[key]`; checks run on data the schema may have rejected."""
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def strs(value: Any) -> list[tuple[int, str]]:
    """(index, item) for the strings in `value` when it is a list, else nothing."""
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]

