"""The shared header/tensor API every format reader returns: Header, TensorInfo, CheckpointError.

Also the bounded parsers every reader uses on untrusted bytes (integers, JSON) and the regular-file
check, so each format module only knows its own layout.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from pretrain.families import Claim, resolve_claim

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
