"""Will this run fit? The peak memory of a training step estimated from the shapes, against what is free.

A configuration that cannot fit is refused (exit 2, naming the flags to lower) before any tensor is
allocated, instead of dying in the allocator or the OOM killer minutes later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pretrain.model import CausalLM, ModelConfig
from pretrain.train_config import TrainConfigError

if TYPE_CHECKING:
    from pretrain.distributed import Dist
    from pretrain.train_config import TrainConfig


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one process needs: fp32 weights, gradients and AdamW's two moments, plus one step's activations."""

    parameters: int
    model_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.model_bytes + self.activation_bytes


def estimate_memory(cfg: ModelConfig, batch: int, seq_len: int, amp: torch.dtype | None,
                    world_size: int = 1) -> MemoryEstimate:
    """A lower-bound-ish estimate of the peak memory of a training step, from the shapes alone.

    The parameter count comes from the model built on the meta device (no memory), so it is exact for every
    family. Activations count what autograd keeps per token for the backward pass, assuming SDPA's
    memory-efficient attention (no seq_len x seq_len score matrix), plus the logits (autocast dtype, their
    fp32 copy and its gradient) that dominate for a large vocabulary.
    """
    with torch.device("meta"):
        n = CausalLM(cfg).num_parameters()
    act = 2 if amp in (torch.bfloat16, torch.float16) else 4
    # fp32 weights + gradients + AdamW exp_avg and exp_avg_sq; autocast keeps a low-precision weight copy;
    # DDP keeps its gradient buckets beside the gradients.
    model_bytes = n * (16 + (act if act < 4 else 0) + (4 if world_size > 1 else 0))
    h, i, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    # Per layer: two norms, residuals and projections' outputs (h), q/k/v before and after RoPE and the
    # repeated kv heads (q, kv), the attention output (q), gate/up/silu/product (i).
    per_layer = 7 * h + 5 * q + 4 * kv + 4 * i
    tokens = batch * seq_len
    activation_bytes = tokens * (cfg.num_hidden_layers * per_layer * act + h * act + v * (act + 8))
    return MemoryEstimate(parameters=n, model_bytes=model_bytes, activation_bytes=activation_bytes)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What a container's cgroup v2 memory limit leaves (/proc/meminfo shows the whole host's memory)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def available_memory(device: torch.device) -> tuple[int, str] | None:
    """(bytes free for this run, what they are), or None when it cannot be told (then nothing is refused)."""
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
            return int(free), f"{device} ({torch.cuda.get_device_name(device)}) has"
        except RuntimeError:  # a driver that cannot say: let the allocator decide
            return None
    known = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return (max(0, min(known)), "this machine has") if known else None


def check_memory(cfg: ModelConfig, args: "TrainConfig", device: torch.device, amp: torch.dtype | None,
                 dist: "Dist", available: tuple[int, str] | None) -> None:
    """Refuse a configuration whose estimated memory exceeds what the device has, before allocating any."""
    from pretrain.inspection import human_bytes

    if available is None:
        return
    est = estimate_memory(cfg, args.batch, args.seq_len, amp, dist.world_size)
    # CPU processes of one torchrun share the host's RAM; each GPU has its own memory.
    sharing = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size)) if device.type == "cpu" else 1
    need = est.total * sharing
    free, where = available
    if need <= free:
        return
    shape = "a smaller --init checkpoint" if args.init else "--hidden, --layers, --intermediate or --vocab"
    lower = [f"{shape} (model)", "--batch or --seq-len (activations)"]
    if est.activation_bytes > est.model_bytes:
        lower.reverse()
    dtype = "bf16" if amp is torch.bfloat16 else "fp32"
    per = f" per process, x{sharing} processes" if sharing > 1 else ""
    raise TrainConfigError(
        f"this run needs about {human_bytes(need)} of memory{per} ({est.parameters:,} parameters: weights, "
        f"gradients and AdamW state {human_bytes(est.model_bytes)}; activations {human_bytes(est.activation_bytes)} "
        f"for --batch {args.batch} x --seq-len {args.seq_len} in {dtype}) but {where} {human_bytes(free)} "
        f"available; lower {' or '.join(lower)}")

