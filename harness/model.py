"""The harness's vocabulary: frozen values passed down the pipeline load -> validate -> compile -> run -> record -> report.

Every stage is a function from the previous stage's value to the next one's; these types are the
only thing the stages share. The JSON Schemas in `harness/schemas/` are checked against them in
tests so the published formats and the code cannot drift.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class SourceLocation:
    """Where a value came from, so every problem can be reported as FILE:LINE."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class BindingKind(str, enum.Enum):
    PYTHON = "python"  # module:function, a callable that raises AssertionError on falsification
    PYTEST = "pytest"  # a node id or a -k expression, with a minimum number of matched tests
    COMMAND = "command"  # any program; exit 0 = held
    # No runnable test is bound (e.g. prose imported by `harness import pv`): `target` holds the original text.
    # validate warns about each one; verify records it as `error`, never `passed`.
    UNBOUND = "unbound"


@dataclass(frozen=True)
class Binding:
    kind: BindingKind
    # python: "module:function"; pytest: a node id ("path::name") or None when `k` is used.
    target: str | None = None
    # pytest -k expression and the paths it searches (repository-relative).
    k: str | None = None
    paths: tuple[str, ...] = ()
    # command argv, run from the repository root.
    argv: tuple[str, ...] = ()
    # A regex with one group that captures the number of tests a command ran.
    count_pattern: str | None = None
    # pytest/command: fewer matched (or executed) tests than this is an error, never a pass.
    min_tests: int = 1
    # command: a repository-relative junit XML file the command writes; its tests are counted from it.
    junit: str | None = None
    # command: the further argvs of an all-or-nothing chain (`A && B` without a shell), run in order after
    # `argv` while each exits 0; count_pattern/junit count each step, and each must reach min_tests.
    then: tuple[tuple[str, ...], ...] = ()

    @property
    def steps(self) -> tuple[tuple[str, ...], ...]:
        """A command binding's argvs in the order they run: `argv`, then `then`."""
        return (self.argv, *self.then)

    def describe(self) -> str:
        if self.kind is BindingKind.PYTHON:
            return f"python: {self.target}"
        if self.kind is BindingKind.PYTEST:
            if self.k is not None:
                return f"pytest: -k {self.k!r} {' '.join(self.paths)}".rstrip()
            return f"pytest: {self.target}"
        if self.kind is BindingKind.UNBOUND:
            return f"unbound: {self.target}"
        return "command: " + " && ".join(" ".join(step) for step in self.steps)


@dataclass(frozen=True)
class Requirement:
    cuda: bool = False
    packages: tuple[str, ...] = ()
    min_memory_gib: float | None = None
    # Project-registered kinds (harness.requirements) as (kind, value) in the order written.
    custom: tuple[tuple[str, Any], ...] = ()
    # The contract parameters (harness.parameters) the falsifier needs besides the contract's required ones;
    # one not given makes it not_run, naming the --param that supplies it.
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deferred:
    reason: str
    until: date  # after this date a deferral is itself an error: deferrals must not rot


@dataclass(frozen=True)
class EquivalentMutant:
    """A mutant of a guard acknowledged as equivalent (no falsifier can tell it apart); `harness teeth` still
    runs and shows it, with the reason, and reports the acknowledgement as stale once it matches nothing."""

    id: str  # the mutant id `harness teeth` prints: GUARD/OPERATOR/HASH
    reason: str


@dataclass(frozen=True)
class Invariant:
    id: str
    statement: str
    kind: str
    location: SourceLocation
    guards: tuple[str, ...] = ()  # "module:function" of the code that upholds it (for mutation checks)
    proof_obligations: tuple[str, ...] = ()
    equivalent_mutants: tuple[EquivalentMutant, ...] = ()  # `harness teeth` acknowledgements


@dataclass(frozen=True)
class Falsifier:
    id: str
    attacks: tuple[str, ...]
    prediction: str
    if_fails: str
    binding: Binding
    location: SourceLocation
    requires: Requirement = field(default_factory=Requirement)
    timeout_s: float = 300.0
    deferred: Deferred | None = None
    # Scheduling (harness.scheduling): run alone, and how many of the machine's GPUs it occupies.
    exclusive: bool = False
    gpus: int = 0


class ParameterKind(str, enum.Enum):
    PATH = "path"  # an existing file or directory
    FILE = "file"  # an existing regular file
    DIRECTORY = "directory"  # an existing directory
    STRING = "string"  # any text


@dataclass(frozen=True)
class ParameterValue:
    """One parameter given to a run (`harness verify --param NAME=VALUE`), as the evidence records it, so an
    audit says exactly which artifact was verified (harness.parameters)."""

    name: str
    kind: ParameterKind
    value: str  # as given on the command line
    absolute: str | None = None  # path kinds: the absolute path the falsifiers received
    sha256: str | None = None  # a file: the sha256 of its bytes
    files: dict[str, str] | None = None  # a directory: each file's relative POSIX path -> sha256, sorted


@dataclass(frozen=True)
class Parameter:
    """A contract parameter (`parameters: {NAME: {kind, required, description}}`)."""

    name: str
    kind: ParameterKind
    location: SourceLocation
    required: bool = False
    description: str = ""
    # The value bound for this run (harness.parameters.bind); None when not given.
    given: ParameterValue | None = None


@dataclass(frozen=True)
class Contract:
    id: str
    version: str
    title: str
    description: str
    path: str  # repository-relative
    sha256: str
    invariants: tuple[Invariant, ...]
    falsifiers: tuple[Falsifier, ...]
    depends_on: tuple[str, ...] = ()
    references: tuple[Any, ...] = ()
    changelog: tuple[Any, ...] = ()
    # What the falsifiers receive (HARNESS_PARAM_<NAME>); each carries the value given to this run, if any.
    parameters: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class Problem:
    """One validation problem, printed as `FILE:LINE: ID: message`."""

    location: SourceLocation
    subject: str  # the contract, invariant or falsifier id the problem is about
    message: str
    # Which check found it (harness.validate.CHECKS: "files", "load", "schema", ...): the rule of
    # `harness validate --format sarif`; "" where no check is named.
    check: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.subject}: {self.message}"


class Outcome(str, enum.Enum):
    PASSED = "passed"  # the invariant held
    FALSIFIED = "falsified"  # a counterexample was found
    ERROR = "error"  # the falsifier itself broke, or matched/executed no tests
    NOT_RUN = "not_run"  # a requirement is unmet; never a pass
    DEFERRED = "deferred"  # explicitly deferred with a reason and expiry; never a pass
    VACUOUS = "vacuous"  # would have passed, but executed no guard of the invariants it attacks; never a pass
    FLAKY = "flaky"  # under --rerun, attempts disagreed (e.g. falsified, then passed); always fails the gate


@dataclass(frozen=True)
class Attempt:
    """One run of a falsifier under `harness verify --rerun N` (harness.rerun)."""

    outcome: Outcome
    reason: str
    duration_s: float


@dataclass(frozen=True)
class FalsifierResult:
    id: str
    contract_id: str
    invariant: tuple[str, ...]  # the attacked invariant ids ("invariant" is the evidence key tools read)
    outcome: Outcome
    reason: str
    duration_s: float
    binding: Binding
    tests_matched: int | None = None
    tests_executed: int | None = None
    counterexample: str | None = None
    # Every run under --rerun N, in order (the first included); empty when the falsifier ran once.
    attempts: tuple[Attempt, ...] = ()
    # What `harness replay` needs to reproduce a failure (harness.replay_record); None for a pass or no run.
    replay: dict[str, Any] | None = None
    # pytest/command (junit) bindings: matched tests that were skipped, and that failed; None = not counted.
    tests_skipped: int | None = None
    tests_failed: int | None = None
    # python/pytest bindings of invariants with guards: the guards ("module:qualname") that ran a body line,
    # and per guard the covered body lines of its defining file. None: not measured (command bindings, no guards).
    guards_executed: tuple[str, ...] | None = None
    guard_lines: dict[str, tuple[int, ...]] | None = None
    # python/pytest bindings: the repository files the child imported or read (repo-relative POSIX path ->
    # "sha256:<hex>", harness.imported_files); None when not measured (command bindings, a child that
    # started another process, or that reported nothing): `--changed-since` then always runs it again.
    modules: dict[str, str] | None = None
    # `--changed-since`: the commit whose evidence this result was copied from (it did not run now); None
    # for a result run in this run. A release gate (Policy(release=True)) never accepts one.
    carried_from: str | None = None


@dataclass(frozen=True)
class ContractResult:
    """One contract's entry in the evidence: the contract file as it was run, and its falsifiers' results
    (in file order; only the falsifiers that were run)."""

    id: str
    version: str
    path: str  # repository-relative
    sha256: str
    falsifiers: tuple[FalsifierResult, ...]
    # The parameters given to this run that the contract declares (name order as declared); empty when none.
    parameters: tuple[ParameterValue, ...] = ()


@dataclass(frozen=True)
class Waiver:
    """One entry of a waivers file (contracts/waivers.yaml, harness.waivers): a known failure of the
    falsifiers `falsifier` names (an id or an fnmatch glob) accepted until `expires`, with who owns the fix.
    A waived falsifier still runs and its true outcome is recorded; the waiver changes only the verdict
    (harness.gate), and an expired one, or one that matches no falsifier, fails it."""

    falsifier: str  # a falsifier id or an fnmatch glob over ids (FALSIFY-CKPT-*)
    reason: str
    owner: str
    expires: date  # the last day it is in force (UTC, harness.clock)
    link: str | None
    location: SourceLocation  # repository-relative path and line of the entry

    def matches(self, falsifier_id: str) -> bool:
        """Whether this waiver names `falsifier_id` (case-sensitive, as ids are)."""
        return fnmatch.fnmatchcase(falsifier_id, self.falsifier)


@dataclass(frozen=True)
class Evidence:
    """What one `harness verify` run found; evidence.json is this value serialised field for field
    (`harness.record.evidence_to_dict`), and `harness.read_evidence` reads it back."""

    schema_version: int
    harness_version: str
    commit: str | None
    dirty: bool | None
    complete: bool  # False when the run was interrupted: the results so far only
    started_at: str
    finished_at: str
    duration_s: float
    command: tuple[str, ...]
    environment: dict[str, Any]  # free-form machine facts (python, os, cpu, torch, cuda, gpu, ...)
    totals: dict[str, int]  # count per Outcome value
    contracts: tuple[ContractResult, ...]
    # What the run was restricted to: None for a full run, else e.g. {"k": ["PATTERN", ...]} and/or
    # {"shard": "K/N"}, or {"changed_since": "<sha>"} for an incremental run (harness.incremental: every
    # falsifier accounted for, the unchanged ones carried over). A selected run is published apart from
    # the commit's full evidence.
    selection: dict[str, Any] | None = None
    # A `--shard K/N` run: {"index": K, "total": N, "owns": [[contract id, falsifier id], ...], "selected":
    # [every falsifier of the sharded run, in file order], "contracts": [{id, version, path, sha256}, ...],
    # "split": "durations" | "hash", "basis": digest of the durations split from}; None when unsharded.
    shard: dict[str, Any] | None = None
    # `harness merge`'s output: one entry per shard merged ({index, total, command, started_at, finished_at,
    # duration_s, environment}); None for evidence a single run wrote.
    merged_from: list[dict[str, Any]] | None = None
    # The waivers in force for the run (contracts/waivers.yaml or `--waivers PATH`), as loaded; the gate
    # applies them, the results above are the falsifiers' true outcomes whatever they waive.
    waivers: tuple[Waiver, ...] = ()

    @property
    def results(self) -> tuple[FalsifierResult, ...]:
        """Every falsifier result, in contract and file order."""
        return tuple(r for c in self.contracts for r in c.falsifiers)

    @property
    def is_full(self) -> bool:
        """The commit's full evidence: the run finished and nothing was deselected. Whatever compares or
        audits commits must ask this, never `complete` alone (a `-k` run is complete but partial)."""
        return self.complete and self.selection is None
