"""`harness diff`: what changed between two commits' evidence (and teeth), and whether it regressed.

    diff_evidence(base, head, *, base_teeth=None, head_teeth=None, today=None) -> EvidenceDiff
    diff_markdown(d) -> str          diff_to_dict(d) -> dict          diff_text(d) -> list[str]
    load_side(arg, reports=, repo_root=) -> (Evidence, Teeth | None, Path)   # DiffInputError (exit 2)

A pure function of its inputs (the date waivers are judged on included), like the gate. Falsifiers are
matched by (contract id, falsifier id). What counts as a regression (`EvidenceDiff.regressed`, the CLI's
exit 1):
- a falsifier that fails at head (falsified, error, vacuous, flaky) and did not at base (passed, not_run,
  deferred, or absent: a new falsifier that fails), unless an unexpired waiver in head's evidence names it;
- a contract whose file changed (sha256) while its version did not: bump its version;
- a teeth survivor at head that was not one at base (a new mutant, or a killed one that now survives;
  every survivor when base has no teeth.json).
Shown, never a regression by itself: recovered (failing -> passed), became not_run or deferred, other
outcome changes, added and removed falsifiers, contract version bumps, teeth kills, duration moves
(both runs at least DURATION_FLOOR_S and one at least DURATION_RATIO times the other: below that a
falsifier's time is process start-up noise), the waivers in force and those expiring within 14 days.
A side that is not a full run (`Evidence.is_full`: -k, a shard, --changed-since, interrupted) is named:
falsifiers it did not run are counted as not compared, never as added or removed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import escape
from harness.gate import is_expired, is_expiring
from harness.incremental import IncrementalError, resolve_ref
from harness.model import Evidence, FalsifierResult, Outcome, Waiver
from harness.record import EVIDENCE_FILE, describe_selection, evidence_dir, waiver_to_dict

# Where `harness teeth` writes beside the evidence (harness.teeth_record.TEETH_FILE; that module imports
# the whole teeth machinery, so it is read only when the file is there).
TEETH_FILE = "teeth.json"

if TYPE_CHECKING:
    from harness.teeth_run import Teeth

__all__ = [
    "DURATION_FLOOR_S", "DURATION_RATIO", "ContractChange", "DiffInputError", "DurationChange", "EvidenceDiff",
    "FalsifierChange", "Side", "TeethChange", "diff_evidence", "diff_markdown", "diff_text", "diff_to_dict",
    "load_side", "locate_evidence",
]

FAILING = (Outcome.FALSIFIED, Outcome.ERROR, Outcome.VACUOUS, Outcome.FLAKY)
UNVERIFIED = (Outcome.NOT_RUN, Outcome.DEFERRED)
# A duration move is shown when both runs took at least DURATION_FLOOR_S and one took DURATION_RATIO
# times the other; a falsifier's child costs a few hundred milliseconds to start, which is noise.
DURATION_FLOOR_S = 0.5
DURATION_RATIO = 2.0
SURVIVED = "survived"

Key = tuple[str, str]


@dataclass(frozen=True)
class Side:
    """One side of the diff: its commit and whether it is the commit's full evidence."""

    commit: str | None
    full: bool
    run: str  # "full run", "partial run (-k X)", "... (interrupted)"
    teeth: bool  # a teeth.json was compared for this side


@dataclass(frozen=True)
class FalsifierChange:
    contract_id: str
    falsifier_id: str
    base: str | None  # the outcome at base (an Outcome value), None: not there
    head: str | None  # the outcome at head, None: not there
    reason: str  # the first line of head's reason (base's for a removed falsifier)
    waived_by: str | None = None  # a head failure an unexpired waiver accepts: the waiver, as FILE:LINE

    def transition(self, arrow: str = "->") -> str:
        return f"{self.base or '(new)'} {arrow} {self.head or '(removed)'}"


@dataclass(frozen=True)
class ContractChange:
    contract_id: str
    path: str  # head's (base's when removed)
    base_version: str
    head_version: str
    base_sha256: str
    head_sha256: str


@dataclass(frozen=True)
class TeethChange:
    invariant: str
    mutant: str  # GUARD/OPERATOR/HASH
    base: str | None  # the mutant's status at base, None: no such mutant there
    head: str | None
    missed_by: tuple[str, ...] = ()  # head: the falsifiers that passed on a survivor


@dataclass(frozen=True)
class DurationChange:
    contract_id: str
    falsifier_id: str
    base_s: float
    head_s: float

    @property
    def ratio(self) -> float:
        return self.head_s / self.base_s if self.base_s else float("inf")


@dataclass(frozen=True)
class EvidenceDiff:
    base: Side
    head: Side
    regressions: tuple[FalsifierChange, ...] = ()  # fails at head, not at base (or new), not waived
    waived: tuple[FalsifierChange, ...] = ()  # would be a regression, but an unexpired waiver accepts it
    recovered: tuple[FalsifierChange, ...] = ()  # failing at base -> passed at head
    unverified: tuple[FalsifierChange, ...] = ()  # became not_run or deferred
    still_failing: tuple[FalsifierChange, ...] = ()  # failing on both sides
    changed: tuple[FalsifierChange, ...] = ()  # any other outcome change (e.g. not_run -> passed)
    added: tuple[FalsifierChange, ...] = ()
    removed: tuple[FalsifierChange, ...] = ()
    not_compared: int = 0  # falsifiers only one side has because the other side is a partial run
    unbumped: tuple[ContractChange, ...] = ()  # file changed, same version: a regression
    bumped: tuple[ContractChange, ...] = ()  # file changed with a new version
    new_survivors: tuple[TeethChange, ...] = ()  # a regression
    killed_now: tuple[TeethChange, ...] = ()  # survived at base, killed at head
    teeth_changed: tuple[TeethChange, ...] = ()  # any other mutant status change, added or removed mutants
    durations: tuple[DurationChange, ...] = ()
    waivers_in_force: tuple[Waiver, ...] = ()  # head's, judged on `today`
    waivers_expiring: tuple[Waiver, ...] = ()
    waivers_expired: tuple[Waiver, ...] = ()
    today: date | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def regressed(self) -> bool:
        """The diff fails (`harness diff` exits 1)."""
        return bool(self.regressions or self.unbumped or self.new_survivors)


def _side(evidence: Evidence, teeth: "Teeth | None") -> Side:
    run = describe_selection(evidence.selection)
    if not evidence.complete:
        run += " (interrupted: incomplete)"
    return Side(evidence.commit, evidence.is_full, run, teeth is not None)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _by_key(evidence: Evidence) -> dict[Key, FalsifierResult]:
    return {(r.contract_id, r.id): r for r in evidence.results}


@dataclass
class _Buckets:
    """The falsifier categories while they are sorted out (EvidenceDiff's fields of the same names)."""

    regressions: list[FalsifierChange] = field(default_factory=list)
    waived: list[FalsifierChange] = field(default_factory=list)
    recovered: list[FalsifierChange] = field(default_factory=list)
    unverified: list[FalsifierChange] = field(default_factory=list)
    still_failing: list[FalsifierChange] = field(default_factory=list)
    changed: list[FalsifierChange] = field(default_factory=list)
    added: list[FalsifierChange] = field(default_factory=list)
    removed: list[FalsifierChange] = field(default_factory=list)
    not_compared: int = 0


def _falsifier_changes(base: Evidence, head: Evidence, today: date) -> _Buckets:
    old, new = _by_key(base), _by_key(head)
    in_force = [w for w in head.waivers if not is_expired(w, today)]
    out = _Buckets()
    for key in [*old, *(k for k in new if k not in old)]:
        b, h = old.get(key), new.get(key)
        if (b is None and not base.is_full) or (h is None and not head.is_full):
            out.not_compared += 1  # the partial side did not select it: neither added nor removed
            continue
        if h is None:
            assert b is not None
            out.removed.append(FalsifierChange(*key, b.outcome.value, None, _first_line(b.reason)))
            continue
        change = FalsifierChange(*key, b and b.outcome.value, h.outcome.value, _first_line(h.reason))
        fails_now = h.outcome in FAILING
        failed_before = b is not None and b.outcome in FAILING
        if b is None:
            out.added.append(change)
        if fails_now and not failed_before:
            cover = next((w for w in in_force if w.matches(h.id)), None)
            if cover is not None:
                out.waived.append(dataclasses.replace(change, waived_by=str(cover.location)))
            else:
                out.regressions.append(change)
        elif failed_before and fails_now:
            out.still_failing.append(change)  # shown whether or not the kind of failure changed
        elif b is None or b.outcome is h.outcome:
            continue
        elif failed_before and h.outcome is Outcome.PASSED:
            out.recovered.append(change)
        elif h.outcome in UNVERIFIED:
            out.unverified.append(change)
        else:
            out.changed.append(change)
    return out


def _contract_changes(base: Evidence, head: Evidence) -> tuple[list[ContractChange], list[ContractChange]]:
    old = {c.id: c for c in base.contracts}
    unbumped, bumped = [], []
    for c in head.contracts:
        b = old.get(c.id)
        if b is None or b.sha256 == c.sha256:
            continue
        change = ContractChange(c.id, c.path, b.version, c.version, b.sha256, c.sha256)
        (unbumped if b.version == c.version else bumped).append(change)
    return unbumped, bumped


def _mutants(teeth: "Teeth") -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    return {(inv.id, m.id): (m.status, tuple(m.missed_by)) for inv in teeth.invariants for m in inv.mutants}


def _teeth_changes(
    base: "Teeth | None", head: "Teeth | None"
) -> tuple[list[TeethChange], list[TeethChange], list[TeethChange]]:
    if head is None:
        return [], [], []
    old = _mutants(base) if base is not None else {}
    new = _mutants(head)
    survivors, killed, other = [], [], []
    for key, (status, missed) in new.items():
        was = old.get(key, (None, ()))[0]
        if status == was:
            continue
        change = TeethChange(key[0], key[1], was, status, missed if status == SURVIVED else ())
        if status == SURVIVED:
            survivors.append(change)
        elif was == SURVIVED and status == "killed":
            killed.append(change)
        elif base is not None:
            other.append(change)
    if base is not None:
        other += [TeethChange(k[0], k[1], s, None) for k, (s, _) in old.items() if k not in new]
    return survivors, killed, other


def _durations(base: Evidence, head: Evidence) -> list[DurationChange]:
    old = _by_key(base)
    moved = []
    for r in head.results:
        b = old.get((r.contract_id, r.id))
        if b is None or r.carried_from is not None or r.outcome in UNVERIFIED or b.outcome in UNVERIFIED:
            continue
        low, high = sorted((b.duration_s, r.duration_s))
        if low >= DURATION_FLOOR_S and high >= DURATION_RATIO * low:
            moved.append(DurationChange(r.contract_id, r.id, b.duration_s, r.duration_s))
    return moved


def diff_evidence(
    base: Evidence,
    head: Evidence,
    *,
    base_teeth: "Teeth | None" = None,
    head_teeth: "Teeth | None" = None,
    today: date | None = None,
) -> EvidenceDiff:
    """What changed from `base` to `head` (and from `base_teeth` to `head_teeth`, when given), with
    head's waivers judged on `today` (None: harness.clock.today(), the UTC date)."""
    if today is None:
        from harness import clock

        today = clock.today()
    changes = _falsifier_changes(base, head, today)
    unbumped, bumped = _contract_changes(base, head)
    survivors, killed, teeth_other = _teeth_changes(base_teeth, head_teeth)
    notes = []
    for name, side, teeth in (("base", base, base_teeth), ("head", head, head_teeth)):
        if not side.is_full:
            notes.append(
                f"{name} is a {_side(side, teeth).run}, not the commit's full evidence: the falsifiers it did not run "
                "are not compared"
            )
        if teeth is not None and side.commit is not None and teeth.commit not in (None, side.commit):
            notes.append(f"{name}'s teeth.json is of commit {str(teeth.commit)[:12]}, not of its evidence's {side.commit[:12]}")
    if head_teeth is not None and base_teeth is None:
        notes.append("base has no teeth.json beside its evidence: every teeth survivor at head counts as new")
    if head_teeth is None and base_teeth is not None:
        notes.append("teeth not compared: head has no teeth.json beside its evidence (run `harness teeth` at head)")
    return EvidenceDiff(
        base=_side(base, base_teeth),
        head=_side(head, head_teeth),
        regressions=tuple(changes.regressions),
        waived=tuple(changes.waived),
        recovered=tuple(changes.recovered),
        unverified=tuple(changes.unverified),
        still_failing=tuple(changes.still_failing),
        changed=tuple(changes.changed),
        added=tuple(changes.added),
        removed=tuple(changes.removed),
        not_compared=changes.not_compared,
        unbumped=tuple(unbumped),
        bumped=tuple(bumped),
        new_survivors=tuple(survivors),
        killed_now=tuple(killed),
        teeth_changed=tuple(teeth_other),
        durations=tuple(_durations(base, head)),
        waivers_in_force=tuple(w for w in head.waivers if not is_expired(w, today)),
        waivers_expiring=tuple(w for w in head.waivers if is_expiring(w, today)),
        waivers_expired=tuple(w for w in head.waivers if is_expired(w, today)),
        today=today,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------- inputs


class DiffInputError(ValueError):
    """A side of the diff cannot be read (the CLI's exit 2); one line naming the file or the argument."""


def locate_evidence(
    arg: str | os.PathLike[str], *, reports: str | os.PathLike[str] = "reports", repo_root: str | os.PathLike[str] = "."
) -> Path:
    """The evidence `arg` names: the file itself, a commit directory (DIR/<sha>/), or the evidence.json of the
    commit `arg` resolves to with git (a sha, branch, tag, HEAD~1) under `reports`/<sha>/."""
    path = Path(arg)
    if path.is_file():
        return path
    if path.is_dir():
        return path  # read_evidence reads its evidence.json, or names the directory that lacks one
    try:
        sha = resolve_ref(Path(repo_root), str(arg), "harness diff:")
    except IncrementalError:
        raise DiffInputError(
            f"harness diff: {arg}: no such file or directory, and not a commit of the git repository at {repo_root}; "
            f"give an evidence.json, a DIR/<sha>/ directory, or a commit whose evidence is under {reports}/"
        ) from None
    directory = evidence_dir(reports, sha)
    if not (directory / EVIDENCE_FILE).is_file():
        raise DiffInputError(
            f"harness diff: {arg}: {directory} holds no {EVIDENCE_FILE} (commit {sha[:12]} was not verified into "
            f"{reports}/); write it with `git checkout {sha} && harness verify contracts/ --out {reports}; git checkout -`, "
            "or give the evidence file"
        )
    return directory / EVIDENCE_FILE


def load_side(
    arg: str | os.PathLike[str], *, reports: str | os.PathLike[str] = "reports", repo_root: str | os.PathLike[str] = "."
) -> tuple[Evidence, "Teeth | None", Path]:
    """(the evidence `arg` names, the teeth.json beside it when there is one, the evidence file or directory);
    DiffInputError, one line naming the file, for anything unreadable."""
    from harness.record import EvidenceError, read_evidence

    file = locate_evidence(arg, reports=reports, repo_root=repo_root)
    try:
        evidence = read_evidence(file)
    except EvidenceError as exc:
        raise DiffInputError(f"harness diff: {exc}") from None
    teeth = None
    teeth_file = (file if file.is_dir() else file.parent) / TEETH_FILE
    if teeth_file.is_file():
        from harness.teeth_record import TeethError, read_teeth  # imports the teeth machinery: only when needed

        try:
            teeth = read_teeth(teeth_file)
        except TeethError as exc:
            raise DiffInputError(f"harness diff: {exc}") from None
    return evidence, teeth, file


# ---------------------------------------------------------------------------------------- rendering


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "uncommitted"


def _days_left(w: Waiver, today: date | None) -> str:
    if today is None:
        return ""
    days = (w.expires - today).days
    return f", expired {-days} day(s) ago" if days < 0 else f", {days} day{'s' if days != 1 else ''} left"


def _waiver_text(w: Waiver, today: date | None) -> str:
    link = f"; {w.link}" if w.link else ""
    return f"{w.falsifier} until {w.expires.isoformat()}{_days_left(w, today)} (owner: {w.owner}; {w.location}{link}): {_first_line(w.reason)}"


def _falsifier_line(c: FalsifierChange, arrow: str) -> str:
    waived = f" (waived by {c.waived_by})" if c.waived_by else ""
    return f"{c.falsifier_id} ({c.contract_id}): {c.transition(arrow)}{waived}" + (f": {c.reason}" if c.reason else "")


def _contract_line(c: ContractChange, unbumped: bool, arrow: str) -> str:
    if unbumped:
        return (
            f"{c.contract_id} ({c.path}): the file changed (sha256 {c.base_sha256[:12]} {arrow} {c.head_sha256[:12]}) but its "
            f"version is still {c.base_version}: bump its version"
        )
    return f"{c.contract_id} ({c.path}): {c.base_version} {arrow} {c.head_version}"


def _teeth_line(c: TeethChange, arrow: str) -> str:
    missed = f"; missed by {', '.join(c.missed_by)}" if c.missed_by else ""
    return f"{c.invariant} {c.mutant}: {c.base or '(new mutant)'} {arrow} {c.head or '(gone)'}{missed}"


def _duration_line(c: DurationChange, arrow: str) -> str:
    return f"{c.falsifier_id} ({c.contract_id}): {c.base_s:.2f}s {arrow} {c.head_s:.2f}s ({c.ratio:.1f}x)"


def _sections(d: EvidenceDiff, arrow: str = "->") -> list[tuple[str, str, list[str]]]:
    """(label, Markdown title, lines) of every non-empty category, regressions first."""
    slower = [c for c in d.durations if c.head_s > c.base_s]
    faster = [c for c in d.durations if c.head_s < c.base_s]
    sections = [
        ("REGRESSED", "Regressed", [_falsifier_line(c, arrow) for c in d.regressions]),
        ("CONTRACT NOT BUMPED", "Contracts changed without a version bump", [_contract_line(c, True, arrow) for c in d.unbumped]),
        ("TEETH SURVIVOR", "New teeth survivors", [_teeth_line(c, arrow) for c in d.new_survivors]),
        ("WAIVER EXPIRED", "Expired waivers", [_waiver_text(w, d.today) for w in d.waivers_expired]),
        ("WAIVED", "Waived failures (true outcome kept in the evidence)", [_falsifier_line(c, arrow) for c in d.waived]),
        ("STILL FAILING", "Still failing", [_falsifier_line(c, arrow) for c in d.still_failing]),
        ("RECOVERED", "Recovered", [_falsifier_line(c, arrow) for c in d.recovered]),
        ("NOT VERIFIED", "Became not_run or deferred", [_falsifier_line(c, arrow) for c in d.unverified]),
        ("CHANGED", "Other outcome changes", [_falsifier_line(c, arrow) for c in d.changed]),
        ("ADDED", "Added", [_falsifier_line(c, arrow) for c in d.added]),
        ("REMOVED", "Removed", [_falsifier_line(c, arrow) for c in d.removed]),
        ("CONTRACT VERSION", "Contract version bumps", [_contract_line(c, False, arrow) for c in d.bumped]),
        ("TEETH KILLED", "Survivors now killed", [_teeth_line(c, arrow) for c in d.killed_now]),
        ("TEETH CHANGED", "Other teeth changes", [_teeth_line(c, arrow) for c in d.teeth_changed]),
        ("SLOWER", "Slower", [_duration_line(c, arrow) for c in slower]),
        ("FASTER", "Faster", [_duration_line(c, arrow) for c in faster]),
        ("WAIVER IN FORCE", "Waivers in force", [_waiver_text(w, d.today) for w in d.waivers_in_force]),
        ("WAIVER EXPIRING", "Waivers expiring within 14 days", [_waiver_text(w, d.today) for w in d.waivers_expiring]),
    ]
    return [s for s in sections if s[2]]


def _headline(d: EvidenceDiff, arrow: str = "->") -> str:
    return f"base {_short(d.base.commit)} ({d.base.run}) {arrow} head {_short(d.head.commit)} ({d.head.run})"


def _verdict_line(d: EvidenceDiff) -> str:
    if not d.regressed:
        return "no regression"
    parts = []
    if d.regressions:
        parts.append(f"{len(d.regressions)} falsifier(s) regressed")
    if d.unbumped:
        parts.append(f"{len(d.unbumped)} contract(s) changed without a version bump")
    if d.new_survivors:
        parts.append(f"{len(d.new_survivors)} new teeth survivor(s)")
    return "REGRESSED: " + ", ".join(parts)


def diff_text(d: EvidenceDiff) -> list[str]:
    """The terminal lines `harness diff` prints (unescaped: the console escapes)."""
    lines = [f"harness diff: {_headline(d)}"]
    lines += [f"note: {n}" for n in d.notes]
    if d.not_compared:
        lines.append(f"note: {d.not_compared} falsifier(s) not compared (run by one side only, the other a partial run)")
    for label, _, items in _sections(d):
        lines += [f"{label} {item}" for item in items]
    lines.append(f"harness diff: {_verdict_line(d)}")
    return lines


def diff_markdown(d: EvidenceDiff) -> str:
    """The diff as Markdown (a pull request comment, a job summary); every quoted text escaped."""
    lines = [f"## harness diff: {escape.markdown(_verdict_line(d))}", "", escape.markdown(_headline(d, "→")), ""]
    for note in d.notes:
        lines += [f"> **Note:** {escape.markdown(note)}", ""]
    if d.not_compared:
        lines += [f"> **Note:** {d.not_compared} falsifier(s) not compared (run by one side only, the other a partial run).", ""]
    for _, title, items in _sections(d, "→"):
        lines += [f"### {title}", ""]
        lines += [f"- {escape.markdown(item, 600)}" for item in items]
        lines.append("")
    return "\n".join(lines)


def _change_dict(value: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(value).items()}


def diff_to_dict(d: EvidenceDiff) -> dict[str, Any]:
    """The diff as JSON-ready data (`harness diff --json`): one key per field, `regressed` first."""
    out: dict[str, Any] = {"regressed": d.regressed}
    for name in d.__dataclass_fields__:
        value = getattr(d, name)
        if name in ("base", "head"):
            out[name] = _change_dict(value)
        elif name.startswith("waivers_"):
            out[name] = [waiver_to_dict(w) for w in value]
        elif name == "today":
            out[name] = value.isoformat() if value else None
        elif isinstance(value, tuple) and name != "notes":
            out[name] = [_change_dict(v) | ({"ratio": round(v.ratio, 3)} if isinstance(v, DurationChange) else {}) for v in value]
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out
