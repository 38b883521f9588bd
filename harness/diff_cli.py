"""`harness diff A B [--json] [--md FILE] [--reports DIR]`

What changed from A (the base: the target branch, the previous release) to B (the head: the pull
request, the release candidate). A and B are each an evidence.json, a commit directory written by
`harness verify` (DIR/<sha>/), or a commit (a sha, branch or tag, resolved with git) whose evidence is
under --reports (default reports/); a teeth.json beside an evidence file is compared too. Shown: the
falsifiers that regressed, recovered, became not_run or deferred, were added or removed; contracts whose
file changed without a version bump; teeth survivors; durations that moved beyond noise; the waivers in
force at head and those expiring within 14 days. A partial run on either side is named as such.
Exit status: 0 no regression; 1 a regression (a falsifier newly failing and not waived, a contract
changed without a version bump, a new teeth survivor); 2 an input that cannot be read (one line naming it).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from harness.cli import add_command
from harness.console import emit

EXIT_OK, EXIT_REGRESSED, EXIT_INVALID = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `diff` subcommand to the harness CLI."""
    parser = add_command(subparsers, "diff", help="compare two commits' evidence: regressions, recoveries, contract and teeth changes", doc=__doc__)
    parser.add_argument("base", metavar="A", help="the base: an evidence.json, a DIR/<sha>/ directory, or a commit")
    parser.add_argument("head", metavar="B", help="the head: an evidence.json, a DIR/<sha>/ directory, or a commit")
    parser.add_argument("--json", action="store_true", help="print the diff as JSON instead of text")
    parser.add_argument("--md", default=None, metavar="FILE", help="also write the diff as Markdown to FILE")
    parser.add_argument(
        "--reports", default="reports", metavar="DIR", help="where a commit's evidence is looked up: DIR/<sha>/ (default: reports/)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The `func` of the `diff` subparser."""
    from harness.atomic import write_atomic
    from harness.diff import DiffInputError, diff_evidence, diff_markdown, diff_text, diff_to_dict, load_side
    from harness.escape import json_safe

    try:
        base, base_teeth, _ = load_side(args.base, reports=args.reports)
        head, head_teeth, _ = load_side(args.head, reports=args.reports)
    except DiffInputError as exc:
        emit(str(exc), sys.stderr)
        return EXIT_INVALID
    d = diff_evidence(base, head, base_teeth=base_teeth, head_teeth=head_teeth)
    if args.md is not None:
        try:
            write_atomic(args.md, diff_markdown(d))
        except OSError as exc:
            emit(f"harness diff: --md {args.md}: cannot write it: {exc.strerror or exc}", sys.stderr)
            return EXIT_INVALID
    if args.json:
        for line in json.dumps(json_safe(diff_to_dict(d)), indent=2, ensure_ascii=False).splitlines():
            emit(line)
    else:
        for line in diff_text(d):
            emit(line)
    return EXIT_REGRESSED if d.regressed else EXIT_OK
