"""Falsifiers for apr-hf-parity-v1: our model's logits equal transformers' on the same directory.

Each builds a real tiny `transformers` model from a config, perturbs every parameter (so norms and
biases are not at their trivial init), `save_pretrained`s it to a temp dir, loads it with
`pretrain.model.from_pretrained` and compares fp32 CPU logits; or goes the other way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

TOL = 1e-4
BASE: dict[str, Any] = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2)


def _hf_model(model_type: str, **overrides: Any) -> Any:
    import transformers

    cfg = transformers.AutoConfig.for_model(model_type, **{**BASE, **overrides})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    model.config.architectures = [type(model).__name__]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _max_diff_on_reload(model_type: str, shard: bool = False, **overrides: Any) -> float:
    from pretrain.model import from_pretrained

    ref = _hf_model(model_type, **overrides)
    ids = torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as d:
        ref.save_pretrained(d, **({"max_shard_size": "20KB"} if shard else {}))
        if shard:
            assert (Path(d) / "model.safetensors.index.json").exists(), "transformers did not shard the save"
        ours = from_pretrained(d)
        with torch.no_grad():
            got, want = ours(ids), ref(ids).logits
    assert got.shape == want.shape, f"{model_type}: logits shape {tuple(got.shape)} vs {tuple(want.shape)}"
    return (got - want).abs().max().item()


def _check(model_type: str, **overrides: Any) -> None:
    diff = _max_diff_on_reload(model_type, **overrides)
    assert diff <= TOL, f"{model_type} {overrides}: max |logit diff| vs transformers = {diff:.3g} > {TOL}"


def falsify_llama_logits_match_transformers() -> None:
    """Llama with GQA (4 heads / 2 kv heads), untied head, attention and MLP biases."""
    _check("llama", attention_bias=True, mlp_bias=True)


def falsify_qwen2_logits_match_transformers() -> None:
    """Qwen2 with q/k/v biases, tied embeddings, one kv head (MQA)."""
    _check("qwen2", tie_word_embeddings=True, num_key_value_heads=1)


def falsify_qwen3_logits_match_transformers() -> None:
    """Qwen3 with q_norm/k_norm and head_dim 24 != hidden/heads (8), rope_theta 1e6."""
    _check("qwen3", head_dim=24, rope_theta=1_000_000.0)


def falsify_sharded_checkpoint_logits_match_transformers() -> None:
    for model_type in ("llama", "qwen2", "qwen3"):
        diff = _max_diff_on_reload(model_type, shard=True)
        assert diff <= TOL, f"{model_type} sharded (max_shard_size=20KB): max |logit diff| = {diff:.3g}"


@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(model_type=st.sampled_from(["llama", "qwen2", "qwen3"]), kv=st.sampled_from([1, 2, 4]),
       head_dim=st.sampled_from([4, 8, 12, 24]), theta=st.sampled_from([100.0, 10_000.0, 500_000.0]),
       tied=st.booleans())
def falsify_gqa_head_dim_rope_variants_match_transformers(model_type: str, kv: int, head_dim: int, theta: float,
                                                          tied: bool) -> None:
    _check(model_type, num_key_value_heads=kv, head_dim=head_dim, rope_theta=theta, tie_word_embeddings=tied)


def falsify_our_weights_load_into_transformers() -> None:
    import transformers

    from pretrain.model import ModelConfig, build_model

    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(2))
    for family, tied, head_dim in (("llama", False, 8), ("qwen2", True, 8), ("qwen3", False, 12)):
        cfg = ModelConfig(family=family, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=head_dim, tie_word_embeddings=tied, rope_theta=3000.0)
        ours = build_model(cfg, seed=5).eval()
        with tempfile.TemporaryDirectory() as d:
            ours.save_pretrained(d)
            theirs = transformers.AutoModelForCausalLM.from_pretrained(d).eval()
        assert type(theirs).__name__ == cfg.hf_architecture, f"transformers built {type(theirs).__name__}"
        with torch.no_grad():
            diff = (ours(ids) - theirs(ids).logits).abs().max().item()
        assert diff <= TOL, f"{family}: our save_pretrained loaded into transformers differs by {diff:.3g}"
