"""The one checkpoint load path: any path (.safetensors file, HF directory, GGUF) to a loaded model.

`model.from_pretrained` and `pretrain train --init` both load through here, in one order, so nothing
that refuses a checkpoint can be skipped by one of them:

  header only (no tensor data) -> INV-INIT-ARCH-MATCH-001 gate -> loadable format -> config
  -> caller's config check -> name/shape check -> caller's pre-data check (memory) -> data -> strict load

`pretrain inspect` and `pretrain stamp` stop after the first step (pretrain.checkpoint.read_header) and
never import torch; this module does, so only the loaders import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pretrain import checkpoint
from pretrain import model as model_mod
from pretrain.checkpoint import CheckpointError, Header
from pretrain.model import CausalLM, ModelConfig

ConfigCheck = Callable[[ModelConfig], None]


class NotLoadableError(CheckpointError):
    """The checkpoint reads and passes the gate, but its format's tensors cannot become a model (GGUF)."""


# Why a GGUF cannot be loaded, and how to get a loadable checkpoint from it.
GGUF_REASON = "quantized llama.cpp tensor layout, not HF safetensors"
GGUF_CONVERSION = (
    "convert it to an HF directory first, e.g. "
    "transformers.AutoModelForCausalLM.from_pretrained(DIR, gguf_file=NAME).save_pretrained(OUT)"
)


@dataclass(frozen=True)
class Loaded:
    """A checkpoint loaded strictly: the model, the config it was built from, and the header it was read from."""

    model: CausalLM
    config: ModelConfig
    header: Header


def check_loadable(header: Header) -> Header:
    """Refuse, before any model is built, a checkpoint the gate contradicts or whose format cannot load.

    The gate runs first, so a mis-stamped GGUF still gets its family error (InitArchMismatchError);
    then a GGUF is a NotLoadableError.
    """
    checkpoint.check_init_arch(header)
    if header.format == "gguf":
        raise NotLoadableError(header.path, f"a GGUF file cannot be loaded as a model ({GGUF_REASON})", GGUF_CONVERSION)
    return header


def load_from_header(
    header: Header,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    source: str | None = None,
    check_config: ConfigCheck | None = None,
    before_data: ConfigCheck | None = None,
) -> Loaded:
    """Build the model a checked header describes and load its tensors strictly.

    `check_config(cfg)` runs once the config is parsed (the trainer's flag check) and `before_data(cfg)`
    after the name/shape check, before any tensor data is read (the trainer's memory check). `source`
    is how errors name the checkpoint (default: its path). Raises LoadError or CheckpointError.
    """
    where = source if source is not None else header.path
    cfg = model_mod.config_from_header(header)
    if check_config is not None:
        check_config(cfg)
    # Built once per load, on the meta device with nothing initialised: the header's names and shapes are
    # checked against it, and the file's tensors are assigned into it (not copied).
    skeleton = model_mod.skeleton(cfg)
    model_mod.check_tensor_names_and_shapes(cfg, {k: tuple(v.shape) for k, v in header.tensors.items()}, where,
                                            model=skeleton)
    if before_data is not None:
        before_data(cfg)
    tensors = checkpoint.load_tensors(header.path, device="cpu")
    model = model_mod.load_state_strict(cfg, tensors, where, device=device, dtype=dtype, model=skeleton)
    return Loaded(model=model, config=cfg, header=header)


def load_checkpoint(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **checks: ConfigCheck | None,
) -> Loaded:
    """The whole load path for `path`; raises CheckpointError, InitArchMismatchError or LoadError.

    `checks` are load_from_header's `check_config` and `before_data`.
    """
    header = check_loadable(checkpoint.read_header(path))
    return load_from_header(header, device, dtype, source=str(path), **checks)
