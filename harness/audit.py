"""The release audit: one commit's evidence, teeth and attestation -> GO or NO-GO, and the files a release keeps.

    decide(evidence, teeth, previous=, attestation=, attestation_required=, require_cuda=, today=, cuda=) -> Decision
    release_audit(release, commit=, reports=, out=, require_cuda=, run=, history=, repo_root=) -> Audit

`decide` is a pure function (no files, no clock, no environment), like `harness.gate.verdict`, whose
answer it builds on for the falsifiers (waivers included); `release_audit` gathers its inputs from
`reports/<sha>/` (evidence.json, teeth.json, attestation.dsse.json), finds the previous release's audit
beside the new one, and publishes `reports/releases/<TAG>/` as a whole (harness.record.publish):
audit.md, audit.html, audit.json and byte-identical copies of the audited files, so that the next
release diffs against this one from committed files. The CLI (harness.audit_cli) prints and exits.

GO needs all of: the commit's full, finished, clean evidence (no -k, shard or carried result); no
falsified/error/vacuous/flaky result that an unexpired waiver does not cover, no deferred one, and
at least one passed; no expired or unmatched waiver (the gate's reasons); teeth.json of the same
commit and contract files, complete, unrestricted, with no survivor and no baseline failure; a valid
attestation when `[tool.harness] attestation_public_key` is set, and any attestation present must
verify; with `require_cuda`, every CUDA falsifier run on CUDA. A not_run falsifier is shown with its
reason and tolerated otherwise (a CUDA one on a CPU machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import escape
from harness.gate import is_expired, is_expiring
from harness.model import ContractResult, Evidence, FalsifierResult, Outcome, Waiver

if TYPE_CHECKING:
    from harness.attest import AttestationCheck
    from harness.diff import EvidenceDiff
    from harness.teeth_run import Teeth

SCHEMA_VERSION = 1
AUDIT_FILES = ("audit.md", "audit.html", "audit.json")
ATTESTATION_FILE = "attestation.dsse.json"  # harness attest writes it into DIR/<sha>/
RELEASES_DIR = "releases"  # reports/releases/<TAG>/
DEFAULT_HISTORY = 20
# A tag becomes a directory name: no separators, no `.`/`..`, nothing a shell or a URL would mangle.
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
# The not_run reason harness.requirements gives a falsifier with `requires: {cuda: true}` on a machine
# without a GPU (the built-in kinds are probed first, cuda first of them).
_CUDA_REASON = "requires CUDA"


class AuditInputError(ValueError):
    """Bad input (exit 2): a flag, a missing evidence set, an unreadable file; one line naming it."""


class AuditNotWritten(Exception):
    """The audit was decided, but its directory could not be written (exit 3); `audit` is what it would have held."""

    def __init__(self, message: str, audit: "Audit") -> None:
        super().__init__(message)
        self.audit = audit


# ---------------------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Decision:
    """GO (`go` True) or NO-GO and why: `reasons` one line each, `waived` the failing falsifiers a waiver
    covers (their true outcome stays in the evidence), `expiring` waivers that end within 14 days,
    `warnings` what a reviewer should know that does not block (a regression since the previous release
    that is waived, a not_run falsifier), `diff` harness.diff's EvidenceDiff against the previous release."""

    go: bool
    reasons: tuple[str, ...] = ()
    waived: tuple[str, ...] = ()
    expiring: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    diff: EvidenceDiff | None = None

    @property
    def verdict(self) -> str:
        return "GO" if self.go else "NO-GO"

    @property
    def exit_code(self) -> int:
        return 0 if self.go else 1


def is_cuda_falsifier(result: FalsifierResult, cuda: Collection[str]) -> bool:
    """`requires: {cuda: true}` in its contract (`cuda`: such ids, read from the contract files), or,
    where those could not be read, a not_run whose reason is the CUDA requirement's."""
    return result.id in cuda or (result.outcome is Outcome.NOT_RUN and result.reason.startswith(_CUDA_REASON))


def gpu_names(evidence: Evidence) -> tuple[str, ...]:
    """The GPUs the evidence was made on: environment `gpus` (the machine's view), else torch's `gpu`;
    for merged shards, every shard's."""
    environments = [evidence.environment] + [dict(m.get("environment") or {}) for m in evidence.merged_from or ()]
    names: list[str] = []
    for env in environments:
        found = [str(g) for g in env.get("gpus") or ()] or ([str(env["gpu"])] if env.get("gpu") else [])
        names += [n for n in found if n not in names]
    return tuple(names)


def _teeth_reasons(evidence: Evidence, teeth: Teeth | None, commit: str | None, make_teeth: str, waived: Collection[str] = ()) -> list[str]:
    if teeth is None:
        return [f"no teeth results for this commit: run `{make_teeth}` (a release needs every guard shown to have teeth)"]
    reasons = []
    if teeth.commit != commit:
        reasons.append(f"teeth.json is of commit {str(teeth.commit)[:12]}, not {str(commit)[:12]}: run `{make_teeth}`")
    if not teeth.complete:
        reasons.append(f"the teeth run was interrupted: its results are incomplete; run `{make_teeth}`")
    if teeth.selection:
        reasons.append(f"the teeth run was restricted (-k {' -k '.join(teeth.selection)}): run `{make_teeth}`")
    if teeth.dirty:
        reasons.append(f"the teeth run had uncommitted changes in its tree: commit them and run `{make_teeth}`")
    ran = {(c.id, c.sha256) for c in teeth.contracts}
    verified = {(c.id, c.sha256) for c in evidence.contracts}
    if not verified <= ran:
        what = ", ".join(sorted(cid for cid, _ in verified - ran))
        reasons.append(f"teeth.json was made from other contract files than the evidence ({what}): run `{make_teeth}`")
    for inv, m in teeth.survivors:
        reasons.append(f"{inv.id}: mutant {m.id} survived (missed by {', '.join(m.missed_by) or 'every falsifier'})")
    for inv, b in teeth.baseline_failures:
        if _is_waived(b.id, waived):
            continue  # its failure is waived in the evidence: that it also fails unmutated is the same failure
        reasons.append(f"{inv.id}: {b.id} failed its teeth baseline ({b.outcome}) on the unmutated code, so its kills mean nothing")
    return reasons


def decide(
    evidence: Evidence,
    teeth: Teeth | None,
    *,
    previous: Evidence | None = None,
    previous_teeth: Teeth | None = None,
    attestation: AttestationCheck | None = None,
    attestation_required: bool = False,
    require_cuda: bool = False,
    today: date | None = None,
    cuda: Collection[str] = (),
    commit: str | None = None,
    make_evidence: str = "harness verify contracts/",
    make_teeth: str = "harness teeth contracts/",
    attest_command: str = "harness attest reports/<sha> --key KEY",
) -> Decision:
    """GO or NO-GO for releasing `evidence`'s commit (`commit`, default the evidence's own) with `teeth`
    (a Teeth, or None when there is none), `attestation` (harness.attest's AttestationCheck, or None when
    there is none) and the previous release's evidence for the diff. `cuda` are the ids of the CUDA
    falsifiers (`cuda_falsifiers`); `today` decides which waivers have expired. The `make_*` commands are
    what the reasons tell the user to run."""
    from harness.diff import diff_evidence
    from harness.gate import Policy, verdict

    commit = evidence.commit if commit is None else commit
    gate = verdict(evidence, Policy(release=True, today=today))
    reasons: list[str] = list(gate.reasons)
    warnings: list[str] = list(gate.warnings)  # what verify printed as warnings (a waiver that waives nothing)
    if evidence.commit != commit:
        reasons.append(f"the evidence is of commit {str(evidence.commit)[:12]}, not {str(commit)[:12]}: run `{make_evidence}`")
    if evidence.dirty:
        reasons.append(f"the evidence was made from a tree with uncommitted changes: commit them and run `{make_evidence}`")
    results = evidence.results
    for r in results:
        if r.outcome is Outcome.DEFERRED:
            reasons.append(f"{r.id}: deferred: {r.reason.splitlines()[0] if r.reason else ''} (a release needs it run)")
    if evidence.complete and not any(r.outcome is Outcome.PASSED for r in results):
        reasons.append("no falsifier passed: nothing was verified")
    reasons += _teeth_reasons(evidence, teeth, commit, make_teeth, gate.waived)
    if attestation is None and attestation_required:
        reasons.append(
            f"no attestation, and [tool.harness] attestation_public_key requires one: run `{attest_command}`"
        )
    elif attestation is not None and not attestation.valid:
        reasons += [f"attestation: {p}" for p in attestation.problems] or ["attestation: does not verify"]
    cuda_results = [r for r in results if is_cuda_falsifier(r, cuda)]
    for r in cuda_results:
        if r.outcome in (Outcome.NOT_RUN, Outcome.DEFERRED):
            line = f"{r.id}: needs CUDA and was not run on CUDA ({r.outcome.value}: {r.reason.splitlines()[0] if r.reason else ''})"
            (reasons if require_cuda else warnings).append(line + ("" if require_cuda else "; --require-cuda makes this NO-GO"))
    if require_cuda and cuda_results and not gpu_names(evidence) and not any(r.outcome is Outcome.NOT_RUN for r in cuda_results):
        reasons.append("the evidence records no GPU, so its CUDA falsifiers cannot have run on CUDA")
    unsupplied = _unsupplied_parameters(evidence)
    reasons += [reason for _, reason in unsupplied]
    for r in results:
        if r.outcome is Outcome.NOT_RUN and not is_cuda_falsifier(r, cuda) and r.id not in dict(unsupplied):
            warnings.append(f"{r.id}: not_run: {r.reason.splitlines()[0] if r.reason else ''}")
    diff = None
    if previous is not None:
        # head's waivers judged on the audit's day, as the gate above judged them
        diff = diff_evidence(previous, evidence, base_teeth=previous_teeth, head_teeth=teeth, today=today)
        if diff.regressed:
            warnings.append("regressed since the previous release (see the diff)")
    return Decision(
        go=not reasons,
        reasons=tuple(reasons),
        waived=gate.waived,
        expiring=gate.expiring,
        warnings=tuple(warnings),
        diff=diff,
    )


def _unsupplied_parameters(evidence: Evidence) -> list[tuple[str, str]]:
    """(falsifier id, reason) for each falsifier not run for want of a parameter, in a contract the run WAS
    given parameters for: that run verified an artifact, and a release of it with one of its gates skipped
    (a model without its card) is NO-GO. A contract given no parameters at all (this repository's code
    audit, where the model contract has no artifact) keeps its not_run falsifiers as notes."""
    from harness.parameters import NEEDS_PREFIX

    found = []
    for contract in evidence.contracts:
        if not contract.parameters:
            continue
        given = ", ".join(p.name for p in contract.parameters)
        for r in contract.falsifiers:
            if r.outcome is Outcome.NOT_RUN and r.reason.startswith(NEEDS_PREFIX):
                found.append((r.id, f"{r.id}: not_run: {r.reason.splitlines()[0]}: {contract.id} was verified with "
                                    f"parameters ({given}), so a release of that artifact needs every gate run"))
    return found


# ---------------------------------------------------------------------------------------- the inputs


@dataclass(frozen=True)
class PreviousRelease:
    tag: str
    directory: Path
    audited_at: str
    evidence: Evidence
    teeth: Teeth | None


@dataclass(frozen=True)
class HistoryPoint:
    """One commit's evidence under reports/: what the history chart draws."""

    commit: str
    finished_at: str
    totals: dict[str, int]
    full: bool  # the commit's full evidence (complete, unrestricted)


@dataclass(frozen=True)
class Audit:
    """Everything the audit files show; audit.md, audit.html and audit.json are rendered from it alone."""

    release: str
    commit: str
    audited_at: str
    today: date
    decision: Decision
    evidence: Evidence
    teeth: Teeth | None
    attestation: AttestationCheck | None
    attestation_required: bool
    require_cuda: bool
    cuda: frozenset[str]
    previous: PreviousRelease | None
    history: tuple[HistoryPoint, ...]
    digests: dict[str, str]  # file name in the audit directory -> "sha256:<hex>"
    files: dict[str, bytes] = field(default_factory=dict, repr=False)  # the audited files, byte for byte
    directory: Path | None = None  # where it was written
    history_skipped: int = 0  # evidence files under reports/ that could not be read

    @property
    def waivers(self) -> tuple[Waiver, ...]:
        return self.evidence.waivers


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def resolve_commit(commit: str | None, repo_root: Path) -> str:
    """The full sha of `commit` (default HEAD) in the repository at `repo_root`; AuditInputError otherwise."""
    from harness.environment import _git

    ref = commit or "HEAD"
    proc = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo_root)
    if proc is not None and proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    if commit and re.fullmatch(r"[0-9a-f]{40}", commit):
        return commit  # not a git checkout here (an unpacked artifact): the sha names reports/<sha>/ as is
    if commit is None:
        raise AuditInputError(f"harness audit: {repo_root} is not a git checkout with a HEAD commit; name one with --commit SHA")
    raise AuditInputError(f"harness audit: --commit {commit}: not a commit in {repo_root} (git rev-parse {ref} found none)")


def cuda_falsifiers(evidence: Evidence, repo_root: Path) -> frozenset[str]:
    """The ids of the evidence's falsifiers whose contract says `requires: {cuda: true}`, read from the
    contract files at their recorded paths, only where the file is still the one verified (same sha256)."""
    from harness.load import LoadError, load_contract_file

    found: set[str] = set()
    for contract in evidence.contracts:
        path = repo_root / contract.path
        try:
            loaded = load_contract_file(path)
        except (LoadError, OSError):
            continue
        if loaded.sha256 != contract.sha256 or not isinstance(loaded.data, dict):
            continue
        for entry in loaded.data.get("falsifiers") or ():
            requires = entry.get("requires") if isinstance(entry, dict) else None
            if isinstance(requires, dict) and requires.get("cuda") is True and isinstance(entry.get("id"), str):
                found.add(entry["id"])
    return frozenset(found)


def previous_release(releases: Path, tag: str) -> PreviousRelease | None:
    """The newest other release audit under `releases` (reports/releases/): the greatest audit.json
    `audited_at`, ties broken by tag name; directories without a readable audit.json and evidence.json
    are not releases."""
    from harness.record import EvidenceError, read_evidence
    from harness.teeth_record import TeethError, read_teeth

    candidates: list[tuple[str, str, Path]] = []
    try:
        entries = sorted(releases.iterdir()) if releases.is_dir() else []
    except OSError:
        entries = []
    for directory in entries:
        if directory.name == tag or directory.name.startswith(".") or not directory.is_dir():
            continue
        try:
            recorded = json.loads((directory / "audit.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(recorded, dict) and isinstance(recorded.get("audited_at"), str):
            candidates.append((recorded["audited_at"], directory.name, directory))
    for audited_at, name, directory in sorted(candidates, reverse=True):
        try:
            evidence = read_evidence(directory / "evidence.json")
        except EvidenceError:
            continue
        try:
            teeth = read_teeth(directory / "teeth.json")
        except TeethError:
            teeth = None
        return PreviousRelease(name, directory, audited_at, evidence, teeth)
    return None


def history(reports: Path, limit: int) -> tuple[tuple[HistoryPoint, ...], int]:
    """The last `limit` commits' evidence under `reports` (reports/*/evidence.json, by finished_at), and
    how many evidence files there could not be read."""
    from harness.record import EvidenceError, read_evidence

    points: list[HistoryPoint] = []
    skipped = 0
    for file in sorted(reports.glob("*/evidence.json")):
        try:
            evidence = read_evidence(file)
        except EvidenceError:
            skipped += 1
            continue
        points.append(HistoryPoint(str(evidence.commit or file.parent.name), evidence.finished_at, dict(evidence.totals), evidence.is_full))
    points.sort(key=lambda p: (p.finished_at, p.commit))
    return tuple(points[-limit:]) if limit > 0 else (), skipped


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditInputError(f"harness audit: {path}: cannot read it: {exc.strerror or exc}") from None


def _attestation_required(repo_root: Path) -> str | None:
    """`[tool.harness] attestation_public_key` (pyproject.toml), or None when it is not set."""
    from harness.project_config import ProjectConfigError, load

    try:
        config = load(repo_root)
    except ProjectConfigError as exc:
        raise AuditInputError(f"harness audit: {exc}") from None
    return config.attestation_public_key or None


def _check_attestation(commit_dir: Path, repo_root: Path, commit: str) -> "AttestationCheck":
    from harness.attest import verify_attestation

    # `commit`: an attestation of another commit copied into this directory is a problem, not a pass.
    return verify_attestation(commit_dir, public_key=None, repo_root=repo_root, commit=commit)


def check_tag(release: str) -> str:
    if not _TAG.fullmatch(release) or release in (".", ".."):
        raise AuditInputError(
            f"harness audit: --release {release!r}: a tag is letters, digits and . _ + - (at most 128, starting with "
            "a letter or digit), e.g. --release v1.2.0"
        )
    return release


def _suggest(command: Sequence[str], reports: Path, default_reports: bool) -> str:
    return shlex.join([*command, *(() if default_reports else ("--out", str(reports)))])


def release_audit(
    release: str,
    *,
    commit: str | None = None,
    reports: str | os.PathLike[str] = "reports",
    out: str | os.PathLike[str] | None = None,
    require_cuda: bool = False,
    run: bool = False,
    history_limit: int = DEFAULT_HISTORY,
    repo_root: str | os.PathLike[str] = ".",
    today: date | None = None,
    jobs: int = 1,
    write: bool = True,
) -> Audit:
    """Audit commit `commit` (default HEAD) for release `release` from `reports`/<sha>/ (with `run`, after
    running verify and teeth on `contracts/` into it, through their library functions), and publish the
    audit into `out` (default `reports`/releases/<release>/), replacing an earlier audit of the tag as a
    whole. Raises AuditInputError (exit 2) for bad input, AuditNotWritten (exit 3); returns the Audit,
    whose `decision` says GO or NO-GO."""
    from harness import clock
    from harness.pipeline import _unwritable
    from harness.record import EvidenceError, publish, read_evidence
    from harness.teeth_record import TeethError, read_teeth

    release = check_tag(release)
    if history_limit < 0:
        raise AuditInputError(f"harness audit: --history {history_limit}: must be at least 0 (0 draws no chart)")
    root = Path(repo_root).resolve()
    reports_dir = Path(reports)
    default_reports = str(reports) == "reports"
    if not reports_dir.is_absolute():
        reports_dir = (Path.cwd() / reports_dir)
    sha = resolve_commit(commit, root)
    out_dir = Path(out) if out is not None else reports_dir / RELEASES_DIR / release

    def check_writable() -> None:
        problem = _unwritable(out_dir.parent) if write else None
        if problem:
            raise AuditInputError(f"harness audit: --out {out_dir}: {problem}; choose another --out DIR")

    make_evidence = _suggest(["harness", "verify", "contracts/"], Path(reports), default_reports)
    make_teeth = _suggest(["harness", "teeth", "contracts/"], Path(reports), default_reports)
    if run:
        check_writable()  # before minutes of running, not after
        _run_verify_and_teeth(root, reports_dir, sha, jobs)
    commit_dir = reports_dir / sha
    evidence_bytes = _read_bytes(commit_dir / "evidence.json")
    if evidence_bytes is None:
        raise AuditInputError(
            f"harness audit: {commit_dir} holds no evidence.json for commit {sha[:12]}: make it with `{make_evidence}` "
            "at that commit (or pass --run)"
        )
    try:
        evidence = read_evidence(commit_dir / "evidence.json")
    except EvidenceError as exc:
        raise AuditInputError(f"harness audit: {exc}") from None
    check_writable()
    teeth_bytes = _read_bytes(commit_dir / "teeth.json")
    teeth = None
    if teeth_bytes is not None:
        try:
            teeth = read_teeth(commit_dir / "teeth.json")
        except TeethError as exc:
            raise AuditInputError(f"harness audit: {exc}") from None
    attestation_bytes = _read_bytes(commit_dir / ATTESTATION_FILE)
    key = _attestation_required(root)
    # No file: nothing to check (the decision says whether one was required); a file: it must verify.
    attestation = _check_attestation(commit_dir, root, sha) if attestation_bytes is not None else None
    files = {"evidence.json": evidence_bytes}
    if teeth_bytes is not None:
        files["teeth.json"] = teeth_bytes
    if attestation_bytes is not None:
        files[ATTESTATION_FILE] = attestation_bytes
    today = today or clock.today()
    points, skipped = history(reports_dir, history_limit)
    audit = assemble(
        release, evidence, teeth, commit=sha, today=today, files=files, attestation=attestation,
        attestation_required=bool(key), require_cuda=require_cuda, previous=previous_release(out_dir.parent, out_dir.name),
        history=points, history_skipped=skipped, cuda=cuda_falsifiers(evidence, root),
        directory=out_dir if write else None, make_evidence=make_evidence, make_teeth=make_teeth,
        attest_command=shlex.join(["harness", "attest", str(Path(reports) / sha), "--key", "KEY"]),
    )
    if write:
        try:
            publish(out_dir, audit_files(audit))
        except OSError as exc:
            raise AuditNotWritten(f"could not write {out_dir}: {exc.strerror or exc}", audit) from exc
    return audit


def assemble(
    release: str,
    evidence: Evidence,
    teeth: Teeth | None,
    *,
    commit: str,
    today: date,
    files: dict[str, bytes],
    attestation: AttestationCheck | None = None,
    attestation_required: bool = False,
    require_cuda: bool = False,
    previous: PreviousRelease | None = None,
    history: Sequence[HistoryPoint] = (),
    history_skipped: int = 0,
    cuda: Collection[str] = frozenset(),
    directory: Path | None = None,
    audited_at: str | None = None,
    **commands: str,
) -> Audit:
    """The Audit of inputs already read (`files`: the audited files' bytes, by name): `decide`, and what
    the pages show. `commands` are decide's make_evidence / make_teeth / attest_command."""
    from harness.record import now_iso

    decision = decide(
        evidence, teeth,
        previous=previous.evidence if previous else None, previous_teeth=previous.teeth if previous else None,
        attestation=attestation, attestation_required=attestation_required, require_cuda=require_cuda, today=today,
        cuda=cuda, commit=commit, **commands,
    )
    return Audit(
        release=release, commit=commit, audited_at=audited_at or now_iso(), today=today, decision=decision,
        evidence=evidence, teeth=teeth, attestation=attestation, attestation_required=attestation_required,
        require_cuda=require_cuda, cuda=frozenset(cuda), previous=previous, history=tuple(history),
        digests={name: sha256(data) for name, data in files.items()}, files=dict(files), directory=directory,
        history_skipped=history_skipped,
    )


def _run_verify_and_teeth(root: Path, reports: Path, sha: str, jobs: int) -> None:
    """`--run`: harness.verify then harness.teeth on the repository's contracts/, into `reports`."""
    import harness
    from harness.environment import git_state

    head, _ = git_state(root)
    if head != sha:
        raise AuditInputError(
            f"harness audit: --run runs the falsifiers of the checked-out tree ({str(head)[:12]}), not of --commit "
            f"{sha[:12]}: check that commit out first, or drop --run"
        )
    contracts = root / "contracts"
    evidence = harness.verify([contracts], out=reports, jobs=jobs)
    if not evidence.complete:
        raise KeyboardInterrupt  # verify returns what ran when interrupted: the audit stops there (exit 130)
    result = harness.teeth([contracts], out=reports, jobs=jobs)
    if not result.complete:
        raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------- the files


def _attestation_dict(audit: Audit) -> dict[str, Any]:
    a = audit.attestation
    return {
        "required": audit.attestation_required,
        "present": ATTESTATION_FILE in audit.files,
        "valid": None if a is None else bool(a.valid),
        "problems": [] if a is None else list(a.problems),
        "key_id": None if a is None else a.key_id,
    }


def audit_to_dict(audit: Audit) -> dict[str, Any]:
    """audit.json: the verdict, its reasons, the commit and every digest (what the next release reads)."""
    diff = None
    if audit.decision.diff is not None:
        from harness.diff import diff_to_dict

        diff = diff_to_dict(audit.decision.diff)
    d = audit.decision
    return {
        "schema_version": SCHEMA_VERSION,
        "harness_version": audit.evidence.harness_version,
        "release": audit.release,
        "commit": audit.commit,
        "audited_at": audit.audited_at,
        "today": audit.today.isoformat(),
        "verdict": d.verdict,
        "reasons": list(d.reasons),
        "waived": list(d.waived),
        "expiring": list(d.expiring),
        "warnings": list(d.warnings),
        "require_cuda": audit.require_cuda,
        "attestation": _attestation_dict(audit),
        "previous_release": audit.previous.tag if audit.previous else None,
        "diff": diff,
        "digests": {
            **audit.digests,
            "contracts": {c.path: c.sha256 for c in audit.evidence.contracts},
        },
    }


def audit_files(audit: Audit) -> dict[str, str]:
    """The audit directory as file name -> text, every file rendered before any is written; the audited
    files are carried byte for byte (evidence.json is UTF-8 by construction: harness.record writes it)."""
    from harness.audit_html import render_html
    from harness.audit_md import render_markdown

    files = {
        "audit.md": render_markdown(audit),
        "audit.html": render_html(audit),
        "audit.json": json.dumps(escape.json_safe(audit_to_dict(audit)), indent=2, ensure_ascii=False) + "\n",
    }
    for name, data in audit.files.items():
        try:
            files[name] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuditInputError(f"harness audit: {name}: not UTF-8 ({exc.reason}); it cannot be the harness's") from None
    return files


# ---------------------------------------------------------------------------------------- what the pages show
# Plain (unescaped) strings; audit_md and audit_html escape each for their format (harness.escape).


@dataclass(frozen=True)
class FalsifierRow:
    invariant: str
    falsifier: str
    outcome: str
    duration: str
    cuda: str  # "" (not a CUDA falsifier), "ran on CUDA (NAME)", "needs CUDA: not run"
    guards: str  # guard coverage: `2/3 guards, 41 lines` or `n/a`
    reason: str
    waived: bool


def falsifier_rows(audit: Audit) -> list[tuple[ContractResult, list[FalsifierRow]]]:
    """Per contract of the evidence, a row per (attacked invariant, falsifier), by invariant then file order."""
    from harness.guard_coverage import summary as guard_summary

    gpus = ", ".join(gpu_names(audit.evidence)) or "GPU not recorded"
    waived = set(audit.decision.waived)
    out = []
    for contract in audit.evidence.contracts:
        rows = []
        for r in contract.falsifiers:
            cuda = ""
            if is_cuda_falsifier(r, audit.cuda):
                cuda = "needs CUDA: not run" if r.outcome in (Outcome.NOT_RUN, Outcome.DEFERRED) else f"ran on CUDA ({gpus})"
            for invariant in r.invariant or ("-",):
                rows.append(FalsifierRow(
                    invariant, r.id, r.outcome.value + (" (waived)" if _is_waived(r.id, waived) else ""),
                    f"{r.duration_s:.2f}s", cuda, guard_summary(r.guards_executed, r.guard_lines),
                    (r.reason or "").splitlines()[0] if r.reason else "", _is_waived(r.id, waived),
                ))
        order = {inv: i for i, inv in enumerate(dict.fromkeys(row.invariant for row in rows))}
        rows.sort(key=lambda row: order[row.invariant])
        out.append((contract, rows))
    return out


def _is_waived(falsifier: str, waived: Collection[str]) -> bool:
    # Verdict.waived names the falsifier, possibly with more after it ("ID: reason"): match the id.
    return any(w == falsifier or w.startswith(falsifier + ":") or w.startswith(falsifier + " ") for w in waived)


def not_run_rows(audit: Audit) -> list[tuple[str, str, str]]:
    """(falsifier, outcome, reason) for every result that did not run: not_run and deferred."""
    return [
        (r.id, r.outcome.value, r.reason) for r in audit.evidence.results
        if r.outcome in (Outcome.NOT_RUN, Outcome.DEFERRED)
    ]


def waiver_rows(audit: Audit) -> list[tuple[str, str, str, str, str, str, str]]:
    """(falsifier pattern, status, expires, owner, reason, link, where) per waiver the evidence records;
    status `expired`, `expiring` (within 14 days: harness.gate's rule, so the page and the verdict agree)
    or `in force`."""
    rows = []
    for w in audit.waivers:
        status = "expired" if is_expired(w, audit.today) else "expiring" if is_expiring(w, audit.today) else "in force"
        rows.append((
            w.falsifier, status, w.expires.isoformat(), w.owner, w.reason, w.link or "",
            f"{w.location.path}:{w.location.line}",
        ))
    return rows


def teeth_rows(audit: Audit) -> list[tuple[str, str, tuple[str, ...], int, int, int, str, str]]:
    """(contract, invariant, guards (one line each), mutants, killed, survived, other, note) per invariant
    teeth measured; `other` names what the rest were (`11 not_run`, `2 equivalent`), empty when none."""
    if audit.teeth is None:
        return []
    rows = []
    for inv in audit.teeth.invariants:
        killed = sum(m.status == "killed" for m in inv.mutants)
        survived = len(inv.survivors)
        guards = tuple(
            f"{g.guard} ({g.file}:{g.lines[0]}-{g.lines[1]})" if g.status == "resolved" and g.lines
            else f"{g.guard} (skipped: {g.reason})"
            for g in inv.guards
        ) or ("none",)
        rest = Counter(m.status for m in inv.mutants if m.status not in ("killed", "survived"))
        other = ", ".join(f"{n} {status}" for status, n in sorted(rest.items()))
        rows.append((inv.contract_id, inv.id, guards, len(inv.mutants), killed, survived, other, inv.note or ""))
    return rows


def summary_lines(audit: Audit) -> list[str]:
    """What a reviewer reads first, under the verdict: one line each for the falsifiers, teeth, the
    attestation, the waivers and the previous release (the sections below give the detail)."""
    e = audit.evidence
    counts = ", ".join(f"{e.totals.get(o, 0)} {o}" for o in OUTCOMES if e.totals.get(o, 0))
    waived = f"; {len(audit.decision.waived)} failing, waived" if audit.decision.waived else ""
    n = len(e.contracts)
    lines = [f"Falsifiers: {len(e.results)} in {n} contract{'s' if n != 1 else ''}: {counts or 'none'}{waived}"]
    if audit.teeth is None:
        lines.append("Teeth: no teeth.json for this commit")
    else:
        tt = audit.teeth.totals
        rest = ", ".join(f"{tt[k]} {k}" for k in ("timeout", "error", "not_run", "equivalent") if tt.get(k))
        lines.append(
            f"Teeth: {tt['mutants']} mutants of {len(audit.teeth.invariants)} invariant"
            f"{'s' if len(audit.teeth.invariants) != 1 else ''}: {tt['killed']} killed, "
            f"{tt['survived']} survived" + (f", {rest}" if rest else "")
            + (f"; {tt['baseline_failed']} baseline failure(s)" if tt.get("baseline_failed") else "")
        )
    lines.append(f"Attestation: {attestation_summary(audit)}")
    expiring = sum(1 for row in waiver_rows(audit) if row[1] == "expiring")
    lines.append(
        f"Waivers: {len(audit.waivers)} recorded" + (f", {expiring} expiring within 14 days" if expiring else "")
        if audit.waivers else "Waivers: none"
    )
    if audit.previous is None:
        lines.append("Previous release: none found beside this one")
    else:
        regressed = audit.decision.diff is not None and audit.decision.diff.regressed
        lines.append(f"Previous release: {audit.previous.tag}, {'regressed since' if regressed else 'no regression'}")
    return lines


def environment_rows(evidence: Evidence) -> list[tuple[str, str]]:
    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    rows = [(key, text(value)) for key, value in evidence.environment.items()]
    for shard in evidence.merged_from or ():
        for key, value in (shard.get("environment") or {}).items():
            rows.append((f"shard {shard.get('index')}/{shard.get('total')}: {key}", text(value)))
    return rows


def digest_rows(audit: Audit) -> list[tuple[str, str]]:
    """(what, digest): the commit, each audited file's sha256 (as copied here), each contract file's."""
    rows = [("commit", audit.commit)]
    rows += [(name, digest) for name, digest in audit.digests.items()]
    rows += [(f"contract {c.path} ({c.id} {c.version})", c.sha256) for c in audit.evidence.contracts]
    return rows


def attestation_summary(audit: Audit) -> str:
    a = audit.attestation
    if a is None:
        return ("none: required by [tool.harness] attestation_public_key" if audit.attestation_required
                else "none (not required: [tool.harness] attestation_public_key is not set)")
    key = f" (key {a.key_id})" if a.key_id else ""
    return f"valid{key}" if a.valid else f"INVALID{key}: " + "; ".join(a.problems)


OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)


def parameter_rows(audit: Audit) -> list[tuple[str, str, str, str, str, str]]:
    """(contract, parameter, kind, value, file, sha256) for each parameter the evidence's run was given
    (ContractResult.parameters): the artifact a model release's audit is about. A file is one row (file
    empty); a directory one row per file in it; a string one row with no digest."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    for c in audit.evidence.contracts:
        for p in c.parameters:
            kind, value = p.kind.value, p.absolute or p.value
            if p.files is not None:
                rows += [(c.id, p.name, kind, value, name, digest) for name, digest in p.files.items()]
                if not p.files:
                    rows.append((c.id, p.name, kind, value, "(empty directory)", ""))
            else:
                rows.append((c.id, p.name, kind, value, "", p.sha256 or ""))
    return rows
