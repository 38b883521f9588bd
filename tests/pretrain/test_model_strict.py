"""INV-INIT-STRICT-001: loading never leaves a parameter at random init; every mismatch is a listed error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pretrain.model import (LoadError, ModelConfig, StrictLoadError, build_model, from_pretrained,
                            load_state_strict)
from tests.pretrain.hf_tiny import hf_model, save_hf

CFG = ModelConfig(family="llama", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8)


def state(cfg: ModelConfig = CFG) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_model(cfg, seed=0).state_dict().items()}


def test_complete_state_loads_every_parameter_from_the_file() -> None:
    tensors = state()
    model = load_state_strict(CFG, tensors, "mem")
    loaded = model.state_dict()
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        assert torch.equal(loaded[name], value), name


def test_missing_tensor_is_refused_and_named() -> None:
    tensors = state()
    del tensors["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(StrictLoadError) as info:
        load_state_strict(CFG, tensors, "ckpt.safetensors")
    assert info.value.missing == ["model.layers.1.mlp.up_proj.weight"]
    assert "1 missing" in str(info.value) and "model.layers.1.mlp.up_proj.weight" in str(info.value)
    assert "ckpt.safetensors" in str(info.value)


def test_unexpected_tensor_is_refused_and_named() -> None:
    tensors = state()
    tensors["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(32)
    with pytest.raises(StrictLoadError) as info:
        load_state_strict(CFG, tensors, "x")
    assert info.value.unexpected == ["model.layers.0.self_attn.q_proj.bias"]
    assert "1 unexpected" in str(info.value)


def test_mis_shaped_tensor_is_refused_with_both_shapes() -> None:
    tensors = state()
    tensors["model.norm.weight"] = torch.ones(31)
    with pytest.raises(StrictLoadError) as info:
        load_state_strict(CFG, tensors, "x")
    assert info.value.mismatched == [("model.norm.weight", (31,), (32,))]
    assert "(31,)" in str(info.value) and "(32,)" in str(info.value)


def test_many_missing_are_counted_and_abbreviated() -> None:
    tensors = {k: v for k, v in state().items() if not k.startswith("model.layers.1.")}
    with pytest.raises(StrictLoadError) as info:
        load_state_strict(CFG, tensors, "x")
    assert len(info.value.missing) == 9
    assert "9 missing" in str(info.value) and "(+4 more)" in str(info.value)


def test_untied_config_without_lm_head_is_missing_lm_head() -> None:
    tensors = state()
    del tensors["lm_head.weight"]
    with pytest.raises(StrictLoadError, match="lm_head.weight"):
        load_state_strict(CFG, tensors, "x")


def test_tied_config_accepts_identical_lm_head_and_refuses_a_different_one() -> None:
    tied = ModelConfig(**{**CFG.__dict__, "tie_word_embeddings": True})
    tensors = state(tied)
    assert "lm_head.weight" not in tensors
    load_state_strict(tied, {**tensors, "lm_head.weight": tensors["model.embed_tokens.weight"].clone()}, "x")
    with pytest.raises(LoadError, match="tie_word_embeddings"):
        load_state_strict(tied, {**tensors, "lm_head.weight": torch.randn(256, 32)}, "x")


def test_error_classes_share_a_base() -> None:
    assert issubclass(StrictLoadError, LoadError)


@pytest.mark.parametrize("mutation", ["drop", "extra", "reshape"])
def test_from_pretrained_refuses_damaged_hf_directory(mutation: str, tmp_path: Path) -> None:
    save_hf(hf_model("qwen3"), tmp_path)
    weights = tmp_path / "model.safetensors"
    tensors = load_file(weights)
    if mutation == "drop":
        del tensors["model.layers.0.self_attn.k_norm.weight"]
    elif mutation == "extra":
        tensors["model.layers.2.mlp.gate_proj.weight"] = torch.zeros(64, 32)
    else:
        tensors["model.layers.1.self_attn.v_proj.weight"] = torch.zeros(8, 32)
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(StrictLoadError) as info:
        from_pretrained(tmp_path)
    err = info.value
    assert len(err.missing) + len(err.unexpected) + len(err.mismatched) == 1


def test_from_pretrained_refuses_a_gguf_naming_the_conversion(tmp_path: Path) -> None:
    # The one load path refuses GGUF for from_pretrained as it does for --init, instead of a misleading
    # "no model config found".
    import gguf
    import numpy as np

    from pretrain.checkpoint import CheckpointError

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError) as info:
        from_pretrained(path)
    message = str(info.value)
    assert message.startswith(f"{path}: a GGUF file cannot be loaded as a model")
    assert "gguf_file=" in message and "save_pretrained" in message and "\n" not in message


def test_from_pretrained_refuses_qwen2_tensors_stamped_llama_behind_an_unknown_slug(tmp_path: Path) -> None:
    # The file `pretrain stamp --hf-architecture LlamaForCausalLM --force` makes from an `architecture:
    # unknown` Qwen2 checkpoint: the gate reads the HF class, so every loader refuses it.
    from pretrain.checkpoint import write_checkpoint
    from pretrain.families import InitArchMismatchError

    qwen2 = ModelConfig(family="qwen2", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=8)
    path = tmp_path / "forced.safetensors"
    write_checkpoint(path, state(qwen2), {"architecture": "unknown", "hf_architecture": "LlamaForCausalLM",
                                          "config": qwen2.to_hf_dict()}, verify_arch=False)
    with pytest.raises(InitArchMismatchError) as info:
        from_pretrained(path)
    assert info.value.claimed == "llama" and info.value.inferred == "qwen2"
    assert f"pretrain stamp {path} --architecture qwen2" in str(info.value)
