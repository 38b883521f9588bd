"""The `harness` console script: one subcommand per module, wired here and nowhere else.

Each command module exposes `register(subparsers) -> None`, which adds its parser(s) and sets
`func(args) -> int` as the parser default. To add a command, add its module's dotted name to
`COMMAND_MODULES` (e.g. "harness.verify_cli"). Exit codes: 0 ok, 1 the command's check failed
(e.g. a falsifier falsified), 2 bad input (invalid contracts, usage), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# Imported when the parser is built, so a command's heavy imports stay inside its own module.
COMMAND_MODULES: tuple[str, ...] = ("harness.validate_cli", "harness.verify_cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
