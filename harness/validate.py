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

Checks, all reported together rather than stopping at the first:
- loading (harness.load): YAML syntax, duplicate keys, aliases, size, encoding, tabs, empty file;
- the JSON Schema `harness/schemas/contract.schema.json` (closed: unknown keys get a "did you mean");
- ids unique across all files (contracts, invariants, falsifiers);
- every `attacks:` names a loaded invariant; every invariant is attacked by some falsifier;
- every `depends_on` names a loaded contract, with no cycles;
- no `deferred.until` in the past;
- bindings resolve (unless check_bindings=False): python targets and `guards:` import and are
  callable (one isolated child interpreter per repository root), pytest node ids / -k
  expressions collect at least `min_tests` tests (one `pytest --collect-only` per root), and a
  command's program exists. Paths resolve against the contract's repository root (the nearest
  ancestor holding pyproject.toml or .git), never the current directory.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import jsonschema

from harness import clock, requirements
from harness.count import count_group_problem
from harness.load import LoadedDoc, LoadError, load_contract_file
from harness.model import (
    Binding,
    BindingKind,
    Contract,
    Deferred,
    Falsifier,
    Invariant,
    Problem,
    Requirement,
    SourceLocation,
)
from harness.resolve import check_program, check_python_targets, collect_pytest
from harness.schema import load_schema

CONTRACT_SUFFIXES = (".yaml", ".yml")
NO_ID = "-"
ROOT_MARKERS = ("pyproject.toml", ".git")

_validator: jsonschema.Draft202012Validator | None = None


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _schema_validator() -> jsonschema.Draft202012Validator:
    global _validator
    if _validator is None:
        schema = load_schema("contract")
        # $ref lookups are most of jsonschema's time on 10,000 falsifiers; the published schema
        # keeps its $defs (our refs are acyclic), the validator gets them inlined.
        defs = schema.pop("$defs", {})
        _validator = jsonschema.Draft202012Validator(_inline_refs(schema, defs))
    return _validator


def find_repo_root(path: str | os.PathLike[str]) -> Path:
    """The nearest ancestor of `path` (a file or directory) holding pyproject.toml or .git.

    Falls back to the directory of `path` itself when no ancestor has a marker, so a contract
    outside any repository still resolves its bindings next to itself, never against the cwd.
    """
    return _locate_repo_root(path)[0]


def _locate_repo_root(path: str | os.PathLike[str]) -> tuple[Path, bool]:
    """(root, whether a marker was found); see find_repo_root."""
    start = Path(path).resolve()
    if not start.is_dir():
        start = start.parent
    for candidate in (start, *start.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate, True
    return start, False


@dataclass(frozen=True)
class Validation:
    """Everything `validate` learned; `contracts` is empty unless `problems` is."""

    contracts: tuple[Contract, ...]
    problems: tuple[Problem, ...]
    files: tuple[Path, ...]
    roots: Mapping[str, Path] = field(default_factory=dict)  # contract id -> repository root

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


@dataclass
class _Doc:
    display: str  # as the caller spelled it
    path: Path  # absolute
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
        """The id of the innermost object along `path` that has one (else the contract id)."""
        nodes: list[Any] = [self.data]
        node: Any = self.data
        for part in path:
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


class _ProblemSink(Protocol):
    def add(self, location: SourceLocation, subject: str, message: str) -> None: ...


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[int, int, Problem]] = []
        self._order: dict[str, int] = {}

    def add(self, location: SourceLocation, subject: str, message: str) -> None:
        # An id that failed its pattern may hold a newline or a control character; shown as a
        # repr, as messages show values, it keeps the problem on one line.
        subject = subject if subject.isprintable() else repr(subject)
        order = self._order.setdefault(location.path, len(self._order))
        self.items.append((order, location.line, Problem(location, subject, message)))

    def sorted(self) -> list[Problem]:
        # Stable: problems on the same line keep the order the checks found them in.
        return [p for _, _, p in sorted(self.items, key=lambda t: (t[0], t[1]))]


def _display(path: Path) -> str:
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
                        SourceLocation(_display(path), 1), NO_ID,
                        f"cannot list this directory ({exc.strerror or exc}); check its permissions",
                    )
                )
                continue
            if not found:
                problems.append(
                    Problem(
                        SourceLocation(_display(path), 1),
                        NO_ID,
                        "no contract files (*.yaml, *.yml) in this directory; pass a directory that holds contracts",
                    )
                )
            candidates = found
        elif path.exists():
            candidates = [path]
        else:
            problems.append(
                Problem(SourceLocation(_display(path), 1), NO_ID, "no such file or directory; check the path")
            )
            continue
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                files.append(candidate)
    return files, problems


# --- schema errors -> readable problems ---------------------------------------------------------

_PATTERN_FORMS = {
    "^[a-z0-9]+(-[a-z0-9]+)*-v[0-9]+$(?!\\n)": "a contract id: lowercase words, digits and dashes ending in -vN, e.g. apr-checkpoint-format-v1",
    "^INV-[A-Z0-9-]+-[0-9]{3}$(?!\\n)": "an invariant id like INV-NAME-001",
    "^FALSIFY-[A-Z0-9-]+-[0-9]{3}$(?!\\n)": "a falsifier id like FALSIFY-NAME-001",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$(?!\\n)": "a date YYYY-MM-DD",
    "^[a-zA-Z][a-zA-Z0-9+.-]*://\\S+$(?!\\n)": "a URL with a scheme and no spaces, e.g. https://example.com/page",
    "\\S": "non-empty text",
    "^[^\\s-][^\\s]*$(?!\\n)": "a repository-relative path or node id without spaces, not starting with '-' "
        "(a -k expression is written pytest: \"-k EXPR\" or pytest: {k: EXPR, paths: [tests]})",
    "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$(?!\\n)":
        "module:function, e.g. falsifiers.init_arch_match:falsify_llama_claim_on_qwen2_tensors",
}


def _path_str(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty (null)"
    return type(value).__name__


_JSON_TYPE_WORDS = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping", "null": "null",
}


def _schema_messages(
    error: jsonschema.ValidationError, written: Mapping[tuple[Any, ...], str]
) -> list[tuple[tuple[Any, ...], str]]:
    """(path to report at, message) for one jsonschema error; several for additionalProperties.

    `written` is the source text of unquoted scalars YAML read as non-strings (LoadedDoc.written)."""
    path = tuple(error.absolute_path)
    where = _path_str(path)
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        # The schema closes `requires` to the built-in kinds; a project may register more.
        in_requires = len(path) == 3 and path[0] == "falsifiers" and path[2] == "requires"
        out = []
        for key in error.instance:
            if key in error.schema.get("properties", {}):
                continue
            if in_requires:
                if not requirements.is_known(str(key)):
                    out.append((path + (key,), _unknown_kind(str(key), where)))
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys here: {', '.join(allowed)}"
            out.append((path + (key,), f"unknown key {key!r} in {where} ({hint}); fix or remove it"))
        return out
    if v == "required":
        # jsonschema raises one error per missing key; each yields them all and the caller
        # drops repeats, which is simpler than parsing the key back out of the message.
        missing = [k for k in error.validator_value if k not in error.instance]
        return [(path, f"{where} is missing required key {k!r}; add it (see docs/contract-format.md)") for k in missing]
    if v in ("oneOf", "anyOf"):
        if all(set(branch) == {"required"} for branch in error.validator_value):
            # The binding's "exactly one of python | pytest | command".
            kinds = [k for k in ("python", "pytest", "command") if isinstance(error.instance, dict) and k in error.instance]
            if not kinds:
                return [(path, f"{where} needs exactly one of python, pytest or command; add one")]
            return [(path, f"{where} has {' and '.join(kinds)}; a binding is exactly one of them: keep one")]
        relevant = [
            e for e in (error.context or []) if not (e.validator == "type" and not e.relative_path)
        ]
        if relevant:
            out = []
            for sub in relevant:
                out.extend(_schema_messages(sub, written))
            return out
        types = []
        for branch in error.validator_value:
            t = branch.get("type") or ("string" if branch.get("$ref", "").endswith("/text") else None)
            if t:
                types.append(_JSON_TYPE_WORDS.get(t, t))
        return [(path, f"{where} must be {' or '.join(types) or 'one of the allowed forms'}, not {_kind_of(error.instance)}")]
    if v == "type":
        expected = error.validator_value
        words = " or ".join(_JSON_TYPE_WORDS.get(t, t) for t in ([expected] if isinstance(expected, str) else expected))
        hint = f"; write {words} here (see docs/contract-format.md)"
        if expected == "string" and not isinstance(error.instance, (str, list, dict)):
            # What the author wrote (1.10, yes), not what YAML read (1.1, True).
            hint = f"; quote it: \"{written.get(path, error.instance)}\""
        elif expected == "array" and isinstance(error.instance, (str, int, float)) and not isinstance(error.instance, bool):
            hint = f"; write it as a list: [{error.instance}]"
        return [(path, f"{where} must be {words}, not {_kind_of(error.instance)}{hint}")]
    if v == "pattern":
        form = _PATTERN_FORMS.get(error.validator_value)
        if form is None:
            form = error.schema.get("description") or f"the pattern {error.validator_value}"
        return [(path, f"{where} {error.instance!r} is not {form}; fix the value")]
    if v == "enum":
        allowed = [str(x) for x in error.validator_value]
        close = difflib.get_close_matches(str(error.instance), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [(path, f"{where} {error.instance!r} is not one of {', '.join(allowed)}{hint}; use one of them")]
    if v == "minItems":
        return [(path, f"{where} needs at least {error.validator_value} entr{'y' if error.validator_value == 1 else 'ies'}; add one")]
    if v == "uniqueItems":
        return [(path, f"{where} lists the same entry twice; remove the duplicate")]
    if v in ("minimum", "exclusiveMinimum"):
        op = ">=" if v == "minimum" else ">"
        return [(path, f"{where} must be {op} {error.validator_value}, not {error.instance!r}")]
    if v == "minLength":
        return [(path, f"{where} must not be empty; write the text")]
    if v == "dependentRequired":
        return [(path, f"{where}: count_pattern applies only to a command binding; remove it or use command:")]
    if v == "const" or v is False or error.validator_value is False:
        return [(path, f"{where} is not allowed here; remove it")]
    return [(path, f"{where}: {error.message}")]


def _unknown_kind(kind: str, where: str) -> str:
    known = requirements.known_kinds()
    close = difflib.get_close_matches(kind, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown requirement kind {kind!r} in {where} ({hint}known kinds: {', '.join(known)}); fix it, or have the "
        f"project register it under the entry point group {requirements.ENTRY_POINT_GROUP} (see docs/contract-format.md)"
    )


def _check_schema(doc: _Doc, problems: _Problems) -> None:
    reported: set[tuple[tuple[Any, ...], str]] = set()
    for error in _schema_validator().iter_errors(doc.data):
        for path, message in _schema_messages(error, doc.loaded.written):
            if (path, message) in reported:
                continue
            reported.add((path, message))
            doc.schema_ok = False
            problems.add(doc.loc(path), doc.subject(path), message)


# --- cross-file checks ---------------------------------------------------------------------------

def _dicts(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _strs(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


# The schema's date form; only a value of that form is worth checking as a calendar date.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _check_ids(docs: list[_Doc], problems: _Problems) -> None:
    first: dict[str, SourceLocation] = {}

    def claim(doc: _Doc, ident: Any, path: tuple[Any, ...]) -> None:
        if not isinstance(ident, str):
            return
        loc = doc.loc(path)
        if ident in first:
            problems.add(
                loc, ident,
                f"duplicate id, already defined at {first[ident]}; ids must be unique across all contracts: rename one",
            )
        else:
            first[ident] = loc

    for doc in docs:
        claim(doc, doc.data.get("id"), ("id",))
        for section in ("invariants", "falsifiers"):
            for i, item in _dicts(doc.data, section):
                claim(doc, item.get("id"), (section, i, "id"))


def _check_references(docs: list[_Doc], problems: _Problems, today: date) -> None:
    loaded_paths = {doc.path.resolve() for doc in docs}
    siblings: dict[Path, tuple[set[str], list[str]]] = {}

    def sibling_ids(directory: Path) -> tuple[set[str], list[str]]:
        """Contract ids in the other contract files beside a contract, so `harness verify contracts/one.yaml`
        accepts a depends_on that exists there without validating (or running) it too; and, for the
        problem when a dependency is missing, each sibling that could not be read, as FILE:LINE: why."""
        if directory not in siblings:
            found: set[str] = set()
            unreadable: list[str] = []
            try:
                candidates = sorted(p for p in directory.iterdir() if p.suffix in CONTRACT_SUFFIXES and p.is_file())
            except OSError as exc:
                candidates = []
                unreadable.append(f"{_display(directory)}: cannot list it ({exc.strerror or exc})")
            for candidate in candidates:
                if candidate.resolve() in loaded_paths:
                    continue
                try:
                    cid = load_contract_file(candidate).data.get("id")
                except LoadError as exc:  # load_contract_file raises nothing else, whatever the file holds
                    unreadable.append(f"{_display(candidate)}:{exc.line}: {exc.message}")
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
        for _, inv in _dicts(doc.data, "invariants"):
            if isinstance(inv.get("id"), str):
                invariant_ids.add(inv["id"])
        for _, fal in _dicts(doc.data, "falsifiers"):
            attacked.update(v for _, v in _strs(fal.get("attacks")))

    for doc in docs:
        for i, fal in _dicts(doc.data, "falsifiers"):
            fid = fal["id"] if isinstance(fal.get("id"), str) else NO_ID
            for j, target in _strs(fal.get("attacks")):
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
                    if isinstance(kind, str) and kind not in requirements.BUILTIN_KINDS and requirements.is_known(kind):
                        try:
                            requirements.probe_for(kind)
                        except requirements.ProbeError as exc:
                            problems.add(doc.loc(("falsifiers", i, "requires", kind)), fid, f"{exc}; fix the project's entry point")
                for j, spec in _strs(requires.get("packages")):
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
        for i, inv in _dicts(doc.data, "invariants"):
            iid = inv.get("id")
            if isinstance(iid, str) and iid not in attacked:
                problems.add(
                    doc.loc(("invariants", i, "id")), iid,
                    f"no falsifier attacks this invariant; add a falsifier with attacks: [{iid}]",
                )
        for j, dep in _strs(doc.data.get("depends_on")):
            beside, unreadable = sibling_ids(doc.path.parent)
            if dep not in contract_ids and dep not in beside:
                close = difflib.get_close_matches(dep, contract_ids | beside, n=1, cutoff=0.8)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                # The dependency may be in a sibling that does not load; say which and why.
                skipped = f" (unreadable there: {'; '.join(unreadable)})" if unreadable else ""
                problems.add(
                    doc.loc(("depends_on", j)), doc.contract_id,
                    f"depends_on names contract {dep!r}, which is not among the contracts validated nor in "
                    f"{_display(doc.path.parent)}{hint}{skipped}; pass its file too or fix the id",
                )
    _check_cycles(docs, contract_ids, problems)
    for doc in docs:
        for i, changelog in _dicts(doc.data, "changelog"):
            if isinstance(changelog.get("date"), str) and _DATE.fullmatch(changelog["date"]):
                try:
                    date.fromisoformat(changelog["date"])
                except ValueError:
                    problems.add(
                        doc.loc(("changelog", i, "date")), doc.contract_id,
                        f"changelog date {changelog['date']!r} is not a real date; write YYYY-MM-DD",
                    )


def _check_binding_shape(doc: _Doc, i: int, fid: str, binding: dict[str, Any], problems: _Problems) -> None:
    if "python" in binding and "min_tests" in binding:
        problems.add(
            doc.loc(("falsifiers", i, "binding", "min_tests")), fid,
            "min_tests applies only to pytest and command bindings (a python falsifier is one test); remove it",
        )
    if "command" in binding and "min_tests" in binding and "count_pattern" not in binding:
        # Without a count there is nothing to hold min_tests against: it would be silently ignored.
        problems.add(
            doc.loc(("falsifiers", i, "binding", "min_tests")), fid,
            "min_tests on a command binding needs count_pattern, a regex whose one group captures how many "
            "tests the command ran: add e.g. count_pattern: '(\\d+) passed', or remove min_tests",
        )
    pattern = binding.get("count_pattern")
    if isinstance(pattern, str):
        why = count_group_problem(pattern)
        if why is not None:
            problems.add(doc.loc(("falsifiers", i, "binding", "count_pattern")), fid, f"count_pattern {pattern!r} {why}")


def _check_cycles(docs: list[_Doc], contract_ids: set[str], problems: _Problems) -> None:
    edges: dict[str, list[tuple[str, _Doc, int]]] = {}
    for doc in docs:
        cid = doc.data.get("id")
        if isinstance(cid, str) and cid not in edges:
            edges[cid] = [(dep, doc, j) for j, dep in _strs(doc.data.get("depends_on")) if dep in contract_ids]
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


# --- bindings ------------------------------------------------------------------------------------

# Used with fullmatch: `$` would also match before a trailing newline ("pkg.mod:fn\n").
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_MISSING_MODULE = re.compile(r"No module named '([^']+)'")


def _valid_requirement(spec: str) -> bool:
    """A PEP 508 requirement (`name`, `name>=1.2`, `name[extra]`), as pip and the runner read it."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(spec)
    except InvalidRequirement:
        return False
    return True


def _normalize_package(name: str) -> str:
    return re.split(r"[<>=!~\[; ]", name, maxsplit=1)[0].strip().lower().replace("-", "_")


class _FallbackRootProblems:
    """Binding problems of contracts with no repository marker above them say which root was used:
    "does not exist under ROOT" alone would not tell the author why it looked there."""

    def __init__(self, problems: _ProblemSink, root: Path) -> None:
        self._problems = problems
        self._root = root

    def add(self, location: SourceLocation, subject: str, message: str) -> None:
        note = (
            f"; resolved against {self._root} (no {' or '.join(ROOT_MARKERS)} found above {location.path}: "
            "add a pyproject.toml at the repository root)"
        )
        self._problems.add(location, subject, message + note)


def _check_bindings(docs: list[_Doc], problems: _Problems) -> None:
    by_root: dict[tuple[Path, bool], list[_Doc]] = {}
    for doc in docs:
        by_root.setdefault((doc.root, doc.root_marked), []).append(doc)
    for (root, marked), root_docs in by_root.items():
        sink: _ProblemSink = problems if marked else _FallbackRootProblems(problems, root)
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


def _check_python_bindings(root: Path, docs: list[_Doc], problems: _ProblemSink) -> None:
    # (doc, path to the value, subject, target, packages the falsifier declares it needs)
    uses: list[tuple[_Doc, tuple[Any, ...], str, str, frozenset[str], bool]] = []
    for doc in docs:
        for i, inv in _dicts(doc.data, "invariants"):
            for j, guard in _strs(inv.get("guards")):
                if _TARGET.fullmatch(guard):
                    uses.append((doc, ("invariants", i, "guards", j), doc.subject(("invariants", i)), guard, frozenset(), False))
        for i, fal in _dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            target = binding.get("python") if isinstance(binding, dict) else None
            if isinstance(target, str) and _TARGET.fullmatch(target):
                requires = fal.get("requires")
                packages = requires.get("packages") if isinstance(requires, dict) else None
                declared = frozenset(_normalize_package(p) for _, p in _strs(packages))
                uses.append((doc, ("falsifiers", i, "binding", "python"), doc.subject(("falsifiers", i)), target, declared, True))
    if not uses:
        return
    results = check_python_targets(root, [u[3] for u in uses], zero_arg={u[3] for u in uses if u[5]})
    for doc, path, subject, target, declared, is_binding in uses:
        reason = results.get(target)
        if reason is None:
            continue
        missing = _MISSING_MODULE.search(reason)
        if missing and missing.group(1).split(".")[0].lower() in declared:
            # The falsifier says it needs this package; the runner reports it not_run where absent.
            continue
        what = "binding python:" if is_binding else "guards:"
        problems.add(doc.loc(path), subject, f"{what} {target} does not resolve: {reason}; {_python_fix(reason, target)}")


def _outside_root(root: Path, relative: str) -> str | None:
    """Why a binding path is not a repository-relative path inside `root`, or None.

    An absolute path, or one that climbs out with `..`, would make the contract depend on one
    machine's layout or on the current directory of whoever runs it."""
    if Path(relative).is_absolute():
        return f"the path is absolute; write it relative to the repository root {root}"
    # Lexical, not resolve(): a symlinked test directory inside the repository is fine.
    if os.path.normpath(relative).split(os.sep)[0] == os.pardir:
        return f"the path leads outside the repository root {root}; bind tests inside the repository"
    return None


def _check_pytest_bindings(root: Path, docs: list[_Doc], problems: _ProblemSink) -> None:
    nodes: list[tuple[_Doc, tuple[Any, ...], str, str, int]] = []
    ks: dict[str, tuple[_Doc, tuple[Any, ...], str, str, list[str], int]] = {}
    for doc in docs:
        for i, fal in _dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            if not isinstance(binding, dict) or "pytest" not in binding:
                continue
            subject = doc.subject(("falsifiers", i))
            min_tests = binding.get("min_tests", 1)
            min_tests = min_tests if isinstance(min_tests, int) and not isinstance(min_tests, bool) else 1
            value = binding["pytest"]
            path = ("falsifiers", i, "binding", "pytest")
            if isinstance(value, str) and (k_expr := k_shorthand(value)) is not None:
                value = {"k": k_expr, "paths": list(default_test_paths(root))}
            if isinstance(value, str) and value.strip():
                if value.startswith("-") or any(c.isspace() for c in value):
                    continue  # not a node id at all: the schema check has already said how to write it
                file_part = value.split("::", 1)[0]
                outside = _outside_root(root, file_part)
                if outside:
                    problems.add(doc.loc(path), subject, f"binding pytest: {value}: {outside}")
                    continue
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
                paths = [p for _, p in _strs(value.get("paths"))]
                outside = [(p, why) for p in paths if (why := _outside_root(root, p))]
                if outside:
                    problems.add(doc.loc(path + ("paths",)), subject, f"binding pytest -k {value['k']!r}: {outside[0][0]}: {outside[0][1]}")
                    continue
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


def _check_command_bindings(root: Path, docs: list[_Doc], problems: _ProblemSink) -> None:
    cache: dict[str, str | None] = {}
    for doc in docs:
        for i, fal in _dicts(doc.data, "falsifiers"):
            binding = fal.get("binding")
            argv = binding.get("command") if isinstance(binding, dict) else None
            if not isinstance(argv, list) or not argv or not isinstance(argv[0], str) or not argv[0]:
                continue
            program = argv[0]
            if program not in cache:
                cache[program] = check_program(root, program)
            if cache[program]:
                problems.add(
                    doc.loc(("falsifiers", i, "binding", "command", 0)), doc.subject(("falsifiers", i)),
                    f"binding command: {cache[program]}",
                )


# --- building the model --------------------------------------------------------------------------

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
    return Binding(
        BindingKind.COMMAND, argv=tuple(data["command"]), count_pattern=data.get("count_pattern"), min_tests=min_tests
    )


def _contract(doc: _Doc) -> Contract:
    data = doc.data
    rel = doc.path.resolve().relative_to(doc.root).as_posix() if doc.path.resolve().is_relative_to(doc.root) else str(doc.path.resolve())

    def loc(path: tuple[Any, ...]) -> SourceLocation:
        return SourceLocation(rel, doc.loaded.line_of(path))

    invariants = tuple(
        Invariant(
            id=inv["id"], statement=inv["statement"], kind=inv["kind"], location=loc(("invariants", i)),
            guards=tuple(inv.get("guards", ())), proof_obligations=tuple(inv.get("proof_obligations", ())),
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
                    custom=tuple((k, v) for k, v in req.items() if k not in requirements.BUILTIN_KINDS),
                ),
                timeout_s=float(fal.get("timeout_s", 300.0)),
                deferred=Deferred(reason=deferred["reason"], until=date.fromisoformat(deferred["until"])) if deferred else None,
            )
        )
    return Contract(
        id=data["id"], version=data["version"], title=data["title"], description=data.get("description", ""),
        path=rel, sha256=doc.loaded.sha256, invariants=invariants, falsifiers=tuple(falsifiers),
        depends_on=tuple(data.get("depends_on", ())), references=tuple(data.get("references", ())),
        changelog=tuple(data.get("changelog", ())),
    )


def validate_report(
    paths: Iterable[str | os.PathLike[str]],
    *,
    check_bindings: bool = True,
    today: date | None = None,
) -> Validation:
    """Run every check over the contract files under `paths`; see the module docstring."""
    today = today or clock.today()
    files, discovered = discover(paths)
    problems = _Problems()
    for p in discovered:
        problems.add(p.location, p.subject, p.message)
    docs: list[_Doc] = []
    for file in files:
        display = _display(file)
        try:
            loaded = load_contract_file(file)
        except LoadError as exc:
            problems.add(SourceLocation(display, exc.line), NO_ID, exc.message)
            continue
        root, marked = _locate_repo_root(file)
        docs.append(_Doc(display=display, path=file.resolve(), root=root, loaded=loaded, root_marked=marked))
    for doc in docs:
        _check_schema(doc, problems)
    _check_ids(docs, problems)
    _check_references(docs, problems, today)
    if check_bindings:
        _check_bindings(docs, problems)
    found = problems.sorted()
    contracts: tuple[Contract, ...] = ()
    roots: dict[str, Path] = {}
    if not found:
        contracts = tuple(_contract(doc) for doc in docs)
        roots = {doc.data["id"]: doc.root for doc in docs}
    return Validation(contracts=contracts, problems=tuple(found), files=tuple(files), roots=roots)


def validate(
    paths: Iterable[str | os.PathLike[str]],
    *,
    check_bindings: bool = True,
    today: date | None = None,
) -> tuple[list[Contract], list[Problem]]:
    """(contracts, problems); contracts is empty unless problems is."""
    result = validate_report(paths, check_bindings=check_bindings, today=today)
    return list(result.contracts), list(result.problems)
