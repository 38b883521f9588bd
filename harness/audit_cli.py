"""`harness audit --release TAG [--commit SHA] [--reports DIR] [--out DIR] [--require-cuda] [--run] [--history N]`

Audit one commit's evidence for a release: GO or NO-GO, and why. Reads DIR/<sha>/ (--reports, default
reports/): evidence.json (required), teeth.json and attestation.dsse.json; with --run, runs `harness
verify contracts/` and `harness teeth contracts/` into it first. Writes audit.md, a self-contained
audit.html, audit.json and byte-identical copies of the audited files into reports/releases/<TAG>/
(--out), replacing an earlier audit of the tag as a whole; the previous release is the newest other
audit beside it (docs/audit.md). Exit status: 0 GO; 1 NO-GO (the reasons printed); 2 bad input
(nothing written); 3 the audit could not be written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.cli import add_command
from harness.console import emit
from harness.escape import terminal

EXIT_GO, EXIT_NO_GO, EXIT_INVALID, EXIT_UNWRITTEN = 0, 1, 2, 3


def _history(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number (e.g. --history 20)") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number}: must be at least 0 (0 draws no chart)")
    return number


def register(subparsers: Any) -> None:
    """Add the `audit` subcommand to the harness CLI."""
    parser = add_command(subparsers, "audit", help="audit a commit's evidence for a release: GO or NO-GO, audit.md and audit.html", doc=__doc__)
    parser.add_argument("--release", required=True, metavar="TAG", help="the release tag (the audit directory's name)")
    parser.add_argument("--commit", default=None, metavar="SHA", help="the commit to audit (a sha or ref; default HEAD)")
    parser.add_argument("--reports", default="reports", metavar="DIR", help="the evidence directory (default: reports/)")
    parser.add_argument("--out", default=None, metavar="DIR", help="where the audit goes (default: REPORTS/releases/TAG/)")
    parser.add_argument("--require-cuda", dest="require_cuda", action="store_true",
                        help="NO-GO unless every CUDA falsifier ran on CUDA")
    parser.add_argument("--run", action="store_true", help="run harness verify and harness teeth on contracts/ first")
    parser.add_argument("--history", type=_history, default=20, metavar="N",
                        help="commits in the outcome chart (default 20; 0: none)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The `func` of the `audit` subparser."""
    from harness.audit import AuditInputError, AuditNotWritten, release_audit
    from harness.pipeline import EvidenceNotWritten, InvalidInput
    from harness.teeth_run import TeethNotWritten

    if args.run:
        emit("harness audit: --run: harness verify contracts/, then harness teeth contracts/ (minutes)", sys.stderr)
    try:
        audit = release_audit(
            args.release, commit=args.commit, reports=args.reports, out=args.out, require_cuda=args.require_cuda,
            run=args.run, history_limit=args.history,
        )
    except (AuditInputError, InvalidInput) as exc:
        for line in getattr(exc, "problems", ()):
            emit(terminal(line), sys.stderr)
        emit(terminal(str(exc)), sys.stderr)
        return EXIT_INVALID
    except (EvidenceNotWritten, TeethNotWritten) as exc:
        emit(terminal(f"harness audit: --run: {exc}"), sys.stderr)
        return EXIT_UNWRITTEN
    except AuditNotWritten as exc:
        emit(terminal(f"harness audit: {exc}; nothing of it was written"), sys.stderr)
        return EXIT_UNWRITTEN
    d = audit.decision
    emit(terminal(f"harness audit: {audit.release} at {audit.commit[:12]}: {d.verdict}"))
    for reason in d.reasons:
        emit(terminal(f"  NO-GO: {reason}"))
    for waived in d.waived:
        emit(terminal(f"  waived: {waived}"))
    for expiring in d.expiring:
        emit(terminal(f"  expiring: {expiring}"))
    for note in d.warnings:
        emit(terminal(f"  note: {note}"))
    emit(terminal(f"audit: {audit.directory / 'audit.html'} (and audit.md, audit.json)"))
    return d.exit_code
