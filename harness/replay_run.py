"""`harness.replay()`: run a recorded failure again, with its counterexample, and say whether it reproduces.

(A module named `harness.replay` would shadow the function of that name once imported, hence replay_run.)

The falsifier is found in the contract file the evidence names (at its recorded repository-relative
path, under the repository holding `cwd`), refused when that file changed since (by sha256), and run
through `harness.execute.run_falsifier` (the same isolated child as `verify`) with the recorded
environment (harness.replay_record.REPLAY_ENV) and, for a hypothesis failure, the recorded blobs
applied in the child (harness.replay_child). Nothing here prints: `harness.replay_cli` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.discover import find_repo_root
from harness.environment import git_state
from harness.execute import run_falsifier
from harness.model import ContractResult, Evidence, FalsifierResult, Outcome
from harness.record import EvidenceError, evidence_dir, read_evidence
from harness.replay_child import REPLAY_VAR, REPORT_VAR
from harness.replay_record import REPLAY_ENV
from harness.scoped_env import scoped_environ

REPLAYABLE = (Outcome.FALSIFIED, Outcome.ERROR, Outcome.FLAKY)
DEFAULT_OUT = "reports"


class ReplayError(Exception):
    """Nothing was replayed: the id, the evidence or the contract is not usable (the CLI's exit 2); one line."""


@dataclass(frozen=True)
class Replay:
    """What one `harness replay` found. `reproduced`: the falsifier failed again (exit 1); False: it passes
    now, or hypothesis ran the recorded example and it no longer fails (exit 0)."""

    falsifier_id: str
    evidence: Path  # the evidence.json read
    recorded: FalsifierResult
    result: FalsifierResult
    reproduced: bool
    why: str  # one line: what reproduced, or why it did not
    applied: tuple[str, ...] = ()  # the tests the recorded blobs were applied to
    not_applied: dict[str, str] = field(default_factory=dict)  # test -> why its blob could not be applied


def _evidence_file(evidence: str | os.PathLike[str] | None, root: Path, cwd: Path) -> Path:
    if evidence is not None:
        path = Path(evidence)
        return path / "evidence.json" if path.is_dir() else path
    commit, _ = git_state(root)
    directory = evidence_dir(cwd / DEFAULT_OUT, commit)
    if not (directory / "evidence.json").is_file():
        what = f"commit {commit}" if commit else "this uncommitted tree"
        raise ReplayError(
            f"harness replay: no evidence for {what} in {directory}; run harness verify first, or name the "
            "evidence with --evidence PATH"
        )
    return directory / "evidence.json"


def _find(evidence: Evidence, falsifier_id: str, source: Path) -> tuple[ContractResult, FalsifierResult]:
    for contract in evidence.contracts:
        for result in contract.falsifiers:
            if result.id == falsifier_id:
                return contract, result
    known = ", ".join(r.id for r in evidence.results) or "none"
    raise ReplayError(f"harness replay: {falsifier_id}: no such falsifier in {source}; it records {known}")


def _contract(entry: ContractResult, root: Path, evidence: Evidence, falsifier_id: str) -> tuple[Any, Any]:
    """The (Contract, Falsifier) as the file defines it now, refused if the file changed since the run."""
    from harness.validate import validate_report

    file = root / entry.path
    try:
        now = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as exc:
        raise ReplayError(f"harness replay: {file}: cannot read the contract {entry.id}: {exc.strerror or exc}") from None
    if now != entry.sha256:
        raise ReplayError(
            f"harness replay: {file}: the contract changed since the evidence was recorded (sha256 {entry.sha256} "
            f"then, {now} now); run harness verify again to record a failure of this version"
        )
    # The contract files the evidence names, validated together as verify did (cross-file references);
    # when a partial run named too few of them, the contract's own directory.
    named = sorted({str(root / c.path) for c in evidence.contracts})
    validation = validate_report(named, check_bindings=False)
    if validation.problems:
        validation = validate_report([str(file.parent)], check_bindings=False)
    if validation.problems:
        raise ReplayError(f"harness replay: {validation.problems[0]} (harness validate {file.parent} lists every problem)")
    for contract in validation.contracts:
        if contract.id == entry.id:
            for falsifier in contract.falsifiers:
                if falsifier.id == falsifier_id:
                    return contract, falsifier
    raise ReplayError(f"harness replay: {falsifier_id}: not in {file} any more")


def _verdict(recorded: FalsifierResult, result: FalsifierResult, failed: dict[str, str]) -> tuple[bool, str]:
    if result.outcome is Outcome.PASSED:
        return False, "did not reproduce: the falsifier passes now"
    if result.outcome not in REPLAYABLE:
        return False, f"did not run: {result.outcome.value}: {result.reason}"
    if result.reason.startswith("DidNotReproduce") or (failed and set(failed.values()) == {"did_not_reproduce"}):
        return False, "did not reproduce: hypothesis ran the recorded example and it no longer fails"
    was = recorded.outcome.value
    if recorded.outcome in (result.outcome, Outcome.FLAKY):
        return True, f"reproduced: {result.outcome.value}: {result.reason}"
    return True, f"failed again, differently (was {was}): {result.outcome.value}: {result.reason}"


def replay(
    falsifier_id: str,
    *,
    evidence: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Replay:
    """Re-run the recorded failure of `falsifier_id` from `evidence` (an evidence.json or the commit
    directory verify wrote it into; default: `cwd`/reports/<current commit>/). Raises ReplayError.

    The recorded environment is applied to os.environ while the child runs (and restored), so do not
    replay from several threads at once."""
    cwd = Path(cwd or os.getcwd()).resolve()
    root = find_repo_root(cwd)
    source = _evidence_file(evidence, root, cwd)
    try:
        document = read_evidence(source)
    except EvidenceError as exc:
        raise ReplayError(f"harness replay: {exc}") from None
    entry, recorded = _find(document, falsifier_id, source)
    if recorded.outcome not in REPLAYABLE:
        raise ReplayError(
            f"harness replay: {falsifier_id} was {recorded.outcome.value} in {source}: there is no failure to replay"
        )
    contract, falsifier = _contract(entry, root, document, falsifier_id)
    if entry.parameters:
        from harness.parameters import ParameterError, rebind

        try:  # the artifact it failed on, unchanged, or no replay
            contract = rebind(contract, entry.parameters)
        except ParameterError as exc:
            raise ReplayError(f"harness replay: {falsifier_id}: {exc}") from None
    plan = recorded.replay or {}
    env: dict[str, str | None] = {name: plan.get("env", {}).get(name) for name in REPLAY_ENV}
    with tempfile.TemporaryDirectory(prefix="harness-replay-") as scratch:
        report_file = Path(scratch) / "report.json"
        if plan.get("kind") == "hypothesis":
            env[REPLAY_VAR] = json.dumps({"hypothesis_version": plan["hypothesis_version"], "examples": plan["examples"]})
            env[REPORT_VAR] = str(report_file)
        with scoped_environ(env):
            result = run_falsifier(falsifier, contract, root)
        report: dict[str, Any] = {}
        if report_file.exists():
            with contextlib.suppress(ValueError):
                report = json.loads(report_file.read_text(encoding="utf-8"))
    if plan.get("kind") == "hypothesis" and not report:
        report = {"not_applied": {e["test"]: "the falsifier's child never reached it" for e in plan["examples"]}}
    reproduced, why = _verdict(recorded, result, report.get("failed") or {})
    return Replay(
        falsifier_id=falsifier_id,
        evidence=source,
        recorded=recorded,
        result=result,
        reproduced=reproduced,
        why=why,
        applied=tuple(report.get("applied") or ()),
        not_applied=dict(report.get("not_applied") or {}),
    )
