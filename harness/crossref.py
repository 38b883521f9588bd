"""Checks across contract files: ids, attacks, depends_on and its cycles, dates and deferral expiry.

Also the per-falsifier checks the schema cannot express (binding shape, requirement kinds and
package specs, finite numbers). Bindings are not resolved here; see harness.bindings.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from datetime import date
from pathlib import Path
from typing import Any

from harness import requirements
from harness.contract_doc import NO_ID, ContractDoc, Problems, dicts, strs
from harness.count import count_group_problem
from harness.discover import CONTRACT_SUFFIXES, WAIVERS_FILE, display_path
from harness.load import LoadError, load_contract_file
from harness.mutate import OPERATORS

# The schema's date form; only a value of that form is worth checking as a calendar date.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def check_ids(docs: list[ContractDoc], problems: Problems) -> None:
    """Contract, invariant and falsifier ids are unique across all `docs`; a repeat names the first."""
    first: dict[str, tuple[ContractDoc, tuple[Any, ...]]] = {}  # the line is looked up for a repeat only

    def claim(doc: ContractDoc, ident: Any, path: tuple[Any, ...]) -> None:
        if not isinstance(ident, str):
            return
        if ident in first:
            where, first_path = first[ident]
            problems.add(
                doc.loc(path), ident,
                f"duplicate id, already defined at {where.loc(first_path)}; ids must be unique across all contracts: rename one",
            )
        else:
            first[ident] = (doc, path)

    for doc in docs:
        claim(doc, doc.data.get("id"), ("id",))
        for section in ("invariants", "falsifiers"):
            for i, item in dicts(doc.data, section):
                claim(doc, item.get("id"), (section, i, "id"))


def check_references(docs: list[ContractDoc], problems: Problems, today: date) -> None:
    """attacks, depends_on (and cycles), dates, deferral expiry and per-falsifier fields, across `docs`."""
    loaded_paths = {doc.path for doc in docs}  # resolved already (ContractDoc.path)
    siblings: dict[Path, tuple[set[str], list[str]]] = {}

    def sibling_ids(directory: Path) -> tuple[set[str], list[str]]:
        """Contract ids in the other contract files beside a contract, so `harness verify contracts/one.yaml`
        accepts a depends_on that exists there without validating (or running) it too; and, for the
        problem when a dependency is missing, each sibling that could not be read, as FILE:LINE: why."""
        if directory not in siblings:
            found: set[str] = set()
            unreadable: list[str] = []
            try:
                candidates = sorted(
                    p for p in directory.iterdir() if p.suffix in CONTRACT_SUFFIXES and p.name != WAIVERS_FILE and p.is_file()
                )
            except OSError as exc:
                candidates = []
                unreadable.append(f"{display_path(directory)}: cannot list it ({exc.strerror or exc})")
            for candidate in candidates:
                if candidate.resolve() in loaded_paths:
                    continue
                try:
                    cid = load_contract_file(candidate).data.get("id")
                except LoadError as exc:  # load_contract_file raises nothing else, whatever the file holds
                    unreadable.append(f"{display_path(candidate)}:{exc.line}: {exc.message}")
                    continue
                if isinstance(cid, str):
                    found.add(cid)
            siblings[directory] = (found, unreadable)
        return siblings[directory]

    invariant_ids: set[str] = set()
    contract_ids: set[str] = set()
    attacked: set[str] = set()
    for doc in docs:
        if isinstance(doc.data.get("id"), str):
            contract_ids.add(doc.data["id"])
        for _, inv in dicts(doc.data, "invariants"):
            if isinstance(inv.get("id"), str):
                invariant_ids.add(inv["id"])
        for _, fal in dicts(doc.data, "falsifiers"):
            attacked.update(v for _, v in strs(fal.get("attacks")))

    for doc in docs:
        for i, fal in dicts(doc.data, "falsifiers"):
            fid = fal["id"] if isinstance(fal.get("id"), str) else NO_ID
            for j, target in strs(fal.get("attacks")):
                if target not in invariant_ids:
                    close = difflib.get_close_matches(target, invariant_ids, n=1, cutoff=0.8)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.add(
                        doc.loc(("falsifiers", i, "attacks", j)), fid,
                        f"attacks unknown invariant {target!r}{hint}; define it under invariants: or fix the id",
                    )
            deferred = fal.get("deferred")
            if isinstance(deferred, dict) and isinstance(deferred.get("until"), str) and _DATE.fullmatch(deferred["until"]):
                loc = doc.loc(("falsifiers", i, "deferred", "until"))
                try:
                    until = date.fromisoformat(deferred["until"])
                except ValueError:
                    problems.add(loc, fid, f"deferred.until {deferred['until']!r} is not a real date; write YYYY-MM-DD")
                else:
                    if until < today:
                        problems.add(
                            loc, fid,
                            f"deferral expired on {until.isoformat()}; fix and run the falsifier and remove "
                            "deferred:, or set a new until: with a new reason",
                        )
            binding = fal.get("binding")
            if isinstance(binding, dict):
                _check_binding_shape(doc, i, fid, binding, problems)
            requires = fal.get("requires")
            if isinstance(requires, dict):
                for kind in requires:
                    # Built-in kinds and `parameters` (the run's --param values, not a machine probe) need no
                    # entry point lookup, which would cost validate the import of importlib.metadata.
                    builtin = kind in requirements.BUILTIN_KINDS or kind == requirements.PARAMETERS
                    if isinstance(kind, str) and not builtin and requirements.is_known(kind):
                        try:
                            requirements.probe_for(kind)
                        except requirements.ProbeError as exc:
                            problems.add(doc.loc(("falsifiers", i, "requires", kind)), fid, f"{exc}; fix the project's entry point")
                for j, spec in strs(requires.get("packages")):
                    if spec.strip() and not _valid_requirement(spec):
                        problems.add(
                            doc.loc(("falsifiers", i, "requires", "packages", j)), fid,
                            f"requires.packages entry {spec!r} is not a package name or requirement; write a name "
                            "such as transformers, or a requirement such as 'transformers>=4.45'",
                        )
            for path, number in (
                (("timeout_s",), fal.get("timeout_s")),
                (("requires", "min_memory_gib"), requires.get("min_memory_gib") if isinstance(requires, dict) else None),
            ):
                # JSON Schema's minimum checks pass NaN and infinity (YAML .nan / .inf).
                if isinstance(number, float) and not math.isfinite(number):
                    problems.add(
                        doc.loc(("falsifiers", i, *path)), fid,
                        f"{path[-1]} must be a finite number, not {number}; write a number of "
                        f"{'seconds' if path[-1] == 'timeout_s' else 'GiB'}",
                    )
        for i, inv in dicts(doc.data, "invariants"):
            iid = inv.get("id")
            if isinstance(iid, str) and iid not in attacked:
                problems.add(
                    doc.loc(("invariants", i, "id")), iid,
                    f"no falsifier attacks this invariant; add a falsifier with attacks: [{iid}]",
                )
            _check_equivalent_mutants(doc, i, inv, problems)
        for j, dep in strs(doc.data.get("depends_on")):
            if dep in contract_ids:
                continue
            beside, unreadable = sibling_ids(doc.path.parent)  # read only for a dependency not validated here
            if dep not in beside:
                close = difflib.get_close_matches(dep, contract_ids | beside, n=1, cutoff=0.8)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                # The dependency may be in a sibling that does not load; say which and why.
                skipped = f" (unreadable there: {'; '.join(unreadable)})" if unreadable else ""
                problems.add(
                    doc.loc(("depends_on", j)), doc.contract_id,
                    f"depends_on names contract {dep!r}, which is not among the contracts validated nor in "
                    f"{display_path(doc.path.parent)}{hint}{skipped}; pass its file too or fix the id",
                )
    _check_cycles(docs, contract_ids, problems)
    for doc in docs:
        for i, changelog in dicts(doc.data, "changelog"):
            if isinstance(changelog.get("date"), str) and _DATE.fullmatch(changelog["date"]):
                try:
                    date.fromisoformat(changelog["date"])
                except ValueError:
                    problems.add(
                        doc.loc(("changelog", i, "date")), doc.contract_id,
                        f"changelog date {changelog['date']!r} is not a real date; write YYYY-MM-DD",
                    )


# A mutant id as `harness teeth` makes it (harness.mutate): GUARD/OPERATOR/HASH. The schema checks the
# characters; this splits an id of that form to check its guard and operator.
_MUTANT_ID = re.compile(r"(?P<guard>[^/]+)/(?P<operator>[^/]+)/(?P<hash>[0-9a-f]{8})")


def _check_equivalent_mutants(doc: ContractDoc, i: int, inv: dict[str, Any], problems: Problems) -> None:
    """An acknowledged mutant names one of the invariant's own guards and an operator harness teeth uses:
    any other id can never match a mutant, so the acknowledgement would silently cover nothing (or, once
    the guard is added elsewhere, the wrong code)."""
    iid = inv["id"] if isinstance(inv.get("id"), str) else NO_ID
    guards = [g for _, g in strs(inv.get("guards"))]
    for j, entry in dicts(inv, "equivalent_mutants"):
        mutant = entry.get("id")
        found = _MUTANT_ID.fullmatch(mutant) if isinstance(mutant, str) else None
        if found is None:
            continue  # not of the form at all: the schema's pattern says so
        loc = doc.loc(("invariants", i, "equivalent_mutants", j, "id"))
        # Runs as printed and lists every mutant of this invariant's guards with its id.
        teeth = f"harness teeth {shlex.quote(doc.display)} -k {shlex.quote(iid)}"
        if found["guard"] not in guards:
            close = difflib.get_close_matches(found["guard"], guards, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(
                loc, iid,
                f"equivalent_mutants id {mutant!r} names guard {found['guard']!r}, which is not among this "
                f"invariant's guards ({', '.join(guards) or 'none'}){hint}; copy the id `{teeth}` prints",
            )
        if found["operator"] not in OPERATORS:
            close = difflib.get_close_matches(found["operator"], OPERATORS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(
                loc, iid,
                f"equivalent_mutants id {mutant!r} names operator {found['operator']!r}, which harness teeth "
                f"does not use (it uses {', '.join(OPERATORS)}){hint}; copy the id `{teeth}` prints",
            )


def _check_binding_shape(doc: ContractDoc, i: int, fid: str, binding: dict[str, Any], problems: Problems) -> None:
    if "python" in binding and "min_tests" in binding:
        problems.add(
            doc.loc(("falsifiers", i, "binding", "min_tests")), fid,
            "min_tests applies only to pytest and command bindings (a python falsifier is one test); remove it",
        )
    if "command" in binding and "min_tests" in binding and "count_pattern" not in binding and "junit" not in binding:
        # Without a count there is nothing to hold min_tests against: it would be silently ignored.
        problems.add(
            doc.loc(("falsifiers", i, "binding", "min_tests")), fid,
            "min_tests on a command binding needs count_pattern, a regex whose one group captures how many "
            "tests the command ran, or junit, the junit XML file it writes: add e.g. count_pattern: '(\\d+) passed', "
            "or remove min_tests",
        )
    if "junit" in binding and "count_pattern" in binding:
        problems.add(
            doc.loc(("falsifiers", i, "binding", "count_pattern")), fid,
            "junit and count_pattern both count the command's tests; keep junit (counted from the XML file) "
            "and remove count_pattern",
        )
    pattern = binding.get("count_pattern")
    if isinstance(pattern, str):
        why = count_group_problem(pattern)
        if why is not None:
            problems.add(doc.loc(("falsifiers", i, "binding", "count_pattern")), fid, f"count_pattern {pattern!r} {why}")


def _check_cycles(docs: list[ContractDoc], contract_ids: set[str], problems: Problems) -> None:
    edges: dict[str, list[tuple[str, ContractDoc, int]]] = {}
    for doc in docs:
        cid = doc.data.get("id")
        if isinstance(cid, str) and cid not in edges:
            edges[cid] = [(dep, doc, j) for j, dep in strs(doc.data.get("depends_on")) if dep in contract_ids]
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    reported: set[tuple[str, ...]] = set()
    for start in edges:
        if state.get(start):
            continue
        # Iterative DFS: long dependency chains must not hit the recursion limit.
        stack: list[tuple[str, int]] = [(start, 0)]
        on_path: list[str] = [start]
        state[start] = 1
        while stack:
            node, index = stack[-1]
            out = edges.get(node, [])
            if index >= len(out):
                stack.pop()
                on_path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, index + 1)
            dep, doc, j = out[index]
            if state.get(dep) == 1:
                cycle = on_path[on_path.index(dep):]
                rotation = cycle.index(min(cycle))
                key = tuple(cycle[rotation:] + cycle[:rotation])
                if key not in reported:
                    reported.add(key)
                    problems.add(
                        doc.loc(("depends_on", j)), node,
                        f"dependency cycle: {' -> '.join(cycle + [dep])}; remove one of these depends_on entries",
                    )
            elif not state.get(dep):
                state[dep] = 1
                stack.append((dep, 0))
                on_path.append(dep)


def _valid_requirement(spec: str) -> bool:
    """A PEP 508 requirement (`name`, `name>=1.2`, `name[extra]`), as pip and the runner read it."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(spec)
    except InvalidRequirement:
        return False
    return True

