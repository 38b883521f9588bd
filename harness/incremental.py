"""`harness verify --changed-since REF`: which falsifiers must run again, and which results carry over.

REF is resolved with git to a commit; its full evidence is read from the run's own --out directory
(`<OUT>/<sha>/evidence.json`, written by a full `harness verify` at that commit). A falsifier runs again
when anything its result depended on may have changed, judged by content, never by timestamps:

- it is new (REF's evidence has no result for its contract id and falsifier id);
- its contract file's sha256 or path differs (its binding, requires, timeout, guards... live there);
- its binding differs from the one REF ran;
- its REF outcome was not `passed` (failures, errors, not_run, deferred, vacuous and flaky always run);
- its REF result has no `modules` (not measured: command bindings, a child that started a process);
- a file in its recorded `modules` changed or vanished (the files its child imported or read, which
  include the defining files of its guards: the child imports them to measure them);
- pytest bindings: a test file or conftest.py now lies under its paths that its REF run did not import
  (a new test may match its -k);
- REF's evidence was written by another harness version (how a result is judged may have changed).

Everything else is carried over: REF's result, with `carried_from` naming the commit it ran at. Nothing
outside the repository is tracked (installed packages, the machine): a dependency upgrade needs a full run, which is what a release gate (`Policy(release=True)`) demands anyway.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import imported_files
from harness.model import BindingKind, Contract, Evidence, Falsifier, FalsifierResult, Outcome
from harness.record import EvidenceError, evidence_dir, read_evidence

Key = tuple[str, str]

# What pytest collects by default (python_files) and the files that configure it.
_TEST_FILE_GLOBS = ("test_*.py", "*_test.py", "conftest.py")


class IncrementalError(ValueError):
    """--changed-since cannot work (REF unknown, its evidence missing or unusable); one line, the CLI's exit 2."""


@dataclass(frozen=True)
class Plan:
    """What an incremental run does: `run` the falsifiers (each with the reason), carry the others over."""

    ref: str  # the full sha REF resolved to
    run: dict[Key, str]  # key -> why it runs again
    carried: dict[Key, FalsifierResult]  # key -> REF's result, carried_from set


def resolve_ref(repo_root: Path, ref: str, what: str = "harness verify: --changed-since") -> str:
    """REF (a sha, branch, tag, HEAD~1...) -> the full sha of the commit, with git; IncrementalError (its
    message starting with `what` and REF) if none."""
    if ref.startswith("-"):
        raise IncrementalError(f"{what} {ref}: not a git revision (it starts with '-')")
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
            cwd=repo_root, capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IncrementalError(f"{what} {ref}: cannot run git in {repo_root}: {exc}") from None
    sha = found.stdout.strip()
    if found.returncode != 0 or len(sha) != 40:
        raise IncrementalError(
            f"{what} {ref}: not a commit of the git repository at {repo_root}; "
            "give a commit sha, branch or tag (`git log --oneline` lists them)"
        )
    return sha


def reference_evidence(out: str | os.PathLike[str], sha: str, produce: Sequence[str]) -> Evidence:
    """The full evidence of commit `sha` under `out`; IncrementalError naming what is wrong and `produce`,
    the command (run at that commit) that writes it."""
    directory = evidence_dir(out, sha)
    how = f"`git checkout {sha} && {shlex.join(produce)}; git checkout -`"
    try:
        evidence = read_evidence(directory)
    except EvidenceError as exc:
        if not (directory / "evidence.json").exists():
            raise IncrementalError(
                f"harness verify: --changed-since: no evidence of {sha[:12]} in {directory}; write it with {how}"
            ) from None
        raise IncrementalError(f"harness verify: --changed-since: {exc}; write it again with {how}") from None
    if not evidence.complete:
        raise IncrementalError(
            f"harness verify: --changed-since: the evidence in {directory} is incomplete (that run was interrupted); "
            f"write it again with {how}"
        )
    if evidence.selection is not None or evidence.commit != sha:
        raise IncrementalError(
            f"harness verify: --changed-since: {directory / 'evidence.json'} is not the full evidence of {sha[:12]}; "
            f"write it with {how}"
        )
    if evidence.dirty:
        raise IncrementalError(
            f"harness verify: --changed-since: the evidence of {sha[:12]} in {directory} was recorded on a tree with "
            f"uncommitted changes, so it is not that commit's; write it from a clean checkout with {how}"
        )
    return evidence


def _binding_changed(falsifier: Falsifier, before: FalsifierResult) -> bool:
    return before.binding != falsifier.binding


def _new_test_files(falsifier: Falsifier, repo_root: Path, recorded: Mapping[str, str]) -> list[str]:
    """pytest bindings: test files and conftest.py under the binding's paths that REF's run did not import."""
    binding = falsifier.binding
    if binding.kind is not BindingKind.PYTEST:
        return []
    if binding.k is not None:
        tops = [repo_root / p for p in binding.paths] or [repo_root]
    else:
        tops = [repo_root / str(binding.target).split("::", 1)[0]]
    found: list[str] = []
    for top in tops:
        candidates = [top] if top.is_file() else [f for glob in _TEST_FILE_GLOBS for f in top.rglob(glob)]
        # conftest.py files above a bound path configure it too.
        candidates += [d / "conftest.py" for d in top.parents if d.is_relative_to(repo_root)]
        for file in candidates:
            if not file.is_file() or any(part.startswith(".") for part in file.relative_to(repo_root).parts):
                continue
            relative = file.relative_to(repo_root).as_posix()
            if relative not in recorded and relative not in found:
                found.append(relative)
    return sorted(found)


def _shown(paths: Sequence[str], limit: int = 3) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def why_run(
    contract: Contract, falsifier: Falsifier, before: FalsifierResult | None, reference: Evidence, repo_root: Path,
    hashes: dict[Path, str | None] | None = None,
) -> str | None:
    """Why `falsifier` must run again against REF's `reference` evidence, or None when its result carries over."""
    ref = (reference.commit or "")[:12]
    if reference.harness_version != harness.__version__:
        return f"the evidence of {ref} was written by harness {reference.harness_version}, this is {harness.__version__}"
    if before is None:
        return f"new: not in the evidence of {ref}"
    entry = next(c for c in reference.contracts if c.id == contract.id)
    if entry.sha256 != contract.sha256 or entry.path != contract.path:
        return f"its contract file {contract.path} changed"
    if _binding_changed(falsifier, before):
        return "its binding changed"
    if tuple(p.given for p in contract.parameters if p.given is not None) != entry.parameters:
        return f"its contract parameters (--param, and the digests of what they name) differ from those of {ref}"
    if before.outcome is not Outcome.PASSED:
        return f"it was {before.outcome.value} at {ref}"
    if before.modules is None:
        if before.binding.kind is BindingKind.COMMAND:
            return "a command binding: what it runs is never measured"
        return f"what it imports was not measured at {ref} (it started a process that may run the repository's code)"
    changed = imported_files.changed(repo_root, before.modules, hashes)
    if changed:
        return f"changed: {_shown(changed)}"
    new = _new_test_files(falsifier, repo_root, before.modules)
    if new:
        return f"new test files under its paths: {_shown(new)}"
    return None


def plan(
    selected: Mapping[Key, tuple[Contract, Falsifier]],
    roots: Mapping[str, Path],
    reference: Evidence,
) -> Plan:
    """The incremental run of `selected` (key -> (contract, falsifier)) against REF's full `reference`."""
    assert reference.commit is not None
    before = {(r.contract_id, r.id): r for r in reference.results}
    run: dict[Key, str] = {}
    carried: dict[Key, FalsifierResult] = {}
    hashes: dict[Path, str | None] = {}  # each file hashed once per plan
    for key, (contract, falsifier) in selected.items():
        previous = before.get(key)
        why = why_run(contract, falsifier, previous, reference, Path(roots[contract.id]), hashes)
        if why is not None or previous is None:
            run[key] = why or "new"
        else:
            # Where it really ran: REF's own commit (a full evidence never holds carried results, but a
            # merged one might; the original source is kept either way).
            carried[key] = dataclasses.replace(previous, carried_from=previous.carried_from or reference.commit)
    return Plan(reference.commit, run, carried)
