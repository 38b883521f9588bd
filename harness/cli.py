"""harness: check YAML contracts and run their falsifiers, recording per-commit evidence."""

# Maintainers: one subcommand per module, wired here and nowhere else. Each command module exposes
# `register(subparsers) -> None`, which adds its parser(s) and sets `func(args) -> int` as the parser
# default. To add a command, add its module's dotted name to `COMMAND_MODULES` (e.g.
# "harness.verify_cli"), and the subcommands it registers to `COMMAND_NAMES`, so that running another
# command does not import it. This module stays light to import: SIGTERM must be handled before the
# command modules' heavy imports (pytest, jsonschema) start.

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

from harness.console import EXIT_INTERRUPTED, emit, sigterm_as_interrupt, silence

# Imported when the parser is built, so a command's heavy imports stay inside its own module.
COMMAND_MODULES: tuple[str, ...] = (
    "harness.validate_cli", "harness.verify_cli", "harness.replay_cli", "harness.teeth_cli", "harness.merge_cli",
    "harness.attest_cli",
    "harness.diff_cli",
    "harness.import_cli",
    "harness.audit_cli",
)
# The subcommands each module registers, so `harness CMD ...` imports CMD's module alone (validate must
# not pay for verify's pytest and teeth's imports). A module not listed here is imported for every
# command, so forgetting it costs time, never a command; `harness --help` still imports them all.
COMMAND_NAMES: dict[str, tuple[str, ...]] = {
    "harness.validate_cli": ("validate", "schema"),
    "harness.verify_cli": ("verify",),
    "harness.replay_cli": ("replay",),
    "harness.teeth_cli": ("teeth",),
    "harness.merge_cli": ("merge",),
    "harness.attest_cli": ("keygen", "attest"),
    "harness.diff_cli": ("diff",),
    "harness.import_cli": ("import",),
    "harness.audit_cli": ("audit",),
}

# 128 + SIGPIPE, as a shell reports a command killed by a closed pipe; only when the output broke
# somewhere the command itself could not carry on from (verify and validate finish and return their own status).
EXIT_BROKEN_PIPE = 141

DESCRIPTION = """\
Check contracts (YAML files stating a system's invariants and the falsifiers that attack them),
run every falsifier in an isolated child process, and write per-commit evidence:
evidence.json, junit.xml and summary.md.

examples:
  harness validate contracts/          check contracts, bindings included; run nothing
  harness verify contracts/            run the falsifiers; evidence under reports/<commit>/
  harness verify contracts/ -k 'FALSIFY-CKPT-*'
                                       only the falsifiers whose id (or contract or invariant id) matches
  harness teeth contracts/ -j 2        run the falsifiers against mutants of every guard; none may survive
  harness verify contracts/ --shard 1/2 --out shard1   (and 2/2 on another runner, then:)
  harness merge shard1 shard2          the shards' evidence as the commit's, under reports/<commit>/
  harness keygen --out keys            an Ed25519 key pair to sign evidence with
  harness attest reports/<sha> --key keys/attestation.key
                                       sign the commit's evidence (in-toto, DSSE); --verify checks it
  harness replay FALSIFY-INIT-ARCH-MATCH-001
                                       run a recorded failure again with its counterexample
  harness diff origin/main HEAD        what changed between two commits' evidence; exit 1 on a regression
  harness schema evidence              print the evidence.json JSON Schema
  harness import pv pv-contracts/ -o contracts/imported --defer-until 2027-03-31
                                       convert pv contracts; report which falsifiers are real
  harness audit --release v1.0.0       GO or NO-GO for HEAD's evidence; reports/releases/v1.0.0/audit.html
"""

EPILOG = """\
exit codes:
  0    ok (verify: nothing falsified, vacuous, in error or flaky; replay: the failure did not reproduce)
  1    verify: a falsifier was falsified, vacuous, in error or flaky (--strict: or not_run/deferred); replay: it reproduced
  2    bad input (invalid contract, missing path, bad option); nothing was run
  1    teeth: a mutant survived, or a falsifier failed on the unmutated code
  2    merge: refused (an overlap, a gap, mixed commits/contracts/totals, an incomplete shard); nothing written
  1    attest --verify: invalid (a signed file edited, a wrong key, a tampered envelope)
  3    verify: the falsifiers ran, but the evidence could not be written (the previous set is kept)
  0/1  audit: GO / NO-GO (the reasons printed and on audit.html); 3 the audit could not be written
  130  interrupted (Ctrl-C or SIGTERM)

Run `harness COMMAND --help` for a command's options.
"""


def version() -> str:
    """The installed distribution's version, or the package's own outside an installation."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("contract-harness")
    except PackageNotFoundError:
        import harness

        return harness.__version__


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked for: importlib.metadata costs every other command ~70 ms."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option_string: str | None = None) -> None:
        emit(f"harness {version()}")
        parser.exit()


def add_command(subparsers: Any, name: str, *, help: str, doc: str | None) -> argparse.ArgumentParser:
    """A command module's subparser: `help` is its line in `harness --help`, and its own --help shows `doc`
    (the module's docstring: synopsis, what it does, exit codes) laid out as written."""
    return subparsers.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command` (a subcommand's name) only the modules that register it, and any
    module COMMAND_NAMES does not list."""
    parser = argparse.ArgumentParser(
        prog="harness", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        if command is None or command in COMMAND_NAMES.get(name, (command,)):
            importlib.import_module(name).register(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` names, when it is the first word and a known one (the parser has no other
    positional and no option that takes a value before it); None for --help, --version or a typo."""
    known = {name for names in COMMAND_NAMES.values() for name in names}
    return argv[0] if argv and argv[0] in known else None


def main(argv: Sequence[str] | None = None) -> int:
    """The `harness` console script and `python -m harness`."""
    # First of all: a SIGTERM during the imports below must end like Ctrl-C does, not silently with 143.
    with sigterm_as_interrupt():
        try:
            argv = sys.argv[1:] if argv is None else list(argv)
            parser = build_parser(_command_of(argv))
            args = parser.parse_args(argv)
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            emit("harness: interrupted", sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            silence(sys.stdout)
            return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
