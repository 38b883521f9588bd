"""`harness replay FALSIFY-ID [--evidence PATH]`

Run a falsifier whose failure the evidence records again, with what reproduces it (hypothesis's
reproduction blob applied to the failing test, the recorded environment), in the same isolated child
as verify, and show the failure again. Exit status: 1 the failure reproduced (the falsifier still
fails); 0 it did not reproduce (the falsifier passes now, or the recorded example no longer fails);
2 bad input (an id the evidence does not record, evidence that cannot be read, a contract file that
changed since, by sha256); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.cli import add_command
from harness.console import emit
from harness.replay_run import Replay, ReplayError, replay

EXIT_NOT_REPRODUCED, EXIT_REPRODUCED, EXIT_INVALID = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `replay` subcommand to the harness CLI."""
    parser = add_command(subparsers, "replay", help="run a recorded failure again with its counterexample", doc=__doc__)
    parser.add_argument("falsifier_id", metavar="FALSIFY-ID", help="the falsifier whose recorded failure to run again")
    parser.add_argument(
        "--evidence",
        metavar="PATH",
        default=None,
        help="an evidence.json, or the DIR/<commit>/ directory verify wrote it into (default: reports/<current commit>/)",
    )
    parser.set_defaults(func=run)


def show(outcome: Replay) -> None:
    """The replay's result: the verdict line, the counterexample, what was (not) applied."""
    r = outcome.result
    emit(f"harness replay: {outcome.falsifier_id} ({r.binding.describe()}): {outcome.why.splitlines()[0]} ({r.duration_s:.1f}s)")
    if outcome.reproduced:
        # hypothesis's failing examples when there are any (a pytest failure text is a whole traceback).
        examples = [e["example"] for e in (r.replay or {}).get("examples", []) if e.get("example")]
        text = "\n".join(examples) or r.counterexample or ""
        if text:
            emit("counterexample:")
            for line in text.splitlines():
                emit(f"  {line}")
    version = (outcome.recorded.replay or {}).get("hypothesis_version")
    for test in outcome.applied:
        emit(f"applied @reproduce_failure({version!r}, ...) to {test}")
    for test, why in outcome.not_applied.items():
        emit(f"harness replay: the recorded blob could not be applied to {test}: {why}; the falsifier was run as it is", sys.stderr)


def run(args: argparse.Namespace) -> int:
    """The `func` of the `replay` subparser."""
    try:
        outcome = replay(args.falsifier_id, evidence=args.evidence)
    except ReplayError as exc:
        emit(str(exc), sys.stderr)
        return EXIT_INVALID
    show(outcome)
    return EXIT_REPRODUCED if outcome.reproduced else EXIT_NOT_REPRODUCED
