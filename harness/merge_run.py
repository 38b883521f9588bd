"""`harness.merge(paths, out=) -> Evidence`: the N shards of one `harness verify --shard K/N` run (say a CPU
runner's and a GPU runner's) as the one evidence of their commit.

Each path is a shard's evidence.json, the directory holding it, or an `--out` directory (every shard's
evidence under it, DIR/<commit>/partial/<slug>/, is taken). The merge is refused, `MergeError` with one
line naming the files, unless the shards are exactly one sharded run: every shard K of the same N present
once, complete, of one commit, of the same contract files (sha256) and the same selection, each falsifier
owned by exactly one of them and every selected falsifier owned by one. The result is complete, unsharded
evidence (`merged_from` lists the shards), published like a full run under OUT/<commit>/.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import harness
from harness.model import ContractResult, Evidence, FalsifierResult
from harness.record import (
    EVIDENCE_FILE,
    KEPT_FILES,
    SCHEMA_VERSION,
    EvidenceError,
    evidence_dir,
    evidence_problems,
    evidence_to_dict,
    publish,
    read_evidence,
    totals,
)

Key = tuple[str, str]


class MergeError(ValueError):
    """The shards cannot be merged (nothing was written); the message is one line saying why and what to do."""


class MergeNotWritten(Exception):
    """The merge was sound but its evidence could not be published (the CLI's exit 3)."""

    def __init__(self, message: str, evidence: Evidence) -> None:
        super().__init__(message)
        self.evidence = evidence


def _shard_files(path: Path) -> list[Path]:
    """The evidence files `path` names: itself, its evidence.json, or every shard's under an --out tree."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MergeError(f"harness merge: {path}: no such file or directory (give shard evidence directories)")
    if (path / EVIDENCE_FILE).is_file():
        return [path / EVIDENCE_FILE]
    found = []
    for candidate in sorted(path.glob(f"*/partial/*/{EVIDENCE_FILE}")) + sorted(path.glob(f"partial/*/{EVIDENCE_FILE}")):
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            found.append(candidate)  # read_evidence names what is wrong with it
            continue
        if isinstance(data, dict) and data.get("shard"):
            found.append(candidate)
    if not found:
        raise MergeError(
            f"harness merge: {path} holds no shard evidence (no {EVIDENCE_FILE} here, none of `harness verify --shard K/N` "
            "under <commit>/partial/)"
        )
    return found


def _label(path: Path, evidence: Evidence) -> str:
    shard = evidence.shard or {}
    return f"shard {shard.get('index')}/{shard.get('total')} ({path})"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def merge(paths: Sequence[str | os.PathLike[str]], *, out: str | os.PathLike[str] | None = None) -> Evidence:
    """The merged Evidence of the shards at `paths`, published under `out`/<commit>/ when `out` is given.
    Raises MergeError (nothing written) or MergeNotWritten (sound, but not published)."""
    if not paths:
        raise MergeError("harness merge: no shard evidence given; name each shard's evidence directory")
    shards: list[tuple[Path, Evidence]] = []
    seen_files: set[Path] = set()
    for given in paths:
        for file in _shard_files(Path(given)):
            if file.resolve() in seen_files:
                continue
            seen_files.add(file.resolve())
            try:
                evidence = read_evidence(file)
            except EvidenceError as exc:
                raise MergeError(f"harness merge: {exc}") from None
            shards.append((file, evidence))
    _check(shards)
    merged = _merged(shards, [str(p) for p in paths])
    if out is not None:
        directory = evidence_dir(out, merged.commit, merged.selection)
        from harness.report import evidence_files

        try:
            publish(directory, evidence_files(merged), keep=KEPT_FILES)
        except OSError as exc:
            raise MergeNotWritten(
                f"harness merge: no evidence was written: {exc.filename or directory}: {exc.strerror or exc}; "
                "the shards' evidence is unchanged, merge again into another --out",
                merged,
            ) from exc
    return merged


def _check(shards: list[tuple[Path, Evidence]]) -> None:
    for path, evidence in shards:
        if not evidence.shard:
            raise MergeError(
                f"harness merge: {path}: not shard evidence (written without --shard K/N); merge takes the evidence "
                "of `harness verify --shard K/N` runs"
            )
        if not evidence.complete:
            again = shlex.join(evidence.command) if evidence.command else "harness verify ... --shard K/N"
            raise MergeError(
                f"harness merge: {_label(path, evidence)} is incomplete (complete: false: interrupted, killed or still "
                f"running); run it again: {again}"
            )
    first_path, first = shards[0]
    for path, evidence in shards[1:]:
        if evidence.shard["total"] != first.shard["total"]:
            raise MergeError(
                f"harness merge: mixed shard totals: {_label(first_path, first)} and {_label(path, evidence)} are shards "
                "of different splits; merge the N shards of one run"
            )
        if evidence.commit != first.commit:
            raise MergeError(
                f"harness merge: mixed commits: {_label(first_path, first)} ran {first.commit or 'outside git'}, "
                f"{_label(path, evidence)} ran {evidence.commit or 'outside git'}; run every shard on the same commit"
            )
        mine = {c["id"]: c["sha256"] for c in first.shard["contracts"]}
        theirs = {c["id"]: c["sha256"] for c in evidence.shard["contracts"]}
        if mine != theirs:
            differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise MergeError(
                f"harness merge: mixed contract digests: contract {differ[0]} differs between {_label(first_path, first)} "
                f"({(mine.get(differ[0]) or 'absent')[:12]}) and {_label(path, evidence)} "
                f"({(theirs.get(differ[0]) or 'absent')[:12]}); run every shard on the same contract files"
            )
        if (evidence.selection or {}).get("k") != (first.selection or {}).get("k") or (
            evidence.shard["selected"] != first.shard["selected"]
        ):
            raise MergeError(
                f"harness merge: mixed selections: {_label(first_path, first)} and {_label(path, evidence)} split "
                "different sets of falsifiers (-k, or different contract paths); run every shard with the same PATHs and -k"
            )
        if evidence.waivers != first.waivers:
            raise MergeError(
                f"harness merge: mixed waivers: {_label(first_path, first)} and {_label(path, evidence)} recorded different "
                "waivers; run every shard with the same waivers file (contracts/waivers.yaml or --waivers PATH)"
            )
    total = first.shard["total"]
    by_index: dict[int, Path] = {}
    for path, evidence in shards:
        index = evidence.shard["index"]
        if index in by_index:
            raise MergeError(f"harness merge: shard {index}/{total} given twice: {by_index[index]} and {path}; give each once")
        by_index[index] = path
    missing = [k for k in range(1, total + 1) if k not in by_index]
    if missing:
        raise MergeError(
            f"harness merge: gap: shard {missing[0]}/{total} is missing ({len(by_index)} of {total} given); add its "
            "evidence directory, or run it: harness verify PATH... --shard " + f"{missing[0]}/{total}"
        )
    owner: dict[Key, tuple[Path, Evidence]] = {}
    bases = {e.shard["basis"] for _, e in shards}
    hint = (
        " (the shards were split from different recorded durations: give every runner the same --out evidence, "
        "or none)" if len(bases) > 1 else ""
    )
    for path, evidence in shards:
        owns = [tuple(k) for k in evidence.shard["owns"]]
        ran = {(r.contract_id, r.id) for r in evidence.results}
        for key in owns:
            if key in owner:
                other_path, other = owner[key]
                raise MergeError(
                    f"harness merge: overlap: {key[1]} is in {_label(other_path, other)} and in "
                    f"{_label(path, evidence)}{hint}"
                )
            owner[key] = (path, evidence)
        stray = sorted(ran - set(owns))
        if stray:
            raise MergeError(f"harness merge: {_label(path, evidence)} has a result for {stray[0][1]}, which it does not own")
        unrun = [k for k in owns if k not in ran]
        if unrun:
            raise MergeError(f"harness merge: {_label(path, evidence)} owns {unrun[0][1]} but has no result for it")
    for key in (tuple(k) for k in first.shard["selected"]):
        if key not in owner:
            raise MergeError(f"harness merge: gap: {key[1]} is in no shard{hint}")


def _merged(shards: list[tuple[Path, Evidence]], given: list[str]) -> Evidence:
    ordered = sorted(shards, key=lambda s: s[1].shard["index"])
    first = ordered[0][1]
    results: dict[Key, FalsifierResult] = {(r.contract_id, r.id): r for _, e in ordered for r in e.results}
    order = [tuple(k) for k in first.shard["selected"]]
    # Every shard of a run with --param records the same parameters (and digests) for a contract it ran.
    params: dict[str, tuple[Path, Any]] = {}
    for path, e in ordered:
        for entry in e.contracts:
            if entry.id in params and params[entry.id][1] != entry.parameters:
                raise MergeError(
                    f"harness merge: mixed parameters: contract {entry.id} was run with different --param values (or "
                    f"files whose digests differ) in {params[entry.id][0]} and {path}; run every shard with the same --param"
                )
            params.setdefault(entry.id, (path, entry.parameters))
    entries = []
    for c in first.shard["contracts"]:
        found = tuple(results[k] for k in order if k[0] == c["id"] and k in results)
        if found:
            entries.append(ContractResult(c["id"], c["version"], c["path"], c["sha256"], found, params[c["id"]][1]))
    started = min((e.started_at for _, e in ordered), key=_time)
    finished = max((e.finished_at for _, e in ordered), key=_time)
    k = (first.selection or {}).get("k")
    dirty = [e.dirty for _, e in ordered]
    merged = Evidence(
        schema_version=SCHEMA_VERSION,
        harness_version=harness.__version__,
        commit=first.commit,
        dirty=None if all(d is None for d in dirty) else any(bool(d) for d in dirty),
        complete=True,
        started_at=started,
        finished_at=finished,
        duration_s=round(max(0.0, (_time(finished) - _time(started)).total_seconds()), 3),
        command=("harness", "merge", *given),
        # The last shard is where GPU falsifiers run (harness.scheduling.split): its machine facts describe
        # the CUDA results; each shard's own are in merged_from.
        environment=dict(ordered[-1][1].environment),
        totals=totals(r for c in entries for r in c.falsifiers),
        contracts=tuple(entries),
        selection={"k": list(k)} if k else None,
        shard=None,
        merged_from=[
            {
                "index": e.shard["index"], "total": e.shard["total"], "command": list(e.command),
                "started_at": e.started_at, "finished_at": e.finished_at, "duration_s": e.duration_s,
                "environment": dict(e.environment),
            }
            for _, e in ordered
        ],
        waivers=first.waivers,
    )
    problems = evidence_problems(json.loads(json.dumps(evidence_to_dict(merged))))
    if problems:  # cannot happen for shards that passed the schema themselves; never publish one that breaks it
        raise MergeError(f"harness merge: the merged evidence would break the evidence schema: {problems[0]}")
    return merged
