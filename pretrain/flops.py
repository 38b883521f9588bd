"""Model FLOPs per token and model FLOPs utilisation (MFU), the figures `pretrain train` writes to metrics.jsonl.

FLOPs per token follow the PaLM paper's appendix B (Chowdhery et al. 2022, "Model FLOPs Utilization"):

    6 N + 12 L H Q T

- N: the parameters that take part in a matrix multiply, forward and backward (2 FLOPs per multiply-add
  forward, 4 backward: 6 per parameter per token). That is every parameter except the input embedding
  table, which is a lookup; the output head is counted (with tied embeddings the shared matrix is the
  output head, counted once). Norm weights are included; they are a rounding error.
- 12 L H Q T: attention's two matmuls (Q K^T and the weighted sum of V), L layers, H heads of width Q, over
  a window of T tokens, forward and backward. H Q is `--heads x --head-dim`, which is d_model unless
  --head-dim says otherwise (Qwen3). No discount for the causal mask, as in PaLM.

MFU = tokens/s x FLOPs per token / (peak FLOP/s of one device x devices). It counts the model's FLOPs, not
the hardware's: recomputation, the optimizer, and the skipped half of a causal attention are not credited.

Only what a run's numbers need lives here: no torch import, so it costs nothing to import or test.
"""

from __future__ import annotations

from typing import Iterable

# Peak dense (no sparsity) FLOP/s per device, from NVIDIA's data sheets: (name fragment, bf16, fp32).
# fp32 is the non-tensor-core rate: the trainer leaves TF32 off, so an fp32 matmul runs at it. Matched
# against torch.cuda.get_device_name() lower-cased, first fragment found wins (so "h100 nvl" before "h100").
PEAK_FLOPS: tuple[tuple[str, float, float], ...] = (
    ("h200 nvl", 835.5e12, 60.0e12),
    ("h200", 989.5e12, 66.9e12),  # H200 SXM ("NVIDIA H200")
    ("h100 nvl", 835.5e12, 60.0e12),
    ("h100 pcie", 756.5e12, 51.2e12),
    ("h100", 989.5e12, 66.9e12),  # H100 SXM ("NVIDIA H100 80GB HBM3")
    ("a100", 312.0e12, 19.5e12),  # SXM and PCIe, 40 and 80 GB
)


def matmul_parameters(named_sizes: Iterable[tuple[str, int]], tied: bool) -> int:
    """N of the formula: the parameter count without the input embedding table (unless it is the tied head).

    `named_sizes` are (HF parameter name, element count) pairs, e.g. from `model.named_parameters()`.
    """
    return sum(size for name, size in named_sizes if tied or name != "model.embed_tokens.weight")


def flops_per_token(n_matmul_params: int, layers: int, heads: int, head_dim: int, seq_len: int) -> int:
    """Model FLOPs to train on one token (forward and backward): 6 N + 12 L H Q T (PaLM, appendix B)."""
    return 6 * n_matmul_params + 12 * layers * heads * head_dim * seq_len


def peak_flops(device_type: str, device_name: str, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s of one device at `precision` ("bf16" or "fp32"), "") or (None, why it is not known)."""
    if device_type != "cuda":
        return None, f"the peak FLOP/s of a {device_type} device is not known; pass --peak-flops to get mfu"
    lowered = device_name.lower()
    for fragment, bf16, fp32 in PEAK_FLOPS:
        if fragment in lowered:
            return (bf16 if precision == "bf16" else fp32), ""
    return None, (f"the peak {precision} FLOP/s of {device_name} is not in pretrain.flops.PEAK_FLOPS; "
                  "pass --peak-flops to get mfu")


def mfu(tokens_per_s: float, flops_per_token: int, peak: float, devices: int = 1) -> float:
    """The fraction of `devices` x `peak` FLOP/s that training at `tokens_per_s` (all devices) achieved."""
    return tokens_per_s * flops_per_token / (peak * devices)
