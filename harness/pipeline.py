"""`harness.verify()`: the verification pipeline as a library call.

validate (once, here, in the controller) -> compile (the `harness.plugin` pytest plugin turns these
Contract values into items) -> run (pytest, isolated children; xdist workers for jobs > 1) -> record
(each result journaled as it arrives, then Evidence) -> publish (evidence.json, junit.xml, summary.md
under OUT/<commit>/, or OUT/<commit>/partial/<slug>/ for a -k run).

Paths and options in, a typed `Evidence` out, events to an `Observer` for display. Nothing here
prints or exits: bad input is `InvalidInput` (the CLI's exit 2), evidence that could not be written is
`EvidenceNotWritten` (exit 3), and the gate is `harness.gate.verdict(evidence, policy)`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import io
import json
import os
import pickle
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.console import sigterm_as_interrupt
from harness.environment import collect_environment, git_state
from harness.execute import HARNESS_PARENT, error_result
from harness.model import Contract, Evidence, Falsifier, FalsifierResult, Outcome
from harness.plugin import CONTRACTS_OPTION, IDS_PROPERTY, RERUN_OPTION, RESULT_PROPERTY, matches_selection, report_properties
from harness.record import (
    KEPT_FILES,
    Journal,
    evidence_dir,
    make_evidence,
    now_iso,
    publish,
    refresh_skeleton,
    result_from_dict,
    start_run,
)
from harness.report import evidence_files

if TYPE_CHECKING:
    from harness.incremental import Plan
    from harness.ray_executor import RayExecutor
    from harness.validate import Validation

Key = tuple[str, str]
# Where the falsifiers run: "local" (this machine: in-process pytest, xdist workers for -j N) or "ray"
# (tasks on a Ray cluster, harness.ray_executor; imported only when chosen).
EXECUTORS = ("local", "ray")


class InvalidInput(Exception):
    """Nothing was run: the contracts have problems, or an option cannot work (the CLI's exit 2).

    `problems` are validation problem lines (`FILE:LINE: ID: message`), `str(self)` is the one line
    that says what to do."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class EvidenceNotWritten(Exception):
    """The falsifiers ran, but their evidence could not be published (the CLI's exit 3); the directory
    keeps the run's starting set and journal (its results, marked incomplete). `evidence` is what
    would have been written."""

    def __init__(self, message: str, evidence: Evidence) -> None:
        super().__init__(message)
        self.evidence = evidence


class Observer:
    """What `verify` reports while it runs; override what you need (every method does nothing here)."""

    def started(self, total: int) -> None:
        """The run begins: `total` falsifiers are selected, validated and about to run."""

    def result(self, result: FalsifierResult) -> None:
        """One falsifier finished (in the order they finish)."""

    def finished(self) -> None:
        """The falsifiers are done (or interrupted); evidence is about to be recorded."""

    def message(self, line: str) -> None:
        """A line for stderr: pytest's own report when its session itself broke."""

    def incremental(self, plan: "Plan") -> None:
        """--changed-since: before anything runs, which falsifiers run again (and why) and which carry over."""


def _unwritable(directory: Path) -> str | None:
    """Why evidence cannot be written into `directory` (created here if missing), or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{directory} exists and is not a directory"
    except NotADirectoryError:
        return f"a part of {directory} is a file, not a directory"
    except OSError as exc:
        return f"cannot create {directory}: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory} is not writable"
    return None


# ---------------------------------------------------------------------------------------- collection


class ResultCollector:
    """A controller-side pytest plugin: gathers FalsifierResults from reports (xdist workers included)."""

    def __init__(
        self,
        selected: dict[Key, tuple[Contract, Falsifier]],
        observer: Observer,
        record: Callable[[FalsifierResult], None] | None = None,
    ) -> None:
        self.selected = selected
        self.observer = observer
        # This is the controller, the one process every result reaches (xdist's too): each is made
        # durable here, before anything else happens, so a kill of the harness cannot lose it.
        self.record = record
        # pytest's own output is captured while it runs (run_pytest); the observer's is its caller's.
        self.stdout = sys.stdout
        self.results: dict[Key, FalsifierResult] = {}
        self._by_falsifier_id: dict[str, list[Key]] = {}
        for key in selected:
            self._by_falsifier_id.setdefault(key[1], []).append(key)

    def _key_for(self, report: pytest.TestReport, props: dict[str, Any]) -> Key | None:
        if IDS_PROPERTY in props:
            cid, fid = json.loads(props[IDS_PROPERTY])
            return (cid, fid)
        # e.g. an xdist worker that crashed mid-item: its synthetic report carries no properties.
        keys = self._by_falsifier_id.get(report.nodeid.rsplit("::", 1)[-1], [])
        return keys[0] if len(keys) == 1 else None

    def add(self, result: FalsifierResult) -> None:
        key = (result.contract_id, result.id)
        if key in self.results:
            return
        self.results[key] = result
        if self.record is not None:
            self.record(result)
        with contextlib.redirect_stdout(self.stdout):
            self.observer.result(result)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = report_properties(report.user_properties)
        if RESULT_PROPERTY in props:
            self.add(result_from_dict(json.loads(props[RESULT_PROPERTY])))
            return
        if report.failed:
            key = self._key_for(report, props)
            if key is not None and key in self.selected:
                # The harness around the falsifier broke (not the falsifier): still one result per falsifier.
                contract, falsifier = self.selected[key]
                self.add(error_result(falsifier, contract, "harness failed around the falsifier: " + report.longreprtext[-1500:]))


def _write_contracts(
    path: Path, contracts: Sequence[Contract], roots: dict[str, Path], files: Sequence[Path] = ()
) -> None:
    """The validated contracts, by resolved file path, for the plugin (here and in every xdist worker)
    to compile instead of reading and validating the files again. Pickle, because these are the exact
    frozen values (dates, enums, tuples) and the file lives in this run's private scratch directory.
    `files` without a contract here (none of theirs selected) are listed with none: collected, no items."""
    by_file: dict[str, list[tuple[Contract, str]]] = {str(f): [] for f in files}
    for contract in contracts:
        root = Path(roots[contract.id])
        # Resolved already: validate made `path` relative to the resolved root from the resolved file.
        by_file.setdefault(str(root / contract.path), []).append((contract, str(root)))
    path.write_bytes(pickle.dumps(by_file, protocol=pickle.HIGHEST_PROTOCOL))


def _top_directories(files: Sequence[Path]) -> list[Path]:
    """The fewest directories that hold all `files` (resolved paths). pytest is given these, not the
    files: it collects a directory again for every file named in it, which made collection quadratic;
    the plugin then collects only the validated files under them (see plugin.pytest_ignore_collect)."""
    tops: list[Path] = []
    kept: set[Path] = set()
    for directory in sorted({f.parent for f in files}):
        if not any(parent in kept for parent in directory.parents):  # sorted: ancestors come first
            kept.add(directory)
            tops.append(directory)
    return tops


def run_pytest(
    files: Sequence[Path],
    contracts: Sequence[Contract],
    roots: dict[str, Path],
    repo_root: Path,
    select: Sequence[str],
    jobs: int,
    collector: ResultCollector,
    rerun: int = 0,
    plugins: Sequence[object] = (),
    durations: dict[Key, float] | None = None,
) -> tuple[int, str]:
    """Run the contracts' items in-process; (pytest exit status, pytest's own output). With jobs > 1
    the items go to xdist workers longest first by `durations` (harness.xdist_schedule)."""
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as scratch:
        # An empty ini: the project's own pytest settings (addopts, timeouts, filterwarnings=error...)
        # are for its tests, not for the harness's items.
        ini = Path(scratch) / "pytest.ini"
        ini.write_text("[pytest]\n")
        compiled = Path(scratch) / "contracts.pickle"
        _write_contracts(compiled, contracts, roots, files)
        # Only the plugins the harness needs, loaded explicitly: whatever else is installed (benchmark,
        # randomly, timeout...) has no business around falsifier items, which run in children anyway.
        # Explicit `-p harness.plugin` also cannot collide with the installed entry point, which
        # autoload-off leaves unloaded.
        # doctest: never a contract file's collector, and it looks at every file (10,000 contract files).
        args = ["-p", "harness.plugin", "-c", str(ini), f"--rootdir={repo_root}", "-p", "no:cacheprovider", "-p", "no:doctest", "-s", "-q"]
        args += [f"{CONTRACTS_OPTION}={compiled}"]
        args += [f"--harness-select={p}" for p in select]
        if rerun:
            args.append(f"{RERUN_OPTION}={rerun}")
        if jobs > 1:
            schedule = Path(scratch) / "schedule.json"
            schedule.write_text(json.dumps({"durations": [[*k, v] for k, v in sorted((durations or {}).items())]}))
            args += ["-p", "xdist.plugin", "-n", str(jobs), "-p", "harness.xdist_schedule", f"--harness-schedule={schedule}"]
        args += [str(d) for d in _top_directories(files)]
        saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
        # xdist workers are fresh interpreters: they must import the same harness as this process.
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HARNESS_PARENT, saved["PYTHONPATH"]) if p)
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                status = int(pytest.main(args, plugins=[collector, *plugins]))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return status, buffer.getvalue()


# ---------------------------------------------------------------------------------------- recording


def _placeholder_environment() -> dict[str, Any]:
    """The skeleton's machine facts until collect_environment (seconds where torch is imported) is done;
    said as such, so a run killed that early is not read as having run without torch or a GPU."""
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "os": platform.platform(),
        "cpu": platform.machine(),
        "torch": None,
        "cuda": None,
        "gpu": None,
        "pending": "the machine facts were still being collected when this was recorded",
    }


class _Recorder:
    """The running run's directory: its skeleton evidence and the journal every result is appended to."""

    def __init__(
        self,
        directory: Path,
        skeleton: Callable[[dict[str, Any]], Evidence],
        environment: concurrent.futures.Future[dict[str, Any]],
        observer: Observer,
    ) -> None:
        self.directory = directory
        self._skeleton = skeleton
        self._environment = environment
        self._observer = observer
        self._refreshed = False
        self._journal: Journal | None = None

    def _facts(self) -> dict[str, Any] | None:
        future = self._environment
        return future.result() if future.done() and future.exception() is None else None

    def start(self) -> None:
        """Raises OSError when the directory cannot take the run's starting set."""
        facts = self._facts()
        self._refreshed = facts is not None
        self._journal = start_run(self.directory, self._skeleton(facts or _placeholder_environment()))

    def record(self, result: FalsifierResult) -> None:
        if self._journal is None:
            return
        try:
            self._journal.append(result)
            facts = None if self._refreshed else self._facts()
            if facts is not None:
                # Once, in this thread (never from the collecting thread: it could land after the final set).
                refresh_skeleton(self.directory, self._skeleton(facts))
                self._refreshed = True
        except OSError as exc:
            # A full disk mid-run: the results are still kept here and published (or exit 3) at the end.
            self.close()
            self._observer.message(
                f"harness: warning: cannot record results as they arrive in {self.directory}: {exc.strerror or exc}; "
                "a kill of this run would lose them"
            )

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


# ---------------------------------------------------------------------------------------- verify


def default_command(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    return ["harness", "verify", *map(str, paths)]


def validated(paths: Sequence[str | os.PathLike[str]], command: str) -> "Validation":
    """The one validation before anything runs (verify, teeth): structure, cross-references and the static
    binding rules (paths inside the repository), exactly validate's; raises InvalidInput on any problem.

    Bindings are resolved by running them, so one that does not import or match a test is that
    falsifier's `error`, recorded with evidence."""
    from harness.validate import validate_report

    validation = validate_report(paths, check_bindings=False)
    check = shlex.join(["harness", "validate", *map(str, paths)])
    if validation.problems:
        raise InvalidInput(
            f"harness: {len(validation.problems)} problem(s); nothing was run. Fix them (`{check}` checks them "
            f"again, bindings included), then run harness {command} again.",
            [str(p) for p in validation.problems],
        )
    from harness.project_config import ProjectConfigError, check as check_project

    for root in dict.fromkeys(validation.roots.values()):
        try:
            check_project(root)  # [tool.harness] in pyproject.toml: its keys, and the preload modules installed
        except ProjectConfigError as exc:
            raise InvalidInput(f"harness {command}: {exc}; nothing was run") from None
    return validation


def verify(
    paths: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = "reports",
    select: Sequence[str] = (),
    jobs: int = 1,
    rerun: int = 0,
    command: Sequence[str] = (),
    observer: Observer | None = None,
    changed_since: str | None = None,
    executor: str = "local",
    address: str | None = None,
    shard: tuple[int, int] | None = None,
    waivers: str | os.PathLike[str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Evidence:
    """Validate the contracts under `paths`, run their falsifiers (those matching `select`, `jobs` at a
    time, longest first by the durations in the newest evidence under `out`; a falsified or error one up
    to `rerun` more times, `flaky` when the attempts disagree) and return the Evidence, published under
    `out`/<commit>/ (not written anywhere when `out` is None). `command` is the argv the evidence
    records (default `harness verify PATH...`). `shard=(K, N)` runs the K-th of N shards of the
    selection (harness.sharding), a partial run that `harness merge` combines with the others. With
    `changed_since` (a git revision) only the falsifiers whose inputs changed since that commit's
    evidence under `out` run; the others are carried over from it (harness.incremental), and the
    evidence says so (`selection["changed_since"]`, each carried result's `carried_from`). `executor` "ray" runs the
    falsifiers as tasks on the Ray cluster at `address` (None: Ray's default, a local instance unless
    RAY_ADDRESS names one; "auto": the cluster this node belongs to); see docs/executors.md. The waivers
    file `waivers` (default: waivers.yaml in the first directory of `paths`, when there is one) is loaded
    and recorded in the evidence (`Evidence.waivers`) for the gate; it changes no result. `params`
    ({NAME: VALUE}, `--param NAME=VALUE`) are the contract parameters (harness.parameters): each must be
    declared by a selected contract, a path must exist; the evidence records each with its digests.

    Raises InvalidInput before anything runs, EvidenceNotWritten when the evidence could not be
    published; Ctrl-C (or SIGTERM) during the run returns the evidence so far with `complete` False,
    and before the run propagates as KeyboardInterrupt."""
    observer = observer or Observer()
    command = list(command) or default_command(paths)
    if jobs < 1:
        raise InvalidInput(f"harness verify: -j {jobs}: must be at least 1 (-j 1 runs the falsifiers one at a time)")
    if rerun < 0:
        raise InvalidInput(
            f"harness verify: --rerun {rerun}: must be at least 0 (--rerun 2 runs a failing falsifier up to 2 more times)"
        )
    _check_executor(executor, address, jobs)
    if shard is not None:
        from harness.sharding import ShardSpecError, parse_shard

        try:
            parse_shard(f"{shard[0]}/{shard[1]}")
        except ShardSpecError as exc:
            raise InvalidInput(f"harness verify: {exc}") from None
    if jobs > 1 and importlib.util.find_spec("xdist") is None:
        raise InvalidInput("harness verify: -j needs pytest-xdist, which is not installed: pip install pytest-xdist")
    validation = validated(paths, "verify")
    recorded_waivers = _waivers(paths, waivers)
    contracts = list(validation.contracts)
    files = list(validation.resolved)

    selected: dict[Key, tuple[Contract, Falsifier]] = {
        (c.id, f.id): (c, f) for c in contracts for f in c.falsifiers if matches_selection(select, c, f)
    }
    if not selected:
        what = f"matches -k {' / '.join(select)}" if select else "is declared"
        check = shlex.join(["harness", "validate", *map(str, paths)])
        raise InvalidInput(f"harness verify: no falsifier {what} in {len(files)} contract file(s); `{check}` counts them")

    contracts, selected = bind_parameters(contracts, selected, params or {}, "verify")
    roots = {cid: Path(root) for cid, root in validation.roots.items()}
    repo_root = roots[contracts[0].id] if contracts else files[0].parent
    commit, dirty = git_state(repo_root)
    # A -k run is recorded as what it is and published apart, so it never replaces the commit's full evidence.
    selection: dict[str, Any] | None = {"k": list(select)} if select else None
    shard_info = None
    if shard is not None:
        from harness.scheduling import recorded_durations
        from harness.sharding import shard as plan_shard

        shard_plan = plan_shard(list(selected.values()), shard[0], shard[1], recorded_durations(out, full_only=True), contracts)
        selected = {k: selected[k] for k in shard_plan.owns}
        selection = {**(selection or {}), "shard": f"{shard[0]}/{shard[1]}"}
        shard_info = shard_plan.info
    plan = None
    if changed_since is not None:
        plan = _plan(changed_since, out, paths, selected, roots, repo_root)
        selection = dict(selection or {}, changed_since=plan.ref)
        observer.incremental(plan)
    directory = evidence_dir(out, commit, selection) if out is not None else None
    if directory is not None:
        # Checked before anything runs: finding out after a long run that the evidence has nowhere to go wastes it.
        unwritable = _unwritable(directory)
        if unwritable:
            raise InvalidInput(f"harness verify: --out {out}: {unwritable}; choose another --out DIR, one you can write to")
    remote = _connect(executor, address, repo_root)
    executor_facts = remote.facts() if remote is not None else {"name": "local"}
    # Read before this run's starting set replaces the commit's last evidence, which holds them.
    durations = recorded_durations_for(out, jobs)
    started_at, t0 = now_iso(), time.monotonic()
    planned = [c for c in contracts if any((c.id, f.id) in selected for f in c.falsifiers)]

    def skeleton(environment: dict[str, Any]) -> Evidence:
        return make_evidence(
            planned, {}, commit=commit, dirty=dirty, complete=False, started_at=started_at, finished_at=now_iso(),
            duration_s=time.monotonic() - t0, command=command, environment=environment | {"executor": executor_facts},
            selection=selection, keep_empty=True, shard=shard_info, waivers=recorded_waivers,
        )

    # Importing torch for the environment facts takes seconds; do it while the falsifiers run.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool, _closing(remote):
        environment = pool.submit(collect_environment)
        recorder = None
        if directory is not None:
            recorder = _Recorder(directory, skeleton, environment, observer)
            try:
                recorder.start()
            except OSError as exc:
                raise InvalidInput(
                    f"harness verify: --out {out}: cannot write {exc.filename or directory}: {exc.strerror or exc}; "
                    "nothing was run; choose another --out DIR, one you can write to"
                ) from exc
        # --changed-since: the carried results are journaled like any other (a killed run reads them
        # back), and only the falsifiers to run again are compiled and run.
        to_run, run_contracts, run_files = selected, contracts, files
        if plan is not None:
            to_run, run_contracts, run_files = _narrowed(plan, selected, contracts, roots, recorder)
        try:
            # Only the contracts with a selected falsifier are handed to pytest: -k ONE-ID among 10,000
            # contracts pickles (and unpickles, in every worker) one.
            results, interrupted = _run(
                run_files, _owned(run_contracts, to_run), roots, repo_root, to_run, select, jobs, observer, rerun,
                recorder.record if recorder else None, [remote] if remote is not None else [], durations=durations,
            )
        finally:
            if recorder is not None:
                recorder.close()
        if plan is not None:
            results = {**plan.carried, **results}
        if params:
            results = _artifacts_unchanged(contracts, results)
        evidence = make_evidence(
            contracts,
            results,
            commit=commit,
            dirty=dirty,
            complete=not interrupted,
            started_at=started_at,
            finished_at=now_iso(),
            duration_s=time.monotonic() - t0,
            command=command,
            environment=environment.result() | {"executor": executor_facts},
            selection=selection,
            shard=shard_info,
            waivers=recorded_waivers,
        )
    if directory is not None:
        _publish(evidence, directory, command)
    return evidence


def _waivers(paths: Sequence[str | os.PathLike[str]], given: str | os.PathLike[str] | None) -> tuple[Any, ...]:
    """The waivers to record: the file `given` (which must exist), else the contracts directory's
    waivers.yaml when there is one; InvalidInput (nothing run) naming FILE:LINE for a bad file."""
    from harness import waivers

    path = Path(given) if given is not None else waivers.default_waivers_file(paths)
    if path is None:
        return ()
    try:
        return waivers.load_waivers(path)
    except waivers.WaiversError as exc:
        raise InvalidInput(
            f"harness: {len(exc.problems)} problem(s) in the waivers file {path}; nothing was run. Fix them "
            f"(see {waivers.GUIDE}), then run harness verify again.",
            [str(p) for p in exc.problems],
        ) from None
def bind_parameters(
    contracts: list[Contract], selected: dict[Key, tuple[Contract, Falsifier]], params: Mapping[str, str], command: str
) -> tuple[list[Contract], dict[Key, tuple[Contract, Falsifier]]]:
    """The contracts (and the selected pairs) with `params` bound to the selected contracts that declare them
    (harness.parameters.bind: digests taken here, in the controller, once); InvalidInput naming the --param."""
    from harness.parameters import ParameterError, bind

    if not params:
        return contracts, selected  # a falsifier needing one is not_run, naming the --param (harness.execute)
    chosen = {cid for cid, _ in selected}
    try:
        bound = {c.id: c for c in bind([c for c in contracts if c.id in chosen], params)}
    except ParameterError as exc:
        raise InvalidInput(f"harness {command}: {exc}; nothing was run") from None
    contracts = [bound.get(c.id, c) for c in contracts]
    by_id = {c.id: c for c in contracts}
    return contracts, {key: (by_id[key[0]], f) for key, (_, f) in selected.items()}


def _artifacts_unchanged(contracts: Sequence[Contract], results: dict[Key, FalsifierResult]) -> dict[Key, FalsifierResult]:
    """`results`, with every pass of a contract whose parameters' digests changed while it ran turned into an
    error: the evidence names the artifact it recorded at the start, so a pass over another one proves nothing."""
    from harness.parameters import changed

    for contract in contracts:
        why = changed(contract)
        if why is None:
            continue
        for key, result in results.items():
            if key[0] == contract.id and result.outcome is Outcome.PASSED:
                results[key] = replace(result, outcome=Outcome.ERROR, reason=f"{why}; run it again on an artifact nothing writes to")
    return results


def _check_executor(executor: str, address: str | None, jobs: int) -> None:
    """The executor options, refused before anything is validated or run."""
    if executor not in EXECUTORS:
        raise InvalidInput(f"harness verify: --executor {executor}: unknown executor; choose one of {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise InvalidInput(f"harness verify: --address {address}: only --executor ray takes an address (add --executor ray)")
    if executor == "ray" and jobs != 1:
        raise InvalidInput(
            f"harness verify: -j {jobs} with --executor ray: Ray schedules the falsifiers across the cluster; drop -j"
        )


def _connect(executor: str, address: str | None, repo_root: Path) -> "RayExecutor | None":
    """The connected remote executor, or None for a local run; InvalidInput (nothing run) when it cannot be had."""
    if executor != "ray":
        return None
    from harness.ray_executor import ExecutorUnavailable, RayExecutor

    remote = RayExecutor(address)
    try:
        remote.connect(repo_root)
    except ExecutorUnavailable as exc:
        remote.close()
        raise InvalidInput(str(exc)) from exc
    return remote


@contextlib.contextmanager
def _closing(remote: "RayExecutor | None") -> Any:
    """Whatever happens in the run, the remote executor's outstanding tasks are cancelled and it disconnects."""
    try:
        yield
    finally:
        if remote is not None:
            remote.close()


def _run(
    files: list[Path],
    contracts: list[Contract],
    roots: dict[str, Path],
    repo_root: Path,
    selected: dict[Key, tuple[Contract, Falsifier]],
    select: Sequence[str],
    jobs: int,
    observer: Observer,
    rerun: int = 0,
    record: Callable[[FalsifierResult], None] | None = None,
    plugins: Sequence[object] = (),
    durations: dict[Key, float] | None = None,
) -> tuple[dict[Key, FalsifierResult], bool]:
    """Run the selected falsifiers; (results by key, interrupted). An uninterrupted run has a result
    for every selected falsifier; `record` gets each one as it arrives."""
    observer.started(len(selected))
    if not selected:  # everything carried over (--changed-since), or a shard that owns nothing
        observer.finished()
        return {}, False
    collector = ResultCollector(selected, observer, record)
    interrupted = False
    pytest_output = ""
    try:
        with sigterm_as_interrupt():
            status, pytest_output = run_pytest(
                files, contracts, roots, repo_root, select, jobs, collector, rerun, plugins, durations
            )
        interrupted = status == int(pytest.ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        interrupted = True
        status = int(pytest.ExitCode.INTERRUPTED)
    finally:
        observer.finished()

    results = dict(collector.results)
    if not interrupted:
        # Completeness: a selected falsifier without a result is an error, never silently dropped.
        for key, (contract, falsifier) in selected.items():
            if key not in results:
                tail = pytest_output.strip()[-1500:]
                collector.add(error_result(falsifier, contract, f"no result recorded (pytest exited with status {status}): {tail}"))
    results = dict(collector.results)
    if status in (int(pytest.ExitCode.INTERNAL_ERROR), int(pytest.ExitCode.USAGE_ERROR)):
        for line in pytest_output.splitlines():
            observer.message(line)
    return results, interrupted


def _plan(
    changed_since: str,
    out: str | os.PathLike[str] | None,
    paths: Sequence[str | os.PathLike[str]],
    selected: dict[Key, tuple[Contract, Falsifier]],
    roots: dict[str, Path],
    repo_root: Path,
) -> "Plan":
    """--changed-since REF's plan; InvalidInput (exit 2) when REF or its evidence cannot be used."""
    from harness import incremental

    if out is None:
        raise InvalidInput("harness verify: --changed-since needs --out DIR: REF's evidence is read from DIR/<sha>/")
    try:
        sha = incremental.resolve_ref(repo_root, changed_since)
        reference = incremental.reference_evidence(out, sha, [*default_command(paths), "--out", str(out)])
    except incremental.IncrementalError as exc:
        raise InvalidInput(str(exc)) from None
    return incremental.plan(selected, roots, reference)


def _narrowed(
    plan: "Plan",
    selected: dict[Key, tuple[Contract, Falsifier]],
    contracts: list[Contract],
    roots: dict[str, Path],
    recorder: "_Recorder | None",
) -> tuple[dict[Key, tuple[Contract, Falsifier]], list[Contract], list[Path]]:
    """(the falsifiers to run, their contracts holding only them, those contracts' files); the carried results recorded."""
    if recorder is not None:
        for result in plan.carried.values():
            recorder.record(result)
    to_run = {key: pair for key, pair in selected.items() if key in plan.run}
    # Only the falsifiers to run are compiled into items; their contracts keep every invariant (guards).
    subset = [
        dataclasses.replace(c, falsifiers=tuple(f for f in c.falsifiers if (c.id, f.id) in to_run))
        for c in contracts if any((c.id, f.id) in to_run for f in c.falsifiers)
    ]
    return to_run, subset, sorted({(Path(roots[c.id]) / c.path).resolve() for c in subset})


def _owned(contracts: Sequence[Contract], selected: dict[Key, tuple[Contract, Falsifier]]) -> list[Contract]:
    """The contracts with only the selected falsifiers: what a shard compiles to items, so the others
    never run there (not even deselected: -k patterns are globs, not exact ids)."""
    return [
        replace(c, falsifiers=tuple(f for f in c.falsifiers if (c.id, f.id) in selected))
        for c in contracts
        if any((c.id, f.id) in selected for f in c.falsifiers)
    ]


def recorded_durations_for(out: str | os.PathLike[str] | None, jobs: int) -> dict[Key, float] | None:
    """The durations a -j run orders its falsifiers by (the newest complete evidence under `out`); None serially."""
    if jobs <= 1:
        return None
    from harness.scheduling import recorded_durations

    return recorded_durations(out)


def _publish(evidence: Evidence, directory: Path, command: Sequence[str]) -> None:
    try:
        # All three files or none: a later reader never finds a partial set presented as complete. The
        # journal goes with the running set it belonged to; other commands' files (teeth) stay.
        publish(directory, evidence_files(evidence), keep=KEPT_FILES)
    except OSError as exc:
        # E.g. the disk filled up or DIR was removed during the run. Not bad input: something did run.
        rerun = f"; then re-run `{shlex.join(command)}`" if command else ""
        raise EvidenceNotWritten(
            f"harness verify: the falsifiers ran, but no evidence was written: {exc.filename or directory}: "
            f"{exc.strerror or exc} ({directory} holds the results recorded as they arrived, marked incomplete){rerun}",
            evidence,
        ) from exc
