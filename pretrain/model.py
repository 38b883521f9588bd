"""One decoder-only causal LM for the Llama, Qwen2 and Qwen3 families, HF-compatible both ways.

Parameter names are exactly Hugging Face transformers' (`model.layers.0.self_attn.q_proj.weight`, ...)
so a `save_pretrained` directory loads here and our weights load into transformers. The three families
differ only in a few switches, all carried by `ModelConfig`:

- llama: optional biases on all four attention projections (`attention_bias`) and on the MLP (`mlp_bias`);
- qwen2: biases on q/k/v (never on o_proj), usually tied embeddings;
- qwen3: RMSNorm on each query/key head (`q_norm`/`k_norm`) and an explicit `head_dim`.

Generation (pretrain.generate) decodes through a KV cache: `new_cache(model, batch, max_len)` gives one
`KVCache` per layer, `forward_cached(model, prompt_ids, cache)` fills it once (prefill), and each step
after passes only the newest token.

Loading is strict, always (INV-INIT-STRICT-001): the model is built on the meta device, so no random
initialisation happens at all, and every parameter must come from the file; a missing, unexpected or
mis-shaped tensor is a `StrictLoadError` listing them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.checkpoint import atomic_write
# The config and the errors are torch-free (pretrain.model_config); re-exported so this stays their home.
from pretrain.model_config import (  # noqa: F401  (re-exported)
    FAMILIES,
    HF_ARCHITECTURES,
    MAX_CONFIG_INT,
    ConfigError,
    LoadError,
    ModelConfig,
    StrictLoadError,
)

# False while a model is built only to receive a checkpoint's tensors: nn's default initialisation would be
# overwritten at once, and on the meta device it imports torch._dynamo (2.4 s of a 2.5 s fresh load).
# A context variable, not a patched torch.nn: a model built by another thread meanwhile keeps its init.
_INITIALISE = contextvars.ContextVar("pretrain_model_initialise", default=True)


@contextlib.contextmanager
def _uninitialised() -> Iterator[None]:
    token = _INITIALISE.set(False)
    try:
        yield
    finally:
        _INITIALISE.reset(token)


class Linear(nn.Linear):
    """nn.Linear whose construction-time init is skipped inside `_uninitialised()`."""

    def reset_parameters(self) -> None:
        if _INITIALISE.get():
            super().reset_parameters()


class Embedding(nn.Embedding):
    """nn.Embedding whose construction-time init is skipped inside `_uninitialised()`."""

    def reset_parameters(self) -> None:
        if _INITIALISE.get():
            super().reset_parameters()


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 like HF, so bf16 runs match its numerics.
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotary_cos_sin(seq_len: int, head_dim: int, theta: float, device: torch.device,
                   dtype: torch.dtype, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (seq_len, head_dim) for positions start .. start + seq_len - 1 (start > 0: decoding with a cache)."""
    # Computed per call instead of held in a buffer: a meta-device model has no buffer values to keep.
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    freqs = torch.outer(torch.arange(start, start + seq_len, device=device, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


# scaled_dot_product_attention(enable_gqa=) arrived in torch 2.5.
_SDPA_GQA = torch.__version__ >= (2, 5)


class KVCache:
    """One attention layer's keys and values for the positions seen so far, so decoding computes one token per step.

    Preallocated for `max_len` positions; `append` writes the new positions after the old ones and returns
    the keys and values of every position so far (views into the buffers, no copy).
    """

    def __init__(self, batch: int, n_kv_heads: int, max_len: int, head_dim: int,
                 device: torch.device | str, dtype: torch.dtype) -> None:
        self.k = torch.empty(batch, n_kv_heads, max_len, head_dim, device=device, dtype=dtype)  # (b, n_kv, max_len, hd)
        self.v = torch.empty_like(self.k)
        self.length = 0  # positions filled

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v (b, n_kv, t, hd) for positions length .. length + t - 1 -> (b, n_kv, length + t, hd) each."""
        end = self.length + k.shape[2]
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache holds {self.k.shape[2]} positions; {end} were asked for")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        qkv_bias = True if cfg.family == "qwen2" else cfg.attention_bias
        o_bias = False if cfg.family == "qwen2" else cfg.attention_bias
        self.q_proj = Linear(cfg.hidden_size, self.n_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=qkv_bias)
        self.v_proj = Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=qkv_bias)
        self.o_proj = Linear(self.n_heads * self.head_dim, cfg.hidden_size, bias=o_bias)
        if cfg.family == "qwen3":
            self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(b, t, self.n_kv, self.head_dim)
        v = self.v_proj(x).view(b, t, self.n_kv, self.head_dim)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (b, heads, t, head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        past = 0 if cache is None else cache.length
        if cache is not None:
            k, v = cache.append(k, v)  # (b, n_kv, past + t, head_dim): every position so far
        # Query i sits at position past + i and sees keys 0 .. past + i. With nothing cached that is SDPA's
        # own causal mask; one new token sees every key (no mask); a chunk after a cache needs the offset.
        mask, causal = None, past == 0 and t > 1
        if past and t > 1:
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
        if self.n_kv == self.n_heads:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        elif _SDPA_GQA:
            # Grouped-query attention inside SDPA (flash on CUDA): no repeated copy of k and v per step.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
        else:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        bias = cfg.mlp_bias if cfg.family == "llama" else False
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CausalLM(nn.Module):
    """forward(input_ids (batch, seq)) -> logits (batch, seq, vocab)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        # Tied: no lm_head parameter at all, so the state dict matches HF's saved file (which omits it).
        self.lm_head = None if cfg.tie_word_embeddings else Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.model.embed_tokens(input_ids)
        cos, sin = rotary_cos_sin(input_ids.shape[1], self.config.head_dim, self.config.rope_theta,
                                  x.device, x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        x = self.model.norm(x)
        weight = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, weight)

    def reset_parameters(self, std: float = 0.02) -> None:
        """HF-style init (normal(0, std) matrices, zero biases, unit norms), for training from scratch."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write an HF `save_pretrained`-style directory (config.json + model.safetensors), atomically per file."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        atomic_write(out / "model.safetensors", lambda p: save_file(tensors, p, metadata={"format": "pt"}))
        atomic_write(out / "config.json",
                      lambda p: Path(p).write_text(json.dumps(self.config.to_hf_dict(), indent=2) + "\n"))
        return out


def new_cache(model: CausalLM, batch: int, max_len: int) -> list[KVCache]:
    """An empty KV cache for `model`: one KVCache per layer, for `batch` sequences of up to `max_len` positions."""
    cfg, weight = model.config, model.model.embed_tokens.weight
    return [KVCache(batch, cfg.num_key_value_heads, max_len, cfg.head_dim, weight.device, weight.dtype)
            for _ in range(cfg.num_hidden_layers)]


def forward_cached(model: CausalLM, input_ids: torch.Tensor, cache: list[KVCache]) -> torch.Tensor:
    """CausalLM.forward for the positions after those in `cache`, which it extends: logits (batch, seq, vocab).

    Prefill passes the prompt into an empty cache once; each decoding step then passes one token. The same
    computation as CausalLM.forward (tests/pretrain/test_generate.py holds the logits equal within 1e-5),
    kept beside it rather than inside it so that the training forward has no branch it never takes.
    """
    x = model.model.embed_tokens(input_ids)
    cfg = model.config
    cos, sin = rotary_cos_sin(input_ids.shape[1], cfg.head_dim, cfg.rope_theta, x.device, x.dtype,
                              start=cache[0].length)
    for layer, layer_cache in zip(model.model.layers, cache, strict=True):
        x = layer(x, cos, sin, layer_cache)
    x = model.model.norm(x)
    weight = model.model.embed_tokens.weight if model.lm_head is None else model.lm_head.weight
    return F.linear(x, weight)


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                seed: int | None = None) -> CausalLM:
    """A freshly initialised model (training from scratch). Loading a checkpoint never goes through here."""
    if seed is not None:
        torch.manual_seed(seed)
    model = CausalLM(cfg)
    model.reset_parameters()
    return model.to(device=device, dtype=dtype)


def skeleton(cfg: ModelConfig) -> CausalLM:
    """The model on the meta device with no values at all: nothing initialised, no memory, no torch._dynamo.

    What a checkpoint's tensors are checked against and then assigned into; a parameter never assigned
    stays a meta tensor that cannot compute.
    """
    with _uninitialised(), torch.device("meta"):
        return CausalLM(cfg)


def expected_shapes(cfg: ModelConfig, model: CausalLM | None = None) -> dict[str, tuple[int, ...]]:
    """Every tensor name the model needs, with its shape; from `model` or a fresh meta skeleton (no memory)."""
    model = skeleton(cfg) if model is None else model
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_tensor_names_and_shapes(cfg: ModelConfig, file_shapes: Mapping[str, tuple[int, ...]],
                                  source: str, *, model: CausalLM | None = None) -> None:
    """Raise StrictLoadError unless the file holds exactly the model's tensors with the right shapes.

    HF files for tied models may still carry `lm_head.weight`; that one name is tolerated (checked
    for equality with the embedding when loading), everything else must match one to one. `model`: the
    skeleton the tensors will be assigned into (pretrain.loading builds it once per load).
    """
    want = expected_shapes(cfg, model)
    have = dict(file_shapes)
    if cfg.tie_word_embeddings and "lm_head.weight" in have and "lm_head.weight" not in want:
        if tuple(have["lm_head.weight"]) != want["model.embed_tokens.weight"]:
            raise StrictLoadError(source, [], [], [("lm_head.weight", tuple(have["lm_head.weight"]),
                                                    want["model.embed_tokens.weight"])])
        have.pop("lm_head.weight")
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    mismatched = [(n, tuple(have[n]), want[n]) for n in sorted(set(want) & set(have))
                  if tuple(have[n]) != want[n]]
    if missing or unexpected or mismatched:
        raise StrictLoadError(source, missing, unexpected, mismatched)


def load_state_strict(cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], source: str,
                      device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                      *, model: CausalLM | None = None) -> CausalLM:
    """Build the model on the meta device and assign every parameter from `tensors`, or raise.

    Built on meta, a parameter that is not assigned stays a meta tensor that cannot compute, so no path
    can leave random weights behind; the explicit name/shape check makes the error readable. `model`: a
    `skeleton(cfg)` already built (and not yet assigned) by the caller, so a load builds the model once.
    The tensors are assigned, not copied, where they already have the device and dtype asked for.
    """
    model = skeleton(cfg) if model is None else model
    check_tensor_names_and_shapes(cfg, {k: tuple(v.shape) for k, v in tensors.items()}, source, model=model)
    state = dict(tensors)
    if cfg.tie_word_embeddings and "lm_head.weight" in state:
        head = state.pop("lm_head.weight")
        if not torch.equal(head.to("cpu", torch.float32), state["model.embed_tokens.weight"].to("cpu", torch.float32)):
            raise LoadError(
                f"{source}: config ties embeddings (tie_word_embeddings=true) but the file's lm_head.weight "
                "differs from model.embed_tokens.weight; set tie_word_embeddings to false in the config "
                "if the head is meant to be separate"
            )
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}  # no copy when already there
    model.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, p in model.named_parameters() if p.is_meta]
    if leftover:
        raise StrictLoadError(source, leftover, [], [])
    return model


def config_from_header(header: Any) -> ModelConfig:
    """The ModelConfig for a pretrain.checkpoint.Header (HF config.json or our `config` metadata)."""
    if not header.config:
        raise ConfigError(
            f"{header.path}: no model config found (no config.json beside the weights and no `config` "
            "metadata); put the model's HF config.json next to it or re-save it with `pretrain train`"
        )
    config = dict(header.config)
    # The arch claim has passed the tensor-evidence gate by now; a stale model_type left in the config
    # (e.g. after `pretrain stamp` rewrote only the metadata) must not override it.
    claimed = header.claim.family
    claimed = claimed if claimed in FAMILIES else None
    if claimed is not None and config.get("model_type") != claimed:
        config["model_type"] = claimed
        config["architectures"] = [HF_ARCHITECTURES[claimed]]
    return ModelConfig.from_hf_dict(config, source=str(header.path))


def from_pretrained(path: str | os.PathLike[str], device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> CausalLM:
    """Load an HF `save_pretrained` directory (single or sharded) or a checkpoint written by this trainer.

    Through the one load path (pretrain.loading): header only (no tensor data) -> arch-match gate ->
    config -> name/shape check -> data.
    """
    from pretrain.loading import load_checkpoint

    return load_checkpoint(path, device=device, dtype=dtype).model.eval()
