"""The model's configuration and load errors, without torch: what `pretrain train --help` and the flag checks need.

`ModelConfig` (the family switches and sizes, HF config.json both ways) and the `LoadError` family live
here so that building the CLI parser, validating flags and reading a config never import torch
(issue #11, item 7); pretrain.model re-exports every name, so `from pretrain.model import ModelConfig`
keeps working.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from pretrain.formats.header import parse_int
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
