"""`harness verify PATH... [--out DIR] [-k ID-PATTERN] [-j N] [--strict]`

validate -> compile (pytest plugin) -> run (isolated children) -> record (evidence.json) -> report
(junit.xml, summary.md). Exit status: 0 nothing falsified or in error; 1 something falsified or in
error (or, with --strict, not_run/deferred); 2 invalid input, nothing run; 3 the falsifiers ran but the
evidence could not be written (the previous evidence is left as it was); 130 interrupted (Ctrl-C or
SIGTERM), with the evidence so far written and marked incomplete. A run in which no falsifier ran at
all says so loudly (stderr and summary.md); --strict makes it fail. A closed stdout (`| head -1`) does
not change any of this: printing stops, the evidence is written in full, the status is the run's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib.util
import io
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest

from harness.console import EXIT_INTERRUPTED, emit, sigterm_as_interrupt
from harness.environment import collect_environment, git_state
from harness.escape import terminal
from harness.execute import HARNESS_PARENT
from harness.model import Contract, Falsifier, FalsifierResult, Outcome
from harness.plugin import IDS_PROPERTY, RESULT_PROPERTY, matches_selection, report_properties
from harness.record import build_evidence, evidence_dir, now_iso, publish, result_from_dict
from harness.report import evidence_files, totals_line

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
EXIT_UNRECORDED = 3  # the falsifiers ran, but their evidence could not be written
Key = tuple[str, str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="contract files or directories of them")
    parser.add_argument("--out", default="reports", metavar="DIR", help="evidence directory (default: reports/)")
    parser.add_argument(
        "-k",
        dest="select",
        action="append",
        default=[],
        metavar="ID-PATTERN",
        help="only falsifiers whose id, contract id or invariant id matches this glob or substring (repeatable)",
    )
    parser.add_argument("-j", dest="jobs", type=int, default=1, metavar="N", help="run N falsifiers in parallel (pytest-xdist)")
    parser.add_argument("--strict", action="store_true", help="also fail (exit 1) on not_run and deferred falsifiers")


def register(subparsers: Any) -> None:
    """Add the `verify` subcommand to the harness CLI."""
    parser = subparsers.add_parser(
        "verify",
        help="run every falsifier of the given contracts and write evidence",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> list[str]:
    """The run's command as evidence records it, rebuilt from the parsed arguments."""
    argv = ["harness", "verify", *map(str, args.paths), "--out", str(args.out)]
    for pattern in args.select:
        argv += ["-k", pattern]
    if args.jobs != 1:
        argv += ["-j", str(args.jobs)]
    if args.strict:
        argv.append("--strict")
    return argv


def run(args: argparse.Namespace) -> int:
    """The `func` of the `verify` subparser."""
    command = command_line(args)
    return verify(args.paths, out=args.out, select=args.select, jobs=args.jobs, strict=args.strict, command=command)


def run_verify(argv: Sequence[str]) -> int:
    """`harness verify` with its own argument list (everything after `verify`)."""
    parser = argparse.ArgumentParser(prog="harness verify", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


# ---------------------------------------------------------------------------------------- inputs


def _print_problems(lines: Sequence[str], hint: str | None = None, stream: TextIO | None = None) -> None:
    for line in lines:
        emit(line, stream or sys.stderr)
    if hint:
        emit(hint, sys.stderr)


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


# ---------------------------------------------------------------------------------------- display


class Display:
    """One line per falsifier; on a terminal (not CI) also a live rich progress bar."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.stream = stream
        self.total = total
        self._progress: Any = None
        interactive = stream.isatty() and not os.environ.get("CI")
        if interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("harness verify"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=stream),
                redirect_stdout=False,
                redirect_stderr=False,
                transient=True,
            )
            self._task = self._progress.add_task("verify", total=total)
            self._progress.start()

    def line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(terminal(text), markup=False, highlight=False)
        else:
            emit(text, self.stream)

    def result(self, r: FalsifierResult) -> None:
        text = f"{r.outcome.value.upper()} {r.id} ({r.duration_s:.1f}s)"
        if r.outcome is not Outcome.PASSED:
            text += f": {r.reason.splitlines()[0] if r.reason else ''}"
        self.line(text)
        if self._progress is not None:
            self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# ---------------------------------------------------------------------------------------- collection


class ResultCollector:
    """A controller-side pytest plugin: gathers FalsifierResults from reports (xdist workers included)."""

    def __init__(self, selected: dict[Key, tuple[Contract, Falsifier]], on_result: Callable[[FalsifierResult], None]) -> None:
        self.selected = selected
        self.on_result = on_result
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
        self.on_result(result)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = report_properties(report.user_properties)
        if RESULT_PROPERTY in props:
            self.add(result_from_dict(json.loads(props[RESULT_PROPERTY])))
            return
        if report.failed:
            key = self._key_for(report, props)
            if key is not None and key in self.selected:
                # The harness around the falsifier broke (not the falsifier): still one result per falsifier.
                self.add(error_result(key, self.selected[key], "harness failed around the falsifier: " + report.longreprtext[-1500:]))


def error_result(key: Key, pair: tuple[Contract, Falsifier], reason: str) -> FalsifierResult:
    contract, falsifier = pair
    return FalsifierResult(
        id=falsifier.id,
        contract_id=contract.id,
        invariant=tuple(falsifier.attacks),
        outcome=Outcome.ERROR,
        reason=reason,
        duration_s=0.0,
        binding=falsifier.binding,
    )


def run_pytest(
    files: Sequence[Path], repo_root: Path, select: Sequence[str], jobs: int, collector: ResultCollector
) -> tuple[int, str]:
    """Run the contract files' items in-process; (pytest exit status, pytest's own output)."""
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as scratch:
        # An empty ini: the project's own pytest settings (addopts, timeouts, filterwarnings=error...)
        # are for its tests, not for the harness's items.
        ini = Path(scratch) / "pytest.ini"
        ini.write_text("[pytest]\n")
        # Only the plugins the harness needs, loaded explicitly: whatever else is installed (benchmark,
        # randomly, timeout...) has no business around falsifier items, which run in children anyway.
        # Explicit `-p harness.plugin` also cannot collide with the installed entry point, which
        # autoload-off leaves unloaded.
        args = ["-p", "harness.plugin", "-c", str(ini), f"--rootdir={repo_root}", "-p", "no:cacheprovider", "-s", "-q"]
        args += [f"--harness-select={p}" for p in select]
        if jobs > 1:
            args += ["-p", "xdist.plugin", "-n", str(jobs)]
        args += [str(f) for f in files]
        saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
        # xdist workers are fresh interpreters: they must import the same harness as this process.
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HARNESS_PARENT, saved["PYTHONPATH"]) if p)
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                status = int(pytest.main(args, plugins=[collector]))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return status, buffer.getvalue()


# ---------------------------------------------------------------------------------------- verify


def verify(
    paths: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] = "reports",
    select: Sequence[str] = (),
    jobs: int = 1,
    strict: bool = False,
    command: Sequence[str] = (),
    stream: TextIO | None = None,
) -> int:
    """Validate, run and record; returns the process exit status (0, 1, 2, 3 or 130)."""
    stream = stream or sys.stdout
    if jobs < 1:
        _print_problems([f"harness verify: -j {jobs}: must be at least 1 (-j 1 runs the falsifiers one at a time)"])
        return EXIT_INVALID
    if jobs > 1 and importlib.util.find_spec("xdist") is None:
        _print_problems(["harness verify: -j needs pytest-xdist, which is not installed: pip install pytest-xdist"])
        return EXIT_INVALID
    from harness.validate import validate_report

    # Structure and cross-references only: bindings are resolved by running them, so one that does
    # not import or match a test is that falsifier's `error`, recorded with evidence.
    validation = validate_report(paths, check_bindings=False)
    check = shlex.join(["harness", "validate", *map(str, paths)])
    if validation.problems:
        _print_problems(
            [str(p) for p in validation.problems],
            f"harness: {len(validation.problems)} problem(s); nothing was run. Fix them (`{check}` checks them "
            "again, bindings included), then run harness verify again.",
            sys.stdout,
        )
        return EXIT_INVALID
    contracts = list(validation.contracts)
    files = [Path(f).resolve() for f in validation.files]

    selected: dict[Key, tuple[Contract, Falsifier]] = {
        (c.id, f.id): (c, f) for c in contracts for f in c.falsifiers if matches_selection(select, c, f)
    }
    if not selected:
        what = f"matches -k {' / '.join(select)}" if select else "is declared"
        _print_problems([f"harness verify: no falsifier {what} in {len(files)} contract file(s); `{check}` counts them"])
        return EXIT_INVALID

    repo_root = Path(validation.roots[contracts[0].id]) if contracts else files[0].parent
    commit, dirty = git_state(repo_root)
    # Checked before anything runs: finding out after a long run that the evidence has nowhere to go wastes it.
    unwritable = _unwritable(evidence_dir(out, commit))
    if unwritable:
        _print_problems([f"harness verify: --out {out}: {unwritable}; choose another --out DIR, one you can write to"])
        return EXIT_INVALID
    started_at, t0 = now_iso(), time.monotonic()
    # Importing torch for the environment facts takes seconds; do it while the falsifiers run.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        environment = pool.submit(collect_environment)
        return _run_and_record(
            contracts, files, selected, repo_root, commit, dirty, started_at, t0, environment,
            out=out, select=select, jobs=jobs, strict=strict, command=command or ["harness", "verify", *map(str, paths)],
            stream=stream,
        )


def _run_and_record(
    contracts: list[Contract],
    files: list[Path],
    selected: dict[Key, tuple[Contract, Falsifier]],
    repo_root: Path,
    commit: str | None,
    dirty: bool | None,
    started_at: str,
    t0: float,
    environment: concurrent.futures.Future[dict[str, Any]],
    *,
    out: str | os.PathLike[str],
    select: Sequence[str],
    jobs: int,
    strict: bool,
    command: Sequence[str],
    stream: TextIO,
) -> int:
    display = Display(len(selected), stream)
    collector = ResultCollector(selected, display.result)
    interrupted = False
    pytest_output = ""
    try:
        with sigterm_as_interrupt():
            status, pytest_output = run_pytest(files, repo_root, select, jobs, collector)
        interrupted = status == int(pytest.ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        interrupted = True
        status = int(pytest.ExitCode.INTERRUPTED)
    finally:
        display.close()

    results = dict(collector.results)
    if not interrupted:
        # Completeness: a selected falsifier without a result is an error, never silently dropped.
        for key, pair in selected.items():
            if key not in results:
                tail = pytest_output.strip()[-1500:]
                results[key] = error_result(key, pair, f"no result recorded (pytest exited with status {status}): {tail}")
                display.result(results[key])
    if status in (int(pytest.ExitCode.INTERNAL_ERROR), int(pytest.ExitCode.USAGE_ERROR)):
        _print_problems(pytest_output.splitlines())

    evidence = build_evidence(
        contracts,
        results,
        commit=commit,
        dirty=dirty,
        complete=not interrupted,
        started_at=started_at,
        finished_at=now_iso(),
        duration_s=time.monotonic() - t0,
        command=list(command),
        environment=environment.result(),
    )
    directory = evidence_dir(out, commit)
    try:
        # All three files or none: a later reader never finds a partial set presented as complete.
        publish(directory, evidence_files(evidence))
    except OSError as exc:
        # E.g. the disk filled up or DIR was removed during the run. Not 2: something did run.
        rerun = f"; then re-run `{shlex.join(command)}`" if command else ""
        _print_problems(
            [
                f"harness verify: the falsifiers ran, but no evidence was written: {exc.filename or directory}: "
                f"{exc.strerror or exc} ({directory} keeps its previous evidence, if any){rerun}"
            ]
        )
        return EXIT_UNRECORDED

    totals = evidence["totals"]
    emit(f"harness: {totals_line(totals)}{' (INTERRUPTED: incomplete)' if interrupted else ''}", stream)
    emit(f"evidence: {directory / 'evidence.json'}", stream)
    if interrupted:
        return EXIT_INTERRUPTED
    failing = totals["falsified"] + totals["error"]
    if strict:
        failing += totals["not_run"] + totals["deferred"]
    if failing:
        return EXIT_FAILED
    if totals["passed"] == 0:
        # The exit codes make this 0 (nothing falsified or in error); it must still never read as a
        # pass, so it is said on stderr and in summary.md, and --strict turns it into a failure.
        emit(
            f"harness: warning: no falsifier ran ({totals['not_run']} not_run, {totals['deferred']} deferred), so "
            "nothing was verified; run where their requirements are met (see the reasons above), select runnable "
            "falsifiers with -k, or pass --strict to fail such a run",
            sys.stderr,
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.verify_cli PATH...`, the same as `harness verify PATH...` (its signals included)."""
    from harness.cli import main as harness_main

    return harness_main(["verify", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
