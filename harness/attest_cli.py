"""`harness keygen --out DIR`, `harness attest DIR/<sha> --key KEY`, `harness attest --verify DIR/<sha> [--pub KEY.pub]`

keygen makes an Ed25519 key pair: DIR/attestation.key (the private key, PKCS8 PEM, mode 0600: keep it
secret, e.g. as a CI secret) and DIR/attestation.pub (commit it, and name it in pyproject.toml's
`[tool.harness] attestation_public_key`). It never overwrites a key.

attest signs what `harness verify` (and `harness teeth`) recorded for one commit: an in-toto Statement v1
whose subjects are the git commit, every contract file the evidence ran, evidence.json and teeth.json,
with the in-toto test-result predicate (one test per falsifier), in a DSSE envelope written to
DIR/<sha>/attestation.dsse.json. --verify checks the signature and that every signed file is unchanged,
naming each one that was edited or is missing (docs/attest.md).

Exit status: 0 signed / valid; 1 --verify: invalid (a file edited after signing, a wrong key, a tampered
envelope); 2 bad input (no evidence or envelope, an unreadable key, evidence that cannot be attested).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from harness.cli import add_command
from harness.console import emit

EXIT_OK, EXIT_INVALID, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `keygen` and `attest` subcommands to the harness CLI."""
    keygen = add_command(subparsers, "keygen", help="make an Ed25519 key pair for signing evidence (harness attest)", doc=__doc__)
    keygen.add_argument("--out", required=True, metavar="DIR", help="directory to write attestation.key and attestation.pub into")
    keygen.set_defaults(func=run_keygen)

    attest = add_command(subparsers, "attest", help="sign a commit's evidence (in-toto statement, DSSE envelope), or --verify a signed one", doc=__doc__)
    attest.add_argument("dir", metavar="DIR/<sha>", help="a commit directory harness verify wrote (evidence.json)")
    attest.add_argument("--key", metavar="KEY", help="the Ed25519 private key (PEM) to sign with")
    attest.add_argument("--verify", action="store_true", help="check the attestation instead of writing one")
    attest.add_argument(
        "--pub", metavar="KEY.pub",
        help="--verify: the public key to check with (default: [tool.harness] attestation_public_key in pyproject.toml)",
    )
    attest.set_defaults(func=run_attest, parser=attest)


def run_keygen(args: argparse.Namespace) -> int:
    from harness.attest import AttestError, keygen

    try:
        pair = keygen(args.out)
    except AttestError as exc:
        emit(f"harness keygen: error: {exc}", sys.stderr)
        return EXIT_BAD_INPUT
    emit(f"private key: {pair.private_key} (mode 0600; keep it secret, e.g. as a CI secret)")
    emit(f"public key:  {pair.public_key} (commit it; pyproject.toml [tool.harness] attestation_public_key = \"{pair.public_key}\")")
    emit(f"key id:      {pair.key_id}")
    return EXIT_OK


def run_attest(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.verify:
        if args.key is not None:
            parser.error("--verify checks with a public key: give --pub KEY.pub, not --key")
        return _verify(args)
    if args.pub is not None:
        parser.error("--pub is for --verify; to sign, give the private key with --key KEY")
    if args.key is None:
        parser.error(f"sign with --key KEY (make one with harness keygen --out keys), or check with: harness attest --verify {shlex.quote(args.dir)}")
    return _attest(args)


def _repo_root() -> str:
    """The repository the contract paths of evidence are relative to: the nearest ancestor of the current
    directory holding pyproject.toml or .git ("." when that is where we are, so messages stay short)."""
    from pathlib import Path

    from harness.discover import find_repo_root

    root = find_repo_root(".")
    return "." if root == Path.cwd().resolve() else str(root)


def _attest(args: argparse.Namespace) -> int:
    from harness.attest import AttestError, attest

    try:
        done = attest(args.dir, args.key, repo_root=_repo_root())
    except AttestError as exc:
        emit(f"harness attest: error: {exc}", sys.stderr)
        return EXIT_BAD_INPUT
    for warning in done.warnings:
        emit(f"harness attest: warning: {warning}", sys.stderr)
    files = [s.describe() for s in done.subjects if s.name is not None]
    counts = done.counts
    emit(
        f"harness attest: signed commit {done.commit[:12]} with key {done.key_id[:16]}: {len(done.subjects)} subjects "
        f"(the commit and {', '.join(files)}); result {done.result} ({'a partial run: ' if done.partial else ''}{counts['passedTests']} passed, "
        f"{counts['warnedTests']} warned, {counts['failedTests']} failed)"
    )
    emit(f"attestation: {done.path}")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from harness.attest import verify_attestation

    check = verify_attestation(args.dir, public_key=args.pub, repo_root=_repo_root())
    if check.bad_input:
        for problem in check.problems:
            emit(f"harness attest --verify: error: {problem}", sys.stderr)
        return EXIT_BAD_INPUT
    if not check.valid:
        for problem in check.problems:
            emit(problem, sys.stderr)
        count = len(check.problems)
        emit(f"harness attest --verify: INVALID: {count} problem{'s' if count != 1 else ''} in {check.envelope}", sys.stderr)
        return EXIT_INVALID
    emit(
        f"harness attest --verify: valid: {check.envelope} signed by key {str(check.key_id)[:16]}; "
        f"{len(check.subjects)} subjects match (commit {str(check.commit)[:12]}); result {check.result}"
    )
    return EXIT_OK
