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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

UNKNOWN = "unknown"


@dataclass(frozen=True)
class HFIdentity:
    """The Hugging Face class and model_type that `transformers` uses for a family."""

    architecture: str
    model_type: str


@dataclass(frozen=True)
class FamilySpec:
    """Everything `pretrain` knows about one family; FAMILY_TABLE below is the only copy of it.

    `group` names the tensor-name evidence (_GROUP_PATTERNS) that identifies it; `base_prefix` and
    `base_class` say how its HF head classes keep the base model; `trainable` families are the ones
    pretrain.model builds (the rest are recognised, inspected and stamped, never trained).
    """

    slug: str
    hf_class: str  # canonical HF class: what `pretrain stamp` fills in when only the slug is given
    model_type: str
    group: str
    base_class: str
    base_prefix: str | None
    heads: tuple[tuple[str, str], ...]  # (name pattern, HF class) per head, in the order hf_identity_for tries them
    aliases: tuple[str, ...] = ()  # other claim spellings meaning this family (Mistral uses Llama's names)
    trainable: bool = False

    @property
    def hf(self) -> HFIdentity:
        return HFIdentity(self.hf_class, self.model_type)


def _lm_heads(stem: str) -> tuple[tuple[str, str], ...]:
    return ((r"^lm_head\.", f"{stem}ForCausalLM"), (r"^score\.", f"{stem}ForSequenceClassification"))


# Order matters only where families are listed to people (--help, error messages).
FAMILY_TABLE: dict[str, FamilySpec] = {
    spec.slug: spec
    for spec in (
        FamilySpec("qwen3", "Qwen3ForCausalLM", "qwen3", "llama-like", "Qwen3Model", "model.", _lm_heads("Qwen3"),
                   trainable=True),
        FamilySpec("qwen2", "Qwen2ForCausalLM", "qwen2", "llama-like", "Qwen2Model", "model.", _lm_heads("Qwen2"),
                   trainable=True),
        FamilySpec("llama", "LlamaForCausalLM", "llama", "llama-like", "LlamaModel", "model.", _lm_heads("Llama"),
                   ("mistral",), trainable=True),
        FamilySpec("mamba", "MambaForCausalLM", "mamba", "mamba", "MambaModel", "backbone.",
                   ((r"^lm_head\.", "MambaForCausalLM"),)),
        FamilySpec("rwkv", "RwkvForCausalLM", "rwkv", "rwkv", "RwkvModel", "rwkv.", ((r"^head\.", "RwkvForCausalLM"),)),
        FamilySpec("gpt-neox", "GPTNeoXForCausalLM", "gpt_neox", "gpt-neox", "GPTNeoXModel", "gpt_neox.",
                   ((r"^embed_out\.", "GPTNeoXForCausalLM"), (r"^score\.", "GPTNeoXForSequenceClassification"))),
        FamilySpec("opt", "OPTForCausalLM", "opt", "opt", "OPTModel", "model.", _lm_heads("OPT")),
        # BERT's MLM head is never tied away entirely (cls.predictions.transform.* stays), so a BERT body
        # without a head tensor is a BertModel, prefix or not.
        FamilySpec("bert", "BertForMaskedLM", "bert", "bert", "BertModel", None, (
            (r"^cls\.predictions\.", "BertForMaskedLM"),
            (r"^cls\.seq_relationship\.", "BertForNextSentencePrediction"),
            (r"^classifier\.", "BertForSequenceClassification"),
            (r"^qa_outputs\.", "BertForQuestionAnswering"),
        )),
        FamilySpec("gpt2", "GPT2LMHeadModel", "gpt2", "gpt2", "GPT2Model", "transformer.",
                   ((r"^lm_head\.", "GPT2LMHeadModel"), (r"^score\.", "GPT2ForSequenceClassification"))),
    )
}

FAMILIES: tuple[str, ...] = tuple(FAMILY_TABLE)
# The families pretrain.model can build, alphabetically (as its messages list them).
TRAINABLE_FAMILIES: tuple[str, ...] = tuple(sorted(f for f, spec in FAMILY_TABLE.items() if spec.trainable))

# Canonical HF identity per family (a view of FAMILY_TABLE, kept for its importers).
CANONICAL_HF: dict[str, HFIdentity] = {family: spec.hf for family, spec in FAMILY_TABLE.items()}


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
def _claim_key(text: str) -> str:
    return re.sub(r"[\s_\-]", "", text).lower()


_CLAIM_ALIASES: dict[str, str] = {
    _claim_key(alias): spec.slug
    for spec in FAMILY_TABLE.values()
    for alias in (spec.slug, spec.model_type, *spec.aliases)
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


@dataclass(frozen=True)
class Claim:
    """What a checkpoint says it is: the claim as written and where it was found (both None: no claim)."""

    text: str | None
    source: str | None  # e.g. "metadata 'hf_architecture'", "config.json architectures"

    @property
    def family(self) -> str | None:
        """The family slug the claim names; None when it names none we know (novel, or no claim)."""
        return normalize_metadata_arch_family(self.text)


def _stated(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def config_claims(config: Mapping[str, object] | None) -> tuple[str | None, str | None]:
    """(architectures[0], model_type) as an HF config states them, each None when absent or not text."""
    config = config or {}
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    model_type = config.get("model_type")
    return arch, model_type if isinstance(model_type, str) else None


def stated_claims(
    metadata: Mapping[str, str], config: Mapping[str, object] | None, config_where: str = "config"
) -> list[tuple[str, str]]:
    """Every architecture claim a checkpoint states, most specific first, as (where, text).

    Our own metadata slug, then the HF class in metadata, then the HF config's class and model_type,
    then GGUF's general.architecture.
    """
    config_arch, config_type = config_claims(config)
    sources = (
        ("metadata 'architecture'", metadata.get("architecture")),
        ("metadata 'hf_architecture'", metadata.get("hf_architecture")),
        (f"{config_where} architectures", config_arch),
        (f"{config_where} model_type", config_type),
        ("metadata 'general.architecture'", metadata.get("general.architecture")),
    )
    return [(where, text) for where, raw in sources if (text := _stated(raw)) is not None]


def resolve_claim(
    metadata: Mapping[str, str], config: Mapping[str, object] | None, config_where: str = "config"
) -> Claim:
    """The one claim resolver: the architecture a checkpoint claims, from the most specific source that says anything.

    A source saying "unknown" says nothing, so the next one is asked (a writer that did not know the slug
    may still have recorded the HF class). The INV-INIT-ARCH-MATCH-001 gate, `pretrain inspect`, the
    quality scorecard, `pretrain stamp` and the loader all judge this claim, so none can disagree.
    """
    for where, text in stated_claims(metadata, config, config_where):
        if text.lower() != UNKNOWN:
            return Claim(text, where)
    return Claim(None, None)


def stated_identity(
    metadata: Mapping[str, str], config: Mapping[str, object] | None
) -> tuple[str | None, str | None, str | None]:
    """(architecture, hf_architecture, hf_model_type) each as the checkpoint states it, for the scorecard.

    Unlike resolve_claim, a field saying "unknown" is reported as such: the scorecard grades each field.
    """
    config_arch, config_type = config_claims(config)
    return (
        metadata.get("architecture") or config_arch or metadata.get("general.architecture") or None,
        metadata.get("hf_architecture") or config_arch,
        metadata.get("hf_model_type") or config_type,
    )


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
_HF_HEADS: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    family: tuple((re.compile(pattern), cls) for pattern, cls in spec.heads) for family, spec in FAMILY_TABLE.items()
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
    spec = FAMILY_TABLE[family]
    if spec.base_prefix is not None and any(n.startswith(spec.base_prefix) for n in names):
        return ident.architecture, ident.model_type
    return spec.base_class, ident.model_type


def stamp_command(
    path: str | None,
    family: str | None,
    tensor_names: Iterable[str] | Mapping[str, object] = (),
    *,
    identity: bool = True,
    flags: Sequence[tuple[str, str]] = (),
    output: str | None = None,
) -> str:
    """The one builder of `pretrain stamp` commands (salvage recipes and scorecard fixes), runnable as printed.

    With `identity`, the command stamps `family` with the HF class its tensors' head calls for (a quoted
    '<SLUG>' placeholder when no family is known); `flags` are further (flag, shell-ready value) pairs.
    It works on a .safetensors file and on an HF directory (whose config.json is rewritten into a new
    directory beside it, the weights hard-linked); `output` defaults to fixed_name(path).
    """
    source = path or "ckpt.safetensors"
    parts = ["pretrain", "stamp", _shell_quote(source)]
    if identity and family is None:
        parts += ["--architecture", "'<SLUG>'"]  # quoted: a bare <SLUG> is a shell redirection
    elif identity:
        hf_class, model_type = hf_identity_for(family, tensor_names)
        parts += ["--architecture", family, "--hf-architecture", hf_class, "--hf-model-type", model_type]
    for flag, value in flags:
        parts += [flag, value]
    parts += ["-o", _shell_quote(output or free_fixed_name(source))]
    return " ".join(parts)


def stamp_recipe(
    path: str | None,
    family: str,
    tensor_names: Iterable[str] | Mapping[str, object] = (),
    output: str | None = None,
) -> str:
    """The salvage recipe: the `pretrain stamp` command that rewrites a checkpoint's claim to `family`.

    Every salvage suggestion (the gate's error, `pretrain train`'s hint, stamp's refusals, inspect) is
    this command, built by stamp_command.
    """
    return stamp_command(path, family, tensor_names, output=output)


def fixed_name(source: str) -> str:
    """Where salvage recipes write the restamped copy: beside the original, never over it."""
    if source.endswith(".safetensors"):
        return source[: -len(".safetensors")] + ".fixed.safetensors"
    trimmed = source.rstrip("/")
    if trimmed.split("/")[-1] in ("", ".", ".."):
        # `.` or `..` (the directory one is in): "..fixed" would land inside it; name it beside, absolutely.
        import os.path

        trimmed = os.path.abspath(source)
    return trimmed + ".fixed"


def free_fixed_name(source: str) -> str:
    """fixed_name(source), or for a directory whose fixed name is taken the first free `NAME.fixed.N` (N >= 2).

    Stamping a directory refuses an existing -o (a file's is replaced atomically), so a suggestion naming a
    taken directory would not run as printed.
    """
    import os.path

    name = fixed_name(source)
    if not os.path.isdir(source):
        return name
    candidate, n = name, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = f"{name}.{n}"
    return candidate


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
        f"from random initialisation. If the tensors are right, fix the claim with "
        f"`{stamp_recipe(path, inferred, tensor_names)}`, then pass the fixed file to --init."
    )
    raise InitArchMismatchError(message, claimed=claimed, inferred=inferred, metadata_arch=metadata_arch, path=path)
