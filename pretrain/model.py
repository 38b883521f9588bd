"""One decoder-only causal LM for the Llama, Qwen2 and Qwen3 families, HF-compatible both ways.

Parameter names are exactly Hugging Face transformers' (`model.layers.0.self_attn.q_proj.weight`, ...)
so a `save_pretrained` directory loads here and our weights load into transformers. The three families
differ only in a few switches, all carried by `ModelConfig`:

- llama: optional biases on all four attention projections (`attention_bias`) and on the MLP (`mlp_bias`);
- qwen2: biases on q/k/v (never on o_proj), usually tied embeddings;
- qwen3: RMSNorm on each query/key head (`q_norm`/`k_norm`) and an explicit `head_dim`.

Loading is strict, always (INV-INIT-STRICT-001): the model is built on the meta device, so no random
initialisation happens at all, and every parameter must come from the file; a missing, unexpected or
mis-shaped tensor is a `StrictLoadError` listing them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.checkpoint import atomic_write, parse_int
from pretrain.families import FAMILY_TABLE, TRAINABLE_FAMILIES

# The families this module builds and their HF classes: views of pretrain.families.FAMILY_TABLE.
FAMILIES: tuple[str, ...] = TRAINABLE_FAMILIES
HF_ARCHITECTURES: dict[str, str] = {family: FAMILY_TABLE[family].hf_class for family in FAMILIES}


class LoadError(Exception):
    """A checkpoint or config cannot become a model; the message says what and how to fix it."""


class ConfigError(LoadError):
    """The config dict does not describe a model this module can build."""


class StrictLoadError(LoadError):
    """The tensors on file do not match the model's parameters one to one."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s): {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s): {_first(unexpected)}")
        if mismatched:
            shown = [f"{n} file {tuple(f)} vs model {tuple(m)}" for n, f, m in mismatched]
            parts.append(f"{len(mismatched)} shape mismatch(es): {_first(shown)}")
        super().__init__(
            f"{source}: refusing to load a partial or mismatched checkpoint; " + "; ".join(parts)
            + ". Nothing was loaded. Fix: point at a checkpoint whose config.json/config metadata "
            "matches its tensors (check `pretrain inspect` on it), or correct the config "
            "(num_hidden_layers, hidden_size, heads, head_dim, tie_word_embeddings, family)."
        )


# No real size, count or vocabulary reaches 2**31; anything past it is a corrupt or hostile config.
MAX_CONFIG_INT = 2**31 - 1


def _shown(raw: Any, width: int = 40) -> str:
    text = repr(raw)
    return text if len(text) <= width else text[: width - 3] + "..."


def _first(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


@dataclass(frozen=True)
class ModelConfig:
    family: str
    vocab_size: int = 256
    hidden_size: int = 64
    intermediate_size: int = 172
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # llama/qwen3: all four projections; qwen2 ignores it (q/k/v always)
    mlp_bias: bool = False  # llama only

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown family {self.family!r}; expected one of {', '.join(FAMILIES)}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads}); pick kv heads that divide heads"
            )
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")
        if not (math.isfinite(self.rope_theta) and self.rope_theta > 0):
            raise ConfigError(f"rope_theta must be a finite number > 0, got {self.rope_theta!r}; "
                              "set it to the model's RoPE base (e.g. 10000)")

    @property
    def hf_architecture(self) -> str:
        return HF_ARCHITECTURES[self.family]

    @classmethod
    def from_hf_dict(cls, d: Mapping[str, Any], source: str = "config") -> "ModelConfig":
        """Build from an HF config.json dict (transformers 4.x `rope_theta` or 5.x `rope_parameters`)."""
        family = d.get("model_type")
        if family not in FAMILIES:
            archs = d.get("architectures") or []
            by_arch = {v: k for k, v in HF_ARCHITECTURES.items()}
            family = next((by_arch[a] for a in archs if a in by_arch), None)
        if family is None:
            raise ConfigError(
                f"{source}: model_type {d.get('model_type')!r} / architectures {d.get('architectures')!r} "
                f"is not one of {', '.join(FAMILIES)}; set model_type in the config to the right family"
            )
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        if not isinstance(rope, Mapping):
            raise ConfigError(f"{source}: rope_parameters/rope_scaling must be a JSON object, got {rope!r}; "
                              "fix the config (or remove the key for default RoPE)")
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", None):
            raise ConfigError(f"{source}: rope_type {rope_type!r} is not supported (only default RoPE); "
                              "use a checkpoint without rope scaling")
        act = d.get("hidden_act", "silu")
        if act not in ("silu", "swish"):
            # The MLP is SwiGLU; any other activation would load cleanly and compute different logits.
            raise ConfigError(f"{source}: hidden_act {act!r} is not supported (only silu, the SwiGLU MLP these "
                              "families use); use a checkpoint with hidden_act \"silu\"")
        if d.get("use_sliding_window"):
            raise ConfigError(f"{source}: use_sliding_window=true is not supported; set it false in the config")
        theta = d.get("rope_theta", rope.get("rope_theta", 10000.0))

        def num(key: str, cast: type, default: Any = None, value: Any = None) -> Any:
            raw = value if value is not None else d.get(key, default)
            if raw is None:
                raise ConfigError(f"{source}: config lacks required key {key!r}; "
                                  "add it (see the family's HF config.json)")
            # bool is an int subclass; `true` for a size is a broken config, not 1.
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (cast is int and raw != int(raw)):
                raise ConfigError(f"{source}: config key {key!r} must be a{'n integer' if cast is int else ' number'}"
                                  f", got {_shown(raw)}; fix it in the config")
            if cast is int:
                # The checkpoint's one integer parser, bounded: 1e300 or a 5,000-digit size is no model.
                value = parse_int(int(raw), maximum=MAX_CONFIG_INT)
                if value is None:
                    raise ConfigError(f"{source}: config key {key!r} = {_shown(raw)} is out of range "
                                      f"(0..{MAX_CONFIG_INT}); fix it in the config")
                return value
            return cast(raw)

        heads = num("num_attention_heads", int)
        hidden = num("hidden_size", int)
        if heads <= 0:
            raise ConfigError(f"{source}: num_attention_heads must be a positive integer, got {heads}; "
                              "fix it in the config")
        return cls(
            family=family,
            vocab_size=num("vocab_size", int),
            hidden_size=hidden,
            intermediate_size=num("intermediate_size", int),
            num_hidden_layers=num("num_hidden_layers", int),
            num_attention_heads=heads,
            num_key_value_heads=num("num_key_value_heads", int, value=d.get("num_key_value_heads") or heads),
            head_dim=num("head_dim", int, value=d.get("head_dim") or hidden // heads),
            rms_norm_eps=num("rms_norm_eps", float, 1e-6),
            rope_theta=num("rope_theta", float, value=theta),
            max_position_embeddings=num("max_position_embeddings", int, 2048),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            attention_bias=bool(d.get("attention_bias", False)),
            mlp_bias=bool(d.get("mlp_bias", False)),
        )

    def to_hf_dict(self) -> dict[str, Any]:
        """An HF config.json dict that transformers 4.x and 5.x both read."""
        d: dict[str, Any] = {
            "architectures": [self.hf_architecture],
            "model_type": self.family,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": self.rope_theta},
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
        }
        if self.family in ("llama", "qwen3"):
            d["attention_bias"] = self.attention_bias
        if self.family == "llama":
            d["mlp_bias"] = self.mlp_bias
        if self.family in ("qwen2", "qwen3"):
            d["use_sliding_window"] = False
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_hf_dict(), sort_keys=True)


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
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # Computed per call instead of held in a buffer: a meta-device model has no buffer values to keep.
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


# scaled_dot_product_attention(enable_gqa=) arrived in torch 2.5.
_SDPA_GQA = torch.__version__ >= (2, 5)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        qkv_bias = True if cfg.family == "qwen2" else cfg.attention_bias
        o_bias = False if cfg.family == "qwen2" else cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, cfg.hidden_size, bias=o_bias)
        if cfg.family == "qwen3":
            self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(b, t, self.n_kv, self.head_dim)
        v = self.v_proj(x).view(b, t, self.n_kv, self.head_dim)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.n_kv == self.n_heads:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif _SDPA_GQA:
            # Grouped-query attention inside SDPA (flash on CUDA): no repeated copy of k and v per step.
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        bias = cfg.mlp_bias if cfg.family == "llama" else False
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CausalLM(nn.Module):
    """forward(input_ids (batch, seq)) -> logits (batch, seq, vocab)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        # Tied: no lm_head parameter at all, so the state dict matches HF's saved file (which omits it).
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

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


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                seed: int | None = None) -> CausalLM:
    """A freshly initialised model (training from scratch). Loading a checkpoint never goes through here."""
    if seed is not None:
        torch.manual_seed(seed)
    model = CausalLM(cfg)
    model.reset_parameters()
    return model.to(device=device, dtype=dtype)


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name the model needs, with its shape; computed on the meta device (no memory)."""
    with torch.device("meta"):
        model = CausalLM(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_tensor_names_and_shapes(cfg: ModelConfig, file_shapes: Mapping[str, tuple[int, ...]],
                                  source: str) -> None:
    """Raise StrictLoadError unless the file holds exactly the model's tensors with the right shapes.

    HF files for tied models may still carry `lm_head.weight`; that one name is tolerated (checked
    for equality with the embedding when loading), everything else must match one to one.
    """
    want = expected_shapes(cfg)
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
                      device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> CausalLM:
    """Build the model on the meta device and assign every parameter from `tensors`, or raise.

    Built on meta, a parameter that is not assigned stays a meta tensor that cannot compute, so no path
    can leave random weights behind; the explicit name/shape check makes the error readable.
    """
    check_tensor_names_and_shapes(cfg, {k: tuple(v.shape) for k, v in tensors.items()}, source)
    state = dict(tensors)
    if cfg.tie_word_embeddings and "lm_head.weight" in state:
        head = state.pop("lm_head.weight")
        if not torch.equal(head.to("cpu", torch.float32), state["model.embed_tokens.weight"].to("cpu", torch.float32)):
            raise LoadError(
                f"{source}: config ties embeddings (tie_word_embeddings=true) but the file's lm_head.weight "
                "differs from model.embed_tokens.weight; set tie_word_embeddings to false in the config "
                "if the head is meant to be separate"
            )
    with torch.device("meta"):
        model = CausalLM(cfg)
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
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
