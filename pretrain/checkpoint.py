"""Reading and writing checkpoints: safetensors files, HF model directories and GGUF files.

`read_header` reads only headers, never tensor data, so inspecting a 70 GB checkpoint costs what a
1 KB one does. Every malformed or hostile input raises CheckpointError naming the file and the fault:
the safetensors header is parsed here with explicit bounds (length, nesting, offsets, sizes) before the
`safetensors` library ever sees the file, and that library's and `gguf`'s own errors are translated.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pretrain.families import validate_init_arch_matches_tensor_evidence

if TYPE_CHECKING:  # torch is imported lazily: `pretrain inspect` and `stamp` never need it
    import torch

# A real header is kilobytes to a few MB (one entry per tensor); anything past this is hostile.
MAX_HEADER_BYTES = 100 * 1024 * 1024

# Element and bit counts must fit a signed 64-bit integer: torch, numpy and safetensors index with them.
MAX_INT64 = 2**63 - 1

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
    def arch_claim(self) -> str | None:
        """The architecture the checkpoint says it is, from the most specific source that says anything.

        A source saying "unknown" says nothing, so the next one is asked (a writer that did not know the
        slug may still have recorded the HF class).
        """
        for key in ("architecture", "hf_architecture"):
            value = self.metadata.get(key, "").strip()
            if value and value.lower() != "unknown":
                return value
        if self.config:
            archs = self.config.get("architectures")
            if isinstance(archs, list) and archs and isinstance(archs[0], str) and archs[0].strip():
                return archs[0].strip()
            model_type = self.config.get("model_type")
            if isinstance(model_type, str) and model_type.strip():
                return model_type.strip()
        value = self.metadata.get("general.architecture", "").strip()
        return value or None


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


def _gguf_scalar(field_: Any) -> str | None:
    """A GGUF metadata field as a string, or None for arrays (token lists are not metadata we report)."""
    from gguf import GGUFValueType

    types = list(field_.types)
    if not types or types[0] == GGUFValueType.ARRAY:
        return None
    value = field_.parts[field_.data[0]]
    if types[0] == GGUFValueType.STRING:
        return bytes(value).decode("utf-8", "replace")
    return str(value.tolist()[0] if hasattr(value, "tolist") else value)


def read_gguf_header(path: str | os.PathLike[str]) -> Header:
    """Read a GGUF file's metadata and tensor table with the `gguf` package (memory-mapped, no data read)."""
    spath = str(path)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(spath, "r")
        metadata: dict[str, str] = {}
        for key, field_ in reader.fields.items():
            if key.startswith("GGUF."):
                continue
            value = _gguf_scalar(field_)
            if value is not None:
                metadata[key] = value
            elif key.startswith("tokenizer."):
                metadata[key] = f"<array of {len(field_.data)}>"
        tensors: dict[str, TensorInfo] = {}
        for t in reader.tensors:
            if t.name in tensors:
                raise CheckpointError(spath, f"tensor {t.name!r} appears twice in the GGUF tensor table")
            # GGUF stores dims fastest-first; report them in PyTorch order like every other format.
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            tensors[t.name] = TensorInfo(
                dtype=t.tensor_type.name, shape=shape, nbytes=int(t.n_bytes), offsets=(int(t.data_offset), int(t.data_offset) + int(t.n_bytes))
            )
        size = os.path.getsize(spath)
    except CheckpointError:
        raise
    except Exception as exc:  # the gguf parser raises many types on hostile input; all mean "unreadable"
        raise CheckpointError(spath, f"unreadable GGUF (truncated or corrupt header): {type(exc).__name__}: {exc}") from None
    return Header(path=spath, format="gguf", tensors=tensors, metadata=metadata, config=None, file_size=size)


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
    """Load every tensor of a .safetensors file or HF directory (sharded too) onto `device`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
        try:
            loaded = load_file(str(file), device=device)
        except (SafetensorError, OSError, ValueError) as exc:  # the file changed since its header was read
            raise _translate_load(str(file), exc) from None
        tensors.update(loaded)
    return tensors


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


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Call `write(tmp_path)` on a temp file beside `path`, then os.replace it into place.

    A crash or error leaves `path` as it was (absent or the old file), never half-written.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
