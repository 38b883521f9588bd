"""Tiny real `transformers` models, for tests and falsifiers that need genuine HF tensor names.

Models are built on the meta device (no memory, no weights) from configs of hidden size 32 and one
to three layers; only their state-dict names, and for `save_pretrained` CPU weights, are used.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable

# family -> list of (HF class name, config factory(layers) )
_COMMON = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)


def _configs() -> dict[str, tuple[str, Callable[[int], Any]]]:
    import transformers as T

    return {
        "LlamaForCausalLM": ("llama", lambda n: T.LlamaConfig(**_COMMON, num_hidden_layers=n)),
        "LlamaModel": ("llama", lambda n: T.LlamaConfig(**_COMMON, num_hidden_layers=n)),
        "MistralForCausalLM": ("llama", lambda n: T.MistralConfig(**_COMMON, num_hidden_layers=n)),
        "Qwen2ForCausalLM": ("qwen2", lambda n: T.Qwen2Config(**_COMMON, num_hidden_layers=n)),
        "Qwen2Model": ("qwen2", lambda n: T.Qwen2Config(**_COMMON, num_hidden_layers=n)),
        "Qwen3ForCausalLM": ("qwen3", lambda n: T.Qwen3Config(**_COMMON, num_hidden_layers=n, head_dim=8)),
        "Qwen3Model": ("qwen3", lambda n: T.Qwen3Config(**_COMMON, num_hidden_layers=n, head_dim=8)),
        "GPTNeoXForCausalLM": (
            "gpt-neox",
            lambda n: T.GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=n, num_attention_heads=4, vocab_size=256),
        ),
        "GPT2LMHeadModel": ("gpt2", lambda n: T.GPT2Config(n_embd=32, n_layer=n, n_head=4, vocab_size=256, bos_token_id=0, eos_token_id=0)),
        "GPT2Model": ("gpt2", lambda n: T.GPT2Config(n_embd=32, n_layer=n, n_head=4, vocab_size=256, bos_token_id=0, eos_token_id=0)),
        "OPTForCausalLM": (
            "opt",
            lambda n: T.OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=n, num_attention_heads=4, vocab_size=256, word_embed_proj_dim=32),
        ),
        "BertModel": (
            "bert",
            lambda n: T.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=n, num_attention_heads=4, vocab_size=256),
        ),
        "BertForMaskedLM": (
            "bert",
            lambda n: T.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=n, num_attention_heads=4, vocab_size=256),
        ),
        "MambaForCausalLM": ("mamba", lambda n: T.MambaConfig(hidden_size=32, num_hidden_layers=n, vocab_size=256, state_size=4)),
        "RwkvForCausalLM": (
            "rwkv",
            lambda n: T.RwkvConfig(
                hidden_size=32, num_hidden_layers=n, vocab_size=256, attention_hidden_size=32, intermediate_size=64, context_length=64
            ),
        ),
    }


HF_CLASSES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "LlamaModel",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen2Model",
    "Qwen3ForCausalLM",
    "Qwen3Model",
    "GPTNeoXForCausalLM",
    "GPT2LMHeadModel",
    "GPT2Model",
    "OPTForCausalLM",
    "BertModel",
    "BertForMaskedLM",
    "MambaForCausalLM",
    "RwkvForCausalLM",
)


def expected_family(cls_name: str) -> str:
    """The family a class's tensor names belong to (Mistral uses Llama's names)."""
    return _configs()[cls_name][0]


def hf_config(cls_name: str, layers: int = 2) -> Any:
    return _configs()[cls_name][1](layers)


def build_model(cls_name: str, layers: int = 2, device: str = "meta") -> Any:
    import torch
    import transformers

    config = hf_config(cls_name, layers)
    with torch.device(device):
        return getattr(transformers, cls_name)(config)


@functools.lru_cache(maxsize=None)
def hf_tensor_names(cls_name: str, layers: int = 2) -> tuple[str, ...]:
    """The real state-dict names of `cls_name` built from a tiny config with `layers` layers."""
    # Names need no weight values: skipping transformers' init is faster, and some releases' init
    # divides by zero on tiny configs (RWKV with one layer in transformers 4.5x).
    with _no_init_weights():
        return tuple(build_model(cls_name, layers).state_dict().keys())


def _no_init_weights() -> Any:
    try:  # transformers 5.x
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4.x
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


_LAYER = re.compile(r"(?<=\.)(layers|h|layer|blocks)\.0\.")


def names_at_depth(cls_name: str, depth: int) -> list[str]:
    """Real names of a one-layer model, with its layer-0 names replicated to `depth` layers."""
    names = hf_tensor_names(cls_name, 1)
    out: list[str] = []
    for name in names:
        m = _LAYER.search("." + name)
        if m is None:
            out.append(name)
            continue
        for i in range(depth):
            out.append(_LAYER.sub(lambda mm: f"{mm.group(1)}.{i}.", "." + name, count=1)[1:])
    return out
