"""Reading and writing checkpoints: safetensors files, HF model directories and GGUF files.

The public API of checkpoint I/O. Each format has its own module (pretrain.formats.safetensors,
.hf_dir, .gguf) returning the shared Header (pretrain.formats.header); this module dispatches on the
path (`read_header`), runs the INV-INIT-ARCH-MATCH-001 gate (`check_init_arch`), loads tensor data
(`load_tensors`) and writes checkpoints (`write_checkpoint`, through pretrain.atomic's atomic_write).
Everything is re-exported here, so `from pretrain.checkpoint import ...` keeps working.

`read_header` reads only headers, never tensor data, so inspecting a 70 GB checkpoint costs what a
1 KB one does. Every malformed or hostile input raises CheckpointError naming the file and the fault:
the safetensors header is parsed with explicit bounds (length, nesting, offsets, sizes) before the
`safetensors` library ever sees the file, and that library's and `gguf`'s own errors are translated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pretrain.atomic import (  # noqa: F401  (re-exported)
    CLEANUP_SIGNALS,
    WriteInterrupted,
    atomic_write,
    cleanup_on_signals,
    remove_stale_temps,
)
from pretrain.families import validate_init_arch_matches_tensor_evidence
from pretrain.formats.gguf import GGUF_MAGIC, read_gguf_header  # noqa: F401  (re-exported)
from pretrain.formats.header import (  # noqa: F401  (re-exported)
    DEFAULT_HINT,
    MAX_HEADER_BYTES,
    MAX_INT64,
    CheckpointError,
    Header,
    TensorInfo,
    _require_regular_file,
    parse_int,
    parse_json_bounded,
)
from pretrain.formats.hf_dir import HF_CONFIG, HF_INDEX, HF_SINGLE, read_hf_dir_header  # noqa: F401  (re-exported)
from pretrain.formats.safetensors import DTYPE_BITS, _config_from_metadata, read_safetensors_header  # noqa: F401

if TYPE_CHECKING:  # torch is imported lazily: `pretrain inspect` and `stamp` never need it
    import torch


def read_header(path: str | os.PathLike[str]) -> Header:
    """Read a checkpoint's header, whatever its format: .safetensors, HF directory or .gguf."""
    p = Path(path)
    try:
        if p.is_dir():
            return read_hf_dir_header(p)
        if not p.exists():
            raise CheckpointError(p, "no such file or directory", "check the path")
        _require_regular_file(p)
        with open(p, "rb") as f:
            magic = f.read(4)
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(p, f"cannot read: {exc.strerror or exc}", "check the path and permissions") from None
    if magic == GGUF_MAGIC:
        return read_gguf_header(p)
    return read_safetensors_header(p)


def check_init_arch(path_or_header: str | os.PathLike[str] | Header) -> Header:
    """Run the INV-INIT-ARCH-MATCH-001 gate on a checkpoint before any model is built from it.

    Returns the header so callers need not read it twice; raises CheckpointError for an unreadable
    file and InitArchMismatchError (naming the file in its salvage command) for a contradicted claim.
    """
    header = path_or_header if isinstance(path_or_header, Header) else read_header(path_or_header)
    validate_init_arch_matches_tensor_evidence(header.arch_claim, header.tensor_names, path=header.path)
    return header


def _translate_load(path: str, exc: Exception) -> CheckpointError:
    return CheckpointError(path, f"safetensors could not load it: {type(exc).__name__}: {exc}")


def load_tensors(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load every tensor of a .safetensors file or HF directory (sharded too) onto `device`.

    Weights holding NaN or Inf are refused (CheckpointError naming them): training from them gives NaN
    losses from step 1. Each tensor is checked right after it is read, while it is still in cache.
    """
    from safetensors import SafetensorError, safe_open

    header = read_header(path)
    if header.format == "gguf":
        raise CheckpointError(
            header.path,
            "GGUF tensors are quantised llama.cpp blocks and are not loaded for training",
            "train from the original safetensors/HF checkpoint; `pretrain inspect` reads GGUF headers",
        )
    files = [Path(header.path)] if header.format == "safetensors" else [Path(header.path) / s for s in header.shards]
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        non_finite: list[str] = []
        try:
            with safe_open(str(file), framework="pt", device=device) as f:
                for name in f.keys():
                    tensor = f.get_tensor(name)
                    if not _all_finite(tensor):
                        non_finite.append(name)
                    tensors[name] = tensor
        except (SafetensorError, OSError, ValueError) as exc:  # the file changed since its header was read
            raise _translate_load(str(file), exc) from None
        if non_finite:
            shown = ", ".join(repr(n) for n in non_finite[:5]) + (f", ... (+{len(non_finite) - 5} more)" if len(non_finite) > 5 else "")
            raise CheckpointError(
                file,
                f"{len(non_finite)} tensor(s) hold NaN or Inf weights: {shown}",
                "the weights are corrupt (a diverged run or a broken export); use an earlier checkpoint",
            )
    return tensors


def _all_finite(tensor: torch.Tensor) -> bool:
    import torch

    if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.numel() == 0:
        return True
    if tensor.is_floating_point():
        try:
            # One pass, nothing allocated: min and max propagate NaN and are +-inf if any element is. (isfinite
            # would allocate a bool per element: a quarter of an fp32 tensor more at the load's peak.)
            low, high = torch.aminmax(tensor)
            return bool(torch.isfinite(low) & torch.isfinite(high))
        except (RuntimeError, NotImplementedError):  # a dtype aminmax has no kernel for (float8)
            pass
    try:
        return bool(torch.isfinite(tensor).all())
    except NotImplementedError:  # float8 e4m3fn/fnuz, float4: isfinite has no kernel for them either
        pass
    if tensor.dtype == getattr(torch, "float4_e2m1fn_x2", None):
        return True  # E2M1 has no encoding for NaN or Inf: every float4 value is finite
    # Widened a slice at a time, so the check never holds more than 16M float32 values beside the tensor.
    flat = tensor.reshape(-1)
    step = 1 << 24
    return all(bool(torch.isfinite(flat[i : i + step].float()).all()) for i in range(0, flat.numel(), step))


def normalize_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Coerce metadata to safetensors' str->str: numbers via str(), dicts/lists via JSON."""
    result: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata key {key!r} is not a string")
        if isinstance(value, str):
            result[key] = value
        elif isinstance(value, bool) or value is None:
            raise TypeError(f"metadata[{key!r}] = {value!r}: give a string (safetensors metadata is str -> str)")
        elif isinstance(value, (int, float)):
            result[key] = repr(value) if isinstance(value, float) else str(value)
        elif isinstance(value, (dict, list)):
            result[key] = json.dumps(value, sort_keys=True)
        else:
            raise TypeError(f"metadata[{key!r}] is {type(value).__name__}; give a string, number, dict or list")
    return result


def write_checkpoint(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    *,
    verify_arch: bool = True,
) -> None:
    """Write tensors and metadata as one .safetensors file, atomically.

    Metadata should carry `architecture` (family slug), `hf_architecture`, `hf_model_type`, `license`,
    `data_source`, `data_license` and may carry `config` (JSON), `step`, `val_loss`. With `verify_arch`
    the INV-INIT-ARCH-MATCH-001 gate runs before writing, so this writer cannot produce the incident's
    mis-stamped file.
    """
    from safetensors.torch import save_file

    meta = normalize_metadata(metadata)
    if verify_arch:
        # The claim the written file will read back with, `config` metadata included, so the writer and the
        # gate resolve the same claim (an invalid `config` JSON is refused here, before anything is written).
        config = _config_from_metadata(str(path), meta)
        claim = Header(path=str(path), format="safetensors", tensors={}, metadata=meta, config=config).arch_claim
        validate_init_arch_matches_tensor_evidence(claim, tensors.keys(), path=str(path))
    seen: set[int] = set()
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        t = tensor.detach().to("cpu").contiguous()
        # safetensors refuses tensors that share storage (tied embeddings); each gets its own copy.
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        prepared[name] = t
    atomic_write(path, lambda tmp: save_file(prepared, tmp, metadata=meta))
