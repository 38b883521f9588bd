"""Family inference, claim normalisation and the INV-INIT-ARCH-MATCH-001 gate, on real HF tensor names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falsifiers.tiny_hf import HF_CLASSES, expected_family, hf_tensor_names, names_at_depth
from pretrain.families import (
    CANONICAL_HF,
    FAMILIES,
    InitArchMismatchError,
    family_from_tensor_names,
    normalize_metadata_arch_family,
    validate_init_arch_matches_tensor_evidence,
)

HEAD_PREFIXES = ("lm_head.", "head.", "cls.", "embed_out.")


@pytest.mark.parametrize("cls_name", HF_CLASSES)
@pytest.mark.parametrize("layers", [1, 3])
def test_real_hf_state_dict_names_infer_their_family(cls_name: str, layers: int) -> None:
    names = hf_tensor_names(cls_name, layers)
    assert family_from_tensor_names(names) == expected_family(cls_name)


@pytest.mark.parametrize("cls_name", HF_CLASSES)
def test_family_survives_dropping_the_lm_head(cls_name: str) -> None:
    # save_pretrained omits a tied lm_head; the body alone must still say the family.
    names = [n for n in hf_tensor_names(cls_name) if not n.startswith(HEAD_PREFIXES)]
    assert family_from_tensor_names(names) == expected_family(cls_name)


@pytest.mark.parametrize("cls_name", ["LlamaForCausalLM", "Qwen2ForCausalLM", "BertModel"])
def test_family_from_mapping_keys_and_wrapper_prefixes(cls_name: str) -> None:
    names = hf_tensor_names(cls_name)
    assert family_from_tensor_names(dict.fromkeys(names, 0)) == expected_family(cls_name)
    assert family_from_tensor_names([f"module._orig_mod.{n}" for n in names]) == expected_family(cls_name)


def test_llama_with_attention_bias_is_not_mistaken_for_qwen2() -> None:
    import torch
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
        num_hidden_layers=1, attention_bias=True,
    )
    with torch.device("meta"):
        names = list(transformers.LlamaForCausalLM(config).state_dict())
    assert "model.layers.0.self_attn.q_proj.bias" in names
    assert family_from_tensor_names(names) == "llama"


@pytest.mark.parametrize(
    "names",
    [
        ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_gate.weight", "output.weight"],
        [],
        ["optimizer.state.0.exp_avg", "model.rotary_emb.inv_freq"],
        ["weight", "bias"],
    ],
    ids=["gguf", "empty", "only-extras", "anonymous"],
)
def test_names_that_say_nothing_give_unknown(names: list[str]) -> None:
    assert family_from_tensor_names(names) == "unknown"


def test_a_single_string_is_refused_rather_than_read_as_characters() -> None:
    with pytest.raises(TypeError, match="iterable of tensor names"):
        family_from_tensor_names("model.layers.0.mlp.gate_proj.weight")


@pytest.mark.parametrize(
    ("claim", "family"),
    [
        ("Qwen2ForCausalLM", "qwen2"),
        ("Qwen3ForCausalLM", "qwen3"),
        ("LlamaForCausalLM", "llama"),
        ("MistralForCausalLM", "llama"),
        ("GPT2LMHeadModel", "gpt2"),
        ("GPTNeoXForCausalLM", "gpt-neox"),
        ("OPTForCausalLM", "opt"),
        ("BertModel", "bert"),
        ("BertForMaskedLM", "bert"),
        ("MambaForCausalLM", "mamba"),
        ("RwkvForCausalLM", "rwkv"),
        ("qwen2", "qwen2"),
        ("gpt-neox", "gpt-neox"),
        ("gpt_neox", "gpt-neox"),
        ("gptneox", "gpt-neox"),
        ("mistral", "llama"),
        ("Qwen2", "qwen2"),
        ("Llama", "llama"),
        ("  llama ", "llama"),
    ],
)
def test_claims_in_every_form_normalise_to_the_slug(claim: str, family: str) -> None:
    assert normalize_metadata_arch_family(claim) == family


@pytest.mark.parametrize("claim", [None, "", "unknown", "Qwen2MoeForCausalLM", "Mamba2ForCausalLM", "FooBarForCausalLM", "Model", 7])
def test_unmappable_claims_are_no_claim(claim: object) -> None:
    assert normalize_metadata_arch_family(claim) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
def test_canonical_hf_identity_round_trips_to_its_family(family: str) -> None:
    ident = CANONICAL_HF[family]
    assert normalize_metadata_arch_family(ident.architecture) == family
    assert normalize_metadata_arch_family(ident.model_type) == family
    assert normalize_metadata_arch_family(family) == family


# --- the gate ----------------------------------------------------------------------------------------


def test_canonical_case_llama_claim_on_qwen2_tensors_is_refused() -> None:
    names = hf_tensor_names("Qwen2ForCausalLM")
    with pytest.raises(InitArchMismatchError) as info:
        validate_init_arch_matches_tensor_evidence("LlamaForCausalLM", names, path="runs/a/ckpt.safetensors")
    err = info.value
    assert (err.claimed, err.inferred) == ("llama", "qwen2")
    message = str(err)
    assert "FALSIFY-INIT-ARCH-MATCH-001" in message and "llama" in message and "qwen2" in message
    assert (
        "pretrain stamp runs/a/ckpt.safetensors --architecture qwen2 --hf-architecture Qwen2ForCausalLM "
        "--hf-model-type qwen2 -o runs/a/ckpt.fixed.safetensors" in message
    )


def test_inverse_qwen2_claim_on_llama_tensors_is_refused() -> None:
    with pytest.raises(InitArchMismatchError) as info:
        validate_init_arch_matches_tensor_evidence("Qwen2ForCausalLM", hf_tensor_names("LlamaForCausalLM"))
    assert (info.value.claimed, info.value.inferred) == ("qwen2", "llama")
    assert "--architecture llama --hf-architecture LlamaForCausalLM --hf-model-type llama" in str(info.value)


def test_skip_when_the_claim_is_absent() -> None:
    validate_init_arch_matches_tensor_evidence(None, hf_tensor_names("Qwen2ForCausalLM"))
    validate_init_arch_matches_tensor_evidence("", hf_tensor_names("Qwen2ForCausalLM"))


def test_skip_when_the_claim_is_a_novel_architecture() -> None:
    validate_init_arch_matches_tensor_evidence("Qwen2MoeForCausalLM", hf_tensor_names("Qwen2ForCausalLM"))


def test_skip_when_the_tensor_names_say_nothing() -> None:
    gguf_names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_q.bias", "output_norm.weight"]
    validate_init_arch_matches_tensor_evidence("LlamaForCausalLM", gguf_names)


@pytest.mark.parametrize("cls_name", HF_CLASSES)
def test_matching_claims_pass_for_every_family(cls_name: str) -> None:
    family = expected_family(cls_name)
    names = hf_tensor_names(cls_name)
    for claim in (cls_name, family, CANONICAL_HF[family].model_type):
        validate_init_arch_matches_tensor_evidence(claim, names)


@pytest.mark.parametrize("cls_name", HF_CLASSES)
def test_every_wrong_family_claim_is_refused(cls_name: str) -> None:
    inferred = expected_family(cls_name)
    names = hf_tensor_names(cls_name)
    for claimed in FAMILIES:
        if claimed == inferred:
            continue
        with pytest.raises(InitArchMismatchError) as info:
            validate_init_arch_matches_tensor_evidence(CANONICAL_HF[claimed].architecture, names)
        assert (info.value.claimed, info.value.inferred) == (claimed, inferred)


EXTRAS = [
    "optimizer.state.0.exp_avg",
    "optimizer.state.0.exp_avg_sq",
    "optimizer.state.0.step",
    "model.rotary_emb.inv_freq",
    "scheduler.last_epoch",
    "rng_state",
    "model.layers.0.self_attn.rotary_emb.inv_freq",
    "ema.shadow.0",
]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    cls_name=st.sampled_from(HF_CLASSES),
    depth=st.integers(min_value=1, max_value=12),
    extras=st.lists(st.sampled_from(EXTRAS), max_size=len(EXTRAS), unique=True),
    drop_head=st.booleans(),
    data=st.data(),
)
def test_inferred_family_is_stable_under_depth_order_and_extra_tensors(
    cls_name: str, depth: int, extras: list[str], drop_head: bool, data: st.DataObject
) -> None:
    names = names_at_depth(cls_name, depth) + extras
    if drop_head:
        names = [n for n in names if not n.startswith(HEAD_PREFIXES)]
    shuffled = data.draw(st.permutations(names))
    assert family_from_tensor_names(shuffled) == expected_family(cls_name)


def _variant_configs() -> list[tuple[str, object, str]]:
    import transformers as T

    c = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, vocab_size=256, num_hidden_layers=2)
    neox = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=256)
    return [
        ("LlamaForCausalLM", T.LlamaConfig(**c, attention_bias=True, mlp_bias=True, tie_word_embeddings=False), "llama"),
        ("MistralForCausalLM", T.MistralConfig(**c, tie_word_embeddings=False), "llama"),
        ("MistralModel", T.MistralConfig(**c), "llama"),
        ("Qwen2ForCausalLM", T.Qwen2Config(**c, tie_word_embeddings=False), "qwen2"),
        ("Qwen2ForCausalLM", T.Qwen2Config(**c, tie_word_embeddings=True), "qwen2"),
        ("Qwen3ForCausalLM", T.Qwen3Config(**c, head_dim=8, tie_word_embeddings=False, attention_bias=True), "qwen3"),
        ("GPTNeoXModel", T.GPTNeoXConfig(**neox), "gpt-neox"),
        ("OPTModel", T.OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=256), "opt"),
        ("OPTForCausalLM", T.OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=256, word_embed_proj_dim=16), "opt"),
        ("MambaModel", T.MambaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=256, state_size=4), "mamba"),
        ("RwkvModel", T.RwkvConfig(hidden_size=32, num_hidden_layers=2, vocab_size=256, attention_hidden_size=32, intermediate_size=64), "rwkv"),
        ("BertForSequenceClassification", T.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=256), "bert"),
        ("GPT2LMHeadModel", T.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=256, tie_word_embeddings=False), "gpt2"),
    ]


@pytest.mark.parametrize("index", range(13))
def test_config_variants_and_base_models_do_not_flip_the_family(index: int) -> None:
    # Biases, untied heads, projection dims and head-less base classes change the names a model has;
    # none of them may change the family its names say.
    import torch
    import transformers

    variants = _variant_configs()
    assert len(variants) == 13
    cls_name, config, family = variants[index]
    with torch.device("meta"):
        names = list(getattr(transformers, cls_name)(config).state_dict())
    assert family_from_tensor_names(names) == family
    assert family_from_tensor_names(reversed(names)) == family
    validate_init_arch_matches_tensor_evidence(cls_name, names)


# --- the one family table and the one claim resolver ----------------------------------------------


def test_every_family_in_the_table_is_claimed_by_its_slug_class_and_model_type() -> None:
    from pretrain.families import FAMILY_TABLE

    for family, spec in FAMILY_TABLE.items():
        for claim in (spec.slug, spec.hf_class, spec.model_type, spec.base_class, *spec.aliases):
            assert normalize_metadata_arch_family(claim) == family, (family, claim)


def test_the_model_builds_exactly_the_trainable_families_of_the_table() -> None:
    from pretrain import model
    from pretrain.families import FAMILY_TABLE

    assert set(model.FAMILIES) == {f for f, spec in FAMILY_TABLE.items() if spec.trainable} == {"llama", "qwen2", "qwen3"}
    for family in model.FAMILIES:
        assert model.ModelConfig(family=family).hf_architecture == CANONICAL_HF[family].architecture


@pytest.mark.parametrize(
    ("metadata", "config", "text", "source"),
    [
        ({"architecture": "qwen2", "hf_architecture": "LlamaForCausalLM"}, None, "qwen2", "metadata 'architecture'"),
        ({"architecture": "unknown", "hf_architecture": "LlamaForCausalLM"}, None, "LlamaForCausalLM", "metadata 'hf_architecture'"),
        ({"architecture": " Unknown "}, {"architectures": ["Qwen3ForCausalLM"]}, "Qwen3ForCausalLM", "config architectures"),
        ({}, {"architectures": ["unknown"], "model_type": "gpt_neox"}, "gpt_neox", "config model_type"),
        ({"general.architecture": "llama"}, None, "llama", "metadata 'general.architecture'"),
        ({"architecture": "unknown"}, {"architectures": [7]}, None, None),
    ],
)
def test_the_claim_comes_from_the_most_specific_source_that_says_something(
    metadata: dict[str, str], config: dict[str, object] | None, text: str | None, source: str | None
) -> None:
    from pretrain.families import resolve_claim

    claim = resolve_claim(metadata, config)
    assert (claim.text, claim.source) == (text, source)


def test_a_scorecard_fix_with_no_known_family_quotes_its_placeholder() -> None:
    # A bare <SLUG> is a shell redirection: the printed command must split into the intended words.
    import shlex

    from pretrain.families import stamp_command

    command = stamp_command("my ckpt.safetensors", None, flags=[("--license", "'<SPDX-ID>'")])
    assert shlex.split(command) == ["pretrain", "stamp", "my ckpt.safetensors", "--architecture", "<SLUG>",
                                    "--license", "<SPDX-ID>", "-o", "my ckpt.fixed.safetensors"]
