"""What the device and this torch can do for a run: the autocast dtype, torch.compile, the AdamW kernel.

Each choice is checked before anything is built or written, and a request the machine cannot honour is a
TrainConfigError naming the flag (`--dtype bf16` on a GPU without bfloat16, `--compile` where torch.compile
cannot work), never a crash at step 1 or a silent fallback that trains differently from what was asked.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Callable

import torch

from pretrain.train_config import TrainConfigError

# What `--dtype` names, as the autocast dtype (None: plain fp32, no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def cuda_has_native_bf16(device: torch.device) -> bool:
    """bf16 tensor cores (Ampere, sm_80, and later); older GPUs only emulate bf16, slower than fp32."""
    major, _minor = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_precision(flag: str, device: torch.device,
                      native_bf16: Callable[[torch.device], bool] = cuda_has_native_bf16) -> torch.dtype | None:
    """The autocast dtype for `--dtype flag` on `device`, or TrainConfigError if the device lacks it.

    auto: bf16 on a CUDA device that has it natively, else fp32. CPU autocast runs bf16 on any CPU (slower
    than fp32 on one without bf16 instructions, but the numbers are right), so `--dtype bf16` is honoured there.
    """
    if flag == "auto":
        return torch.bfloat16 if device.type == "cuda" and native_bf16(device) else None
    if flag == "bf16" and device.type == "cuda" and not native_bf16(device):
        raise TrainConfigError(f"--dtype bf16: {device}{device_label(device)} has no native bfloat16 (it needs "
                               "compute capability 8.0 or later, e.g. A100, H100); pass --dtype fp32", field="dtype")
    return PRECISIONS[flag]


def device_label(device: torch.device) -> str:
    """` (NVIDIA H100 80GB HBM3)` for a CUDA device, "" where the name cannot be had."""
    if device.type != "cuda":
        return ""
    try:
        return f" ({torch.cuda.get_device_name(device)})"
    except (RuntimeError, AssertionError):  # no driver, or a torch built without CUDA
        return ""


def precision_name(amp: torch.dtype | None) -> str:
    return "bf16" if amp is torch.bfloat16 else "fp32"


def check_compile(device: torch.device) -> None:
    """Refuse --compile where torch.compile cannot work, before anything is built or written.

    Imports torch._dynamo (about half a second), so it runs only when --compile was asked for.
    """
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise TrainConfigError(f"--compile: torch.compile is not supported by torch {torch.__version__} on Python "
                               f"{sys.version_info.major}.{sys.version_info.minor} ({sys.platform}); drop --compile "
                               "or install a torch release that supports this Python", field="compile")
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise TrainConfigError("--compile on CUDA needs Triton, which this torch cannot import; "
                                   "`pip install triton` or drop --compile", field="compile")
    elif not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c):
        raise TrainConfigError("--compile on CPU needs a C++ compiler (torch.compile's CPU backend builds C++), "
                               "and none was found on PATH (g++, c++, clang++ or $CXX); install one or drop "
                               "--compile", field="compile")


def compile_errors() -> tuple[type[BaseException], ...]:
    """What a failing torch.compile raises at its first call (a backend or graph-capture failure)."""
    import torch._dynamo.exc

    return (torch._dynamo.exc.TorchDynamoException,)


def adamw_kernel(device: torch.device) -> str:
    """The fastest AdamW implementation for parameters on `device`: "fused" (one kernel per parameter group) on
    CUDA and, since torch 2.4, on CPU; "foreach" (a few kernels per group instead of per tensor) elsewhere.

    Decided from the device and the version, not by trying: torch checks `fused=True` against the device only
    at the first step, too late for a fallback.
    """
    if device.type == "cuda" or (device.type == "cpu" and torch.__version__ >= (2, 4)):
        return "fused"
    return "foreach"


def make_adamw(groups: list[dict], lr: float, betas: tuple[float, float],
               device: torch.device) -> tuple[torch.optim.AdamW, str]:
    """AdamW over `groups` with `adamw_kernel(device)`; returns the optimizer and the kernel's name.

    All the kernels compute the same update; on small models the per-tensor launches of the default loop are
    most of AdamW's cost (and on CUDA a fused step is one launch instead of hundreds).
    """
    kernel = adamw_kernel(device)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **{kernel: True}), kernel
