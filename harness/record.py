"""Stage: record. Turn FalsifierResults into Evidence and evidence.json, read evidence back, and publish
the evidence set atomically per commit (a selected run under the commit's partial/<slug>/).

While a run goes on its directory holds a skeleton evidence.json (`complete: false`, no results) and
the journal results.jsonl, one FalsifierResult per line, appended and fsynced as each result arrives
(`Journal`); whatever kills the harness, `read_evidence` gives back every result journaled so far,
still `complete: false`. The normal end publishes the whole set and drops the journal.

evidence.json is the `Evidence` dataclass serialised field for field (the falsifier entries are
FalsifierResult, the contract entries ContractResult); a test holds the JSON Schema and the
dataclasses together so the published format cannot drift from the code.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema

import harness
from harness.atomic import create_file, fsync_dir, unique_sibling, write_atomic
from harness.escape import json_safe
from harness.model import (
    Attempt, Binding, BindingKind, Contract, ContractResult, Evidence, FalsifierResult, Outcome, ParameterKind, ParameterValue,
    SourceLocation, Waiver,
)
from harness.schema import load_schema

SCHEMA_VERSION = 1
READABLE_SCHEMA_VERSIONS = (1,)  # what read_evidence accepts; a new version adds its reader here
UNCOMMITTED = "uncommitted"
EVIDENCE_FILE = "evidence.json"
JOURNAL_FILE = "results.jsonl"  # the running (or killed) run's results, one JSON FalsifierResult a line
PARTIAL_DIR = "partial"  # DIR/<commit>/partial/<slug>/: selected runs, never the commit's evidence
# Files other harness commands publish into the commit directory (`harness teeth --out DIR`); verify's
# publish carries them over. Anything else there (a falsifier's litter included) is replaced.
KEPT_FILES = ("teeth.json", "teeth.md")


class JournalWarning(UserWarning):
    """read_evidence skipped a torn last journal line: the write the kill cut off."""


class EvidenceError(ValueError):
    """An evidence file that cannot be read back; the message is one line naming the file and the fault."""


def evidence_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every evidence.json validates against."""
    return load_schema("evidence")


def evidence_problems(document: Any) -> list[str]:
    """Every way `document` breaks the evidence schema, as `path: message`; empty when valid."""
    validator = jsonschema.Draft202012Validator(evidence_schema(), format_checker=jsonschema.FormatChecker())
    problems = []
    for err in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(map(str, err.absolute_path)) or "(top level)"
        problems.append(f"{where}: {err.message}")
    return problems


def waiver_to_dict(waiver: Waiver) -> dict[str, Any]:
    """A Waiver as evidence records it: {falsifier, reason, owner, expires "YYYY-MM-DD", link, path, line}."""
    return {
        "falsifier": waiver.falsifier, "reason": waiver.reason, "owner": waiver.owner,
        "expires": waiver.expires.isoformat(), "link": waiver.link,
        "path": waiver.location.path, "line": waiver.location.line,
    }


def waiver_from_dict(data: dict[str, Any]) -> Waiver:
    return Waiver(
        falsifier=data["falsifier"], reason=data["reason"], owner=data["owner"], expires=date.fromisoformat(data["expires"]),
        link=data.get("link"), location=SourceLocation(data["path"], int(data["line"])),
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Waiver):
        return waiver_to_dict(value)
    if is_dataclass(value):
        return {f.name: _json_value(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def binding_to_dict(binding: Binding) -> dict[str, Any]:
    """A Binding as JSON-ready data: one key per dataclass field."""
    return _json_value(binding)


def binding_from_dict(data: dict[str, Any]) -> Binding:
    return Binding(
        kind=BindingKind(data["kind"]),
        target=data.get("target"),
        k=data.get("k"),
        paths=tuple(data.get("paths") or ()),
        argv=tuple(data.get("argv") or ()),
        count_pattern=data.get("count_pattern"),
        min_tests=int(data.get("min_tests", 1)),
        junit=data.get("junit"),
        then=tuple(tuple(step) for step in data.get("then") or ()),
    )


def result_to_dict(result: FalsifierResult) -> dict[str, Any]:
    """A FalsifierResult as JSON-ready data: one key per dataclass field, the binding nested the same way."""
    return _json_value(result)


def result_from_dict(data: dict[str, Any]) -> FalsifierResult:
    """Inverse of result_to_dict (results cross xdist workers and processes as JSON)."""
    return FalsifierResult(
        id=data["id"],
        contract_id=data["contract_id"],
        invariant=tuple(data["invariant"]),
        outcome=Outcome(data["outcome"]),
        reason=data["reason"],
        duration_s=float(data["duration_s"]),
        binding=binding_from_dict(data["binding"]),
        tests_matched=data.get("tests_matched"),
        tests_executed=data.get("tests_executed"),
        counterexample=data.get("counterexample"),
        attempts=tuple(
            Attempt(Outcome(a["outcome"]), a["reason"], float(a["duration_s"])) for a in data.get("attempts") or ()
        ),
        replay=data.get("replay"),
        tests_skipped=data.get("tests_skipped"),
        tests_failed=data.get("tests_failed"),
        guards_executed=None if data.get("guards_executed") is None else tuple(data["guards_executed"]),
        guard_lines=None if data.get("guard_lines") is None
        else {guard: tuple(lines) for guard, lines in data["guard_lines"].items()},
        modules=None if data.get("modules") is None else dict(data["modules"]),
        carried_from=data.get("carried_from"),
    )


def totals(results: Iterable[FalsifierResult]) -> dict[str, int]:
    counts = {o.value: 0 for o in Outcome}
    for r in results:
        counts[r.outcome.value] += 1
    return counts


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def make_evidence(
    contracts: Sequence[Contract],
    results: dict[tuple[str, str], FalsifierResult],
    *,
    commit: str | None,
    dirty: bool | None,
    complete: bool,
    started_at: str,
    finished_at: str,
    duration_s: float,
    command: Sequence[str],
    environment: dict[str, Any],
    selection: dict[str, Any] | None = None,
    keep_empty: bool = False,
    shard: dict[str, Any] | None = None,
    merged_from: list[dict[str, Any]] | None = None,
    waivers: Sequence[Waiver] = (),
) -> Evidence:
    """The run's Evidence. `results` is keyed by (contract id, falsifier id); falsifiers without a
    result (not selected, or not reached before Ctrl-C) are left out, in contract-file order, and so
    are contracts without any, unless `keep_empty` (the skeleton a journal's results are read into)."""
    entries = []
    for contract in contracts:
        found = tuple(results[(contract.id, f.id)] for f in contract.falsifiers if (contract.id, f.id) in results)
        if found or keep_empty:
            given = tuple(p.given for p in contract.parameters if p.given is not None)
            entries.append(ContractResult(contract.id, contract.version, contract.path, contract.sha256, found, given))
    return Evidence(
        schema_version=SCHEMA_VERSION,
        harness_version=harness.__version__,
        commit=commit,
        dirty=dirty,
        complete=complete,
        started_at=started_at,
        finished_at=finished_at,
        duration_s=round(duration_s, 3),
        command=tuple(command),
        environment=dict(environment),
        totals=totals(r for c in entries for r in c.falsifiers),
        contracts=tuple(entries),
        selection=selection,
        shard=shard,
        merged_from=merged_from,
        waivers=tuple(waivers),
    )


def build_evidence(contracts: Sequence[Contract], results: dict[tuple[str, str], FalsifierResult], **run: Any) -> dict[str, Any]:
    """The evidence document as JSON-ready data: `make_evidence(...)` serialised (same arguments)."""
    return evidence_to_dict(make_evidence(contracts, results, **run))


def evidence_to_dict(evidence: Evidence) -> dict[str, Any]:
    """Evidence as JSON-ready data: one key per dataclass field, in field order (evidence.json's order)."""
    return _json_value(evidence)


def _contract_result_from_dict(data: dict[str, Any]) -> ContractResult:
    return ContractResult(
        id=data["id"],
        version=data["version"],
        path=data["path"],
        sha256=data["sha256"],
        falsifiers=tuple(result_from_dict(f) for f in data["falsifiers"]),
        parameters=tuple(parameter_value_from_dict(p) for p in data.get("parameters") or ()),
    )


def parameter_value_from_dict(data: dict[str, Any]) -> ParameterValue:
    """Inverse of the evidence's `parameters` entry (a ParameterValue serialised field for field)."""
    return ParameterValue(
        name=data["name"], kind=ParameterKind(data["kind"]), value=data["value"], absolute=data.get("absolute"),
        sha256=data.get("sha256"), files=None if data.get("files") is None else dict(data["files"]),
    )


def evidence_from_dict(data: Any, source: str = "evidence") -> Evidence:
    """Inverse of evidence_to_dict, for any schema version this release reads; EvidenceError (naming
    `source`) for anything else, before a single field is trusted."""
    if not isinstance(data, dict):
        raise EvidenceError(f"{source}: not an evidence document (a JSON object is expected, found {type(data).__name__})")
    version = data.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS or isinstance(version, bool):
        readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS))
        raise EvidenceError(
            f"{source}: schema_version {json.dumps(version)}: harness {harness.__version__} reads evidence schema "
            f"version {readable} only"
        )
    problems = evidence_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EvidenceError(f"{source}: breaks the evidence schema: {problems[0]}{more}")
    return Evidence(
        schema_version=data["schema_version"],
        harness_version=data["harness_version"],
        commit=data["commit"],
        dirty=data["dirty"],
        complete=data["complete"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        duration_s=float(data["duration_s"]),
        command=tuple(data["command"]),
        environment=dict(data["environment"]),
        totals={name: int(count) for name, count in data["totals"].items()},
        contracts=tuple(_contract_result_from_dict(c) for c in data["contracts"]),
        selection=data["selection"],
        shard=data.get("shard"),
        merged_from=data.get("merged_from"),
        waivers=tuple(waiver_from_dict(w) for w in data.get("waivers") or ()),
    )


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The result lines of a journal, in the order they were recorded; [] when there is none.

    A last line without its newline (or that is not JSON) is the write a kill cut off: it is skipped
    with a JournalWarning naming it. Any other line that is not a JSON object is an EvidenceError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the journal ends with its newline, as every complete write does
    results: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number == len(lines) and not tail:
                tail = line  # a torn line the next write never followed: the same as a missing newline
                break
            raise EvidenceError(f"{path}:{number}: not a JSON result line: {exc}") from None
        if not isinstance(value, dict):
            raise EvidenceError(f"{path}:{number}: not a result (a JSON object is expected, found {type(value).__name__})")
        results.append(value)
    if tail:
        warnings.warn(
            f"{path}:{len(results) + 1}: ignored a torn last line ({len(tail)} bytes: a write the run was killed in, "
            "or one still under way)",
            JournalWarning,
            stacklevel=4,  # read_evidence's caller
        )
    return results


def _with_journal(data: dict[str, Any], journal: Path) -> dict[str, Any]:
    """An incomplete run's skeleton with the journal's results filled in (in the order they were
    recorded), contracts without any left out and the totals counted again."""
    data = dict(data)
    contracts = [dict(c, falsifiers=list(c["falsifiers"])) for c in data["contracts"]]
    by_id = {c["id"]: c for c in contracts}
    seen = {(c["id"], f["id"]) for c in contracts for f in c["falsifiers"]}
    for number, result in enumerate(read_journal(journal), 1):
        cid, fid = result.get("contract_id"), result.get("id")
        contract = by_id.get(cid) if isinstance(cid, str) else None
        if contract is None:
            raise EvidenceError(
                f"{journal}:{number}: a result for contract {json.dumps(result.get('contract_id'))}, which "
                f"{journal.parent / EVIDENCE_FILE} does not list"
            )
        key = (cid, fid if isinstance(fid, str) else json.dumps(fid))  # a malformed id: the schema check names it
        if key not in seen:
            seen.add(key)
            contract["falsifiers"].append(result)
    data["contracts"] = [c for c in contracts if c["falsifiers"]]
    counts = {o.value: 0 for o in Outcome}
    for c in data["contracts"]:
        for f in c["falsifiers"]:
            outcome = f.get("outcome")
            if isinstance(outcome, str):  # anything else: the schema check names it
                counts[outcome] = counts.get(outcome, 0) + 1
    data["totals"] = counts
    return data


def read_evidence(path: str | os.PathLike[str]) -> Evidence:
    """Read an evidence.json, or the commit directory `harness verify` wrote it into (DIR/<sha>/), back
    into Evidence. Raises EvidenceError, one line naming the file and the fault, for a missing or
    unreadable file, text that is not JSON, a schema version this release cannot read, or a schema violation.

    The evidence of a run still going on, or killed (SIGKILL, the OOM killer), is its skeleton with
    every result its journal (results.jsonl beside it) holds, `complete` False; a torn last journal
    line is skipped with a JournalWarning."""
    path = Path(path)
    file = path / EVIDENCE_FILE if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = f"{path} holds no {EVIDENCE_FILE}" if path.is_dir() else f"{file}: no such file"
        raise EvidenceError(f"{where} (give an evidence.json or a DIR/<commit>/ directory written by harness verify)") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise EvidenceError(f"{file}: cannot read it: {why}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceError(f"{file}:{exc.lineno}: not JSON: {exc.msg}") from None
    evidence = evidence_from_dict(data, str(file))
    journal = file.parent / JOURNAL_FILE
    if evidence.complete or not journal.exists():
        return evidence
    # A run going on or killed: the skeleton (schema-checked above) and what its journal recorded.
    return evidence_from_dict(_with_journal(data, journal), f"{file} with {journal}")


def selection_slug(selection: dict[str, Any]) -> str:
    """A selected run's directory name: readable, and the same for the same selection (patterns in
    any order or case, since -k matches case-insensitively), e.g. `k-init-arch-3f2a1b9c0d`."""
    normal: dict[str, Any] = {}
    if selection.get("k"):
        normal["k"] = sorted({p.lower() for p in selection["k"]})
    if selection.get("shard"):
        normal["shard"] = selection["shard"]
    if selection.get("changed_since"):
        normal["changed_since"] = selection["changed_since"]
    words = [f"k-{'-'.join(normal['k'])}"] if "k" in normal else []
    if "shard" in normal:
        words.append("shard-" + normal["shard"].replace("/", "-of-"))
    if "changed_since" in normal:
        words.append("changed-since-" + normal["changed_since"][:12])
    readable = re.sub(r"[^a-z0-9]+", "-", "-".join(words)).strip("-")[:48].strip("-") or "selection"
    digest = hashlib.sha256(json.dumps(normal, sort_keys=True).encode("utf-8")).hexdigest()[:10]
    return f"{readable}-{digest}"


def describe_selection(selection: dict[str, Any] | None) -> str:
    """`full run`, or what a partial run was restricted to as its flags say it: `partial run (-k A -k B)`."""
    if not selection:
        return "full run"
    flags = [f"-k {p}" for p in selection.get("k", ())]
    if selection.get("shard"):
        flags.append(f"--shard {selection['shard']}")
    if selection.get("changed_since"):
        flags.append(f"--changed-since {selection['changed_since'][:12]}")
    return f"partial run ({' '.join(flags)})"


def evidence_dir(out_dir: str | os.PathLike[str], commit: str | None, selection: dict[str, Any] | None = None) -> Path:
    """DIR/<full commit sha>/ (DIR/uncommitted/ outside a git checkout) for a full run; a selected run's
    DIR/<sha>/partial/<slug>/, so that it never replaces the commit's full evidence."""
    directory = Path(out_dir) / (commit or UNCOMMITTED)
    return directory / PARTIAL_DIR / selection_slug(selection) if selection else directory


# One copy of the atomic-write mechanism per package: harness.atomic. publish() builds on its pieces
# (and tests replace `_create` here to simulate a full disk).
_create = create_file
_unique = unique_sibling
_fsync_dir = fsync_dir


def publish(directory: Path, files: dict[str, str], keep: Sequence[str] = ()) -> Path:
    """Make `directory` hold exactly `files` (name -> text), and of what was there only the files named
    in `keep` (other commands' files: hard links, so they are carried over unchanged, not copied), replacing
    whatever set was there as a whole.

    The files are written into a fresh hidden sibling directory, which is then renamed into place;
    the previous set is renamed away and removed. A reader therefore finds the previous complete set,
    the new complete set, or (for the instant between two renames) no directory: never a mixture, never
    a half-written file, and nothing a falsifier wrote into the previous set survives. If any write
    fails (a full disk), the sibling is removed and the previous set is left as it was. Concurrent
    runs into one directory: the last one to finish wins."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = _unique(directory.parent, directory.name, "new")
    os.mkdir(staging, 0o777)  # the umask decides, as for the files
    replaced: list[Path] = []
    try:
        for name, text in files.items():
            try:
                _create(staging / name, text)
            except OSError as exc:  # named as the user knows it, not by the hidden staging path
                raise OSError(exc.errno, exc.strerror or str(exc), str(directory / name)) from exc
        for name in keep:
            if name in files:
                continue
            try:
                os.link(directory / name, staging / name, follow_symlinks=False)
            except FileNotFoundError:
                pass
            except OSError:  # a file system without hard links: a copy, as it is now
                if (directory / name).is_file():
                    shutil.copy2(directory / name, staging / name, follow_symlinks=False)
        _fsync_dir(staging)
        while True:
            try:
                os.rename(staging, directory)  # POSIX: only onto a missing (or empty) directory
                break
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            old = _unique(directory.parent, directory.name, "old")
            try:
                os.rename(directory, old)
            except FileNotFoundError:
                continue  # a concurrent run moved it away first
            replaced.append(old)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for old in replaced:
            if not directory.exists():
                os.rename(old, directory)  # put the previous set back rather than leave none
                replaced.remove(old)
                break
        raise
    finally:
        for old in replaced:
            shutil.rmtree(old, ignore_errors=True)
    return directory


def evidence_json(evidence: Evidence | dict[str, Any]) -> str:
    """evidence.json's text: UTF-8-encodable whatever a falsifier or a path put into it."""
    if isinstance(evidence, Evidence):
        evidence = evidence_to_dict(evidence)
    return json.dumps(json_safe(evidence), indent=2, ensure_ascii=False) + "\n"


def write_evidence(directory: Path, evidence: dict[str, Any]) -> Path:
    """Write evidence.json alone into `directory` (atomically); `harness verify` publishes the whole set."""
    path = Path(directory) / "evidence.json"
    write_atomic(path, evidence_json(evidence))
    return path


class Journal:
    """The running run's results.jsonl: one line per result, appended and fsynced before the next one,
    so a kill loses at most the line being written. O(1) per result (evidence.json is not rewritten)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / JOURNAL_FILE
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def append(self, result: FalsifierResult) -> None:
        if self._fd is None:
            return
        line = json.dumps(json_safe(result_to_dict(result)), ensure_ascii=False) + "\n"
        data = line.encode("utf-8")
        while data:  # one write() in practice; a short write (a full disk) goes on where it stopped
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def start_run(directory: Path, skeleton: Evidence) -> Journal:
    """Publish a run's starting set into `directory` (the skeleton evidence.json, complete False, with
    every contract it will run and no results, and an empty journal, plus KEPT_FILES) and open the
    journal. From here on whatever ends the process, the directory reads back as this run, incomplete."""
    if skeleton.complete:
        raise ValueError("a run's skeleton evidence is incomplete by definition")
    publish(directory, {EVIDENCE_FILE: evidence_json(skeleton), JOURNAL_FILE: ""}, keep=KEPT_FILES)
    return Journal(directory)


def refresh_skeleton(directory: Path, skeleton: Evidence) -> None:
    """Replace the running run's skeleton evidence.json (once the machine facts are in), atomically."""
    write_atomic(Path(directory) / EVIDENCE_FILE, evidence_json(skeleton))
