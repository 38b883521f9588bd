"""`harness import pv PATH... -o DIR [--defer-until DATE] [--report FILE] [--force]`

Convert contracts in the `pv` (provable-contracts) format into this harness's contracts, one file per
contract in DIR, and print an honest report: per falsifier, whether it is bound to a runnable test,
deferred (LIVE-PENDING, with its reason) or unbound prose (validate warns, verify records error). The
report is also written as JSON (DIR/import-report.json, or --report FILE). See docs/import-pv.md.
Exit status: 0 imported; 2 bad input (a pv file that cannot be read, a LIVE-PENDING test without
--defer-until, a non-empty DIR without --force), nothing written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import date
from typing import Any

from harness.cli import add_command
from harness.console import emit

EXIT_OK, EXIT_BUG, EXIT_INVALID = 0, 1, 2


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(subparsers: Any) -> None:
    """Add the `import` subcommand to the harness CLI."""
    parser = add_command(subparsers, "import", help="convert contracts of another tool (pv) into harness contracts, with an honest report", doc=__doc__)
    parser.add_argument("format", choices=("pv",), help="the source format: pv (provable-contracts YAML)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="pv contract files or directories (searched for *.yaml, *.yml)")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="directory to write the contracts into (new or empty)")
    parser.add_argument(
        "--defer-until", type=_date, metavar="DATE",
        help="expiry (YYYY-MM-DD) of the deferrals LIVE-PENDING tests become; required when there are any",
    )
    parser.add_argument("--report", metavar="FILE", help="write the JSON report here instead of DIR/import-report.json")
    parser.add_argument("--force", action="store_true", help="replace a non-empty DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The `func` of the `import` subparser."""
    from harness.import_pv import REPORT_FILE, ImportBug, PvImportError, import_pv

    try:
        report = import_pv(args.paths, args.out, defer_until=args.defer_until, force=args.force, report=args.report)
    except PvImportError as exc:
        for problem in exc.problems:
            emit(problem)
        if exc.missing_flag is not None:
            flag, value = exc.missing_flag
            again = ["harness", "import", args.format, *args.paths, "-o", args.out]
            again += ["--defer-until", args.defer_until.isoformat()] if args.defer_until else []
            again += ["--report", args.report] if args.report else []
            again += ["--force"] if args.force else []
            again += [flag] if value is None else [flag, value]
            emit(f"harness import: run again with the flag, e.g.: {shlex.join(again)}", sys.stderr)
        else:
            emit(f"harness import: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}; nothing written", sys.stderr)
        return EXIT_INVALID
    except ImportBug as exc:
        emit(f"harness import: {exc}; nothing written (please report this)", sys.stderr)
        return EXIT_BUG
    for line in report.text_lines():
        emit(line)
    where = args.report or f"{args.out.rstrip('/')}/{REPORT_FILE}"
    emit(f"wrote {report.totals['contracts']} contracts to {args.out}; report: {where}")
    return EXIT_OK
