"""Model families: inferred from tensor names, claimed by metadata, and the INV-INIT-ARCH-MATCH-001 gate.

A checkpoint says what it is in two independent ways: its metadata claims an architecture, and its
tensor names carry the naming scheme of the code that wrote them. The incident behind
INV-INIT-ARCH-MATCH-001 was a checkpoint that claimed `LlamaForCausalLM` while holding Qwen2
tensors; the trainer built Llama names, matched nothing and trained from random weights. The gate
here refuses such a checkpoint at load time, and only when both sides resolve: a novel architecture
or unreadable names are not evidence of a mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FAMILIES: tuple[str, ...] = ("qwen3", "qwen2", "llama", "mamba", "rwkv", "gpt-neox", "opt", "bert", "gpt2")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class HFIdentity:
    """The Hugging Face class and model_type that `transformers` uses for a family."""

    architecture: str
    model_type: str


# Canonical HF identity per family: what `pretrain stamp` fills in when only the slug is given.
CANONICAL_HF: dict[str, HFIdentity] = {
    "llama": HFIdentity("LlamaForCausalLM", "llama"),
    "qwen2": HFIdentity("Qwen2ForCausalLM", "qwen2"),
    "qwen3": HFIdentity("Qwen3ForCausalLM", "qwen3"),
    "mamba": HFIdentity("MambaForCausalLM", "mamba"),
    "rwkv": HFIdentity("RwkvForCausalLM", "rwkv"),
    "gpt-neox": HFIdentity("GPTNeoXForCausalLM", "gpt_neox"),
    "opt": HFIdentity("OPTForCausalLM", "opt"),
    "bert": HFIdentity("BertForMaskedLM", "bert"),
    "gpt2": HFIdentity("GPT2LMHeadModel", "gpt2"),
}


class InitArchMismatchError(ValueError):
    """The metadata claims one family while the tensor names are another's (INV-INIT-ARCH-MATCH-001)."""

    def __init__(self, message: str, *, claimed: str, inferred: str, metadata_arch: str | None, path: str | None):
        super().__init__(message)
        self.claimed = claimed
        self.inferred = inferred
        self.metadata_arch = metadata_arch
        self.path = path


# --- inference from tensor names -------------------------------------------------------------------

# Each pattern marks a tensor name as evidence for one naming scheme ("group"). Patterns are anchored on
# dot boundaries and searched anywhere in the name, so wrapper prefixes (`module.`, `_orig_mod.`,
# `model.`, `bert.`, none at all for HF base models) neither help nor hurt. Names shared between schemes
# (`self_attn.q_proj` is both Llama's and OPT's) are deliberately not evidence.
_D = r"(?:^|\.)"
_GROUP_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "llama-like": tuple(
        re.compile(p)
        for p in (
            _D + r"self_attn\.o_proj\.",
            _D + r"mlp\.(?:gate|up|down)_proj\.",
            _D + r"self_attn\.[qk]_norm\.",
            r"(?<!decoder\.)" + _D + r"embed_tokens\.",
        )
    ),
    "gpt-neox": tuple(
        re.compile(p)
        for p in (
            _D + r"attention\.query_key_value\.",
            _D + r"mlp\.dense_(?:h_to_4h|4h_to_h)\.",
            _D + r"embed_in\.",
            _D + r"embed_out\.",
        )
    ),
    "gpt2": tuple(re.compile(p) for p in (_D + r"attn\.c_(?:attn|proj)\.", _D + r"mlp\.c_(?:fc|proj)\.", _D + r"wte\.")),
    "opt": tuple(
        re.compile(p)
        for p in (
            _D + r"self_attn\.out_proj\.",
            _D + r"layers\.\d+\.fc[12]\.",
            _D + r"self_attn_layer_norm\.",
            _D + r"decoder\.embed_(?:tokens|positions)\.",
        )
    ),
    "bert": tuple(
        re.compile(p)
        for p in (
            _D + r"attention\.self\.(?:query|key|value)\.",
            _D + r"attention\.output\.(?:dense|LayerNorm)\.",
            _D + r"intermediate\.dense\.",
            _D + r"embeddings\.(?:word|position|token_type)_embeddings\.",
        )
    ),
    "mamba": tuple(re.compile(p) for p in (_D + r"mixer\.(?:A_log|D|x_proj\.|dt_proj\.|conv1d\.|in_proj\.|out_proj\.)",)),
    "rwkv": tuple(re.compile(p) for p in (_D + r"(?:attention|feed_forward)\.time_(?:decay|first|mix_\w+)(?:$|\.)",)),
}

# A group only counts when its most distinctive name is present: e.g. Phi-3 shares Llama's o_proj and
# down_proj but fuses gate/up, Bloom shares NeoX's dense_h_to_4h but not `attention.query_key_value`.
_GROUP_REQUIRED: dict[str, re.Pattern[str]] = {
    "llama-like": re.compile(_D + r"mlp\.gate_proj\."),
    "gpt-neox": re.compile(_D + r"attention\.query_key_value\."),
    "gpt2": re.compile(_D + r"(?:attn\.c_attn|mlp\.c_fc)\."),
    "opt": re.compile(_D + r"self_attn\.out_proj\."),
    "bert": re.compile(_D + r"attention\.self\.query\."),
    "mamba": re.compile(_D + r"mixer\.x_proj\."),  # Mamba-2 has no x_proj; it is not this family
    "rwkv": re.compile(_D + r"attention\.time_(?:decay|first)$"),
}

# Names that disqualify a group: an encoder-decoder (BART, Marian) uses OPT's layer names plus cross-attention.
_GROUP_EXCLUDED: dict[str, re.Pattern[str]] = {
    "opt": re.compile(_D + r"encoder_attn\."),
}

_QK_NORM = re.compile(_D + r"self_attn\.[qk]_norm\.")
_QKV_BIAS = re.compile(_D + r"self_attn\.[qkv]_proj\.bias$")
_O_BIAS = re.compile(_D + r"self_attn\.o_proj\.bias$")


def _names_of(names: Iterable[str] | Mapping[str, object]) -> list[str]:
    if isinstance(names, (str, bytes)):
        raise TypeError("family_from_tensor_names() takes an iterable of tensor names, not a single string")
    return [n for n in (names.keys() if isinstance(names, Mapping) else names) if isinstance(n, str)]


def family_from_tensor_names(names: Iterable[str] | Mapping[str, object]) -> str:
    """Infer the model family from tensor names alone; `unknown` when the names do not say.

    Works on HF state-dict names with or without lm heads, base-model prefixes, wrapper prefixes and
    unrelated extra tensors (optimizer state, buffers). GGUF names (`blk.N.*`) are shared by every
    family and give `unknown`.
    """
    all_names = _names_of(names)
    evidence: dict[str, int] = {}
    for group, patterns in _GROUP_PATTERNS.items():
        required = _GROUP_REQUIRED[group]
        excluded = _GROUP_EXCLUDED.get(group)
        if not any(required.search(n) for n in all_names):
            continue
        if excluded is not None and any(excluded.search(n) for n in all_names):
            continue
        evidence[group] = sum(1 for n in all_names if any(p.search(n) for p in patterns))
    if not evidence:
        return UNKNOWN
    best = max(evidence.values())
    winners = [g for g, count in evidence.items() if count == best]
    if len(winners) != 1:
        # Two schemes equally present is a merged or corrupted file; no single family is evidenced.
        return UNKNOWN
    group = winners[0]
    if group != "llama-like":
        return group
    if any(_QK_NORM.search(n) for n in all_names):
        return "qwen3"
    # Qwen2 biases q/k/v but not o; Llama with attention_bias=True biases all four.
    if any(_QKV_BIAS.search(n) for n in all_names) and not any(_O_BIAS.search(n) for n in all_names):
        return "qwen2"
    return "llama"


# --- metadata claims -------------------------------------------------------------------------------

# Keys are claims lowercased with `_`, `-` and spaces removed, so `gpt_neox`, `gpt-neox`, `GPTNeoX` and
# `gptneox` (GGUF's spelling) all meet here.
_CLAIM_ALIASES: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",  # Mistral's HF weights use Llama's tensor names
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "mamba": "mamba",
    "rwkv": "rwkv",
    "gptneox": "gpt-neox",
    "opt": "opt",
    "bert": "bert",
    "gpt2": "gpt2",
}

# HF head suffixes, longest first so `LMHeadModel` is stripped before `Model`.
_HF_SUFFIXES: tuple[str, ...] = (
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForConditionalGeneration",
    "ForNextSentencePrediction",
    "ForMultipleChoice",
    "PreTrainedModel",
    "ForPreTraining",
    "ForCausalLM",
    "ForMaskedLM",
    "LMHeadModel",
    "Model",
)


def _claim_key(text: str) -> str:
    return re.sub(r"[\s_\-]", "", text).lower()


def normalize_metadata_arch_family(arch: str | None) -> str | None:
    """Map an architecture claim to a family slug, or None when it makes no claim we can check.

    Accepts HF class names (`Qwen2ForCausalLM`, `MistralForCausalLM`), slugs (`gpt-neox`), legacy
    capitalised names (`Llama`) and HF model_type / GGUF names (`gpt_neox`, `gptneox`). `unknown`,
    empty, and novel architectures (`Qwen2MoeForCausalLM`, `Mamba2ForCausalLM`) are no claim.
    """
    if not isinstance(arch, str):
        return None
    text = arch.strip()
    if not text:
        return None
    direct = _CLAIM_ALIASES.get(_claim_key(text))
    if direct is not None:
        return direct
    for suffix in _HF_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return _CLAIM_ALIASES.get(_claim_key(text[: -len(suffix)]))
    return None


def canonical_hf_identity(family: str) -> HFIdentity:
    """The HF class and model_type for a family slug; KeyError names the valid slugs."""
    try:
        return CANONICAL_HF[family]
    except KeyError:
        raise KeyError(f"unknown family {family!r}; valid families: {', '.join(FAMILIES)}") from None


# Which HF class a family's tensors are: the head decides, and a wrong class makes transformers silently
# random-initialise the head it expected (or drop the one on file). Heads are checked in order, after
# wrapper prefixes (`module.`, `_orig_mod.`) are stripped; without a head tensor, the base-model prefix
# (`model.`, `transformer.`, ...) means a head class with tied (unsaved) output weights, and names
# without that prefix are the bare base model (LlamaModel, BertModel, ...).
_LM_FAMILIES = {"llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3", "gpt-neox": "GPTNeoX", "opt": "OPT", "gpt2": "GPT2"}
_HF_HEADS: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "bert": (
        (re.compile(r"^cls\.predictions\."), "BertForMaskedLM"),
        (re.compile(r"^cls\.seq_relationship\."), "BertForNextSentencePrediction"),
        (re.compile(r"^classifier\."), "BertForSequenceClassification"),
        (re.compile(r"^qa_outputs\."), "BertForQuestionAnswering"),
    ),
    "gpt-neox": ((re.compile(r"^embed_out\."), "GPTNeoXForCausalLM"), (re.compile(r"^score\."), "GPTNeoXForSequenceClassification")),
    "gpt2": ((re.compile(r"^lm_head\."), "GPT2LMHeadModel"), (re.compile(r"^score\."), "GPT2ForSequenceClassification")),
    "mamba": ((re.compile(r"^lm_head\."), "MambaForCausalLM"),),
    "rwkv": ((re.compile(r"^head\."), "RwkvForCausalLM"),),
    **{
        family: ((re.compile(r"^lm_head\."), f"{stem}ForCausalLM"), (re.compile(r"^score\."), f"{stem}ForSequenceClassification"))
        for family, stem in _LM_FAMILIES.items()
        if family not in ("gpt-neox", "gpt2")
    },
}
# The prefix under which a head class keeps its base model; BERT's MLM head is never tied away entirely
# (cls.predictions.transform.* stays), so a BERT body without a head tensor is a BertModel, prefix or not.
_HF_BASE_PREFIX: dict[str, str | None] = {
    "llama": "model.", "qwen2": "model.", "qwen3": "model.", "opt": "model.", "gpt-neox": "gpt_neox.",
    "gpt2": "transformer.", "mamba": "backbone.", "rwkv": "rwkv.", "bert": None,
}
_HF_BASE_CLASS: dict[str, str] = {
    "llama": "LlamaModel", "qwen2": "Qwen2Model", "qwen3": "Qwen3Model", "opt": "OPTModel", "gpt-neox": "GPTNeoXModel",
    "gpt2": "GPT2Model", "mamba": "MambaModel", "rwkv": "RwkvModel", "bert": "BertModel",
}
_WRAPPER = re.compile(r"^(?:module\.|_orig_mod\.)+")


def hf_identity_for(family: str, tensor_names: Iterable[str] | Mapping[str, object] = ()) -> tuple[str, str]:
    """The HF class and model_type to claim for `family` holding these tensors (the canonical class without names).

    The class follows the head on file: BERT with `cls.predictions.*` is BertForMaskedLM, with
    `classifier.*` BertForSequenceClassification, with none BertModel; a Llama without `lm_head` and
    without the `model.` prefix is LlamaModel.
    """
    ident = canonical_hf_identity(family)
    names = [_WRAPPER.sub("", n) for n in _names_of(tensor_names)]
    if not names or family_from_tensor_names(names) != family:
        # No names, or another family's (a --force stamp): the head cannot be read off them.
        return ident.architecture, ident.model_type
    heads = _HF_HEADS[family]
    found = [cls for pattern, cls in heads if any(pattern.search(n) for n in names)]
    if family == "bert" and {"BertForMaskedLM", "BertForNextSentencePrediction"} <= set(found):
        return "BertForPreTraining", ident.model_type
    if found:
        return found[0], ident.model_type
    prefix = _HF_BASE_PREFIX[family]
    if prefix is not None and any(n.startswith(prefix) for n in names):
        return ident.architecture, ident.model_type
    return _HF_BASE_CLASS[family], ident.model_type


def stamp_recipe(
    path: str | None,
    family: str,
    tensor_names: Iterable[str] | Mapping[str, object] = (),
    output: str | None = None,
) -> str:
    """The one `pretrain stamp` command that rewrites a checkpoint's claim to `family`, runnable as printed.

    Every salvage suggestion (the gate's error, `pretrain train`'s hint, stamp's refusals, inspect) is
    built here. It works on a .safetensors file and on an HF directory (whose config.json is rewritten
    into a new directory beside it, the weights hard-linked); `output` defaults to fixed_name(path).
    """
    hf_class, model_type = hf_identity_for(family, tensor_names)
    source = path or "ckpt.safetensors"
    target = output or fixed_name(source)
    return (
        f"pretrain stamp {_shell_quote(source)} --architecture {family} --hf-architecture {hf_class} "
        f"--hf-model-type {model_type} -o {_shell_quote(target)}"
    )


def fixed_name(source: str) -> str:
    """Where salvage recipes write the restamped copy: beside the original, never over it."""
    if source.endswith(".safetensors"):
        return source[: -len(".safetensors")] + ".fixed.safetensors"
    return source.rstrip("/") + ".fixed"


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def validate_init_arch_matches_tensor_evidence(
    metadata_arch: str | None,
    tensor_names: Iterable[str] | Mapping[str, object],
    *,
    path: str | None = None,
) -> None:
    """INV-INIT-ARCH-MATCH-001: refuse a checkpoint whose claimed family contradicts its tensor names.

    Raises InitArchMismatchError only when the claim maps to a family, the names infer a family, and
    the two differ. An absent or novel claim, or names that say nothing, pass: the gate must never stop
    a checkpoint it cannot prove wrong.
    """
    claimed = normalize_metadata_arch_family(metadata_arch)
    if claimed is None:
        return
    tensor_names = _names_of(tensor_names)  # read twice below: inference, then the recipe's head class
    inferred = family_from_tensor_names(tensor_names)
    if inferred == UNKNOWN or inferred == claimed:
        return
    where = f"{path}: " if path else ""
    message = (
        f"{where}FALSIFY-INIT-ARCH-MATCH-001: the metadata claims {metadata_arch!r} (family {claimed}) but the "
        f"tensor names are {inferred}'s; building a {claimed} model from it would match no weights and train "
        f"from random initialisation. If the tensors are right, fix the claim:\n"
        f"  {stamp_recipe(path, inferred, tensor_names)}\n"
        f"then pass the fixed file to --init."
    )
    raise InitArchMismatchError(message, claimed=claimed, inferred=inferred, metadata_arch=metadata_arch, path=path)
