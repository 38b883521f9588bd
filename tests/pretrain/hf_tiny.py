"""Tiny `transformers` reference models for the trainer's parity and strict-loading tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

BASE: dict[str, Any] = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2)


def hf_model(model_type: str, seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised HF model whose every parameter (norms and biases too) is perturbed.

    HF initialises norms to 1 and biases to 0; the noise makes a mis-loaded norm or bias show in logits.
    """
    import transformers

    cfg = transformers.AutoConfig.for_model(model_type, **{**BASE, **overrides})
    cfg.architectures = [type(transformers.AutoModelForCausalLM.from_config(cfg)).__name__]
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def save_hf(model: Any, directory: Path, **kwargs: Any) -> Path:
    model.save_pretrained(directory, **kwargs)
    return directory


def hf_logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits
