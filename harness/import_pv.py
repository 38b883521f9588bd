"""`harness import pv`: contracts in the `pv` (provable-contracts) format converted into this harness's.

    convert(paths, *, defer_until=None, today=None) -> PvImport     # pure: the files and the report, nothing written
    write_import(result, out, *, force=False, report=None) -> Path  # DIR as a whole, or nothing
    import_pv(paths, out, ...) -> ImportReport                      # both

`pv` never runs the tests its contracts cite: a falsifier is a free-text `test:` string. Here each one
becomes what it really is (docs/import-pv.md has the whole mapping):
- `cargo test ...` -> a command binding counted from cargo's `test result: ok. N passed` lines, min_tests 1
  (a filter that matches nothing is an error, not a pass); `cargo nextest run ...` -> counted from its junit
  file; `A && B` -> an all-or-nothing chain run without a shell (`command: [[A...], [B...]]`);
- another command (`pv validate x.yaml`) -> a command binding;
- `LIVE-PENDING ...` -> `deferred`, the text as the reason, `--defer-until` as the expiry (required then);
- anything else (prose) -> `binding: {unbound: TEXT}`, which validate warns about and verify records as
  `error`, never `passed`.
What our format has no place for is kept under `x-pv:` (contract, invariant, falsifier); keys `pv` is not
known to have are also listed in the report. Output is deterministic: the same files give the same bytes.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

import yaml

from harness import clock
from harness.atomic import create_file, fsync_dir, unique_sibling
from harness.discover import discover_resolved, display_path
from harness.escape import printable

EXTENSION_KEY = "x-pv"
REPORT_FILE = "import-report.json"
MAX_FILE_BYTES = 5 * 1024 * 1024  # as harness.load: a pv file is a contract, not a data set
MAX_NODES = 200_000  # aliases expanded: a "billion laughs" file is refused, not written out
MAX_DEPTH = 48  # our loader allows 64 levels; x-pv sits 2-4 levels below the top

# cargo prints one `test result: ok. N passed; M failed; ...` line per test binary; count_pattern sums them.
CARGO_COUNT_PATTERN = r"test result: \S+ (\d+) passed"
# Where cargo-nextest writes junit with `[profile.<P>.junit] path = "junit.xml"` in .config/nextest.toml.
NEXTEST_JUNIT = "target/nextest/{profile}/junit.xml"

# What the issue's description of the format names; anything else is "unknown to both" and reported.
KNOWN_TOP = (
    "metadata", "equations", "proof_obligations", "falsification_tests", "kani_harnesses", "qa_gate",
    "verification_summary", "type_invariants", "coq_spec",
)
KNOWN_METADATA = (
    "version", "description", "created", "updated", "author", "references", "depends_on", "kind", "registry",
    "enforcement_level", "status", "changelog",
)
KNOWN_EQUATION = (
    "formula", "domain", "codomain", "invariants", "preconditions", "postconditions", "lean_theorem", "assumes",
    "guarantees",
)
KNOWN_OBLIGATION = ("id", "type", "property", "formal", "tolerance", "applies_to", "lean")
KNOWN_TEST = ("id", "rule", "prediction", "test", "if_fails", "description", "expected", "command", "fails_if")
KNOWN_KANI = ("id", "obligation", "property", "bound", "strategy", "solver", "harness")

# pv obligation `type` -> our invariant `kind`; any other type is `safety` (the original stays under x-pv).
KIND_OF_TYPE = {
    "invariant": "safety", "safety": "safety", "soundness": "safety", "precondition": "safety",
    "postcondition": "safety", "bound": "bound", "bounds": "bound", "termination": "liveness",
    "liveness": "liveness", "progress": "liveness", "equivalence": "equivalence", "conservation": "equivalence",
    "idempotence": "equivalence", "determinism": "determinism", "performance": "performance",
    "integrity": "integrity", "provenance": "provenance",
}

# verification_summary keys compared with the contract's real content.
SUMMARY_COUNTS = {
    "equations": ("equations", "total_equations", "num_equations", "equation_count"),
    "proof_obligations": ("proof_obligations", "obligations", "total_obligations", "total_proof_obligations"),
    "falsification_tests": ("falsification_tests", "total_falsification_tests", "falsifiers", "total_tests", "tests"),
    "kani_harnesses": ("kani_harnesses", "total_kani_harnesses", "kani"),
}

# A `test:` string is a command when its program is one of these or a path (./x, scripts/x); else prose.
PROGRAMS = frozenset({
    "cargo", "pv", "make", "just", "python", "python3", "pytest", "bash", "sh", "go", "npm", "npx", "node", "rustc",
})
_SHELL_OPERATORS = frozenset({"|", "||", ";", "&", ">", ">>", "<", "<<", "(", ")", ";;"})
_FILTER = re.compile(r"[A-Za-z_][A-Za-z0-9_:]*")
# cargo test options that take a value (so the value is not mistaken for the filter).
_CARGO_VALUE_OPTIONS = frozenset({
    "-p", "--package", "--test", "--bench", "--example", "--bin", "--features", "-F", "--target", "--profile",
    "--manifest-path", "-j", "--jobs", "--exclude", "--target-dir", "--color", "--message-format", "-Z",
})


class PvImportError(ValueError):
    """Bad input: every problem, one line each as FILE:LINE: message (or naming the flag)."""

    def __init__(self, problems: list[str], *, missing_flag: tuple[str, str | None] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        # (flag, a value that works or None for a switch): the CLI prints the command again with it, runnable.
        self.missing_flag = missing_flag


class ImportBug(RuntimeError):
    """The importer produced contracts our validator refuses: a bug in harness, never written out."""


# ------------------------------------------------------------------------------------------ the report


@dataclass(frozen=True)
class ImportedFalsifier:
    id: str
    source_id: str | None  # the pv id as written (None when it had none, or for an added unattacked entry)
    location: str  # FILE:LINE of the pv entry
    status: str  # "bound" (runnable), "deferred" (LIVE-PENDING) or "unbound" (prose)
    binding: str  # as our binding describes itself
    reason: str  # why it is deferred or unbound; how it is counted when bound
    attacks: tuple[str, ...]
    attacks_from: str  # "named" (its text names them) or "all" (the contract's invariants)


@dataclass(frozen=True)
class ImportedContract:
    id: str
    source: str
    invariants: tuple[str, ...]
    falsifiers: tuple[ImportedFalsifier, ...]
    dangling_depends_on: tuple[str, ...] = ()
    summary_mismatches: tuple[dict[str, Any], ...] = ()  # {key, claimed, actual}
    summary_uncompared: tuple[str, ...] = ()  # verification_summary keys with a number we cannot compare
    unknown_keys: tuple[str, ...] = ()  # "FILE:LINE: path.to.key"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportReport:
    contracts: tuple[ImportedContract, ...]

    @property
    def totals(self) -> dict[str, int]:
        falsifiers = [f for c in self.contracts for f in c.falsifiers]
        return {
            "contracts": len(self.contracts),
            "invariants": sum(len(c.invariants) for c in self.contracts),
            "falsifiers": len(falsifiers),
            **{s: sum(f.status == s for f in falsifiers) for s in ("bound", "deferred", "unbound")},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "pv",
            "totals": self.totals,
            "contracts": [
                {
                    "id": c.id, "source": c.source, "invariants": list(c.invariants),
                    "falsifiers": [
                        {
                            "id": f.id, "source_id": f.source_id, "location": f.location, "status": f.status,
                            "binding": f.binding, "reason": f.reason, "attacks": list(f.attacks),
                            "attacks_from": f.attacks_from,
                        }
                        for f in c.falsifiers
                    ],
                    "dangling_depends_on": list(c.dangling_depends_on),
                    "summary_mismatches": list(c.summary_mismatches),
                    "summary_uncompared": list(c.summary_uncompared),
                    "unknown_keys": list(c.unknown_keys),
                    "notes": list(c.notes),
                }
                for c in self.contracts
            ],
        }

    def text_lines(self) -> list[str]:
        t = self.totals
        lines = [
            f"harness import pv: {_n(t['contracts'], 'contract')}, {_n(t['invariants'], 'invariant')}, {_n(t['falsifiers'], 'falsifier')}: "
            f"{t['bound']} bound, {t['deferred']} deferred, {t['unbound']} unbound"
        ]
        for c in self.contracts:
            lines.append(f"{c.id} ({c.source}): {_n(len(c.invariants), 'invariant')}, {_n(len(c.falsifiers), 'falsifier')}")
            for f in c.falsifiers:
                whom = "all invariants (its text names none)" if f.attacks_from == "all" else ", ".join(f.attacks)
                lines.append(f"  {f.id}: {f.status}: {f.reason}; attacks {whom}")
            for name in c.dangling_depends_on:
                lines.append(f"  depends_on {name!r}: not among the imported contracts (kept under {EXTENSION_KEY})")
            for m in c.summary_mismatches:
                lines.append(f"  verification_summary.{m['key']} says {m['claimed']}, the contract has {m['actual']}")
            for key in c.summary_uncompared:
                lines.append(f"  verification_summary.{key}: not compared (no known count of that name)")
            for where in c.unknown_keys:
                lines.append(f"  unknown key (kept under {EXTENSION_KEY}): {where}")
            for note in c.notes:
                lines.append(f"  note: {note}")
        return lines


@dataclass(frozen=True)
class PvImport:
    files: dict[str, str]  # file name in DIR -> YAML text
    report: ImportReport


# ------------------------------------------------------------------------------------------ reading pv files


def _node_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int], budget: list[int]) -> None:
    """The 1-based line of every key/item path under `node` (aliases expanded, within the node budget)."""
    budget[0] -= 1
    if budget[0] < 0 or len(path) > MAX_DEPTH:
        return  # _clean refuses what is this large or deep (a recursive alias included) with its own message
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            out.setdefault(path + (k,), key.start_mark.line + 1)
            _node_lines(value, path + (k,), out, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_lines(item, path + (i,), out, budget)


@dataclass
class _PvFile:
    display: str
    data: dict[str, Any]
    lines: dict[tuple[Any, ...], int]

    def where(self, *path: Any) -> str:
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                return f"{self.display}:{self.lines[path[:cut]]}"
        return f"{self.display}:1"


def _clean(value: Any, display: str, depth: int = 0, budget: list[int] | None = None) -> Any:
    """`value` as plain YAML our loader reads back as written: str keys, dates as text, no non-finite floats,
    no integer beyond 2**63-1, no control character but tab and newline; aliases expanded (bounded)."""
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise PvImportError([f"{display}:1: too large or too deeply nested once its aliases are expanded; split the file"])
    if isinstance(value, dict):
        return {_clean(str(k) if not isinstance(k, str) else k, display, depth + 1, budget): _clean(v, display, depth + 1, budget)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, display, depth + 1, budget) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**63 - 1 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return printable(value, keep="\t\n")
    return str(value)


def _read(path: Path, display: str) -> _PvFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PvImportError([f"{display}:1: cannot read the file ({exc.strerror or exc})"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise PvImportError([f"{display}:1: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split the file"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PvImportError([f"{display}:1: not UTF-8 (byte {exc.start}); save it as UTF-8"]) from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PvImportError([f"{display}:{line}: not valid YAML: {exc.problem or exc}; fix the syntax"]) from None
    except yaml.YAMLError as exc:
        raise PvImportError([f"{display}:1: not valid YAML: {exc}; fix the syntax"]) from None
    except RecursionError:
        raise PvImportError([f"{display}:1: nested too deeply to read; flatten the file"]) from None
    if not isinstance(data, dict):
        raise PvImportError([f"{display}:1: a pv contract is one YAML mapping (metadata:, equations:, ...); this file holds none"])
    lines: dict[tuple[Any, ...], int] = {}
    _node_lines(node, (), lines, [MAX_NODES])
    return _PvFile(display, _clean(data, display), lines)


# ------------------------------------------------------------------------------------------ the mapping


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]+", "-", text)).strip("-")


def contract_id_of(path: Path, version: str) -> str:
    """Our contract id from a pv file name `<name>-v<N>.yaml`: lower-case, other characters as `-`; a name
    without `-v<N>` gets the metadata version's major number."""
    slug = _slug(path.stem).lower()
    if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*-v[0-9]+", slug):
        return slug
    major = version.split(".", 1)[0] if re.fullmatch(r"[0-9]+(\..*)?", version) else "1"
    return f"{slug or 'contract'}-v{major}"


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if value is None or isinstance(value, (dict, list)) and not value:
        return None
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6).strip()
    return str(value)


@dataclass
class _Parsed:
    status: str
    binding: dict[str, Any]
    reason: str


def _cargo_filter_ok(args: list[str]) -> bool:
    """`cargo test ARGS`: options, their values, and at most one test-name filter; more words is prose."""
    positional = 0
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return True  # the rest goes to the test binary
        if a in _CARGO_VALUE_OPTIONS:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        if not _FILTER.fullmatch(a):
            return False
        positional += 1
        i += 1
    return positional <= 1


def parse_test(text: str) -> _Parsed:
    """What a pv `test:` string really is: a runnable binding, a LIVE-PENDING deferral, or prose."""
    stripped = " ".join(text.split())
    if stripped.startswith("LIVE-PENDING"):
        return _Parsed("deferred", {"unbound": text.strip()}, stripped)
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError as exc:
        return _Parsed("unbound", {"unbound": text.strip()}, f"prose, not a command ({exc})")
    steps: list[list[str]] = [[]]
    for token in tokens:
        if token == "&&":
            steps.append([])
        elif token in _SHELL_OPERATORS or "$" in token or "`" in token:
            return _Parsed("unbound", {"unbound": text.strip()}, f"needs a shell ({token!r}); put it in a script and bind that")
        else:
            steps[-1].append(token)
    if not tokens or any(not step for step in steps):
        return _Parsed("unbound", {"unbound": text.strip() or "(empty)"}, "prose, no command")
    kinds = []
    for step in steps:
        program = step[0]
        if program not in PROGRAMS and "/" not in program:
            return _Parsed("unbound", {"unbound": text.strip()}, "prose, names no runnable test")
        if step[:2] == ["cargo", "test"]:
            if not _cargo_filter_ok(step[2:]):
                return _Parsed("unbound", {"unbound": text.strip()}, "prose, cargo test followed by words that are not one test filter")
            kinds.append("cargo")
        elif step[:3] == ["cargo", "nextest", "run"]:
            kinds.append("nextest")
        else:
            kinds.append("command")
    command: Any = steps[0] if len(steps) == 1 else steps
    if set(kinds) == {"cargo"}:
        return _Parsed(
            "bound", {"command": command, "count_pattern": CARGO_COUNT_PATTERN, "min_tests": 1},
            "counted from cargo's 'test result' lines, at least 1 test" + (" per step" if len(steps) > 1 else ""),
        )
    if set(kinds) == {"nextest"}:
        profiles = {_nextest_profile(step) for step in steps}
        if len(profiles) > 1:
            return _Parsed("unbound", {"unbound": text.strip()}, "a && chain of nextest runs with different profiles")
        junit = NEXTEST_JUNIT.format(profile=profiles.pop())
        return _Parsed(
            "bound", {"command": command, "junit": junit, "min_tests": 1},
            f"counted from the junit file {junit} (needs [profile.<P>.junit] path = \"junit.xml\" in .config/nextest.toml)",
        )
    if set(kinds) == {"command"}:
        return _Parsed("bound", {"command": command}, "held when it exits 0; one opaque test, nothing counted")
    # One count_pattern cannot count a cargo step and a step that prints no test result: splitting it is the user's call.
    return _Parsed("unbound", {"unbound": text.strip()}, "a && chain mixing cargo test with other commands; split it into falsifiers")


def _nextest_profile(step: list[str]) -> str:
    for i, a in enumerate(step):
        if a in ("--profile", "-P") and i + 1 < len(step):
            return step[i + 1]
        if a.startswith("--profile="):
            return a.split("=", 1)[1]
    return "default"


def _named(text: str, names: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The invariant ids of every equation name or obligation id `text` names as a whole word."""
    found: list[str] = []
    for name, ids in names.items():
        if ids and re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text):
            found.extend(i for i in ids if i not in found)
    return tuple(found)


def _unknown(pv: _PvFile, mapping: Any, known: tuple[str, ...], path: tuple[Any, ...]) -> list[str]:
    if not isinstance(mapping, dict):
        return []
    return [f"{pv.where(*path, k)}: {_dotted(path + (k,))}" for k in mapping if k not in known]


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class _Draft:
    pv: _PvFile
    id: str
    version: str
    doc: dict[str, Any]
    invariants: list[dict[str, Any]] = field(default_factory=list)
    tests: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)  # invariant and falsifier ids taken in this contract
    unmapped: dict[str, Any] = field(default_factory=dict)  # obligations/tests that are not mappings, kept under x-pv
    depends_on: tuple[str, ...] = ()  # resolved to imported contract ids
    dangling: tuple[str, ...] = ()


def _draft(path: Path, pv: _PvFile, problems: list[str]) -> _Draft | None:
    data = pv.data
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        problems.append(f"{pv.where('metadata')}: no metadata mapping; pv contracts need metadata: {{version, description}}")
        return None
    version = meta.get("version")
    description = _text(meta.get("description"))
    ok = True
    if not isinstance(version, str) or not re.fullmatch(
        r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?", version
    ):
        problems.append(f"{pv.where('metadata', 'version')}: metadata.version {version!r} is not semver (MAJOR.MINOR.PATCH); fix it in the pv file")
        ok = False
    if description is None:
        problems.append(f"{pv.where('metadata', 'description')}: metadata.description is missing or empty; pv requires it")
        ok = False
    if not ok:
        return None
    cid = contract_id_of(path, str(version))
    prefix = cid.upper()
    doc: dict[str, Any] = {
        "id": cid, "version": version, "title": description.strip().splitlines()[0].strip()[:200],
        "description": description,
    }
    draft = _Draft(pv, cid, str(version), doc)
    equations = data.get("equations")
    if isinstance(equations, dict):
        for name, eq in equations.items():
            invs = eq.get("invariants") if isinstance(eq, dict) else None
            ids = []
            for j, statement in enumerate(invs if isinstance(invs, list) else []):
                text = _text(statement)
                if text is None:
                    continue
                inv_id = _unique(f"INV-{prefix}-EQ-{_slug(str(name)).upper() or 'X'}-{j + 1:03d}", draft.used)
                inv: dict[str, Any] = {"id": inv_id, "kind": "safety", "statement": text}
                formula = _text(eq.get("formula"))
                if formula is not None:
                    inv["proof_obligations"] = [f"{name}: {formula}"]
                inv[EXTENSION_KEY] = {"from": f"equations.{name}.invariants[{j}]"}
                draft.invariants.append(inv)
                ids.append(inv_id)
            draft.names[str(name)] = tuple(ids)
    obligations = data.get("proof_obligations")
    for i, po in enumerate(obligations if isinstance(obligations, list) else []):
        if not isinstance(po, dict):
            draft.unmapped[f"proof_obligations[{i}]"] = po
            continue
        statement = _text(po.get("property")) or _text(po.get("formal")) or (
            f"{po.get('type', 'proof')} obligation {po.get('id', i)} (no property in the pv contract)"
        )
        source_id = po.get("id") if isinstance(po.get("id"), str) else None
        if source_id and _slug(source_id):
            tail = _slug(source_id).upper()
            inv_id = f"INV-{prefix}-{tail}" if re.search(r"-[0-9]{3}$", tail) else f"INV-{prefix}-{tail}-001"
        else:
            inv_id = f"INV-{prefix}-PO-{i + 1:03d}"
        inv_id = _unique(inv_id, draft.used)
        kind = KIND_OF_TYPE.get(str(po.get("type", "")).strip().lower(), "safety")
        inv = {"id": inv_id, "kind": kind, "statement": statement}
        formal = _text(po.get("formal"))
        if formal is not None and formal != statement:
            inv["proof_obligations"] = [formal]
        inv[EXTENSION_KEY] = {"from": f"proof_obligations[{i}]", **po}
        draft.invariants.append(inv)
        if source_id:
            draft.names[source_id] = (inv_id,)
    tests = data.get("falsification_tests")
    for i, t in enumerate(tests if isinstance(tests, list) else []):
        if isinstance(t, dict):
            draft.tests.append((i, t))
        else:
            draft.unmapped[f"falsification_tests[{i}]"] = t
    return draft


def _unique(candidate: str, used: set[str]) -> str:
    """`candidate`, or, when an earlier item of the import took it, the same with `-2`, `-3`... before its
    final number: deterministic (file order), and still an id of our pattern."""
    head, number = candidate.rsplit("-", 1)
    k = 1
    while candidate in used:
        k += 1
        candidate = f"{head}-{k}-{number}"
    used.add(candidate)
    return candidate


def _resolve_depends_on(drafts: list[_Draft], ids: set[str], problems: list[str]) -> None:
    """Each draft's depends_on as imported contract ids (as written, or normalised like a file name) and the
    dangling rest; a cycle among them is bad input (our validator refuses cycles), reported with its files."""
    by_id = {d.id: d for d in drafts}
    for d in drafts:
        meta = d.pv.data["metadata"]
        wanted = [str(x) for x in meta.get("depends_on") or []] if isinstance(meta.get("depends_on"), list) else []
        found, dangling = [], []
        for name in wanted:
            target = name if name in ids else (_slug(name).lower() if _slug(name).lower() in ids else None)
            (found if target else dangling).append(target or name)
        d.depends_on, d.dangling = tuple(dict.fromkeys(found)), tuple(dangling)
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(cid: str, path: list[str]) -> None:
        state[cid] = 1
        for dep in by_id[cid].depends_on:
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [cid, dep]
                where = by_id[cid].pv.where("metadata", "depends_on")
                problems.append(f"{where}: depends_on cycle {' -> '.join(cycle)}; remove one of these dependencies")
            elif dep not in state:
                visit(dep, path + [dep])
        state[cid] = 2

    for cid in sorted(by_id):
        if cid not in state:
            visit(cid, [cid])


def _summary(pv: _PvFile) -> tuple[list[dict[str, Any]], list[str]]:
    summary = pv.data.get("verification_summary")
    if not isinstance(summary, dict):
        return [], []
    actual = {
        "equations": len(pv.data["equations"]) if isinstance(pv.data.get("equations"), dict) else 0,
        **{k: len(pv.data[k]) if isinstance(pv.data.get(k), list) else 0 for k in ("proof_obligations", "falsification_tests", "kani_harnesses")},
    }
    mismatches, uncompared = [], []
    for key, claimed in summary.items():
        if not isinstance(claimed, int) or isinstance(claimed, bool):
            continue
        what = next((real for real, names in SUMMARY_COUNTS.items() if key in names), None)
        if what is None:
            uncompared.append(key)
        elif claimed != actual[what]:
            mismatches.append({"key": key, "claimed": claimed, "actual": actual[what]})
    return mismatches, uncompared


def convert(
    paths: Iterable[str | os.PathLike[str]], *, defer_until: date | None = None, today: date | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> PvImport:
    """The imported contracts (file name -> YAML text) and the report; raises PvImportError for bad input.
    Files under `exclude` (the output directory, when it lies inside a PATH) are not pv files: skipped."""
    today = today or clock.today()
    listed, discovered = discover_resolved(paths)
    if exclude is not None:
        skip = Path(exclude).resolve()
        listed = [(spelled, resolved) for spelled, resolved in listed if not resolved.is_relative_to(skip)]
    problems = [str(p).replace(": -: ", ": ", 1) for p in discovered]
    if defer_until is not None and defer_until < today:
        problems.append(f"--defer-until {defer_until.isoformat()} is in the past (today is {today.isoformat()} UTC); give a future date")
    drafts: list[_Draft] = []
    for spelled, resolved in listed:
        display = display_path(spelled)
        try:
            pv = _read(resolved, display)
        except PvImportError as exc:
            problems.extend(exc.problems)
            continue
        draft = _draft(spelled, pv, problems)
        if draft is not None:
            drafts.append(draft)
    seen: dict[str, str] = {}
    for d in drafts:
        if d.id in seen:
            problems.append(f"{d.pv.display}:1: contract id {d.id!r} (from the file name) is also {seen[d.id]}'s; rename one file")
        seen.setdefault(d.id, d.pv.display)
    _resolve_depends_on(drafts, set(seen), problems)
    pending = [(d, i) for d in drafts for i, t in d.tests if parse_test(_test_text(t)).status == "deferred"]
    missing_flag = None
    if pending and defer_until is None:
        d, i = pending[0]
        suggestion = (today + timedelta(days=90)).isoformat()
        missing_flag = ("--defer-until", suggestion)
        problems.append(
            f"--defer-until DATE is required: {len(pending)} falsification tests are LIVE-PENDING (first: "
            f"{d.pv.where('falsification_tests', i)}) and become deferred until that date"
        )
    if problems:
        raise PvImportError(problems, missing_flag=missing_flag)
    id_counts: dict[str, int] = {}
    for d in drafts:
        for _, t in d.tests:
            if isinstance(t.get("id"), str):
                id_counts[t["id"]] = id_counts.get(t["id"], 0) + 1
    files: dict[str, str] = {}
    reports = []
    taken = {fid for fid in id_counts if _keeps_id(fid, id_counts)}
    for d in sorted(drafts, key=lambda d: d.id):
        text, report = _finish(d, taken, id_counts, defer_until)
        files[f"{d.id}.yaml"] = text
        reports.append(report)
    return PvImport(files, ImportReport(tuple(reports)))


def _test_text(test: dict[str, Any]) -> str:
    """A pv test entry's binding text: `test`, else its alias `command`; "" when it has neither."""
    return _text(test.get("test")) or _text(test.get("command")) or ""


def _keeps_id(source_id: Any, id_counts: dict[str, int]) -> bool:
    return isinstance(source_id, str) and bool(re.fullmatch(r"FALSIFY-[A-Z0-9-]+-[0-9]{3}", source_id)) and id_counts.get(source_id) == 1


def _finish(d: _Draft, taken: set[str], id_counts: dict[str, int], defer_until: date | None) -> tuple[str, ImportedContract]:
    """The contract's YAML and its report entry; `taken` holds every falsifier id already used in the import."""
    pv, data, prefix = d.pv, d.pv.data, d.id.upper()
    meta = data["metadata"]
    notes: list[str] = []
    unknown = _unknown(pv, data, KNOWN_TOP, ()) + _unknown(pv, meta, KNOWN_METADATA, ("metadata",))
    for name, eq in (data.get("equations") or {}).items() if isinstance(data.get("equations"), dict) else ():
        unknown += _unknown(pv, eq, KNOWN_EQUATION, ("equations", name))
    for i, po in enumerate(data.get("proof_obligations") or []) if isinstance(data.get("proof_obligations"), list) else ():
        unknown += _unknown(pv, po, KNOWN_OBLIGATION, ("proof_obligations", i))
    for i, t in d.tests:
        unknown += _unknown(pv, t, KNOWN_TEST, ("falsification_tests", i))
    for i, k in enumerate(data.get("kani_harnesses") or []) if isinstance(data.get("kani_harnesses"), list) else ():
        unknown += _unknown(pv, k, KNOWN_KANI, ("kani_harnesses", i))
    refs = [r for r in meta.get("references") or [] if isinstance(r, str) and r.strip()] if isinstance(meta.get("references"), list) else []
    if refs:
        d.doc["references"] = refs
    dangling = list(d.dangling)
    if d.depends_on:
        d.doc["depends_on"] = list(d.depends_on)
    if not d.invariants:
        d.invariants.append({
            "id": f"INV-{prefix}-CONTRACT-001", "kind": "safety", "statement": d.doc["description"],
            EXTENSION_KEY: {"from": "metadata.description"},
        })
        notes.append("no equation invariant or proof obligation: the contract's description is its one invariant")
    all_ids = tuple(inv["id"] for inv in d.invariants)
    falsifiers: list[dict[str, Any]] = []
    imported: list[ImportedFalsifier] = []
    for n, (i, t) in enumerate(d.tests, 1):
        source_id = t.get("id") if isinstance(t.get("id"), str) else None
        if _keeps_id(source_id, id_counts):
            fid = source_id
        else:
            fid = _unique(f"FALSIFY-{prefix}-{n:03d}", taken)
            notes.append(f"falsification_tests[{i}] id {source_id!r} is not a unique FALSIFY-...-NNN id: imported as {fid}")
        rule = _text(t.get("rule")) or _text(t.get("description"))
        prediction = _text(t.get("prediction")) or _text(t.get("expected")) or rule or "(no prediction in the pv contract)"
        if_fails = _text(t.get("if_fails")) or _text(t.get("fails_if")) or "(no if_fails in the pv contract)"
        test_text = _test_text(t)
        parsed = parse_test(test_text) if test_text else _Parsed("unbound", {"unbound": "(no test in the pv contract)"}, "no test given")
        named = _named(" ".join(x for x in (rule, _text(t.get("prediction")), _text(t.get("expected")), test_text) if x), d.names)
        attacks = named or all_ids
        fal: dict[str, Any] = {"id": fid, "attacks": list(attacks), "prediction": prediction, "if_fails": if_fails, "binding": parsed.binding}
        reason = parsed.reason
        if parsed.status == "deferred":
            assert defer_until is not None  # convert refused the import without it
            fal["deferred"] = {"reason": parsed.reason, "until": defer_until.isoformat()}
            reason = f"until {defer_until.isoformat()}: {parsed.reason}"
        fal[EXTENSION_KEY] = dict(t)
        falsifiers.append(fal)
        binding_text = _describe(parsed.binding)
        shown = reason if parsed.status != "bound" else f"{binding_text} ({parsed.reason})"
        if parsed.status == "unbound":
            shown = f"{parsed.reason}: {' '.join(test_text.split())[:80]!r}" if test_text else parsed.reason
        imported.append(ImportedFalsifier(
            fid, source_id, pv.where("falsification_tests", i), parsed.status, binding_text, shown, attacks,
            "named" if named else "all",
        ))
    attacked = {a for f in falsifiers for a in f["attacks"]}
    for k, inv in enumerate((inv for inv in d.invariants if inv["id"] not in attacked), 1):
        fid = _unique(f"FALSIFY-{prefix}-UNATTACKED-{k:03d}", taken)
        text = f"no pv falsification test attacks {inv['id']}"
        falsifiers.append({
            "id": fid, "attacks": [inv["id"]], "prediction": f"(none in the pv contract) {inv['statement']}",
            "if_fails": "(no if_fails in the pv contract)", "binding": {"unbound": text},
            EXTENSION_KEY: {"added": "no falsification test attacks this invariant"},
        })
        imported.append(ImportedFalsifier(fid, None, pv.where(), "unbound", _describe({"unbound": text}), text, (inv["id"],), "named"))
    extension: dict[str, Any] = {"source": pv.display}
    extension.update({k: v for k, v in data.items() if k not in ("proof_obligations", "falsification_tests")})
    if dangling:
        extension["dangling_depends_on"] = dangling
    if d.unmapped:
        extension["unmapped"] = d.unmapped
        notes.append(f"not mappings, kept under {EXTENSION_KEY}.unmapped: {', '.join(d.unmapped)}")
    d.doc["invariants"] = d.invariants
    d.doc["falsifiers"] = falsifiers
    d.doc[EXTENSION_KEY] = extension
    mismatches, uncompared = _summary(pv)
    header = f"# Imported from the pv contract {pv.display} by `harness import pv` (docs/import-pv.md).\n"
    text = header + yaml.dump(d.doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None)
    return text, ImportedContract(
        d.id, pv.display, all_ids, tuple(imported), tuple(dangling), tuple(mismatches), tuple(uncompared),
        tuple(unknown), tuple(notes),
    )


class _Dumper(yaml.SafeDumper):
    """safe_dump's dumper, with multi-line text as a literal block (PyYAML falls back to quoting where it must)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def _describe(binding: dict[str, Any]) -> str:
    if "unbound" in binding:
        return "unbound"
    command = binding["command"]
    steps = command if isinstance(command[0], list) else [command]
    return "command: " + " && ".join(shlex.join(step) for step in steps)


# ------------------------------------------------------------------------------------------ writing DIR


def report_json(report: ImportReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def write_import(
    result: PvImport, out: str | os.PathLike[str], *, force: bool = False, report: str | os.PathLike[str] | None = None
) -> Path:
    """Write the contracts (and the JSON report, into DIR unless `report` names a file) as one directory:
    built beside DIR, then renamed into place, so DIR is the old one or the whole new one, never half.
    A non-empty DIR is refused (PvImportError naming --force) unless `force`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PvImportError([f"-o {out}: exists and is not a directory; name a directory"])
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PvImportError(
            [f"-o {out}: not empty; choose an empty or new directory, or add --force to replace it"], missing_flag=("--force", None)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = unique_sibling(out.parent, out.name, "tmp")
    staging.mkdir()
    old: Path | None = None
    try:
        for name, text in sorted(result.files.items()):
            create_file(staging / name, text)
        if report is None:
            create_file(staging / REPORT_FILE, report_json(result.report))
        fsync_dir(staging)
        if out.exists():
            old = unique_sibling(out.parent, out.name, "old")
            os.replace(out, old)
        os.replace(staging, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old, out)
            old = None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if report is not None:
        from harness.atomic import write_atomic

        write_atomic(report, report_json(result.report))
    return out


def import_pv(
    paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], *, defer_until: date | None = None,
    force: bool = False, report: str | os.PathLike[str] | None = None, today: date | None = None,
) -> ImportReport:
    """convert, check the result with our own validator (schema and references), then write_import."""
    result = convert(paths, defer_until=defer_until, today=today, exclude=out)
    _self_check(result, Path(out))
    write_import(result, out, force=force, report=report)
    return result.report


def _self_check(result: PvImport, out: Path) -> None:
    """The importer's output must be valid contracts; a bug here must never write a DIR validate refuses."""
    import tempfile

    from harness.validate import validate_report

    with tempfile.TemporaryDirectory(prefix="harness-import-") as scratch:
        for name, text in result.files.items():
            (Path(scratch) / name).write_text(text, encoding="utf-8")
        if not result.files:
            return
        checked = validate_report([scratch], check_bindings=False)
    if checked.problems:
        raise ImportBug("harness import pv produced invalid contracts: " + "; ".join(map(str, checked.problems[:5])))
