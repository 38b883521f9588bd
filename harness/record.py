"""Stage: record. Turn FalsifierResults into evidence.json, written atomically per commit.

The falsifier entries are the FalsifierResult dataclass serialised field for field; a test holds
the JSON Schema and the dataclasses together so the published format cannot drift from the code.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema

import harness
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


def write_atomic(path: Path, text: str) -> None:
    """Write via a uniquely named temp file in the same directory, then os.replace: readers (and a
    concurrent run into the same directory) only ever see a complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_evidence(directory: Path, evidence: dict[str, Any]) -> Path:
    path = Path(directory) / "evidence.json"
    write_atomic(path, json.dumps(evidence, indent=2, sort_keys=False) + "\n")
    return path
