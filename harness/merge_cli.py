"""`harness merge DIR... [--out OUT]`

Combine the evidence of the N shards of one `harness verify --shard K/N` run (say a CPU runner's and a
GPU runner's) into the one complete evidence of their commit, published under OUT/<commit>/ like a full
run. Each DIR is a shard's evidence directory (or evidence.json), or an --out directory holding shard
evidence under <commit>/partial/. Exit status: 0 merged, nothing falsified, vacuous, in error or flaky;
1 merged, and something was; 2 refused, nothing written: an overlap (a falsifier in two shards), a gap (a
shard or a falsifier missing), mixed commits, contract digests, selections or totals N, or incomplete
shard evidence; 3 merged, but the evidence could not be written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.cli import add_command
from harness.console import emit

EXIT_INVALID, EXIT_UNRECORDED = 2, 3


def register(subparsers: Any) -> None:
    """Add the `merge` subcommand to the harness CLI."""
    parser = add_command(subparsers, "merge", help="combine the evidence of --shard K/N runs into their commit's evidence", doc=__doc__)
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="shard evidence directories (or evidence.json files)")
    parser.add_argument("--out", default="reports", metavar="OUT", help="evidence directory to publish into (default: reports/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The `func` of the `merge` subparser."""
    from harness.gate import Policy, verdict
    from harness.merge_run import MergeError, MergeNotWritten, merge
    from harness.record import describe_selection, evidence_dir
    from harness.report import totals_line

    try:
        evidence = merge(args.dirs, out=args.out)
    except MergeError as exc:
        emit(str(exc), sys.stderr)
        return EXIT_INVALID
    except MergeNotWritten as exc:
        emit(str(exc), sys.stderr)
        return EXIT_UNRECORDED
    shards = len(evidence.merged_from or ())
    partial = "" if evidence.selection is None else f", {describe_selection(evidence.selection)}"
    emit(f"harness merge: {shards} shard{'s' if shards != 1 else ''}: {totals_line(evidence.totals)}{partial}")
    emit(f"evidence: {evidence_dir(args.out, evidence.commit, evidence.selection) / 'evidence.json'}")
    from harness import clock
    from harness.gate import WAIVER_REASON

    gate = verdict(evidence, Policy(today=clock.today()))  # the shards' waivers (docs/waivers.md)
    for line in gate.waived:
        emit(f"harness: WAIVED {line}")
    for reason in gate.reasons:
        if reason.startswith(WAIVER_REASON):
            emit(f"harness: {reason}", sys.stderr)
    for warning in gate.warnings:
        emit(f"harness: warning: {warning}", sys.stderr)
    return gate.exit_code
