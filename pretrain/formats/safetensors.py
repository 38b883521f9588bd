"""The .safetensors format: header parsing with explicit bounds, before the `safetensors` library sees the file.

`read_safetensors_header` reads 8 + header-length bytes and nothing else, so inspecting a 70 GB file costs
what a 1 KB one does; every malformed or hostile header is a CheckpointError naming the file and the fault.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from typing import Any

from pretrain.formats.header import (
    MAX_HEADER_BYTES,
    MAX_INT64,
    CheckpointError,
    Header,
    TensorInfo,
    _read_exact,
    _require_regular_file,
    parse_json_bounded,
)

# Bits per element, as the safetensors format (v0.8) defines them.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_tensor_entry(path: str, name: str, entry: Any) -> TensorInfo:
    where = f"tensor {name!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(path, f"{where}: header entry is {type(entry).__name__}, expected an object")
    for key in ("dtype", "shape", "data_offsets"):
        if key not in entry:
            raise CheckpointError(path, f"{where}: header entry has no {key!r} field")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise CheckpointError(
            path, f"{where}: unknown dtype {dtype!r} (known: {', '.join(sorted(DTYPE_BITS))})"
        )
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
        raise CheckpointError(path, f"{where}: shape {shape!r} is not a list of integers")
    if any(d < 0 for d in shape):
        raise CheckpointError(path, f"{where}: shape {shape!r} has a negative dimension")
    offsets = entry["data_offsets"]
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        raise CheckpointError(path, f"{where}: data_offsets {offsets!r} is not a pair of integers")
    begin, end = offsets
    if begin < 0 or end < begin:
        raise CheckpointError(path, f"{where}: data_offsets {offsets!r} are negative or reversed")
    # Like safetensors, multiply with an overflow check in file order: a shape whose element or bit count
    # does not fit 64 bits cannot be a tensor, even when a later zero would bring the product back to 0,
    # and an unbounded product of thousands of dims would be too large even to print.
    numel = 1
    for dim in shape:
        numel *= dim
        if dim > MAX_INT64 or numel > MAX_INT64:
            raise CheckpointError(path, f"{where}: shape with {len(shape)} dims overflows a 64-bit element count")
    bits = numel * DTYPE_BITS[dtype]
    if bits > MAX_INT64:
        raise CheckpointError(path, f"{where}: {dtype} shape {shape} overflows a 64-bit bit count")
    if bits % 8:
        raise CheckpointError(path, f"{where}: {dtype} shape {shape} does not fill whole bytes")
    nbytes = bits // 8
    if end - begin != nbytes:
        raise CheckpointError(
            path,
            f"{where}: {dtype} shape {shape} needs {nbytes} bytes but data_offsets {offsets} span {end - begin}",
        )
    return TensorInfo(dtype=dtype, shape=tuple(shape), nbytes=nbytes, offsets=(begin, end))


def read_safetensors_header(path: str | os.PathLike[str]) -> Header:
    """Parse and validate a .safetensors header, reading 8 + header-length bytes and nothing else."""
    spath = str(path)
    try:
        _require_regular_file(spath)
        with open(spath, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise CheckpointError(
                    spath, f"file is {size} bytes, too short for the 8-byte safetensors header length (truncated?)"
                )
            (header_len,) = struct.unpack("<Q", _read_exact(f, 8))
            if header_len < 2:
                raise CheckpointError(spath, f"declared header length {header_len} is too small for a JSON object")
            if header_len > MAX_HEADER_BYTES:
                raise CheckpointError(
                    spath,
                    f"declared header length {header_len} bytes exceeds the {MAX_HEADER_BYTES}-byte limit "
                    "(not a safetensors file, or hostile)",
                )
            if 8 + header_len > size:
                raise CheckpointError(
                    spath, f"declared header length {header_len} runs past the end of the {size}-byte file (truncated?)"
                )
            raw = _read_exact(f, header_len)
    except CheckpointError:
        raise
    except IsADirectoryError:
        # read_header sends directories to the HF reader, so a directory here is a shard or a direct call.
        raise CheckpointError(spath, "is a directory, not a .safetensors file", "give the .safetensors file, or the HF model directory holding it") from None
    except FileNotFoundError:
        raise CheckpointError(spath, "no such file", "check the path") from None
    except OSError as exc:
        raise CheckpointError(spath, f"cannot read: {exc.strerror or exc}", "check the path and permissions") from None
    except ValueError:  # os.stat/open refuse a path with a NUL byte, which no file can have
        raise CheckpointError(spath, "path contains a NUL byte, so no file can have it", "check the path") from None
    if len(raw) != header_len:
        raise CheckpointError(spath, f"file ended inside the {header_len}-byte header (truncated?)")

    parsed = parse_json_bounded(spath, raw, "safetensors header")
    if not isinstance(parsed, dict):
        raise CheckpointError(spath, f"safetensors header is a JSON {type(parsed).__name__}, expected an object")

    metadata_raw = parsed.pop("__metadata__", None)
    metadata: dict[str, str] = {}
    if metadata_raw is not None:
        if not isinstance(metadata_raw, dict):
            raise CheckpointError(spath, f"__metadata__ is a JSON {type(metadata_raw).__name__}, expected an object")
        for key, value in metadata_raw.items():
            if not isinstance(value, str):
                raise CheckpointError(
                    spath, f"__metadata__[{key!r}] is {type(value).__name__}, but safetensors metadata values are strings"
                )
            metadata[key] = value

    tensors = {name: _parse_tensor_entry(spath, name, entry) for name, entry in parsed.items()}
    data_len = size - 8 - header_len
    cursor = 0
    for name, info in sorted(tensors.items(), key=lambda item: item[1].offsets):
        begin, end = info.offsets
        if begin != cursor:
            fault = "overlaps the previous tensor" if begin < cursor else f"leaves a gap of {begin - cursor} bytes"
            raise CheckpointError(spath, f"tensor {name!r}: data_offsets {list(info.offsets)} {fault}")
        cursor = end
    if cursor > data_len:
        raise CheckpointError(
            spath, f"tensor data needs {cursor} bytes but the file holds {data_len} after the header (truncated?)"
        )
    if cursor < data_len:
        raise CheckpointError(spath, f"{data_len - cursor} trailing bytes after the last tensor's data")
    return Header(
        path=spath,
        format="safetensors",
        tensors=tensors,
        metadata=metadata,
        config=_config_from_metadata(spath, metadata),
        data_start=8 + header_len,
        file_size=size,
    )


def _config_from_metadata(path: str, metadata: Mapping[str, str]) -> dict[str, Any] | None:
    raw = metadata.get("config")
    if raw is None:
        return None
    config = parse_json_bounded(path, raw.encode("utf-8", "surrogatepass"), "__metadata__['config']")
    if not isinstance(config, dict):
        raise CheckpointError(path, f"__metadata__['config'] is a JSON {type(config).__name__}, expected an object")
    return config
