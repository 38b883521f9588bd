"""What the falsifiers share: temp dirs, tiny checkpoints, tiny training runs, in-process CLI capture.

One copy of each, so every falsifier builds its inputs the same way: a tiny run is `pretrain.train.train`
on a TrainConfig (no argv), a CLI claim is checked through `pretrain.cli.main` with its output captured,
and a tiny checkpoint is real tensors written by `pretrain.checkpoint.write_checkpoint`.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from pretrain.model import ModelConfig
    from pretrain.train import TrainResult

# The shape every tiny training run from scratch uses unless it says otherwise: 2 layers, hidden 32, 4/2 heads.
TINY_SHAPE: dict[str, Any] = {"layers": 2, "hidden": 32, "heads": 4, "kv_heads": 2}
# Windows of 32 tokens: a tiny run's default.
TINY_SEQ_LEN = 32


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    """A fresh directory, removed with everything in it afterwards."""
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ---------------------------------------------------------------- the CLI in-process

@dataclass(frozen=True)
class CliResult:
    rc: int
    out: str
    err: str


def run_cli(*argv: str) -> CliResult:
    """`pretrain ARGV...` in this process (`pretrain.cli.main`), with its exit code, stdout and stderr."""
    from pretrain.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return CliResult(rc, out.getvalue(), err.getvalue())


# ---------------------------------------------------------------- tiny training runs

def train_tiny(out: Path, **options: Any) -> "TrainResult":
    """`pretrain.train.train(TrainConfig(...))` into `out`, with stdout's progress lines kept quiet.

    From scratch the model has TINY_SHAPE; with `init=` the shape is the checkpoint's. Any option overrides.
    """
    from pretrain.train import TrainConfig, train

    shape = {} if options.get("init") else TINY_SHAPE
    config = TrainConfig(**{**shape, "seq_len": TINY_SEQ_LEN, **options, "out": out})
    with contextlib.redirect_stdout(io.StringIO()):
        return train(config)


def metrics_rows(out: Path) -> list[dict]:
    """Every line of a run's metrics.jsonl."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def val_losses(out: Path) -> dict[int, float]:
    """step -> val_loss of a run's metrics.jsonl."""
    return {r["step"]: r["val_loss"] for r in metrics_rows(out) if "val_loss" in r}


# ---------------------------------------------------------------- tiny checkpoints

def tiny_config(family: str = "qwen3") -> "ModelConfig":
    """Our model's config at hidden 32, 2 layers, 4/2 heads, head_dim 8 (qwen2 ties its embeddings)."""
    from pretrain.model import ModelConfig

    return ModelConfig(family=family, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, tie_word_embeddings=family == "qwen2")


def tiny_state(family: str = "qwen3") -> dict[str, Any]:
    """A seeded state dict of our `tiny_config(family)` model (our names: HF's)."""
    from pretrain.model import build_model

    return {k: v.clone() for k, v in build_model(tiny_config(family), seed=0).state_dict().items()}


def hf_tensors(cls_name: str, layers: int = 1) -> dict[str, Any]:
    """A seeded tiny real `transformers` model's tensors, without lm_head.weight as save_pretrained does when tied."""
    import torch

    from falsifiers.tiny_hf import build_model

    torch.manual_seed(0)
    model = build_model(cls_name, layers=layers, device="cpu")
    return {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def write_hf_checkpoint(path: Path, cls_name: str, metadata: dict[str, Any]) -> Path:
    """`hf_tensors(cls_name)` written to `path` with `metadata`, unchecked (a mis-stamp is the point)."""
    from pretrain.checkpoint import write_checkpoint

    write_checkpoint(path, hf_tensors(cls_name), metadata, verify_arch=False)
    return path
