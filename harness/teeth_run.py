"""`harness.teeth()`: prove that every guard has teeth, by running each invariant's falsifiers against
mutants of the code that upholds it.

    teeth(paths, out="reports", select=(), jobs=1, observer=None) -> Teeth

validate (the same checks `verify` makes) -> locate each invariant's guards in an isolated child
(harness.guards) -> mutants from the defining module's AST (harness.mutate) -> a baseline: each
falsifier run unmutated, in a copy of the repository, must pass -> per mutant: a fresh copy of the
repository with the mutated file written into it, and the invariant's falsifiers run there by
`harness.execute.run_falsifier(repo_root=<copy>)`, cheapest first, until one fails -> Teeth, written to
OUT/<commit>/teeth.json and teeth.md (harness.teeth_record).

The working tree is never touched: a mutant lives only in its copy, and the falsifier's child (and any
`python -m ...` it starts) imports from the copy, which is its cwd and first on its PYTHONPATH.
Nothing here prints or exits; the CLI (harness.teeth_cli) maps `Teeth` to an exit code.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import mutate
from harness.environment import _git, git_state
from harness.execute import run_falsifier
from harness.guards import GuardSite, locate_guards
from harness.model import Contract, Falsifier, FalsifierResult, Invariant, Outcome, ParameterValue
from harness.pipeline import InvalidInput, _unwritable, bind_parameters, validated
from harness.plugin import matches_any
from harness.record import evidence_dir, now_iso

SCHEMA_VERSION = 1

# A status per mutant. `survived` is the only one that says the contract is toothless there.
KILLED, SURVIVED, TIMEOUT, ERROR, NOT_RUN, EQUIVALENT = "killed", "survived", "timeout", "error", "not_run", "equivalent"
STATUSES: tuple[str, ...] = (KILLED, SURVIVED, TIMEOUT, ERROR, NOT_RUN, EQUIVALENT)

# Per mutant run: long enough for a falsifier that took `baseline` seconds on the real code to finish
# on a loaded machine, short enough that a mutant which makes the code loop forever is not waited on for
# the falsifier's whole timeout_s (which still caps it).
MIN_TIMEOUT_S = 10.0


def mutant_timeout(baseline_s: float, timeout_s: float) -> float:
    """max(10 s, 3x the baseline + 5 s), never above the falsifier's own timeout_s."""
    return min(timeout_s, max(MIN_TIMEOUT_S, 3 * baseline_s + 5))


# ---------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ContractDigest:
    id: str
    version: str
    path: str
    sha256: str
    parameters: tuple[ParameterValue, ...] = ()  # --param given to this run, as the evidence records them


@dataclass(frozen=True)
class BaselineRun:
    """One falsifier run on the unmutated code (in a copy); only a `passed` baseline makes its kills count."""

    id: str
    contract_id: str
    outcome: str  # an Outcome value
    reason: str
    duration_s: float
    usable: bool  # passed: its results against mutants mean something


@dataclass(frozen=True)
class MutantResult:
    id: str
    guard: str
    function: str
    operator: str
    path: str  # repository-relative path of the mutated module
    line: int
    diff: str
    status: str  # one of STATUSES
    reason: str
    killed_by: str | None = None  # the falsifier that failed on it (or timed out)
    killed_outcome: str | None = None  # that falsifier's outcome against the mutant
    missed_by: tuple[str, ...] = ()  # the falsifiers that passed on it
    acknowledged: str | None = None  # the contract's reason when it acknowledges the mutant as equivalent
    duration_s: float = 0.0


@dataclass(frozen=True)
class StaleAcknowledgement:
    id: str
    reason: str  # the contract's reason
    why: str  # why it is stale: it matches no mutant, or its mutant is killed


@dataclass(frozen=True)
class InvariantTeeth:
    contract_id: str
    id: str
    measurable: bool  # False: no guards, or none that could be mutated (`note` says why)
    note: str | None
    guards: tuple[GuardSite, ...]
    falsifiers: tuple[BaselineRun, ...]
    mutants: tuple[MutantResult, ...]
    not_compiling: int  # mutants skipped because the mutated module did not compile
    stale_acknowledgements: tuple[StaleAcknowledgement, ...] = ()

    @property
    def survivors(self) -> tuple[MutantResult, ...]:
        return tuple(m for m in self.mutants if m.status == SURVIVED)


@dataclass(frozen=True)
class Teeth:
    """What one `harness teeth` run found; teeth.json is this value serialised field for field
    (harness.teeth_record), and `harness.read_teeth` reads it back."""

    schema_version: int
    harness_version: str
    commit: str | None
    dirty: bool | None
    complete: bool  # False when interrupted: the mutants run so far only
    started_at: str
    finished_at: str
    duration_s: float
    command: tuple[str, ...]
    selection: tuple[str, ...]  # the -k patterns; empty: every invariant
    contracts: tuple[ContractDigest, ...]
    invariants: tuple[InvariantTeeth, ...]
    totals: dict[str, int]  # per status, plus mutants, not_compiling, baseline_failed

    @property
    def survivors(self) -> tuple[tuple[InvariantTeeth, MutantResult], ...]:
        return tuple((inv, m) for inv in self.invariants for m in inv.survivors)

    @property
    def baseline_failures(self) -> tuple[tuple[InvariantTeeth, BaselineRun], ...]:
        return tuple(
            (inv, b) for inv in self.invariants for b in inv.falsifiers
            if not b.usable and b.outcome not in (Outcome.NOT_RUN.value, Outcome.DEFERRED.value)
        )


class TeethNotWritten(Exception):
    """The mutants ran, but teeth.json could not be written (the CLI's exit 3); `teeth` is what would have been."""

    def __init__(self, message: str, teeth: Teeth) -> None:
        super().__init__(message)
        self.teeth = teeth


class Observer:
    """What `teeth` reports while it runs; override what you need (every method does nothing here)."""

    def started(self, mutants: int, falsifiers: int) -> None:
        """Mutants are generated; `falsifiers` baselines are about to run."""

    def baseline(self, run: BaselineRun) -> None:
        """One falsifier's baseline finished."""

    def mutant(self, invariant: str, result: MutantResult) -> None:
        """One mutant finished (in the order they finish)."""


# ---------------------------------------------------------------------------------------- the copy


_NEVER_COPIED = {".git", "__pycache__", ".venv", "venv", "node_modules", ".pytest_cache", ".hypothesis", ".mypy_cache", "reports"}


def repository_files(root: Path) -> list[str]:
    """The files a copy holds (repository-relative): git's tracked and untracked-but-not-ignored files,
    or, outside a git checkout, everything but .git, caches and virtual environments."""
    listed = _git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], root)
    if listed is not None and listed.returncode == 0:
        return sorted({p for p in listed.stdout.split("\0") if p})
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _NEVER_COPIED and not d.endswith(".egg-info")]
        for name in filenames:
            files.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(files)


def copy_repository(root: Path, files: Sequence[str], dest: Path) -> None:
    """Copy `files` from `root` into `dest` (real copies: a falsifier writing into its tree must not reach ours)."""
    for rel in files:
        src = root / rel
        if not os.path.lexists(src) or src.is_dir() and not src.is_symlink():
            continue  # deleted in the working tree, or a submodule's directory
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


# ---------------------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    contract: Contract
    invariant: Invariant
    falsifiers: list[tuple[Contract, Falsifier]]
    guards: list[GuardSite] = field(default_factory=list)
    mutants: list[mutate.Mutant] = field(default_factory=list)
    not_compiling: int = 0


def _selected_falsifiers(
    select: Sequence[str], contract: Contract, invariant: Invariant, attackers: list[tuple[Contract, Falsifier]]
) -> list[tuple[Contract, Falsifier]]:
    """All the invariant's falsifiers when a pattern names its contract or itself; else those whose id matches."""
    if not select or matches_any(select, [contract.id, invariant.id]):
        return attackers
    return [(c, f) for c, f in attackers if matches_any(select, [f.id])]


def _plan(contracts: Sequence[Contract], select: Sequence[str]) -> list[_Plan]:
    attackers: dict[str, list[tuple[Contract, Falsifier]]] = {}
    for c in contracts:
        for f in c.falsifiers:
            for inv_id in f.attacks:
                attackers.setdefault(inv_id, []).append((c, f))
    plans = []
    for c in contracts:
        for inv in c.invariants:
            chosen = _selected_falsifiers(select, c, inv, attackers.get(inv.id, []))
            if chosen or (not select or matches_any(select, [c.id, inv.id])):
                plans.append(_Plan(c, inv, chosen))
    return plans


def _generate(plans: list[_Plan], roots: dict[str, Path]) -> None:
    """Locate every guard (one child per repository root) and generate its mutants (once per guard)."""
    by_root: dict[Path, set[str]] = {}
    for plan in plans:
        by_root.setdefault(roots[plan.contract.id], set()).update(plan.invariant.guards)
    sites = {root: locate_guards(root, sorted(guards)) for root, guards in by_root.items() if guards}
    cache: dict[tuple[Path, str], tuple[GuardSite, mutate.Mutations | None]] = {}
    for plan in plans:
        root = roots[plan.contract.id]
        seen: set[tuple[str, int, str]] = set()
        for guard in plan.invariant.guards:
            key = (root, guard)
            if key not in cache:
                cache[key] = _mutations(root, sites[root][guard])
            site, mutations = cache[key]
            plan.guards.append(site)
            if mutations is None:
                continue
            plan.not_compiling += mutations.not_compiling
            for m in mutations.mutants:
                # Two guards of one invariant may overlap (a class and one of its methods): run each edit once.
                edit = (m.path, m.line, m.mutated_source)
                if edit not in seen:
                    seen.add(edit)
                    plan.mutants.append(m)


def _mutations(root: Path, site: GuardSite) -> tuple[GuardSite, mutate.Mutations | None]:
    if site.status != "resolved":
        return site, None
    assert site.file is not None and site.qualname is not None
    try:
        source = (root / site.file).read_text(encoding="utf-8")
        return site, mutate.mutants(source, site.file, site.guard, site.qualname)
    except (OSError, UnicodeDecodeError, SyntaxError, mutate.GuardNotFound) as exc:
        return dataclasses.replace(site, status="skipped", reason=f"cannot mutate {site.file}: {exc}"), None


# ---------------------------------------------------------------------------------------- running


class _Runner:
    """Runs falsifiers in fresh copies of the repository; safe to call from several threads."""

    def __init__(self, roots: dict[str, Path], scratch: Path, jobs: int = 1) -> None:
        self.roots = roots
        self.scratch = scratch
        self.jobs = jobs  # runs at once: each child's share of the cores (execute.thread_share)
        self._files: dict[Path, list[str]] = {}
        self._lock = threading.Lock()
        self._count = 0
        # (contract, falsifier) -> the guard lines its baseline executed (harness.guard_coverage), None when
        # not measured (command bindings): which mutants it can possibly observe.
        self.coverage: dict[tuple[str, str], dict[str, tuple[int, ...]] | None] = {}

    def _copy(self, root: Path) -> Path:
        with self._lock:
            if root not in self._files:
                self._files[root] = repository_files(root)
            self._count += 1
            dest = self.scratch / f"copy-{self._count}"
        copy_repository(root, self._files[root], dest)
        return dest

    def baseline(self, contract: Contract, falsifier: Falsifier) -> BaselineRun:
        root = self.roots[contract.id]
        copy = self._copy(root)
        try:
            result = run_falsifier(falsifier, contract, copy, concurrent=self.jobs)
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        self.coverage[(contract.id, falsifier.id)] = result.guard_lines
        return BaselineRun(
            falsifier.id, contract.id, result.outcome.value, result.reason, result.duration_s,
            result.outcome is Outcome.PASSED,
        )

    def mutant(
        self, plan: _Plan, mutant: mutate.Mutant, usable: list[tuple[Contract, Falsifier, BaselineRun]], not_run: str | None
    ) -> MutantResult:
        start = time.monotonic()
        base = dict(
            id=mutant.id, guard=mutant.guard, function=mutant.function, operator=mutant.operator,
            path=mutant.path, line=mutant.line, diff=mutant.diff,
        )
        acknowledged = {e.id: e.reason for e in plan.invariant.equivalent_mutants}.get(mutant.id)

        def done(status: str, reason: str, **extra: Any) -> MutantResult:
            return MutantResult(**base, status=status, reason=reason, acknowledged=acknowledged,
                                duration_s=round(time.monotonic() - start, 3), **extra)

        if not usable:
            if not_run is not None:
                return done(NOT_RUN, not_run)
            return done(ERROR, "no falsifier of the invariant passed its baseline on the unmutated code; nothing can kill it")
        candidates = [run for run in usable if self._may_observe(run[0], run[1], mutant)]
        if not candidates:
            # A deterministic run that never executes the changed statement cannot tell the mutant from the
            # original: running it again would only pass. Said, never hidden: the contract has no teeth there.
            missed = tuple(run[1].id for run in usable)
            where = ", ".join(map(str, mutant.statement_lines))
            if acknowledged is not None:
                return done(EQUIVALENT, f"acknowledged as equivalent: {acknowledged}", missed_by=missed)
            return done(SURVIVED, f"no falsifier of the invariant executed line {where} of {mutant.path} on the unmutated "
                        f"code (their guard coverage), so none can see the mutant: {', '.join(missed)}", missed_by=missed)
        usable = candidates
        try:
            copy = self._copy(self.roots[plan.contract.id])
            (copy / mutant.path).write_text(mutant.mutated_source, encoding="utf-8")
        except OSError as exc:
            return done(ERROR, f"could not build the mutant's copy of the repository: {exc}")
        missed: list[str] = []
        try:
            for contract, falsifier, baseline in usable:
                limit = mutant_timeout(baseline.duration_s, falsifier.timeout_s)
                result = run_falsifier(dataclasses.replace(falsifier, timeout_s=limit), contract, copy, concurrent=self.jobs)
                if result.outcome is Outcome.PASSED:
                    missed.append(falsifier.id)
                    continue
                if _timed_out(result, limit):
                    return done(TIMEOUT, f"{falsifier.id} ran past {limit:g}s against the mutant",
                                killed_by=falsifier.id, killed_outcome=result.outcome.value, missed_by=tuple(missed))
                if result.outcome in (Outcome.FALSIFIED, Outcome.ERROR):
                    return done(KILLED, f"{falsifier.id}: {result.outcome.value}: {result.reason}"[:1000],
                                killed_by=falsifier.id, killed_outcome=result.outcome.value, missed_by=tuple(missed))
                missed.append(falsifier.id)  # not_run/deferred now, though its baseline passed: no kill
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        if acknowledged is not None:
            return done(EQUIVALENT, f"acknowledged as equivalent: {acknowledged}", missed_by=tuple(missed))
        return done(SURVIVED, f"every falsifier passed against the mutant: {', '.join(missed)}", missed_by=tuple(missed))


    def _may_observe(self, contract: Contract, falsifier: Falsifier, mutant: mutate.Mutant) -> bool:
        """Whether the falsifier's baseline executed a statement the mutant changes (or was not measured)."""
        lines = self.coverage.get((contract.id, falsifier.id))
        if lines is None or not mutant.statement_lines or mutant.guard not in lines:
            return True
        return not set(lines[mutant.guard]).isdisjoint(mutant.statement_lines)


def _timed_out(result: FalsifierResult, limit: float) -> bool:
    return result.outcome is Outcome.ERROR and ("timed out after" in result.reason or result.duration_s >= limit)


def _usable(plan: _Plan, baselines: dict[tuple[str, str], BaselineRun]) -> tuple[list[tuple[Contract, Falsifier, BaselineRun]], str | None]:
    """The falsifiers whose baseline passed, cheapest first; and, when none did because none could run here, why."""
    runs = [(c, f, baselines[(c.id, f.id)]) for c, f in plan.falsifiers if (c.id, f.id) in baselines]
    usable = sorted((r for r in runs if r[2].usable), key=lambda r: r[2].duration_s)
    not_run = None
    if not usable and runs and all(r[2].outcome in (Outcome.NOT_RUN.value, Outcome.DEFERRED.value) for r in runs):
        not_run = "every falsifier of the invariant is not run here: " + "; ".join(f"{r[1].id}: {r[2].reason}" for r in runs)
    return usable, not_run


def _invariant_result(plan: _Plan, baselines: dict[tuple[str, str], BaselineRun], results: dict[tuple[str, str, str], MutantResult]) -> InvariantTeeth:
    note = None
    if not plan.invariant.guards:
        note = "teeth not measurable: the invariant names no guards (add guards: module:function)"
    elif not any(g.status == "resolved" for g in plan.guards):
        note = "teeth not measurable: no guard could be mutated (" + "; ".join(f"{g.guard}: {g.reason}" for g in plan.guards) + ")"
    elif not plan.falsifiers:
        note = "teeth not measurable: no falsifier attacks the invariant"
    key = (plan.contract.id, plan.invariant.id)
    mutants = tuple(results[(*key, m.id)] for m in plan.mutants if (*key, m.id) in results)
    by_id = {m.id: m for m in mutants}
    stale = []
    for ack in plan.invariant.equivalent_mutants:
        found = by_id.get(ack.id)
        if found is None and not any(m.id == ack.id for m in plan.mutants):
            stale.append(StaleAcknowledgement(ack.id, ack.reason, "it matches no mutant of the invariant's guards"))
        elif found is not None and found.status == KILLED:
            stale.append(StaleAcknowledgement(ack.id, ack.reason, f"its mutant is killed by {found.killed_by}"))
    return InvariantTeeth(
        contract_id=plan.contract.id, id=plan.invariant.id, measurable=note is None, note=note,
        guards=tuple(plan.guards),
        falsifiers=tuple(baselines[(c.id, f.id)] for c, f in plan.falsifiers if (c.id, f.id) in baselines),
        mutants=mutants, not_compiling=plan.not_compiling, stale_acknowledgements=tuple(stale),
    )


def count_totals(invariants: Sequence[InvariantTeeth]) -> dict[str, int]:
    totals = {status: 0 for status in STATUSES}
    for inv in invariants:
        for m in inv.mutants:
            totals[m.status] += 1
    totals["mutants"] = sum(len(inv.mutants) for inv in invariants)
    totals["not_compiling"] = sum(inv.not_compiling for inv in invariants)
    totals["baseline_failed"] = len({
        (b.contract_id, b.id) for inv in invariants for b in inv.falsifiers
        if not b.usable and b.outcome not in (Outcome.NOT_RUN.value, Outcome.DEFERRED.value)
    })
    totals["not_measurable"] = sum(1 for inv in invariants if not inv.measurable)
    return totals


# ---------------------------------------------------------------------------------------- teeth


def teeth(
    paths: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = "reports",
    select: Sequence[str] = (),
    jobs: int = 1,
    command: Sequence[str] = (),
    observer: Observer | None = None,
    params: Mapping[str, str] | None = None,
) -> Teeth:
    """Validate the contracts under `paths`, run the falsifiers of every invariant (those matching
    `select`) against mutants of its guards, `jobs` at a time, and return the Teeth, written to
    `out`/<commit>/teeth.json and teeth.md (nowhere when `out` is None).

    Raises InvalidInput (exit 2) before anything runs. Ctrl-C during the run returns what was measured
    so far with `complete` False (runs already started finish first; nothing new starts). `params` are the
    contract parameters, as for verify: a falsifier missing one it needs is not_run in its baseline, so the
    mutants of its invariant are `not_run` (neither killed nor survived) with that reason."""
    from harness import __version__
    from harness.teeth_record import write_teeth  # it imports this module's types

    observer = observer or Observer()
    command = list(command) or ["harness", "teeth", *map(str, paths)]
    if jobs < 1:
        raise InvalidInput(f"harness teeth: -j {jobs}: must be at least 1 (-j 1 runs one mutant at a time)")
    validation = validated(paths, "teeth")
    check = shlex.join(["harness", "validate", *map(str, paths)])
    contracts = list(validation.contracts)
    if params:
        # Bound to the contracts with a falsifier that teeth would run (the selected invariants' attackers).
        chosen = {(c.id, f.id): (c, f) for plan in _plan(contracts, select) for c, f in plan.falsifiers}
        contracts, _ = bind_parameters(contracts, chosen, params, "teeth")
    roots = {cid: Path(root).resolve() for cid, root in validation.roots.items()}
    plans = _plan(contracts, select)
    if not plans:
        what = f"matches -k {' / '.join(select)}" if select else "is declared"
        raise InvalidInput(f"harness teeth: no invariant {what} in {len(validation.files)} contract file(s); `{check}` counts them")
    repo_root = roots[contracts[0].id]
    commit, dirty = git_state(repo_root)
    if out is not None:
        unwritable = _unwritable(evidence_dir(out, commit))
        if unwritable:
            raise InvalidInput(f"harness teeth: --out {out}: {unwritable}; choose another --out DIR, one you can write to")

    started_at, t0 = now_iso(), time.monotonic()
    _generate(plans, roots)
    falsifiers = {(c.id, f.id): (c, f) for plan in plans if plan.mutants for c, f in plan.falsifiers}
    observer.started(sum(len(p.mutants) for p in plans), len(falsifiers))
    baselines: dict[tuple[str, str], BaselineRun] = {}
    # By (contract, invariant, mutant): one guard's mutant is run for every invariant it guards.
    results: dict[tuple[str, str, str], MutantResult] = {}
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="harness-teeth-") as scratch:
        runner = _Runner(roots, Path(scratch), jobs)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="harness-teeth")
        try:
            # At most `jobs` runs in flight, a ready mutant before the next baseline: an invariant's mutants
            # start as soon as its own falsifiers' baselines are in (baselines go in invariant order), so one
            # slow baseline does not hold every other invariant's mutants back.
            baseline_queue = collections.deque(falsifiers.items())
            mutant_queue: collections.deque[tuple[_Plan, mutate.Mutant, Any, str | None]] = collections.deque()
            pending: dict[concurrent.futures.Future[Any], tuple[str, Any]] = {}
            waiting = [plan for plan in plans if plan.mutants]

            def schedule() -> None:
                for plan in [p for p in waiting if all((c.id, f.id) in baselines for c, f in p.falsifiers)]:
                    waiting.remove(plan)
                    usable, not_run = _usable(plan, baselines)
                    mutant_queue.extend((plan, m, usable, not_run) for m in plan.mutants)
                while len(pending) < jobs and (mutant_queue or baseline_queue):
                    if mutant_queue:
                        plan, m, usable, not_run = mutant_queue.popleft()
                        pending[pool.submit(runner.mutant, plan, m, usable, not_run)] = ("mutant", (plan, m))
                    else:
                        key, (c, f) = baseline_queue.popleft()
                        pending[pool.submit(runner.baseline, c, f)] = ("baseline", key)

            schedule()
            while pending:
                done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    kind, what = pending.pop(future)
                    if kind == "baseline":
                        baselines[what] = run = future.result()
                        observer.baseline(run)
                        continue
                    plan, m = what
                    results[(plan.contract.id, plan.invariant.id, m.id)] = result = future.result()
                    observer.mutant(plan.invariant.id, result)
                schedule()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    invariants = tuple(_invariant_result(plan, baselines, results) for plan in plans)
    result = Teeth(
        schema_version=SCHEMA_VERSION, harness_version=__version__, commit=commit, dirty=dirty,
        complete=not interrupted, started_at=started_at, finished_at=now_iso(),
        duration_s=round(time.monotonic() - t0, 3), command=tuple(command), selection=tuple(select),
        contracts=tuple(
            ContractDigest(c.id, c.version, c.path, c.sha256, tuple(p.given for p in c.parameters if p.given is not None))
            for c in contracts
        ),
        invariants=invariants, totals=count_totals(invariants),
    )
    if out is not None:
        try:
            write_teeth(evidence_dir(out, commit), result)
        except OSError as exc:
            raise TeethNotWritten(f"could not write {evidence_dir(out, commit)}: {exc.strerror or exc}", result) from exc
    return result
