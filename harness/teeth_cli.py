"""`harness teeth PATH... [--out DIR] [-k PATTERN] [-j N]`

Run every invariant's falsifiers against mutants of its guards (the code that upholds it), each
mutant in a copy of the repository, never in the working tree. Prints one line per mutant, then each
survivor (the invariant, the mutant's diff, the falsifiers that missed it). Results: DIR/<commit>/teeth.json
and teeth.md. Exit status: 0 no mutant survived; 1 a mutant survived, or a falsifier failed its
baseline (on the unmutated code, so its kills would mean nothing); 2 invalid input, nothing run;
3 the mutants ran but teeth.json could not be written; 130 interrupted (what ran so far is written,
marked incomplete).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from harness.cli import add_command
from harness.console import EXIT_INTERRUPTED, emit
from harness.escape import terminal
from harness.pipeline import InvalidInput
from harness.record import evidence_dir
from harness.teeth_run import KILLED, SURVIVED, MutantResult, Observer, Teeth, TeethNotWritten
from harness.teeth_run import teeth as run_teeth
from harness.teeth_record import TEETH_FILE

EXIT_OK, EXIT_SURVIVED, EXIT_INVALID, EXIT_UNRECORDED = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="contract files or directories of them")
    parser.add_argument("--out", default="reports", metavar="DIR", help="results directory (default: reports/); teeth.json goes to DIR/<commit>/")
    parser.add_argument(
        "-k", dest="select", action="append", default=[], metavar="PATTERN",
        help="only invariants whose id or contract id, or falsifiers whose id, match this glob or substring (repeatable)",
    )
    parser.add_argument("-j", dest="jobs", type=int, default=1, metavar="N", help="run N mutants in parallel (each in its own child)")
    parser.add_argument(
        "--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
        help="a contract parameter (repeatable), as for harness verify; without a parameter its falsifiers are "
        "not_run and their invariants' mutants not checked",
    )


def register(subparsers: Any) -> None:
    """Add the `teeth` subcommand to the harness CLI."""
    parser = add_command(subparsers, "teeth", help="run the falsifiers against mutants of each invariant's guards; every mutant must be killed", doc=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> list[str]:
    argv = ["harness", "teeth", *map(str, args.paths), "--out", str(args.out)]
    for pattern in args.select:
        argv += ["-k", pattern]
    if args.jobs != 1:
        argv += ["-j", str(args.jobs)]
    for param in args.params:
        argv += ["--param", param]
    return argv


def run(args: argparse.Namespace) -> int:
    """The `func` of the `teeth` subparser."""
    from harness.parameters import ParameterError, parse_assignments

    try:
        params = parse_assignments(args.params)
    except ParameterError as exc:
        emit(f"harness teeth: {exc}", sys.stderr)
        return EXIT_INVALID
    return teeth(args.paths, out=args.out, select=args.select, jobs=args.jobs, command=command_line(args), params=params)


class _Printer(Observer):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def started(self, mutants: int, falsifiers: int) -> None:
        emit(f"harness teeth: {mutants} mutants; running {falsifiers} falsifier baselines first", self.stream)

    def baseline(self, run: Any) -> None:
        if not run.usable:
            emit(terminal(f"BASELINE {run.outcome.upper()} {run.id} ({run.duration_s:.1f}s): {run.reason.splitlines()[0] if run.reason else ''}"), self.stream)

    def mutant(self, invariant: str, result: MutantResult) -> None:
        by = f" by {result.killed_by}" if result.killed_by else ""
        emit(terminal(f"{result.status.upper()} {invariant} {result.id} line {result.line}{by} ({result.duration_s:.1f}s)"), self.stream)


def report(result: Teeth, stream: TextIO) -> None:
    """What teeth found, after the per-mutant lines: survivors with diffs, the rest in a line each."""
    for inv in result.invariants:
        if not inv.measurable:
            emit(terminal(f"NOT MEASURABLE {inv.id}: {inv.note}"), stream)
        for g in inv.guards:
            if g.status != "resolved":
                emit(terminal(f"SKIPPED GUARD {inv.id} {g.guard}: {g.reason}"), stream)
        for m in inv.mutants:
            if m.status not in (KILLED, SURVIVED):
                emit(terminal(f"{m.status.upper()} {inv.id} {m.id}: {m.reason}"), stream)
        for s in inv.stale_acknowledgements:
            emit(terminal(f"STALE ACKNOWLEDGEMENT {inv.id} {s.id}: {s.why} (reason given: {s.reason})"), stream)
    for inv, b in result.baseline_failures:
        emit(terminal(f"BASELINE FAILED {inv.id} {b.id} ({b.outcome}) on the unmutated code, so its kills do not count: {b.reason[:300]}"), stream)
    for inv, m in result.survivors:
        emit(terminal(f"SURVIVED {inv.id} ({inv.contract_id}): mutant {m.id} of {m.function} at {m.path}:{m.line}"), stream)
        for line in m.diff.rstrip("\n").splitlines():
            emit("    " + terminal(line), stream)
        emit(terminal(f"  missed by: {', '.join(m.missed_by)} (each passed against the mutant)"), stream)


def totals_line(t: dict[str, int]) -> str:
    return (
        f"{t['mutants']} mutants: {t['killed']} killed, {t['survived']} survived, {t['timeout']} timeout, "
        f"{t['error']} error, {t['not_run']} not_run, {t['equivalent']} equivalent "
        f"({t['not_compiling']} not compiling, skipped; {t['not_measurable']} invariants not measurable)"
    )


def teeth(
    paths: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] = "reports",
    select: Sequence[str] = (),
    jobs: int = 1,
    command: Sequence[str] = (),
    stream: TextIO | None = None,
    params: dict[str, str] | None = None,
) -> int:
    """`harness teeth`: run, print, and map the result to the exit status (0, 1, 2, 3 or 130)."""
    stream = stream or sys.stdout
    try:
        result = run_teeth(
            paths, out=out, select=select, jobs=jobs, command=command, observer=_Printer(stream), params=params
        )
    except InvalidInput as exc:
        for line in exc.problems:
            emit(line, stream)
        emit(str(exc), sys.stderr)
        return EXIT_INVALID
    except TeethNotWritten as exc:
        report(exc.teeth, stream)
        emit(f"harness teeth: {exc}", sys.stderr)
        return EXIT_UNRECORDED
    report(result, stream)
    emit(f"harness teeth: {totals_line(result.totals)}{'' if result.complete else ' (INTERRUPTED: incomplete)'}", stream)
    emit(f"teeth: {evidence_dir(out, result.commit) / TEETH_FILE}", stream)
    if not result.complete:
        return EXIT_INTERRUPTED
    return EXIT_SURVIVED if result.survivors or result.baseline_failures else EXIT_OK
