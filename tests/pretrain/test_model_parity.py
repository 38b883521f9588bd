"""Our model's logits equal transformers' on the same save_pretrained directory, and weights move both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pretrain.model import ModelConfig, build_model, from_pretrained
from tests.pretrain.hf_tiny import hf_logits, hf_model, save_hf

transformers = pytest.importorskip("transformers")

CASES = {
    "llama-gqa": ("llama", {}),
    "llama-mha-rope500k-bias": ("llama", dict(num_key_value_heads=4, rope_theta=500000.0, attention_bias=True,
                                              mlp_bias=True)),
    "qwen2-tied-mqa": ("qwen2", dict(num_key_value_heads=1, tie_word_embeddings=True)),
    "qwen2-untied": ("qwen2", dict(tie_word_embeddings=False, rope_theta=1000.0)),
    "qwen3-headdim24": ("qwen3", dict(head_dim=24, rope_theta=1_000_000.0)),
    "qwen3-tied-headdim8": ("qwen3", dict(head_dim=8, tie_word_embeddings=True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_transformers(case: str, tmp_path: Path) -> None:
    family, overrides = CASES[case]
    ref = hf_model(family, **overrides)
    save_hf(ref, tmp_path)
    ours = from_pretrained(tmp_path)
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(ids)
    want = hf_logits(ref, ids)
    assert got.shape == want.shape == (2, 12, 256)
    assert torch.allclose(got, want, atol=1e-4, rtol=0), f"{case}: max diff {(got - want).abs().max().item()}"
    assert ours.config.family == family


def test_head_dim_not_hidden_over_heads_is_honoured(tmp_path: Path) -> None:
    save_hf(hf_model("qwen3", head_dim=24), tmp_path)
    ours = from_pretrained(tmp_path)
    assert ours.config.head_dim == 24
    assert tuple(ours.model.layers[0].self_attn.q_proj.weight.shape) == (4 * 24, 32)


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_sharded_directory_loads_with_same_logits(family: str, tmp_path: Path) -> None:
    ref = hf_model(family)
    save_hf(ref, tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    ids = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(from_pretrained(tmp_path)(ids), hf_logits(ref, ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("family", "tied"), [("llama", False), ("qwen2", True), ("qwen3", False)])
def test_our_saved_weights_load_into_transformers(family: str, tied: bool, tmp_path: Path) -> None:
    cfg = ModelConfig(family=family, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=12 if family == "qwen3" else 8,
                      tie_word_embeddings=tied, rope_theta=2500.0)
    ours = build_model(cfg, seed=3).eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(theirs).__name__ == cfg.hf_architecture
    ids = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(ours(ids), theirs(ids).logits, atol=1e-4, rtol=0)


def test_hf_dir_claiming_llama_with_qwen2_weights_is_refused_naming_both(tmp_path: Path) -> None:
    from pretrain.families import InitArchMismatchError

    save_hf(hf_model("qwen2"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(architectures=["LlamaForCausalLM"], model_type="llama")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(InitArchMismatchError) as info:
        from_pretrained(tmp_path)
    message = str(info.value).lower()
    assert "llama" in message and "qwen2" in message


def test_config_round_trips_through_hf_dict() -> None:
    cfg = ModelConfig(family="qwen3", hidden_size=48, num_attention_heads=6, num_key_value_heads=3, head_dim=16,
                      intermediate_size=96, rope_theta=123.0, tie_word_embeddings=True)
    assert ModelConfig.from_hf_dict(json.loads(json.dumps(cfg.to_hf_dict()))) == cfg
    theirs = transformers.AutoConfig.for_model(**cfg.to_hf_dict())
    assert ModelConfig.from_hf_dict(theirs.to_dict()) == cfg


def test_an_activation_other_than_silu_is_refused_not_silently_swapped(tmp_path: Path) -> None:
    from pretrain.model import ConfigError

    save_hf(hf_model("llama", hidden_act="gelu"), tmp_path)
    with pytest.raises(ConfigError, match="hidden_act 'gelu' is not supported"):
        from_pretrained(tmp_path)


def test_from_pretrained_dtype_casts_every_parameter_and_stays_close(tmp_path: Path) -> None:
    ref = hf_model("qwen3", head_dim=24)
    save_hf(ref, tmp_path)
    ours = from_pretrained(tmp_path, device="cpu", dtype=torch.bfloat16)
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    ids = torch.randint(0, 256, (2, 10), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = ours(ids)
    assert got.dtype == torch.bfloat16 and got.shape == (2, 10, 256)
    assert torch.allclose(got.float(), hf_logits(ref, ids), atol=0.1, rtol=0)
