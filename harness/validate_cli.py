"""`harness validate PATH... [--waivers PATH] [--format {text,json,sarif,github}]` and `harness schema NAME`.

validate: exit 0 and a one-line summary when every contract (and the waivers file, when there is one)
is valid; exit 2 and one `FILE:LINE: ID: message` line per problem (all of them, on stdout) otherwise.
Warnings (a falsifier bound to no runnable test) are printed but do not fail validation. --format json,
sarif and github print the same problems and warnings for a program, a code-scanning tab or GitHub's
annotations (harness.validate_format); the exit status is the same in every format.
schema: print a published JSON Schema (e.g. `harness schema contract`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from harness.console import emit
from harness.schema import load_schema, schema_names
from harness.model import Problem
from harness.validate import Validation, validate_report
from harness.validate_format import FORMATS, render

EXIT_OK = 0
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check contract files: schema, ids, references, bindings",
        description="Check contract YAML files (or directories of them) and report every problem as FILE:LINE: ID: message.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="contract files or directories (searched for *.yaml, *.yml)")
    p.add_argument(
        "--no-bindings",
        action="store_true",
        help="skip resolving bindings (imports, pytest collection, programs): schema and cross-references only",
    )
    p.add_argument(
        "--waivers",
        default=None,
        metavar="PATH",
        help="also check this waivers file (default: waivers.yaml in the first directory given, when there is one)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default): FILE:LINE: ID: message; json: a list of problems; sarif: SARIF 2.1.0 for a "
        "code-scanning tab; github: ::error workflow commands that mark each problem's line in a pull request",
    )
    p.set_defaults(func=run_validate)

    s = subparsers.add_parser("schema", help="print a published JSON Schema", description="Print a published JSON Schema.")
    s.add_argument("name", choices=schema_names(), help="which schema")
    s.set_defaults(func=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    result = validate_report(args.paths, check_bindings=not args.no_bindings)
    problems = list(result.problems) + [
        dataclasses.replace(p, check="waivers") for p in _waiver_problems(args, result)
    ]
    fmt = args.format
    # json and sarif are one document on stdout, also when there is no problem (an empty list, a log with
    # no results), so a program or an upload step always has one to read; their human lines go to stderr.
    document = fmt in ("json", "sarif")
    # Warnings never fail validation; with problems present they are left out, as before (fix those first).
    warnings = () if problems else result.warnings
    if problems or warnings or document:
        from harness.cli import version

        # Each line quotes file names and contract text: emit escapes them for the terminal, and a
        # reader that stops early (`| head -1`) ends the printing, not the command's status.
        for line in render(problems, fmt, warnings=warnings, version=version() if fmt == "sarif" else ""):
            emit(line)
    if problems:
        n = len(problems)
        emit(
            f"harness validate: {n} problem{'s' if n != 1 else ''} in {len(result.files)} file"
            f"{'s' if len(result.files) != 1 else ''}; fix them and run harness validate again",
            sys.stderr,
        )
        return EXIT_INVALID
    unbound = f" ({len(result.warnings)} unbound: verify records them as error)" if result.warnings else ""
    emit(f"{result.summary()}: valid{unbound}", sys.stderr if document else sys.stdout)
    return EXIT_OK


def _waiver_problems(args: argparse.Namespace, result: Validation) -> list[Problem]:
    """The waivers file's problems (docs/waivers.md): load and schema, expired, matching no falsifier."""
    from harness import clock
    from harness.waivers import check_waivers_file, default_waivers_file

    path = args.waivers if args.waivers is not None else default_waivers_file(args.paths)
    if path is None:
        return []
    ids = [f.id for c in result.contracts for f in c.falsifiers] if result.ok else None
    return check_waivers_file(path, ids, clock.today())


def run_schema(args: argparse.Namespace) -> int:
    for line in json.dumps(load_schema(args.name), indent=2).splitlines():
        emit(line)
    return EXIT_OK
