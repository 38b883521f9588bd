"""The `pretrain` console script: one subcommand per module, wired here and nowhere else.

Each command module exposes `register(subparsers) -> None`, which adds its parser and sets
`func(args) -> int` as the parser default. Exit codes: 0 ok, 1 the command's check failed,
2 bad input (usage, unreadable or refused checkpoint), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# Imported lazily so `pretrain stamp` does not pay for importing torch's model code.
COMMAND_MODULES: tuple[str, ...] = ("pretrain.train", "pretrain.stamp", "pretrain.inspection")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pretrain", description=__doc__.splitlines()[0])
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
        print("pretrain: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
