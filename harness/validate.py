"""Stage 2 of the pipeline: check contract files and turn them into `harness.model.Contract` values.

Public API:

    validate(paths, *, check_bindings=True, today=None) -> tuple[list[Contract], list[Problem]]
    validate_report(paths, *, check_bindings=True, today=None) -> Validation
    find_repo_root(path) -> Path
    discover(paths) -> tuple[list[Path], list[Problem]]

`paths` are files or directories (searched recursively for *.yaml / *.yml). Contracts are
returned only when there are no problems at all, so a caller can never run half a contract set.
Every problem is a `harness.model.Problem` printed as ``FILE:LINE: ID: message``; FILE is the
path as the caller spelled it (so it is clickable from the caller's cwd), while the values in a
`Contract` (its `path`, every `SourceLocation`) are relative to the contract's repository root.

This module orchestrates and builds the model; each step lives in its own module. Checks, all
reported together rather than stopping at the first:
- finding the files and their repository root (harness.discover);
- loading (harness.load): YAML syntax, duplicate keys, aliases, size, encoding, tabs, empty file;
- the JSON Schema `harness/schemas/contract.schema.json` (closed: unknown keys get a "did you mean")
  (harness.schema_check);
- cross-references (harness.crossref): ids unique across all files (contracts, invariants,
  falsifiers); every `attacks:` names a loaded invariant; every invariant is attacked by some
  falsifier; every `depends_on` names a loaded contract, with no cycles; no `deferred.until` in
  the past;
- binding paths stay inside the repository (harness.bindings.check_binding_paths, always, so
  `harness verify` and plain pytest refuse them too): a pytest node id's file and a -k
  expression's `paths` may not be absolute, climb out with `..`, or leave through a symlink;
- bindings resolve (harness.bindings, unless check_bindings=False): python targets and
  `guards:` import and are callable (one isolated child interpreter per repository root),
  pytest node ids / -k expressions collect at least `min_tests` tests (one `pytest --collect-only` per root), and a
  command's program exists. Paths resolve against the contract's repository root (the nearest
  ancestor holding pyproject.toml or .git), never the current directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness import bindings, clock, crossref, parameters, requirements, schema_check
from harness.bindings import default_test_paths, k_shorthand
from harness.contract_doc import NO_ID, ContractDoc, Problems
from harness.discover import (
    CONTRACT_SUFFIXES, ROOT_MARKERS, discover, discover_resolved, display_path, find_repo_root, locate_repo_root,
)
from harness.load import LoadError, load_contract_file
from harness.model import (
    Binding,
    BindingKind,
    Contract,
    Deferred,
    EquivalentMutant,
    Falsifier,
    Invariant,
    Problem,
    Requirement,
    SourceLocation,
)

__all__ = [
    "CHECKS", "CONTRACT_SUFFIXES", "NO_ID", "ROOT_MARKERS", "Validation", "default_test_paths", "discover",
    "find_repo_root", "k_shorthand", "validate", "validate_report",
]


@dataclass(frozen=True)
class Validation:
    """Everything `validate` learned; `contracts` is empty unless `problems` is."""

    contracts: tuple[Contract, ...]
    problems: tuple[Problem, ...]
    files: tuple[Path, ...]
    roots: Mapping[str, Path] = field(default_factory=dict)  # contract id -> repository root
    resolved: tuple[Path, ...] = ()  # `files` resolved, in the same order (each resolved once, by discover)
    # Not problems (the contracts are valid), but what a user must see: every falsifier bound to no runnable
    # test (`binding: {unbound: TEXT}`), which verify records as `error`, never `passed`.
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        invariants = sum(len(c.invariants) for c in self.contracts)
        falsifiers = sum(len(c.falsifiers) for c in self.contracts)
        return (
            f"{len(self.contracts)} contract{'s' if len(self.contracts) != 1 else ''}, "
            f"{invariants} invariant{'s' if invariants != 1 else ''}, "
            f"{falsifiers} falsifier{'s' if falsifiers != 1 else ''}"
        )


# Each check validate_report runs, in order, by the name its problems carry (`Problem.check`), with what it
# checks: the rules of `harness validate --format sarif` (harness.validate_format).
CHECKS: dict[str, str] = {
    "files": "A named path exists and holds contract files (*.yaml, *.yml).",
    "load": "A contract file is well-formed YAML the harness accepts (no duplicate keys, aliases, tags, tabs).",
    "schema": "A contract matches the contract JSON Schema (harness schema contract).",
    "ids": "Contract, invariant and falsifier ids are unique across the contracts validated together.",
    "references": "attacks, depends_on, deferrals, dates, equivalent mutants and binding fields are consistent.",
    "binding-paths": "A binding's paths stay inside the contract's repository.",
    "bindings": "A binding resolves: its python target imports, its pytest node collects, its program exists.",
}


# --- building the model --------------------------------------------------------------------------

def _binding(data: dict[str, Any], root: Path) -> Binding:
    min_tests = int(data.get("min_tests", 1))
    if "python" in data:
        return Binding(BindingKind.PYTHON, target=data["python"])
    if "pytest" in data:
        value = data["pytest"]
        if isinstance(value, str) and (k_expr := k_shorthand(value)) is not None:
            return Binding(BindingKind.PYTEST, k=k_expr, paths=default_test_paths(root), min_tests=min_tests)
        if isinstance(value, str):
            return Binding(BindingKind.PYTEST, target=value, min_tests=min_tests)
        return Binding(BindingKind.PYTEST, k=value["k"], paths=tuple(value["paths"]), min_tests=min_tests)
    if "unbound" in data:
        return Binding(BindingKind.UNBOUND, target=data["unbound"])
    command = data["command"]
    # A list of argv lists is an all-or-nothing chain: the first step is `argv`, the rest `then`.
    steps = [tuple(step) for step in command] if isinstance(command[0], list) else [tuple(command)]
    return Binding(
        BindingKind.COMMAND, argv=steps[0], count_pattern=data.get("count_pattern"), min_tests=min_tests,
        junit=data.get("junit"), then=tuple(steps[1:]),
    )


def _contract(doc: ContractDoc) -> Contract:
    data = doc.data
    rel = doc.path.relative_to(doc.root).as_posix() if doc.path.is_relative_to(doc.root) else str(doc.path)  # resolved

    def loc(path: tuple[Any, ...]) -> SourceLocation:
        return SourceLocation(rel, doc.loaded.line_of(path))

    invariants = tuple(
        Invariant(
            id=inv["id"], statement=inv["statement"], kind=inv["kind"], location=loc(("invariants", i)),
            guards=tuple(inv.get("guards", ())), proof_obligations=tuple(inv.get("proof_obligations", ())),
            equivalent_mutants=tuple(EquivalentMutant(e["id"], e["reason"]) for e in inv.get("equivalent_mutants", ())),
        )
        for i, inv in enumerate(data["invariants"])
    )
    falsifiers = []
    for i, fal in enumerate(data["falsifiers"]):
        req = fal.get("requires", {})
        deferred = fal.get("deferred")
        falsifiers.append(
            Falsifier(
                id=fal["id"], attacks=tuple(fal["attacks"]), prediction=fal["prediction"], if_fails=fal["if_fails"],
                binding=_binding(fal["binding"], doc.root), location=loc(("falsifiers", i)),
                requires=Requirement(
                    cuda=bool(req.get("cuda", False)), packages=tuple(req.get("packages", ())),
                    min_memory_gib=float(req["min_memory_gib"]) if "min_memory_gib" in req else None,
                    custom=tuple(
                        (k, v) for k, v in req.items() if k not in requirements.BUILTIN_KINDS and k != requirements.PARAMETERS
                    ),
                    parameters=tuple(req.get("parameters", ())),
                ),
                timeout_s=float(fal.get("timeout_s", 300.0)),
                deferred=Deferred(reason=deferred["reason"], until=date.fromisoformat(deferred["until"])) if deferred else None,
                exclusive=bool(fal.get("exclusive", False)),
                gpus=int(fal.get("gpus", 0)),
            )
        )
    return Contract(
        id=data["id"], version=data["version"], title=data["title"], description=data.get("description", ""),
        path=rel, sha256=doc.loaded.sha256, invariants=invariants, falsifiers=tuple(falsifiers),
        depends_on=tuple(data.get("depends_on", ())), references=tuple(data.get("references", ())),
        changelog=tuple(data.get("changelog", ())), parameters=parameters.from_yaml(data.get("parameters"), loc),
    )


def validate_report(
    paths: Iterable[str | os.PathLike[str]],
    *,
    check_bindings: bool = True,
    today: date | None = None,
) -> Validation:
    """Run every check over the contract files under `paths`; see the module docstring."""
    today = today or clock.today()
    listed, discovered = discover_resolved(paths)
    files = [spelled for spelled, _ in listed]
    problems = Problems()
    problems.check = "files"
    for p in discovered:
        problems.add(p.location, p.subject, p.message)
    problems.check = "load"
    docs: list[ContractDoc] = []
    roots_of: dict[Path, tuple[Path, bool]] = {}  # by directory: files beside each other share a root
    for file, resolved in listed:
        display = display_path(file)
        try:
            loaded = load_contract_file(file)
        except LoadError as exc:
            problems.add(SourceLocation(display, exc.line), NO_ID, exc.message)
            continue
        if resolved.parent not in roots_of:
            roots_of[resolved.parent] = locate_repo_root(resolved.parent)
        root, marked = roots_of[resolved.parent]
        docs.append(ContractDoc(display=display, path=resolved, root=root, loaded=loaded, root_marked=marked))
    problems.check = "schema"
    for doc in docs:
        schema_check.check_schema(doc, problems)
    problems.check = "ids"
    crossref.check_ids(docs, problems)
    problems.check = "references"
    crossref.check_references(docs, problems, today)
    parameters.check(docs, problems)
    # The static binding rules hold wherever contracts are loaded (verify and plain pytest included):
    # they cost no child process and keep every binding inside its repository.
    problems.check = "binding-paths"
    bindings.check_binding_paths(docs, problems)
    problems.check = "bindings"
    if check_bindings:
        # Importing targets and collecting tests costs a child per root; verify skips it because running
        # the falsifier is the same check: a target that does not import, a node that collects fewer than
        # min_tests, a program that is missing all end as that falsifier's `error`, never `passed`.
        bindings.check_bindings(docs, problems)
    found = problems.sorted()
    contracts: tuple[Contract, ...] = ()
    roots: dict[str, Path] = {}
    if not found:
        contracts = tuple(_contract(doc) for doc in docs)
        roots = {doc.data["id"]: doc.root for doc in docs}
    return Validation(
        contracts=contracts, problems=tuple(found), files=tuple(files), roots=roots, resolved=tuple(r for _, r in listed),
        warnings=tuple(bindings.unbound_warnings(docs)),
    )


def validate(
    paths: Iterable[str | os.PathLike[str]],
    *,
    check_bindings: bool = True,
    today: date | None = None,
) -> tuple[list[Contract], list[Problem]]:
    """(contracts, problems); contracts is empty unless problems is."""
    result = validate_report(paths, check_bindings=check_bindings, today=today)
    return list(result.contracts), list(result.problems)
