"""`harness verify PATH... [--out DIR] [-k ID-PATTERN] [-j N] [--rerun N] [--strict] [--shard K/N] [--changed-since REF] [--release]
    [--executor {local,ray}] [--address ADDR] [--waivers PATH]`

validate -> compile (pytest plugin) -> run (isolated children) -> record (evidence.json) -> report
(junit.xml, summary.md). Exit status: 0 nothing falsified, vacuous, in error or flaky; 1 something
falsified, vacuous, in error or flaky (or, with --strict, not_run/deferred); 2 invalid input, nothing run; 3 the falsifiers ran but the
evidence could not be written (the directory keeps the results journaled as they arrived, marked
incomplete); 130 interrupted (Ctrl-C or
SIGTERM), with the evidence so far written and marked incomplete. A run in which no falsifier ran at
all says so loudly (stderr and summary.md); --strict makes it fail. A closed stdout (`| head -1`) does
not change any of this: printing stops, the evidence is written in full, the status is the run's.
With -k or --shard K/N the run is partial: its evidence goes to DIR/<commit>/partial/<slug>/ (printed),
never replacing the commit's full evidence; `harness merge` combines the N shards' evidence into it.
With --changed-since REF only the falsifiers whose contract, binding or
imported or read repository files changed since REF's evidence (DIR/<REF sha>/, from a full run) run; the others
are carried over from it, marked with REF's commit, and the evidence goes to DIR/<commit>/partial/<slug>/.
--release fails (exit 1) any carried-over result or restricted run: a release needs the commit's full evidence.
Waivers (waivers.yaml in the first contracts directory given, or --waivers PATH; docs/waivers.md) are
recorded in the evidence: a failure an unexpired waiver names does not fail the run (its true outcome is
recorded and printed); an expired waiver, or one matching no falsifier, does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, TextIO

from harness import clock
from harness.cli import add_command
from harness.console import EXIT_INTERRUPTED, emit
from harness.escape import terminal
from harness.gate import EXIT_FAILED, EXIT_OK, WAIVER_REASON, Policy, Verdict, release_reasons, verdict
from harness.model import Evidence, FalsifierResult, Outcome
from harness.pipeline import EXECUTORS, EvidenceNotWritten, InvalidInput, Observer, default_command
from harness.pipeline import verify as run_verification
from harness.record import describe_selection, evidence_dir
from harness.report import totals_line
from harness.step_summary import append_summary_file

EXIT_INVALID = 2
EXIT_UNRECORDED = 3  # the falsifiers ran, but their evidence could not be written
__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_UNRECORDED", "main", "register", "verify"]


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
    parser.add_argument(
        "--rerun",
        type=int,
        default=0,
        metavar="N",
        help="run a falsified or error falsifier up to N more times; outcomes that differ are recorded as flaky (exit 1)",
    )
    parser.add_argument("--strict", action="store_true", help="also fail (exit 1) on not_run and deferred falsifiers")
    parser.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="run only the K-th of N deterministic shards of the selected falsifiers (a partial run; "
        "`harness merge` combines the N shards' evidence into the commit's)",
    )
    parser.add_argument(
        "--changed-since",
        dest="changed_since",
        default=None,
        metavar="REF",
        help="run only the falsifiers whose contract, binding or imported files changed since the git commit REF; "
        "carry the others over from REF's evidence in DIR/<sha>/",
    )
    parser.add_argument(
        "--release",
        action="store_true",
        help="release gate: also fail (exit 1) on results carried over from another commit and on restricted runs",
    )
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a contract parameter (repeatable): the falsifiers get it as HARNESS_PARAM_<NAME>; the evidence records "
        "it with the sha256 of the file it names (of each file, for a directory)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where the falsifiers run: local (default; -j N for parallel) or ray (tasks on a Ray cluster; "
        "Ray decides the parallelism, so -j is refused; docs/executors.md)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="with --executor ray: the cluster (HOST:PORT of its head, or auto on a node of it); "
        "default: RAY_ADDRESS, else a local Ray instance",
    )
    parser.add_argument(
        "--waivers",
        default=None,
        metavar="PATH",
        help="the waivers file to record and apply (default: waivers.yaml in the first contracts directory given, "
        "when there is one; docs/waivers.md)",
    )


def register(subparsers: Any) -> None:
    """Add the `verify` subcommand to the harness CLI."""
    parser = add_command(subparsers, "verify", help="run every falsifier of the given contracts and write evidence", doc=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> list[str]:
    """The run's command as evidence records it, rebuilt from the parsed arguments."""
    argv = ["harness", "verify", *map(str, args.paths), "--out", str(args.out)]
    for pattern in args.select:
        argv += ["-k", pattern]
    if args.jobs != 1:
        argv += ["-j", str(args.jobs)]
    if args.rerun:
        argv += ["--rerun", str(args.rerun)]
    if args.strict:
        argv.append("--strict")
    if args.shard is not None:
        argv += ["--shard", args.shard]
    if args.changed_since is not None:
        argv += ["--changed-since", args.changed_since]
    if args.release:
        argv.append("--release")
    for param in args.params:
        argv += ["--param", param]
    if args.executor != "local":
        argv += ["--executor", args.executor]
    if args.address is not None:
        argv += ["--address", args.address]
    if args.waivers is not None:
        argv += ["--waivers", str(args.waivers)]
    return argv


def run(args: argparse.Namespace) -> int:
    """The `func` of the `verify` subparser."""
    command = command_line(args)
    shard = None
    if args.shard is not None:
        from harness.sharding import ShardSpecError, parse_shard

        try:
            shard = parse_shard(args.shard)
        except ShardSpecError as exc:
            emit(f"harness verify: {exc}", sys.stderr)
            return EXIT_INVALID
    from harness.parameters import ParameterError, parse_assignments

    try:
        params = parse_assignments(args.params)
    except ParameterError as exc:
        emit(f"harness verify: {exc}", sys.stderr)
        return EXIT_INVALID
    return verify(
        args.paths, out=args.out, select=args.select, jobs=args.jobs, rerun=args.rerun, strict=args.strict, command=command,
        changed_since=args.changed_since, release=args.release,
        executor=args.executor, address=args.address,
        shard=shard, waivers=args.waivers, params=params,
    )


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


class _Printer(Observer):
    """verify's display as a pipeline observer: the Display appears when the run starts."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.display: Display | None = None

    def started(self, total: int) -> None:
        self.display = Display(total, self.stream)

    def result(self, result: FalsifierResult) -> None:
        if self.display is not None:
            self.display.result(result)

    def finished(self) -> None:
        if self.display is not None:
            self.display.close()

    def message(self, line: str) -> None:
        emit(line, sys.stderr)

    def incremental(self, plan: Any) -> None:
        ref = plan.ref[:12]
        emit(f"harness: --changed-since {ref}: {len(plan.run)} to run, {len(plan.carried)} carried over", self.stream)
        for (_, fid), why in plan.run.items():
            emit(f"RUN {terminal(fid)}: {terminal(why)}", self.stream)
        for (_, fid), result in plan.carried.items():
            emit(f"CARRIED {terminal(fid)} ({result.outcome.value} at {str(result.carried_from)[:12]})", self.stream)


# ---------------------------------------------------------------------------------------- verify


def verify(
    paths: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] = "reports",
    select: Sequence[str] = (),
    jobs: int = 1,
    rerun: int = 0,
    strict: bool = False,
    command: Sequence[str] = (),
    stream: TextIO | None = None,
    changed_since: str | None = None,
    release: bool = False,
    executor: str = "local",
    address: str | None = None,
    shard: tuple[int, int] | None = None,
    waivers: str | os.PathLike[str] | None = None,
    params: dict[str, str] | None = None,
) -> int:
    """`harness verify`: run the pipeline, print, and map its verdict to the exit status (0, 1, 2, 3 or 130)."""
    stream = stream or sys.stdout
    command = list(command) or default_command(paths)
    if release and changed_since is not None:
        emit(
            "harness verify: --release refuses results carried over by --changed-since; nothing was run. For a "
            f"release run every falsifier: {shlex.join(arg for arg in _without_changed_since(command))}",
            sys.stderr,
        )
        return EXIT_INVALID
    try:
        evidence = run_verification(
            paths, out=out, select=select, jobs=jobs, rerun=rerun, command=command, observer=_Printer(stream),
            changed_since=changed_since,
            executor=executor, address=address, shard=shard, waivers=waivers, params=params,
        )
    except InvalidInput as exc:
        _print_problems(exc.problems, str(exc), sys.stdout)
        return EXIT_INVALID
    except EvidenceNotWritten as exc:
        _print_problems([str(exc)])
        return EXIT_UNRECORDED

    today = clock.today()
    gate = verdict(evidence, Policy(strict=strict, release=release, today=today))
    interrupted = not evidence.complete
    # A -k run says so on its closing line: its green covers the selection, not the commit.
    partial = "" if evidence.selection is None else f" ({terminal(describe_selection(evidence.selection))})"
    carried = [r for r in evidence.results if r.carried_from is not None]
    if carried:
        sources = ", ".join(sorted({str(r.carried_from)[:12] for r in carried}))
        partial += f" ({len(carried)} carried over from {sources})"
    emit(f"harness: {totals_line(evidence.totals)}{partial}{' (INTERRUPTED: incomplete)' if interrupted else ''}", stream)
    for entry in evidence.contracts:
        for p in entry.parameters:
            digest = f" (sha256 {p.sha256})" if p.sha256 else f" ({len(p.files)} files)" if p.files is not None else ""
            emit(terminal(f"parameter {entry.id} {p.name}: {p.absolute or p.value}{digest}"), stream)
    directory = evidence_dir(out, evidence.commit, evidence.selection)
    emit(f"evidence: {directory / 'evidence.json'}", stream)
    _print_waivers(evidence, gate, today, stream)
    for warning in gate.warnings:
        emit(f"harness: warning: {warning}", sys.stderr)
    # On GitHub Actions the job's page shows summary.md; a summary that cannot be written changes nothing else.
    if (summary_warning := append_summary_file(directory / "summary.md")) is not None:
        emit(f"harness: warning: {summary_warning}", sys.stderr)
    if release:
        for reason in release_reasons(evidence):
            emit(f"harness: release: {terminal(reason)}", sys.stderr)
    return gate.exit_code


def _print_waivers(evidence: Evidence, gate: Verdict, today: date, stream: TextIO) -> None:
    """Every waiver in force, every failure one accepted (its true outcome), and those expiring soon."""
    from harness.waivers import describe, in_force

    for waiver in in_force(evidence.waivers, today):
        emit(f"harness: waiver in force: {describe(waiver, today)}", stream)
    for line in gate.waived:
        emit(f"harness: WAIVED {line}", stream)
    for reason in gate.reasons:
        if reason.startswith(WAIVER_REASON):  # an expired waiver, or one matching nothing: it fails the run
            emit(f"harness: {reason}", sys.stderr)
    for line in gate.expiring:
        emit(f"harness: warning: {line}: fix the falsifier, or renew the waiver with a new expires: and reason", sys.stderr)


def _without_changed_since(command: Sequence[str]) -> list[str]:
    """`command` with its `--changed-since REF` dropped: the full run a release needs."""
    argv, skip = [], False
    for arg in command:
        if skip:
            skip = False
        elif arg == "--changed-since":
            skip = True
        elif not arg.startswith("--changed-since="):
            argv.append(arg)
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.verify_cli PATH...`, the same as `harness verify PATH...` (its signals included)."""
    from harness.cli import main as harness_main

    return harness_main(["verify", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
