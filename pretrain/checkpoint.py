"""Reading and writing checkpoints: safetensors files, HF model directories and GGUF files.

`read_header` reads only headers, never tensor data, so inspecting a 70 GB checkpoint costs what a
1 KB one does. Every malformed or hostile input raises CheckpointError naming the file and the fault:
the safetensors header is parsed here with explicit bounds (length, nesting, offsets, sizes) before the
`safetensors` library ever sees the file, and that library's and `gguf`'s own errors are translated.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import shutil
import signal
import stat
import struct
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pretrain.families import Claim, resolve_claim, validate_init_arch_matches_tensor_evidence

if TYPE_CHECKING:  # torch is imported lazily: `pretrain inspect` and `stamp` never need it
    import torch

# A real header is kilobytes to a few MB (one entry per tensor); anything past this is hostile.
MAX_HEADER_BYTES = 100 * 1024 * 1024

# Element and bit counts must fit a signed 64-bit integer: torch, numpy and safetensors index with them.
MAX_INT64 = 2**63 - 1

# The longest decimal an int64 can have; a longer digit string is refused before int() sees it (int() of
# 5,000 digits raises ValueError, and int("²") too, though "²".isdigit() is True).
_MAX_INT64_DIGITS = len(str(MAX_INT64))
_ASCII_DIGITS = re.compile(r"[0-9]+")


def parse_int(value: Any, maximum: int = MAX_INT64) -> int | None:
    """A non-negative integer from untrusted config/metadata/tensor-name text, or None when it is not one.

    The one integer parser for checkpoint-supplied values (config sizes, GGUF metadata, layer indices):
    a JSON int or a string of ASCII digits, at most `maximum`; bools, floats, signs, Unicode digits and
    over-long digit strings are not integers here.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= maximum else None
    if isinstance(value, str) and len(value) <= _MAX_INT64_DIGITS and _ASCII_DIGITS.fullmatch(value):
        number = int(value)
        return number if number <= maximum else None
    return None


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

HF_CONFIG = "config.json"
HF_SINGLE = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
GGUF_MAGIC = b"GGUF"

DEFAULT_HINT = "re-export or re-download the checkpoint (the writer or the transfer broke it)"


class CheckpointError(Exception):
    """A checkpoint could not be read: `path` and `fault` say which file and what is wrong with it."""

    def __init__(self, path: str | os.PathLike[str], fault: str, hint: str = DEFAULT_HINT):
        self.path = str(path)
        self.fault = fault
        self.hint = hint
        super().__init__(f"{self.path}: {fault}; {hint}" if hint else f"{self.path}: {fault}")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a header. `offsets` are relative to the data section of `file`."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    offsets: tuple[int, int] = (0, 0)
    file: str | None = None  # the shard holding it (HF directories); None for a single file

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    """What a checkpoint holds, read without touching tensor data."""

    path: str
    format: str  # "safetensors" | "hf-dir" | "gguf"
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    config: dict[str, Any] | None = None
    data_start: int = 0  # safetensors: byte offset of the data section (8 + header length)
    file_size: int = 0
    shards: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tensor_names(self) -> tuple[str, ...]:
        return tuple(self.tensors)

    @property
    def total_nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def claim(self) -> Claim:
        """What the checkpoint claims to be and where it says so (pretrain.families.resolve_claim)."""
        where = "config.json" if self.format == "hf-dir" and self.config is not None else "metadata 'config'"
        return resolve_claim(self.metadata, self.config, where)

    @property
    def arch_claim(self) -> str | None:
        """The architecture the checkpoint says it is, as written (see `claim`)."""
        return self.claim.text


# --- safetensors ------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_json_bounded(path: str | os.PathLike[str], raw: bytes, what: str) -> Any:
    """Parse untrusted JSON bytes: bad UTF-8, bad JSON, deep nesting and duplicate keys are CheckpointErrors."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(path, f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except RecursionError:  # json's C scanner guards its recursion, so deep nesting lands here, not in a crash
        raise CheckpointError(path, f"{what} nests JSON too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, NaN, over-long integers
        raise CheckpointError(path, f"{what} is not valid JSON: {exc}") from None
    if "\\u" in text:
        # A `\ud800` escape decodes to a lone surrogate, which no UTF-8 writer (or terminal) can take;
        # safetensors refuses it, and so must we, before a name or value reaches print().
        try:
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise CheckpointError(path, f"{what} contains a lone UTF-16 surrogate escape") from None
        except RecursionError:
            raise CheckpointError(path, f"{what} nests JSON too deeply to parse") from None
    return parsed


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


def _read_exact(f: Any, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = f.read(min(remaining, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _require_regular_file(path: str | os.PathLike[str]) -> None:
    # A FIFO would block open() forever and a device can stream without end; checkpoints are regular files.
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(mode):
        raise CheckpointError(path, "is not a regular file (a pipe, socket or device)", "give the checkpoint file's path")


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


# --- HF model directories ---------------------------------------------------------------------------


def _read_json_file(path: Path, what: str) -> Any:
    try:
        _require_regular_file(path)
        size = path.stat().st_size
        if size > MAX_HEADER_BYTES:
            raise CheckpointError(path, f"{what} is {size} bytes, over the {MAX_HEADER_BYTES}-byte limit")
        raw = path.read_bytes()
    except CheckpointError:
        raise
    except IsADirectoryError:
        raise CheckpointError(path, f"{what} is a directory, not a file", "replace it with the JSON file the model was saved with") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read {what}: {exc.strerror or exc}", "check the path and permissions") from None
    return parse_json_bounded(path, raw, what)


def _shard_path(directory: Path, index_path: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        raise CheckpointError(index_path, f"weight_map names shard {name!r}, which is not a file name in {directory}")
    return directory / name


def read_hf_dir_header(path: str | os.PathLike[str]) -> Header:
    """Read an HF model directory: config.json plus model.safetensors or a sharded index."""
    directory = Path(path)
    config: dict[str, Any] | None = None
    config_path = directory / HF_CONFIG
    if config_path.exists():
        loaded = _read_json_file(config_path, "config.json")
        if not isinstance(loaded, dict):
            raise CheckpointError(config_path, f"config.json is a JSON {type(loaded).__name__}, expected an object")
        config = loaded

    index_path = directory / HF_INDEX
    single_path = directory / HF_SINGLE
    tensors: dict[str, TensorInfo] = {}
    metadata: dict[str, str] = {}
    shards: list[str] = []
    if index_path.exists():
        index = _read_json_file(index_path, "model.safetensors.index.json")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(index_path, "has no 'weight_map' object mapping tensor names to shard files")
        shard_names = sorted({_shard_path(directory, index_path, v).name for v in weight_map.values()})
        for shard_name in shard_names:
            shard_header = read_safetensors_header(directory / shard_name)
            shards.append(shard_name)
            for key, value in shard_header.metadata.items():
                metadata.setdefault(key, value)
            for name, info in shard_header.tensors.items():
                if weight_map.get(name) != shard_name:
                    raise CheckpointError(
                        index_path, f"tensor {name!r} is in {shard_name} but the weight_map says {weight_map.get(name)!r}"
                    )
                tensors[name] = TensorInfo(info.dtype, info.shape, info.nbytes, info.offsets, shard_name)
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise CheckpointError(
                index_path, f"{len(missing)} tensors in the weight_map are in no shard (first: {missing[0]!r})"
            )
    elif single_path.exists():
        single = read_safetensors_header(single_path)
        metadata = dict(single.metadata)
        shards.append(HF_SINGLE)
        tensors = {name: TensorInfo(i.dtype, i.shape, i.nbytes, i.offsets, HF_SINGLE) for name, i in single.tensors.items()}
    else:
        has_bin = any(directory.glob("pytorch_model*.bin"))
        raise CheckpointError(
            directory,
            "directory has no model.safetensors or model.safetensors.index.json"
            + (" (only pytorch_model*.bin, which is not read: pickles can run code)" if has_bin else ""),
            "save it with `model.save_pretrained(dir, safe_serialization=True)`" if has_bin else DEFAULT_HINT,
        )
    if config is None and "config" in metadata:
        config = _config_from_metadata(str(directory), metadata)
    return Header(
        path=str(directory),
        format="hf-dir",
        tensors=tensors,
        metadata=metadata,
        config=config,
        shards=tuple(shards),
    )


# --- GGUF ------------------------------------------------------------------------------------------

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


# --- entry points ----------------------------------------------------------------------------------


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
    return bool(torch.isfinite(tensor).all())


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


class WriteInterrupted(KeyboardInterrupt):
    """A SIGINT, SIGTERM or SIGHUP arrived during atomic_write; the temp file is gone, the target untouched."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP
        super().__init__(signal.Signals(signum).name)


CLEANUP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP (and SIGINT) into WriteInterrupted, so the `except` below removes the temp file.

    Only default dispositions are replaced: an ignored signal stays ignored and a program's own handler
    (the trainer's deferred Ctrl-C) stays in charge. Handlers can only be set from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise WriteInterrupted(signum)

    previous: dict[int, Any] = {}
    for sig in CLEANUP_SIGNALS:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[sig] = current
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, current in previous.items():
            signal.signal(sig, current)


def _temp_pattern(name: str) -> re.Pattern[str]:
    # mkstemp's random part is 8 characters of [a-z0-9_]
    return re.compile(re.escape(f".{name}.") + r"(\d+)\.[a-z0-9_]{8}\.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except (OverflowError, ValueError):
        return False
    return True


def remove_stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Remove temp files (or directories) an earlier write of `target` left behind when it was SIGKILLed.

    A temp file is provably stale when its name is ours (`.NAME.PID.XXXXXXXX.tmp`), it is a regular file
    of this user, and process PID is gone. A live PID (another write in progress, or a reused PID) is
    left alone: removing a file that might be in use is worse than leaving one behind.
    """
    target = Path(target)
    pattern = _temp_pattern(target.name)
    removed: list[Path] = []
    try:
        candidates = list(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match is None or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        try:
            st = candidate.lstat()
            if st.st_uid != os.getuid():
                continue
            if stat.S_ISREG(st.st_mode):
                candidate.unlink()
            elif stat.S_ISDIR(st.st_mode):  # a directory being built by `pretrain stamp DIR -o NEWDIR`
                shutil.rmtree(candidate)
            else:
                continue
            removed.append(candidate)
        except OSError:
            continue
    return removed


_FILE_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _refuse_non_regular_target(target: Path) -> None:
    # os.replace would swap the device, FIFO or socket for a regular file: /dev/null replaced by 81 KB.
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CheckpointError(target, f"cannot write here: {exc.strerror or exc}", "choose another output path") from None
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _FILE_KINDS if test(mode)), "not a regular file")
        raise CheckpointError(
            target, f"output is {kind}, not a regular file; refusing to replace it", "give a regular file path as the output"
        )


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Call `write(tmp_path)` on a temp file beside `path`, then os.replace it into place.

    The one atomic-write mechanism of `pretrain`. An error, SIGINT, SIGTERM or SIGHUP leaves `path` as it
    was (absent or the old file) and removes the temp file (a signal then raises WriteInterrupted); a
    SIGKILL's temp file, named with the writer's pid, is removed by the next write to `path`. An existing
    `path` that is not a regular file (/dev/null, a FIFO, a socket) is refused, not replaced.
    """
    target = Path(path)
    _refuse_non_regular_target(target)
    remove_stale_temps(target)
    with cleanup_on_signals():
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
            os.replace(tmp, target)
        except BaseException:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise


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
        claim = Header(path=str(path), format="safetensors", tensors={}, metadata=meta).arch_claim
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
