"""GGUF files (llama.cpp): metadata and tensor table, bounded by the file's size; tensor data is never read."""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from typing import Any

from pretrain.formats.header import MAX_INT64, CheckpointError, Header, TensorInfo, _require_regular_file

GGUF_MAGIC = b"GGUF"

# The GGUF header is parsed here, not by gguf.GGUFReader: that reader allocates for every declared count
# before checking it against the file (an 87-byte file declaring a 2**40-element array grew to 3.5 GB).
# Here every count and length is checked against the bytes left in the file before anything is read,
# the same rule the safetensors reader follows, and arrays are skipped, not materialised.
GGUF_VERSIONS = (2, 3)  # what gguf's reader supports; v1 (u32 counts) predates 2023
GGML_MAX_DIMS = 4
MAX_GGUF_NESTING = 8  # arrays of arrays; no real file nests at all
GGUF_DEFAULT_ALIGNMENT = 32
_GGUF_STRING, _GGUF_ARRAY = 8, 9
# value type -> struct code (no byte-order prefix); 8 (string) and 9 (array) are variable-length
_GGUF_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class _GGUFCursor:
    """Reads a GGUF header from a memory map, refusing any read or count the remaining bytes cannot hold."""

    def __init__(self, path: str, data: Any, order: str = "<"):
        self.path, self.data, self.order, self.pos, self.size = path, data, order, 0, len(data)

    def fail(self, fault: str) -> CheckpointError:
        return CheckpointError(self.path, f"unreadable GGUF (truncated or corrupt header): {fault}")

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.fail(f"{what} needs {n} bytes at offset {self.pos} but the {self.size}-byte file has {self.size - self.pos} left")

    def scalar(self, code: str, what: str) -> Any:
        n = struct.calcsize(code)
        self.need(n, what)
        (value,) = struct.unpack_from(self.order + code, self.data, self.pos)
        self.pos += n
        return value

    def count(self, code: str, min_item_bytes: int, what: str) -> int:
        """A declared count, refused when that many items of at least `min_item_bytes` cannot fit the file."""
        n = self.scalar(code, what)
        if n * min_item_bytes > self.size - self.pos:
            raise self.fail(f"{what} declares {n} items, more than the {self.size - self.pos} bytes left can hold")
        return n

    def string(self, what: str) -> bytes:
        n = self.count("Q", 1, f"{what} length")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw

    def value(self, vtype: int, what: str, depth: int = 0) -> tuple[str | None, int | None]:
        """Read one value; (text for a scalar or string, None) or (None, element count for an array)."""
        if vtype == _GGUF_STRING:
            return self.string(what).decode("utf-8", "replace"), None
        if vtype in _GGUF_SCALARS:
            return str(self.scalar(_GGUF_SCALARS[vtype], what)), None
        if vtype != _GGUF_ARRAY:
            raise self.fail(f"{what} has unknown value type {vtype}")
        if depth >= MAX_GGUF_NESTING:
            raise self.fail(f"{what} nests arrays more than {MAX_GGUF_NESTING} deep")
        itype = self.scalar("I", f"{what} element type")
        if itype in _GGUF_SCALARS:
            size = struct.calcsize(_GGUF_SCALARS[itype])
            n = self.count("Q", size, f"{what} array")
            self.pos += n * size  # fixed-size elements: skipped without reading
            return None, n
        n = self.count("Q", 8 if itype == _GGUF_STRING else 12, f"{what} array")
        for i in range(n):
            self.value(itype, f"{what}[{i}]", depth + 1)
        return None, n


def _gguf_tensor(cur: _GGUFCursor, quant_sizes: Mapping[int, tuple[int, int]], type_names: Mapping[int, str]) -> tuple[str, tuple[int, ...], str, int, int]:
    raw_name = cur.string("tensor name")
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise cur.fail(f"tensor name {raw_name[:60]!r} is not UTF-8") from None
    n_dims = cur.scalar("I", f"tensor {name!r} dimension count")
    if n_dims > GGML_MAX_DIMS:
        raise cur.fail(f"tensor {name!r} declares {n_dims} dimensions (GGML allows {GGML_MAX_DIMS})")
    dims = [cur.scalar("Q", f"tensor {name!r} dims") for _ in range(n_dims)]
    ggml_type = cur.scalar("I", f"tensor {name!r} type")
    offset = cur.scalar("Q", f"tensor {name!r} offset")
    if ggml_type not in quant_sizes:
        raise cur.fail(f"tensor {name!r} has unknown GGML type {ggml_type}")
    numel = 1
    for d in dims:
        numel *= d
        if numel > MAX_INT64:
            raise cur.fail(f"tensor {name!r} shape {dims} overflows a 64-bit element count")
    block, type_size = quant_sizes[ggml_type]
    if numel % block:
        raise cur.fail(f"tensor {name!r}: {numel} elements are not whole {type_names[ggml_type]} blocks of {block}")
    # GGUF stores dims fastest-first; report them in PyTorch order like every other format.
    return name, tuple(reversed(dims)), type_names[ggml_type], offset, numel // block * type_size


def _parse_gguf(path: str, data: Any) -> Header:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    quant_sizes = {int(k): v for k, v in GGML_QUANT_SIZES.items()}
    type_names = {int(t): t.name for t in GGMLQuantizationType}
    cur = _GGUFCursor(path, data)
    cur.need(8, "magic and version")
    cur.pos = 4
    version = cur.scalar("I", "version")
    if version & 0xFFFF == 0:  # a big-endian file reads as a version with its low half zero
        cur.order, cur.pos = ">", 4
        version = cur.scalar("I", "version")
    if version not in GGUF_VERSIONS:
        raise cur.fail(f"version {version} is not one of {', '.join(map(str, GGUF_VERSIONS))}")
    # Smallest possible entries: a tensor is name length + dims count + type + offset, a KV is key length + type + 1 byte.
    tensor_count = cur.count("Q", 24, "tensor count")
    kv_count = cur.count("Q", 13, "metadata count")
    metadata: dict[str, str] = {}
    seen: set[str] = set()
    alignment = GGUF_DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        key = cur.string("metadata key").decode("utf-8", "replace")
        if key in seen:
            raise cur.fail(f"metadata key {key!r} appears twice")
        seen.add(key)
        vtype = cur.scalar("I", f"metadata {key!r} type")
        text, array_len = cur.value(vtype, f"metadata {key!r}")
        if text is not None:
            metadata[key] = text
        elif key.startswith("tokenizer."):
            metadata[key] = f"<array of {array_len}>"  # token lists are not metadata we report
        if key == "general.alignment":
            if vtype != 4 or text is None or int(text) <= 0 or int(text) & (int(text) - 1):
                raise cur.fail("general.alignment is not a uint32 power of two")
            alignment = int(text)
    entries = [_gguf_tensor(cur, quant_sizes, type_names) for _ in range(tensor_count)]
    data_start = cur.pos + (-cur.pos % alignment)
    tensors: dict[str, TensorInfo] = {}
    for name, shape, dtype, offset, nbytes in entries:
        if name in tensors:
            raise CheckpointError(path, f"tensor {name!r} appears twice in the GGUF tensor table")
        begin = data_start + offset
        if begin + nbytes > cur.size:
            raise cur.fail(f"tensor {name!r} data ({nbytes} bytes at offset {begin}) runs past the end of the {cur.size}-byte file")
        tensors[name] = TensorInfo(dtype=dtype, shape=shape, nbytes=nbytes, offsets=(begin, begin + nbytes))
    return Header(path=path, format="gguf", tensors=tensors, metadata=metadata, config=None, file_size=cur.size)


def read_gguf_header(path: str | os.PathLike[str]) -> Header:
    """Read a GGUF file's metadata and tensor table, bounded by the file's size (memory-mapped, no data read)."""
    import mmap

    spath = str(path)
    try:
        _require_regular_file(spath)
        with open(spath, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise CheckpointError(spath, f"unreadable GGUF (truncated or corrupt header): file is {size} bytes")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse_gguf(spath, data)
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(spath, f"cannot read: {exc.strerror or exc}", "check the path and permissions") from None
