"""`pretrain train`'s command line: flags built from TrainConfig's fields, errors mapped to exit codes.

Everything the run does is `pretrain.train.train(TrainConfig)`; this module only parses, calls it and
turns its typed exceptions into the one-line `pretrain train: error: ...` and exit 2, and an interrupted
run into 130.
"""

from __future__ import annotations

import argparse
import sys

from pretrain import train_config
from pretrain.train_config import TrainError
from pretrain.terminal import say

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: X)` for every flag with a real default; flags whose default depends on others say so."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# pretrain.train's docstring summary, kept here: importing that module for it would import torch into
# `pretrain --help` (tests/pretrain/test_cli_imports.py checks the two agree).
DESCRIPTION = ("`pretrain train`: train a small causal LM from scratch or from `--init`, on CPU or CUDA, "
               "1 or N processes.")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a small Llama/Qwen2/Qwen3 causal LM",
                              description=DESCRIPTION,
                              formatter_class=DefaultsHelpFormatter,
                              epilog="Exit codes: 0 done, 2 bad input, a refused --init, a diverged run or a "
                                     "full disk, 130 interrupted (Ctrl-C; the checkpoint is saved). "
                                     "See docs/pretrain-training.md.")
    train_config.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the TrainConfig from the flags and train; a TrainError is one line on stderr and exit 2."""
    from pretrain.train import train

    try:
        result = train(train_config.from_namespace(args))
    except TrainError as exc:
        # One escaped line: paths and checkpoint metadata in the message are untrusted text.
        say(f"pretrain train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.interrupted:
        if result.checkpoint is not None:
            say(f"pretrain train: interrupted at step {result.step}; saved {result.checkpoint} "
                f"(val_loss {result.val_loss:.4f})", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
