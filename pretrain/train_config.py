"""`TrainConfig`: every option of a training run, its defaults, its bounds and its errors, in one place.

The `pretrain train` flags are generated from these fields (name, default, help), and the bounds are
checked when a TrainConfig is built, so a Python caller of `pretrain.train.train(config)` and a shell
user of the CLI meet the same rules and the same messages. Messages name the CLI flag (`--lr`); the
exception's `field` names the TrainConfig field (`lr`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain import data as data_mod
from pretrain.model_config import LoadError, ModelConfig  # torch-free: `pretrain train --help` never imports torch


class TrainError(Exception):
    """Bad flags or a refused init; the message names the flag/file and the fix."""


class TrainConfigError(TrainError):
    """An option out of range or of the wrong type; `field` is the TrainConfig field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OutputError(TrainError):
    """--out cannot hold this run, or the disk refused a write (full, over quota, I/O error)."""


class DivergedError(TrainError):
    """The loss became NaN or inf; nothing was saved."""


class TrainDataError(TrainError):
    """The training data cannot be used (a pretrain.data.DataError, re-raised as a TrainError)."""


# Shape flags and the config field each one sets; with --init they must agree with the checkpoint.
SHAPE_FLAGS: dict[str, str] = {
    "family": "family",
    "layers": "num_hidden_layers",
    "hidden": "hidden_size",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "intermediate": "intermediate_size",
    "vocab": "vocab_size",
    "rope_theta": "rope_theta",
    "tie_embeddings": "tie_word_embeddings",
}
DEFAULTS: dict[str, Any] = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "vocab": 256,
                            "rope_theta": 10000.0}

# (lowest, highest) of each integer flag. The highs are far past any model this trainer is for (Llama-3
# 405B: hidden 16384, 126 layers, vocab 128256) but stop a typo (`--hidden 1000000000`) at the flag instead
# of in the allocator; what fits below them is then the memory estimate's call.
INT_LIMITS: dict[str, tuple[int, int]] = {
    "layers": (1, 1024), "hidden": (1, 65536), "heads": (1, 1024), "kv_heads": (1, 1024), "head_dim": (1, 4096),
    "intermediate": (1, 262144), "vocab": (1, 2**24), "seq_len": (1, 2**20), "batch": (1, 2**20),
    "steps": (0, 10**9), "warmup": (0, 10**9), "eval_every": (1, 10**9), "log_every": (1, 10**9),
    "val_windows": (1, 2**16),
    "seed": (0, 2**64 - 1),  # torch.manual_seed takes 64 bits
}
# Metadata text flags (recorded in the checkpoint, shown by `pretrain inspect`): at most this many characters.
MAX_TEXT_CHARS = 512
FAMILIES = ("llama", "qwen2", "qwen3")


def _opt(default: Any, help: str, kind: type | str, **cli: Any) -> Any:
    """A TrainConfig field with its CLI flag's help and argparse settings (`kind`: the value's type)."""
    return field(default=default, metadata={"help": help, "kind": kind, "cli": cli})


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Every option of one training run; the CLI flag of each field is `--` + its name with `-` for `_`.

    Building one checks every bound (TrainConfigError naming the flag). `None` for a shape field means the
    default, or the --init checkpoint's value.
    """

    family: str | None = _opt(None, "model family (default: llama)", str, choices=list(FAMILIES))
    layers: int | None = _opt(None, "decoder layers (default: 2)", int)
    hidden: int | None = _opt(None, "hidden size (default: 64)", int)
    heads: int | None = _opt(None, "attention heads (default: 4)", int)
    kv_heads: int | None = _opt(None, "key/value heads, divides --heads (default: 2)", int)
    head_dim: int | None = _opt(None, "per-head dim (default: hidden/heads)", int)
    intermediate: int | None = _opt(None, "MLP width (default: ~8/3 hidden, rounded up to 8)", int)
    vocab: int | None = _opt(None, "vocabulary size (default: 256, byte-level)", int)
    rope_theta: float | None = _opt(None, "RoPE base (default: 10000)", float)
    tie_embeddings: bool | None = _opt(None, "tie lm_head to the embedding (default: on for qwen2, off otherwise)",
                                       "bool?")
    seq_len: int = _opt(64, "tokens per training window", int)
    batch: int = _opt(8, "sequences per process per step", int)
    steps: int = _opt(50, "optimizer steps (0: evaluate and save the start)", int)
    lr: float = _opt(3e-3, "peak learning rate (at most 1)", float)
    min_lr_ratio: float = _opt(0.1, "cosine floor as a fraction of --lr", float)
    warmup: int = _opt(10, "linear warmup steps", int)
    weight_decay: float = _opt(0.1, "AdamW decay on weight matrices", float)
    grad_clip: float = _opt(1.0, "global gradient-norm clip (0: off)", float)
    eval_every: int = _opt(25, "validate every N steps (and at the end)", int)
    val_windows: int = _opt(data_mod.DEFAULT_VAL_WINDOWS, "fixed validation windows", int)
    log_every: int = _opt(1, "write a train-loss metrics line every N steps", int)
    seed: int = _opt(0, "init and batch order, 0 to 2**64-1", int)
    device: str = _opt("auto", "where to train (auto: cuda when available)", str, choices=["auto", "cpu", "cuda"])
    dtype: str = _opt("auto", "precision: fp32, or bf16 autocast with fp32 weights (auto: bf16 on a CUDA device "
                              "that has it, fp32 on CPU)", str, choices=["auto", "fp32", "bf16"])
    data: str | None = _opt(None, "directory of text files, a text file, .npy tokens or .bin uint16 tokens "
                                  "(default: embedded Python-stdlib byte corpus)", "path")
    init: str | None = _opt(None, "start from this checkpoint (ours, an HF directory, or a stamped file)", "path")
    compile: bool = _opt(False, "torch.compile the model (faster steps on CUDA; the first step compiles)", bool)
    peak_flops: float | None = _opt(None, "peak FLOP/s of one device, for the mfu in metrics.jsonl (default: "
                                          "known for A100/H100/H200; none on CPU)", float, metavar="FLOPS")
    license: str = _opt("", "the model's license, recorded as `license` metadata (default: none recorded)", str,
                        metavar="SPDX")
    data_source: str | None = _opt(None, "what it was trained on, recorded as `data_source` metadata (default: "
                                         "the --data path, or the built-in corpus's CPython version)", str,
                                   metavar="TEXT")
    data_license: str | None = _opt(None, "the training data's license, recorded as `data_license` metadata "
                                          "(default: PSF-2.0 for the built-in corpus, none for --data)", str,
                                    metavar="SPDX")
    out: str = field(metadata={"help": "output directory (metrics.jsonl, model.safetensors)", "kind": "path",
                               "cli": {"required": True}})
    overwrite: bool = _opt(False, "replace the metrics.jsonl and model.safetensors of an earlier run in --out", bool)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["kind"] == "path" and isinstance(value, os.PathLike):
                object.__setattr__(self, f.name, os.fspath(value))  # a Path is as good as a str
            _check_type(f, getattr(self, f.name))
        validate(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with `changes` applied, checked like a new one."""
        return dataclasses.replace(self, **changes)

    def model_config(self) -> ModelConfig:
        """The model shape these options give when training from scratch (no --init)."""
        return config_from_flags(self)


def _check_type(f: dataclasses.Field, value: Any) -> None:
    """Python callers get a TrainConfigError for a wrong type too (argparse checks the CLI's before this)."""
    kind = f.metadata["kind"]
    if value is None and (f.default is None or kind == "bool?"):
        return
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          bool: isinstance(value, bool), "bool?": isinstance(value, bool),
          str: isinstance(value, str), "path": isinstance(value, str)}[kind]
    name = {int: "an int", float: "a number", bool: "True or False", "bool?": "True, False or None",
            str: "a str", "path": "a str or os.PathLike"}[kind]
    if not ok:
        raise TrainConfigError(f"TrainConfig.{f.name} must be {name}, got {value!r}", field=f.name)
    choices = f.metadata["cli"].get("choices")
    if choices and value not in choices:
        raise TrainConfigError(f"TrainConfig.{f.name} must be one of {', '.join(choices)}, got {value!r}", field=f.name)


def flag(name: str) -> str:
    """The CLI flag of a TrainConfig field: `kv_heads` -> `--kv-heads`."""
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, with its default and help, in field order."""
    for f in dataclasses.fields(TrainConfig):
        kind, extra = f.metadata["kind"], dict(f.metadata["cli"])
        if f.default is not dataclasses.MISSING:
            extra["default"] = f.default
        if kind == "bool?":
            extra["action"] = argparse.BooleanOptionalAction
        elif kind is bool:
            extra["action"] = "store_true"
        elif kind in (int, float):
            extra["type"] = kind
        parser.add_argument(flag(f.name), help=f.metadata["help"], **extra)


def from_namespace(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed `pretrain train` flags (raises TrainConfigError like any other)."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


# ---------------------------------------------------------------- the rules

def validate(cfg: Any) -> None:
    """Refuse out-of-range numbers up front, naming the flag, before anything is built or written.

    Shape flags are checked here too: `--layers 0` must not quietly fall back to the default.
    """
    for name, (low, high) in INT_LIMITS.items():
        value = getattr(cfg, name)
        if value is None and name in SHAPE_FLAGS:
            continue  # left out: the default, or the --init checkpoint's value
        if value is None or value < low:
            if name == "warmup":
                raise TrainConfigError(f"--warmup must be >= 0 steps, got {value}; pass --warmup 0 for no warmup",
                                  field=name)
            fix = "; pass a value >= 1 or leave the flag out for the default" if name in SHAPE_FLAGS else ""
            kind = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise TrainConfigError(f"{flag(name)} must be {kind}, got {value}{fix}", field=name)
        if value > high:
            raise TrainConfigError(f"{flag(name)} {value} is above this trainer's limit of {high:,}; "
                              f"pass {flag(name)} {high} or less", field=name)
    # (field, lowest allowed, lowest is allowed itself, highest or None, what to pass instead)
    # --lr is capped at 1: AdamW moves each weight by about lr per step, so more than 1 only diverges, and
    # a huge one (1e308) overflows inside the optimizer's bias correction.
    reals = [("lr", 0.0, False, 1.0, "e.g. --lr 3e-3"),
             ("rope_theta", 0.0, False, None, "e.g. --rope-theta 10000"),
             ("weight_decay", 0.0, True, None, "--weight-decay 0 turns it off"),
             ("grad_clip", 0.0, True, None, "--grad-clip 0 turns clipping off"),
             ("min_lr_ratio", 0.0, True, 1.0, "e.g. --min-lr-ratio 0.1"),
             ("peak_flops", 0.0, False, None, "e.g. --peak-flops 989.5e12 (an H100's bf16), or leave it out")]
    for name, low, low_ok, high, fix in reals:
        value = getattr(cfg, name)
        if value is None:
            continue
        in_range = math.isfinite(value) and (value >= low if low_ok else value > low) and (high is None or value <= high)
        if not in_range:
            bound = f"{'>=' if low_ok else '>'} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise TrainConfigError(f"{flag(name)} must be a finite number {bound}, got {value}; {fix}", field=name)
    for name in ("license", "data_source", "data_license"):
        check_text(name, getattr(cfg, name))


def check_text(name: str, value: str | None) -> None:
    """Metadata text must be printable Unicode of bounded length: it is shown by `pretrain inspect`.

    The message names the flag and the character's position and code point, never the text itself, so a
    terminal escape in it cannot act on the terminal that shows the error.
    """
    if value is None:
        return
    if len(value) > MAX_TEXT_CHARS:
        raise TrainConfigError(f"{flag(name)} is {len(value):,} characters long; the limit is {MAX_TEXT_CHARS}",
                          field=name)
    for pos, char in enumerate(value, start=1):
        category = unicodedata.category(char)
        if category == "Cs":  # an undecodable byte in argv (surrogateescape)
            raise TrainConfigError(f"{flag(name)}: character {pos} is not valid UTF-8; pass UTF-8 text", field=name)
        if category in ("Cc", "Cf"):
            raise TrainConfigError(f"{flag(name)}: character {pos} is the control character U+{ord(char):04X}; "
                              "pass printable text (no newlines, tabs or escapes)", field=name)


def config_from_flags(args: Any) -> ModelConfig:
    """The model shape from the shape options, each left-out one at its default."""
    family = args.family or "llama"
    hidden = args.hidden or DEFAULTS["hidden"]
    heads = args.heads or DEFAULTS["heads"]
    if args.head_dim is None and hidden % heads:
        raise TrainConfigError(f"--hidden {hidden} is not divisible by --heads {heads}; pass --head-dim explicitly "
                          "or pick --hidden as a multiple of --heads", field="hidden")
    intermediate = args.intermediate or 8 * ((8 * hidden // 3 + 7) // 8)
    tie = args.tie_embeddings if args.tie_embeddings is not None else family == "qwen2"
    try:
        return ModelConfig(
            family=family, vocab_size=args.vocab or DEFAULTS["vocab"], hidden_size=hidden,
            intermediate_size=intermediate, num_hidden_layers=args.layers or DEFAULTS["layers"],
            num_attention_heads=heads, num_key_value_heads=args.kv_heads or DEFAULTS["kv_heads"],
            head_dim=args.head_dim or hidden // heads, rope_theta=args.rope_theta or DEFAULTS["rope_theta"],
            tie_word_embeddings=tie, max_position_embeddings=max(2048, args.seq_len),
        )
    except LoadError as exc:
        raise TrainConfigError(f"bad model flags: {exc}") from None


def check_flags_agree(args: Any, cfg: ModelConfig, init: str) -> None:
    """With --init, every shape option given must match the checkpoint's config (the shape comes from it)."""
    for name, config_field in SHAPE_FLAGS.items():
        given = getattr(args, name)
        if given is not None and given != getattr(cfg, config_field):
            shown = f"{flag(name)} {given}"
            if isinstance(given, bool):
                shown = f"--{'' if given else 'no-'}{name.replace('_', '-')}"
            raise TrainConfigError(
                f"{shown} contradicts --init {init}, whose config has "
                f"{config_field}={getattr(cfg, config_field)!r}; the model shape comes from the checkpoint: "
                "drop the flag", field=name)


RUN_FILES = ("metrics.jsonl", "model.safetensors")


def check_out_dir(out: Path, overwrite: bool = False) -> None:
    """Refuse an --out that cannot become a writable directory, before anything is loaded or written."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a directory; pass a directory path "
                          "(it is created if missing)")
    # A rerun would truncate the earlier run's metrics at step 0 and replace its weights at the end.
    earlier = [name for name in RUN_FILES if (out / name).exists()]
    if earlier and not overwrite:
        raise OutputError(f"--out {out}: already holds an earlier run ({', '.join(earlier)}); pass a new --out, "
                          "or --overwrite to replace it")
    parent = out
    while not parent.exists():
        if parent.is_symlink():
            raise OutputError(f"--out {out}: {parent} is a dangling symlink; remove it or pass another --out")
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"--out {out}: {parent} is not a directory; pass a path under a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: {parent} is not writable by this user; pass a --out you can write "
                          "to, or fix the permissions (chmod u+w)")


def command_line(cfg: TrainConfig) -> str:
    """The `pretrain train` command that gives `cfg`: every option that differs from its default, shell-quoted.

    Recorded in the checkpoint as `train_command` metadata, so a model card can say how to reproduce the run.
    `--overwrite` is left out: it says how the run treated an earlier one, not what it trained.
    """
    import shlex

    parts = ["pretrain", "train"]
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name == "overwrite" or (f.default is not dataclasses.MISSING and value == f.default):
            continue
        kind = f.metadata["kind"]
        if kind == "bool?":
            parts.append(flag(f.name) if value else "--no-" + f.name.replace("_", "-"))
        elif kind is bool:
            parts.append(flag(f.name))
        else:
            parts += [flag(f.name), shlex.quote(str(value))]
    return " ".join(parts)
