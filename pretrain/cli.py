"""Train small Llama/Qwen2/Qwen3 causal LMs on CPU or CUDA, inspect or re-stamp their checkpoints, generate
text from them, export them (HF directory, GGUF) and write their model cards.

Exit codes: 0 ok, 1 the command's check failed (inspect --min-score/--check-arch), 2 bad input (a bad flag,
unusable data, an unreadable or refused checkpoint, a full disk), 130 interrupted (Ctrl-C),
141 stdout closed early (`pretrain inspect ... | head -1`). Run `pretrain COMMAND --help` for a command's flags.
"""

# For maintainers: one subcommand per module, wired here and nowhere else. Each command module exposes
# `register(subparsers) -> None`, which adds its parser and sets `func(args) -> int` as the parser default.

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn, Sequence

from pretrain.streams import silence_stdout
from pretrain.terminal import escape

# Imported lazily so `pretrain stamp` does not pay for importing torch's model code. None of them imports
# torch (or numpy) at module level: --help, inspect and stamp never load it (tests/pretrain/test_cli_imports.py).
COMMAND_MODULES: tuple[str, ...] = ("pretrain.train_cli", "pretrain.stamp", "pretrain.inspection", "pretrain.export_cli",
                                     "pretrain.card", "pretrain.generate_cli")
EXIT_BAD_INPUT, EXIT_INTERRUPTED = 2, 130
# What a shell reports for a process SIGPIPE killed (128 + 13); Python ignores SIGPIPE, so we exit with it.
EXIT_BROKEN_PIPE = 141


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the flag and the help command (exit 2)."""

    def error(self, message: str) -> NoReturn:
        # The message quotes argv, which may hold control characters: escape it onto one line.
        self.exit(EXIT_BAD_INPUT, f"{escape(self.prog)}: error: {escape(message)}; see `{self.prog} --help`\n")


def version() -> str:
    """The installed distribution's version; the source tree's when it is run uninstalled."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("contract-harness")
    except PackageNotFoundError:
        import pretrain

        return getattr(pretrain, "__version__", "unknown")


class VersionAction(argparse.Action):
    """argparse's `version` action, but the version is looked up only when --version is given.

    (importlib.metadata costs a tenth of `pretrain --help`'s start, which must stay under 0.3 s.)
    """

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str = "show program's version number and exit") -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> NoReturn:
        parser._print_message(f"{parser.prog} {version()}\n", sys.stdout)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    summary, _, epilog = __doc__.partition("\n\n")
    parser = OneLineParser(prog="pretrain", description=summary, epilog=epilog.strip())
    parser.add_argument("--version", action=VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        # Flushed here, not at exit: output still buffered for a reader that is gone must raise in this try.
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        print("pretrain: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (`| head -1`) has all it wanted; stop quietly, and keep the exit flush from failing.
        silence_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
