"""Stage: record. Turn FalsifierResults into evidence.json, and publish the evidence set atomically per commit.

The falsifier entries are the FalsifierResult dataclass serialised field for field; a test holds
the JSON Schema and the dataclasses together so the published format cannot drift from the code.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema

import harness
from harness.atomic import create_file, fsync_dir, unique_sibling, write_atomic
from harness.escape import json_safe
from harness.model import Binding, BindingKind, Contract, FalsifierResult, Outcome
from harness.schema import load_schema

SCHEMA_VERSION = 1
UNCOMMITTED = "uncommitted"


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


def _json_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
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
    )


def totals(results: Iterable[FalsifierResult]) -> dict[str, int]:
    counts = {o.value: 0 for o in Outcome}
    for r in results:
        counts[r.outcome.value] += 1
    return counts


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def build_evidence(
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
) -> dict[str, Any]:
    """The evidence document. `results` is keyed by (contract id, falsifier id); falsifiers without a
    result (not selected, or not reached before Ctrl-C) are left out, in contract-file order."""
    entries = []
    recorded: list[FalsifierResult] = []
    for contract in contracts:
        found = [results[(contract.id, f.id)] for f in contract.falsifiers if (contract.id, f.id) in results]
        if not found:
            continue
        recorded.extend(found)
        entries.append(
            {
                "id": contract.id,
                "version": contract.version,
                "path": contract.path,
                "sha256": contract.sha256,
                "falsifiers": [result_to_dict(r) for r in found],
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "harness_version": harness.__version__,
        "commit": commit,
        "dirty": dirty,
        "complete": complete,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(duration_s, 3),
        "command": list(command),
        "environment": environment,
        "totals": totals(recorded),
        "contracts": entries,
    }


def evidence_dir(out_dir: str | os.PathLike[str], commit: str | None) -> Path:
    """DIR/<full commit sha>/, or DIR/uncommitted/ outside a git checkout."""
    return Path(out_dir) / (commit or UNCOMMITTED)


# One copy of the atomic-write mechanism per package: harness.atomic. publish() builds on its pieces
# (and tests replace `_create` here to simulate a full disk).
_create = create_file
_unique = unique_sibling
_fsync_dir = fsync_dir


def publish(directory: Path, files: dict[str, str]) -> Path:
    """Make `directory` hold exactly `files` (name -> text), replacing whatever set was there as a whole.

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


def evidence_json(evidence: dict[str, Any]) -> str:
    """evidence.json's text: UTF-8-encodable whatever a falsifier or a path put into it."""
    return json.dumps(json_safe(evidence), indent=2, ensure_ascii=False) + "\n"


def write_evidence(directory: Path, evidence: dict[str, Any]) -> Path:
    """Write evidence.json alone into `directory` (atomically); `harness verify` publishes the whole set."""
    path = Path(directory) / "evidence.json"
    write_atomic(path, evidence_json(evidence))
    return path
