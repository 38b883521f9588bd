"""Run one falsifier in isolation and classify what happened as a FalsifierResult.

Every binding runs in a child process (harness.isolation) in its own process group, so a falsifier that hangs, calls
`os._exit`, or dies of a signal is recorded as `error` and cannot take the harness (or any other
falsifier's result) down with it. The parent owns the timeout and kills the whole group.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from harness import clock, fork_server, guard_coverage, imported_files, parameters, project_config, replay_record, requirements
# HARNESS_PARENT stays importable from here for verify_cli.
from harness.channel import InvalidRecord, open_channel
from harness.isolation import HARNESS_PARENT, ProcessRun, child_env, describe_exit, exit_of, run_isolated
from harness.project_config import ProjectConfigError
from harness.junit_count import JunitError, count_junit
from harness.model import Binding, BindingKind, Contract, Falsifier, FalsifierResult, Outcome, Requirement

OUTPUT_TAIL = 2000


def _tail(text: str, limit: int = OUTPUT_TAIL) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _ended(run: ProcessRun) -> str:
    end = exit_of(run)
    return f"the child was killed by signal {end.signal}" if end.how == "signal" else f"the child exited with status {end.status}"


def _with_output(reason: str, output: str) -> str:
    tail = _tail(output, 500)
    return f"{reason}; last output: {tail}" if tail else reason


# ---------------------------------------------------------------------------------------- requirements


def unmet_requirement(req: Requirement) -> str | None:
    """The reason a falsifier cannot run here, or None when every requirement is met (harness.requirements)."""
    return requirements.unmet(req)


# ---------------------------------------------------------------------------------------- bindings


@dataclass(frozen=True)
class _Verdict:
    outcome: Outcome
    reason: str
    counterexample: str | None = None
    tests_matched: int | None = None
    tests_executed: int | None = None
    # pytest bindings: (node id, failure text) of each failed test, for harness.replay_record.
    failures: tuple[tuple[str, str], ...] = ()
    tests_skipped: int | None = None
    tests_failed: int | None = None
    # What the child measured of the guards (harness.guard_coverage); absent when it measured nothing.
    guards: dict[str, Any] | None = None
    # The repository files the child reported it imported (harness.imported_files); None: not measured.
    imported: list[str] | None = None


def _guard_data(data: dict[str, Any]) -> dict[str, Any] | None:
    """The guard measurement a child reported ({guard: [line, ...]}), or None when absent or malformed."""
    lines, unresolved = data.get("guard_lines"), data.get("guards_unresolved") or {}
    if not isinstance(lines, dict) or not isinstance(unresolved, dict):
        return None
    if not all(isinstance(v, list) and all(type(n) is int for n in v) for v in lines.values()):
        return None
    return {"guard_lines": lines, "guards_unresolved": {str(k): str(v) for k, v in unresolved.items()}}


def fork_preload(falsifier: Falsifier, repo_root: Path) -> tuple[str, ...] | None:
    """The preload list of the fork server the falsifier's child is forked from (harness.fork_server), or None
    for a fresh process: command bindings, falsifiers that require CUDA (a fork must never inherit a CUDA
    context, and their server would have to import torch without touching the device), a platform without
    fork, or HARNESS_FORK_SERVER=0. Raises ProjectConfigError for a malformed [tool.harness]."""
    if falsifier.binding.kind in (BindingKind.COMMAND, BindingKind.UNBOUND) or falsifier.requires.cuda or not fork_server.enabled():
        return None
    return project_config.load(repo_root).preload


def _start(
    argv: list[str], repo_root: Path, timeout_s: float, env: dict[str, str], *, pass_fds: tuple[int, ...],
    on_started: Any, fork: tuple[str, ...] | None,
) -> ProcessRun:
    """The child through the fork server when `fork` names its preload list and the server takes it, else fresh."""
    if fork is not None:
        run = fork_server.run(argv, repo_root, timeout_s, env, pass_fds=pass_fds, on_started=on_started, preload=fork)
        if run is not None:
            return run
    return run_isolated(argv, repo_root, timeout_s, env, pass_fds=pass_fds, on_started=on_started)


def _env(repo_root: Path, params: dict[str, str]) -> dict[str, str]:
    """child_env with exactly this run's contract parameters: a HARNESS_PARAM_* left in the harness's own
    environment must never reach a falsifier as an artifact the evidence does not record."""
    env = {
        k: v for k, v in child_env(repo_root).items()
        if not k.startswith(parameters.ENV_PREFIX) and k != parameters.NAMES_ENV
    }
    return env | params


def _run_python(
    binding: Binding, repo_root: Path, timeout_s: float, guards: tuple[str, ...] = (), fork: tuple[str, ...] | None = None,
    params: dict[str, str] | None = None,
) -> _Verdict:
    with tempfile.TemporaryDirectory(prefix="harness-child-") as scratch, open_channel(scratch) as results:
        env = guard_coverage.with_guards(_env(repo_root, params or {}), guards) | results.env()
        run = _start(
            [sys.executable, "-m", "harness.child", str(binding.target), str(results.path)],
            repo_root, timeout_s, env, pass_fds=results.pass_fds, on_started=results.close, fork=fork,
        )
        if run.timed_out or run.lost is not None:
            return _Verdict(Outcome.ERROR, _with_output(describe_exit(run, timeout_s), run.output))
        if not results.path.exists():
            # os._exit, a signal, an interpreter that never started: the exit says what happened.
            return _Verdict(Outcome.ERROR, _with_output(describe_exit(run, timeout_s), run.output))
        try:
            data = results.receive(run.returncode)
        except InvalidRecord as exc:
            return _Verdict(Outcome.ERROR, _with_output(f"{exc}; {_ended(run)}", run.output))
    return _Verdict(
        Outcome(data["outcome"]), data["reason"], data.get("counterexample"), guards=_guard_data(data),
        imported=data.get("imported_files"),
    )


def _pytest_argv(binding: Binding) -> list[str]:
    argv = [sys.executable, "-m", "pytest", "-p", "harness.pytest_counter", "-p", "harness.replay_pytest", "-p", "no:cacheprovider"]
    # The bound tests must not re-enter the harness by collecting contract files themselves.
    argv += ["-p", "no:harness", "-p", "no:harness.plugin", "-q", "-rN", "--no-header"]
    if binding.k is not None:
        argv += ["-k", binding.k, *binding.paths]
    else:
        argv.append(str(binding.target))
    return argv


# pytest's exit statuses of a session that ran to its end (OK, TESTS_FAILED, NO_TESTS_COLLECTED).
_NORMAL_PYTEST_EXITS = (0, 1, 5)


def _skips(counts: dict[str, Any]) -> str:
    reasons = [f"{s['nodeid']}: {s['reason']}" for s in counts.get("skips", [])]
    shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    return f" ({shown})" if shown else ""


def _run_pytest(
    binding: Binding, repo_root: Path, timeout_s: float, guards: tuple[str, ...] = (), fork: tuple[str, ...] | None = None,
    params: dict[str, str] | None = None,
) -> _Verdict:
    with tempfile.TemporaryDirectory(prefix="harness-pytest-") as scratch, open_channel(scratch) as results:
        env = guard_coverage.with_guards(_env(repo_root, params or {}), guards) | results.env()
        env["HARNESS_COUNT_FILE"] = str(results.path)
        run = _start(
            _pytest_argv(binding), repo_root, timeout_s, env, pass_fds=results.pass_fds, on_started=results.close,
            fork=fork,
        )
        if run.timed_out or run.lost is not None or not results.path.exists():
            return _Verdict(Outcome.ERROR, _with_output(describe_exit(run, timeout_s, "pytest exited"), run.output))
        try:
            counts = results.receive(run.returncode)
        except InvalidRecord as exc:
            return _Verdict(Outcome.ERROR, _with_output(f"{exc}; {_ended(run)}", run.output))
    matched = int(counts["collected"])
    passed, failed, skipped = int(counts["passed"]), int(counts["failed"]), int(counts["skipped"])
    executed = passed + failed
    base = {"tests_matched": matched, "tests_executed": executed, "tests_skipped": skipped, "tests_failed": failed,
            "guards": _guard_data(counts), "imported": counts.get("imported_files")}
    never_ran = matched - passed - failed - skipped - int(counts["errors"])
    if counts["collect_errors"]:
        return _Verdict(Outcome.ERROR, "collection failed: " + _tail("\n".join(counts["collect_errors"]), 1500), **base)
    if matched < binding.min_tests:
        return _Verdict(
            Outcome.ERROR,
            f"matched {matched} tests, fewer than min_tests {binding.min_tests}; fix the binding's node id or -k",
            **base,
        )
    if failed:
        # A failure is a counterexample even when the session was cut short after it.
        failures = "\n\n".join(f"{f['nodeid']}\n{f['text']}" for f in counts["failures"] if "when" not in f)
        return _Verdict(
            Outcome.FALSIFIED, f"{failed} of {matched} matched tests failed",
            _tail(failures, 8000) or "a bound test failed without a failure text",
            **base,
            failures=tuple((f["nodeid"], f["text"]) for f in counts["failures"] if "when" not in f),
        )
    status = counts["exitstatus"]
    if counts["interrupted"] or counts["stopped"]:
        why = counts["interrupted"] or counts["stopped"]
        return _Verdict(
            Outcome.ERROR,
            f"the pytest session was interrupted ({why}) with exit status {status}; {max(never_ran, 0)} of {matched} "
            "matched tests never ran: a binding passes only when its session runs to the end",
            **base,
        )
    if counts["errors"]:
        failures = "\n\n".join(f"{f['nodeid']} ({f.get('when')})\n{f['text']}" for f in counts["failures"])
        return _Verdict(Outcome.ERROR, f"{counts['errors']} tests errored outside the test body: " + _tail(failures, 1500), **base)
    if status not in _NORMAL_PYTEST_EXITS:
        return _Verdict(Outcome.ERROR, _with_output(f"the pytest session ended with exit status {status}", run.output), **base)
    if never_ran > 0:
        return _Verdict(
            Outcome.ERROR, f"{never_ran} of {matched} matched tests never ran (neither passed, failed nor skipped)", **base
        )
    if executed == 0:
        return _Verdict(Outcome.ERROR, f"all {matched} matched tests were skipped; none executed{_skips(counts)}", **base)
    if executed < binding.min_tests:
        return _Verdict(
            Outcome.ERROR, f"executed {executed} tests, fewer than min_tests {binding.min_tests}", **base
        )
    return _Verdict(Outcome.PASSED, f"{passed} passed, {skipped} skipped{_skips(counts)}", **base)


# Counting gets what is left of the falsifier's timeout, but at least this long to start an interpreter.
MIN_COUNT_S = 2.0
# -I: the repository under test, its PYTHONPATH or a module of its own named `harness` must not
# change how its output is counted; the child imports this checkout's harness.count and nothing else.
_COUNT_CHILD = "import sys; sys.path.insert(0, sys.argv.pop(1)); from harness.count import main; sys.exit(main(sys.argv[1:]))"


def _count(pattern: str, output: str, repo_root: Path, timeout_s: float) -> tuple[int | None, str | None]:
    """(count, None) or (None, why not): the count_pattern matched over `output` in a child under `timeout_s`.

    Never in this process: a pattern that backtracks catastrophically on the output would hang
    the harness past every deadline and leave no evidence at all.
    """
    with tempfile.TemporaryDirectory(prefix="harness-count-") as scratch:
        output_file, result_file = Path(scratch) / "output.txt", Path(scratch) / "count.json"
        output_file.write_text(output, encoding="utf-8", errors="replace")
        run = run_isolated(
            [sys.executable, "-I", "-c", _COUNT_CHILD, HARNESS_PARENT, pattern, str(output_file), str(result_file)],
            repo_root, timeout_s, child_env(repo_root),
        )
        if run.timed_out:
            return None, (
                f"count_pattern {pattern!r} did not finish matching the command's output within the falsifier's "
                f"timeout ({timeout_s:g}s left of timeout_s); simplify the pattern (nested or overlapping "
                "repetition such as (a|a)* backtracks exponentially)"
            )
        if not result_file.exists():
            return None, _with_output(f"counting with count_pattern {pattern!r} {describe_exit(run, timeout_s)}", run.output)
        result = json.loads(result_file.read_text(encoding="utf-8"))
    if "error" in result:
        return None, f"{result['error']}; fix count_pattern so its group captures only the number of tests"
    return int(result["count"]), None


def _junit_path(binding: Binding, repo_root: Path) -> tuple[Path | None, str | None]:
    """(the file, None) or (None, why not): binding.junit inside the repository, any stale copy removed.

    validate refuses a path outside the repository too; verify checks again because it runs falsifiers
    from contracts validate may never have seen, and removing the old file is what guarantees the one
    counted was written by this run."""
    relative = str(binding.junit)
    root = repo_root.resolve()
    path = root / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(root):
        return None, f"junit {relative!r} leads outside the repository root {root}; write a path inside it"
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            return None, f"junit {relative!r} is a directory or special file; name the XML file the command writes"
    except OSError as exc:
        return None, f"cannot remove the stale junit file {relative!r} before the run: {exc.strerror}"
    return path, None


def _junit_verdict(binding: Binding, run: ProcessRun, path: Path) -> _Verdict:
    relative = binding.junit
    try:
        counts = count_junit(path)
    except JunitError as exc:
        if run.returncode != 0:
            return _Verdict(
                Outcome.FALSIFIED, f"exited with status {run.returncode} (junit {relative}: {exc})",
                _tail(run.output) or f"exited with status {run.returncode} and printed nothing",
            )
        return _Verdict(Outcome.ERROR, _with_output(f"junit {relative}: {exc}", run.output))
    base = {
        "tests_matched": counts.matched, "tests_executed": counts.executed,
        "tests_skipped": counts.skipped, "tests_failed": counts.failed,
    }
    skips = f" ({'; '.join(counts.skips[:5])})" if counts.skips else ""
    if counts.failed:
        more = f"\n... and {counts.failed - len(counts.failures)} more" if counts.failed > len(counts.failures) else ""
        status = f"; exited with status {run.returncode}" if run.returncode else "; the command still exited 0"
        return _Verdict(
            Outcome.FALSIFIED, f"{counts.failed} of {counts.matched} tests in junit {relative} failed{status}",
            _tail("\n\n".join(counts.failures) + more, 8000), **base,
        )
    if run.returncode != 0:
        return _Verdict(
            Outcome.FALSIFIED, f"exited with status {run.returncode}",
            _tail(run.output) or f"exited with status {run.returncode} and printed nothing", **base,
        )
    if counts.executed == 0:
        what = f"all {counts.matched} tests were skipped" if counts.matched else "it lists no test"
        return _Verdict(Outcome.ERROR, f"junit {relative}: {what}; none executed{skips}", **base)
    if counts.executed < binding.min_tests:
        return _Verdict(
            Outcome.ERROR, f"junit {relative}: executed {counts.executed} tests, fewer than min_tests {binding.min_tests}", **base
        )
    return _Verdict(
        Outcome.PASSED, f"exited with status 0; junit {relative}: {counts.passed} passed, {counts.skipped} skipped{skips}", **base
    )


def _run_command(
    binding: Binding, repo_root: Path, timeout_s: float, guards: tuple[str, ...] = (), fork: tuple[str, ...] | None = None,
    params: dict[str, str] | None = None,
) -> _Verdict:
    # `guards` is not measured here: the command may be any program (shown as n/a); `fork` never applies.
    argv = list(binding.argv)
    if binding.junit is not None and binding.count_pattern is not None:
        return _Verdict(Outcome.ERROR, "junit and count_pattern both count the tests; keep one")
    if binding.count_pattern is None and binding.junit is None and binding.min_tests > 1:
        # validate refuses this too; without a count there is nothing to hold min_tests against.
        return _Verdict(
            Outcome.ERROR,
            f"min_tests {binding.min_tests} needs a count_pattern or junit to count the command's tests; add one, e.g. '(\\d+) passed'",
        )
    deadline = time.monotonic() + timeout_s
    steps = binding.steps
    if len(steps) == 1:
        return _run_step(binding, argv, repo_root, timeout_s, deadline, params)
    # An all-or-nothing chain (`A && B` without a shell): each step under what is left of the deadline,
    # each counted on its own, so a second filter that matches nothing is an error even when the first
    # matched; the first step that does not pass decides, and the steps after it never run.
    totals = {"tests_matched": 0, "tests_executed": 0, "tests_skipped": 0, "tests_failed": 0}
    reasons = []
    for n, step in enumerate(steps, 1):
        left = deadline - time.monotonic()
        which = f"step {n} of {len(steps)} ({' '.join(step)})"
        if left <= 0:
            return _Verdict(Outcome.ERROR, f"{which} never started: timed out after {timeout_s:g}s (timeout_s)")
        verdict = _run_step(binding, list(step), repo_root, left, deadline, params)
        if verdict.outcome is not Outcome.PASSED:
            return replace(verdict, reason=f"{which}: {verdict.reason}")
        for key in totals:
            value = getattr(verdict, key)
            totals[key] = None if value is None or totals[key] is None else totals[key] + value
        reasons.append(f"step {n}: {verdict.reason}")
    return _Verdict(Outcome.PASSED, f"all {len(steps)} steps passed ({'; '.join(reasons)})", **totals)


def _run_unbound(
    binding: Binding, repo_root: Path, timeout_s: float, guards: tuple[str, ...] = (), fork: tuple[str, ...] | None = None,
    params: dict[str, str] | None = None,
) -> _Verdict:
    # Nothing to run is never a pass: the text is shown so the user sees what the claim was.
    return _Verdict(
        Outcome.ERROR,
        f"unbound: no runnable test is bound ({' '.join(str(binding.target).split())!r}); bind a python, pytest "
        "or command test, or defer it with deferred: {reason, until}",
    )


def _run_step(
    binding: Binding, argv: list[str], repo_root: Path, timeout_s: float, deadline: float, params: dict[str, str] | None = None
) -> _Verdict:
    """One command of a command binding, counted by its count_pattern or junit file; `params` are the
    contract parameters' HARNESS_PARAM_* variables."""
    junit: Path | None = None
    if binding.junit is not None:
        junit, why_not = _junit_path(binding, repo_root)
        if why_not is not None:
            return _Verdict(Outcome.ERROR, why_not)
    try:
        run = run_isolated(argv, repo_root, timeout_s, _env(repo_root, params or {}))
    except FileNotFoundError:
        return _Verdict(Outcome.ERROR, f"command not found: {argv[0]}; install it or fix binding.command")
    except PermissionError:
        return _Verdict(Outcome.ERROR, f"command not executable: {argv[0]}; chmod +x it or fix binding.command")
    if run.timed_out or (run.returncode is not None and run.returncode < 0):
        return _Verdict(Outcome.ERROR, _with_output(describe_exit(run, timeout_s), run.output))
    if junit is not None:
        return _junit_verdict(binding, run, junit)
    matched: int | None = None
    why_uncounted: str | None = None
    if binding.count_pattern is not None:
        left = max(deadline - time.monotonic(), MIN_COUNT_S)
        matched, why_uncounted = _count(binding.count_pattern, run.output, repo_root, left)
    if run.returncode != 0:
        return _Verdict(
            Outcome.FALSIFIED,
            f"exited with status {run.returncode}",
            _tail(run.output) or f"exited with status {run.returncode} and printed nothing",
            matched,
            matched,
        )
    if why_uncounted is not None:
        return _Verdict(Outcome.ERROR, why_uncounted)
    if matched is not None and matched < binding.min_tests:
        return _Verdict(
            Outcome.ERROR,
            f"count_pattern {binding.count_pattern!r} counted {matched} tests, fewer than min_tests {binding.min_tests}",
            None,
            matched,
            matched,
        )
    return _Verdict(Outcome.PASSED, "exited with status 0", None, matched, matched)


_RUNNERS = {
    BindingKind.PYTHON: _run_python, BindingKind.PYTEST: _run_pytest, BindingKind.COMMAND: _run_command,
    BindingKind.UNBOUND: _run_unbound,
}


# The math libraries' thread pools (torch's intra-op pool reads these at its first parallel region in the child).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_share(concurrent: int | None = None, environ: Any = None, cores: int | None = None) -> dict[str, str]:
    """The thread variables for a child when `concurrent` falsifiers run side by side (default: this process's
    pytest-xdist worker count, as under `harness verify -j N`): each gets cores // concurrent threads, at least
    one, so `-j 2` on 2 cores runs two busy threads, not four fighting over two cores. Nothing for a run of one
    at a time (the libraries' default: every core), or when the environment already sets any of them."""
    environ = os.environ if environ is None else environ
    if concurrent is None:
        try:
            concurrent = int(environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
        except ValueError:
            concurrent = 1
    if concurrent <= 1 or any(environ.get(name) for name in THREAD_ENV):
        return {}
    share = str(max(1, (cores or os.cpu_count() or 1) // concurrent))
    return dict.fromkeys(THREAD_ENV, share)


def run_falsifier(
    falsifier: Falsifier, contract: Contract, repo_root: str | os.PathLike[str], *, today: date | None = None,
    concurrent: int | None = None,
) -> FalsifierResult:
    """Decide and run one falsifier; never raises for anything the falsifier does (Ctrl-C excepted).
    `concurrent`: how many falsifiers run at the same time as this one, for thread_share (teeth's -j)."""
    start = time.monotonic()
    guards = guard_coverage.guards_of(falsifier.attacks, contract.invariants)
    verdict = _decide(falsifier, Path(repo_root), today or clock.today(), guards, contract, thread_share(concurrent))
    guards_executed, guard_lines, vacuous = _vacuity(falsifier, verdict, guards)
    if vacuous is not None:
        verdict = replace(verdict, outcome=Outcome.VACUOUS, reason=vacuous, counterexample=None)
    return FalsifierResult(
        id=falsifier.id,
        contract_id=contract.id,
        invariant=tuple(falsifier.attacks),
        outcome=verdict.outcome,
        reason=verdict.reason,
        duration_s=round(time.monotonic() - start, 3),
        binding=falsifier.binding,
        tests_matched=verdict.tests_matched,
        tests_executed=verdict.tests_executed,
        counterexample=verdict.counterexample,
        replay=replay_record.record(falsifier.binding, verdict.outcome, verdict.counterexample, verdict.failures),
        tests_skipped=verdict.tests_skipped,
        tests_failed=verdict.tests_failed,
        guards_executed=guards_executed,
        guard_lines=guard_lines,
        modules=imported_files.hash_files(Path(repo_root), verdict.imported),
    )


def error_result(falsifier: Falsifier, contract: Contract, reason: str, duration_s: float = 0.0) -> FalsifierResult:
    """The `error` result of a falsifier that produced none of its own: the harness around it broke (a
    pytest session that ended early, a Ray task that was lost); `reason` says what, one copy for all."""
    return FalsifierResult(
        id=falsifier.id,
        contract_id=contract.id,
        invariant=tuple(falsifier.attacks),
        outcome=Outcome.ERROR,
        reason=reason,
        duration_s=round(duration_s, 3),
        binding=falsifier.binding,
    )


def _vacuity(
    falsifier: Falsifier, verdict: _Verdict, guards: tuple[str, ...]
) -> tuple[tuple[str, ...] | None, dict[str, tuple[int, ...]] | None, str | None]:
    """(guards_executed, guard_lines, the reason a pass is vacuous or None) for a python or pytest binding."""
    if not guards or falsifier.binding.kind in (BindingKind.COMMAND, BindingKind.UNBOUND):
        return None, None, None
    if verdict.guards is None:
        if verdict.outcome is not Outcome.PASSED:
            return None, None, None  # it never got as far as reporting: the outcome says why
        # A pass that reports no measurement of the guards it was asked to measure proves nothing either.
        measured: dict[str, Any] = {
            "guard_lines": {g: [] for g in guards},
            "guards_unresolved": {g: "not measured: the falsifier's child reported no guard coverage" for g in guards},
        }
    else:
        measured = verdict.guards
    lines = {g: tuple(sorted(measured["guard_lines"].get(g, ()))) for g in guards}
    reason = guard_coverage.judge(verdict.outcome.value, guards, lines, measured["guards_unresolved"])
    return guard_coverage.executed(guards, lines), lines, reason


def _decide(
    falsifier: Falsifier, repo_root: Path, today: date, guards: tuple[str, ...] = (), contract: Contract | None = None,
    threads: dict[str, str] | None = None,
) -> _Verdict:
    if falsifier.deferred is not None:
        until = falsifier.deferred.until
        if today > until:
            return _Verdict(
                Outcome.ERROR,
                f"deferral expired on {until.isoformat()} ({falsifier.deferred.reason}); "
                "make the falsifier runnable or extend deferred.until",
            )
        return _Verdict(Outcome.DEFERRED, f"deferred until {until.isoformat()}: {falsifier.deferred.reason}")
    absent = parameters.missing(falsifier, contract) if contract is not None else []
    if absent:
        # Never run against nothing (or whatever a default would find): the artifact is the point.
        return _Verdict(Outcome.NOT_RUN, parameters.not_run_reason(contract, absent))  # type: ignore[arg-type]
    try:
        unmet = unmet_requirement(falsifier.requires)
    except requirements.ProbeError as exc:
        return _Verdict(Outcome.ERROR, f"{exc}; fix the probe or the falsifier's requires:")
    if unmet is None:
        unmet = requirements.unmet_gpus(falsifier.gpus)
    if unmet is not None:
        return _Verdict(Outcome.NOT_RUN, unmet)
    try:
        fork = fork_preload(falsifier, repo_root)
    except ProjectConfigError as exc:
        return _Verdict(Outcome.ERROR, f"{exc}; fix it, or run with {fork_server.DISABLE_ENV}=0 to bypass the fork server")
    try:
        # The child's own variables on top of the harness's environment: the contract's parameters, its threads.
        params = (parameters.environment(contract) if contract is not None else {}) | (threads or {})
        return _RUNNERS[falsifier.binding.kind](falsifier.binding, repo_root, falsifier.timeout_s, guards, fork, params)
    except fork_server.PreloadError as exc:
        return _Verdict(
            Outcome.ERROR,
            f"{repo_root / project_config.FILE}: [tool.harness] preload: the fork server {exc}; fix preload, or run "
            f"with {fork_server.DISABLE_ENV}=0 to start every falsifier in a fresh process",
        )
    except OSError as exc:
        return _Verdict(Outcome.ERROR, f"could not start the falsifier: {exc}")
