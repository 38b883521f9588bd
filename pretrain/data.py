"""Training data: byte-level text or pre-tokenized token files, a fixed train/validation split, seeded batches.

Sources (`--data`):
- none: the embedded default corpus, a fixed sorted list of the Python standard library's own source files
  (every machine running this has them), concatenated and capped at `DEFAULT_CORPUS_MAX_BYTES`, byte-level
  tokens (ids 0..255);
- a directory: every regular, non-hidden file under it, sorted by relative path, read as bytes;
- a text file (any suffix other than .npy/.bin): its bytes;
- `.npy`: a 1-D integer array of token ids (any integer dtype);
- `.bin`: raw little-endian **uint16** token ids (the nanoGPT convention), no header.

Token files and text files are memory-mapped, never read whole: each split is a map of its part of the
file, a batch is read from it and widened to int64 only then, so a corpus larger than RAM trains and
opening one adds next to nothing to resident memory. Their id range is checked reading the file in `SCAN_TOKENS` chunks.

The last `VAL_FRACTION` of the tokens is the validation split; validation always uses the same evenly
spaced windows, so val loss is comparable across runs with the same data and seq_len.
"""

from __future__ import annotations

import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and torch are imported where tokens are read: `pretrain train --help` needs neither
    import numpy as np
    import torch

DEFAULT_CORPUS_FILES: tuple[str, ...] = (
    "abc.py", "argparse.py", "bisect.py", "calendar.py", "colorsys.py", "contextlib.py", "copy.py",
    "dataclasses.py", "difflib.py", "fnmatch.py", "fractions.py", "functools.py", "glob.py", "graphlib.py",
    "heapq.py", "keyword.py", "operator.py", "queue.py", "shlex.py", "statistics.py", "string.py", "textwrap.py",
)
DEFAULT_CORPUS_MAX_BYTES = 400_000
VAL_FRACTION = 0.1
DEFAULT_VAL_WINDOWS = 16


class DataError(ValueError):
    """The --data source cannot be used; the message names the path and the fix."""


@dataclass(frozen=True)
class Corpus:
    # 1-D token ids in the source's own dtype: for token and text files an np.memmap of the split's part of
    # the file, for a directory and the default corpus an array in memory. Widened to int64 per batch, by
    # `windows`.
    train: np.ndarray
    val: np.ndarray
    source: str  # recorded in checkpoint metadata as data_source
    license: str  # recorded as data_license ("" when unknown)
    # Recorded as `tokenizer` metadata so a checkpoint says how to turn text into its ids; "" when the
    # ids came pre-tokenized and we cannot know.
    tokenizer: str = ""

    @property
    def max_token(self) -> int:
        return max(_id_range(self.train)[1], _id_range(self.val)[1])


# Tokens per read when a memory-mapped file's ids are checked: read(), not the mapping, so the check's
# resident memory is one chunk whatever the file's size (touching the mapping would keep its pages resident).
SCAN_TOKENS = 1 << 20


def _is_file_map(tokens: Any) -> bool:
    """An np.memmap made from its file (not a slice of one), so `offset` and `filename` say where it lies.

    (A slice of an np.memmap inherits its parent's `offset`; its base is the parent array, not the mmap.)
    """
    import mmap

    import numpy as np

    return isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.flags.c_contiguous


def _id_range(tokens: np.ndarray) -> tuple[int, int]:
    """(min, max) id of a non-empty token array; an np.memmap of a file is read through the file in chunks."""
    import numpy as np

    if not _is_file_map(tokens):
        return int(tokens.min()), int(tokens.max())
    low, high = None, None
    with open(tokens.filename, "rb") as f:
        f.seek(tokens.offset)
        left = len(tokens)
        while left:
            chunk = np.fromfile(f, dtype=tokens.dtype, count=min(left, SCAN_TOKENS))
            if not len(chunk):  # the file shrank since it was mapped
                raise DataError(f"--data {tokens.filename}: the file changed while it was read; pass it again")
            left -= len(chunk)
            low = int(chunk.min()) if low is None else min(low, int(chunk.min()))
            high = int(chunk.max()) if high is None else max(high, int(chunk.max()))
    assert low is not None and high is not None  # callers pass non-empty arrays
    return low, high


def default_corpus_bytes() -> bytes:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chunks = []
    for name in sorted(DEFAULT_CORPUS_FILES):
        path = stdlib / name
        if path.is_file():
            chunks.append(path.read_bytes())
    data = b"\n".join(chunks)[:DEFAULT_CORPUS_MAX_BYTES]
    if len(data) < 10_000:
        raise DataError(f"the default corpus (Python stdlib sources under {stdlib}) is missing or tiny "
                        f"({len(data)} bytes); pass --data DIR with your own text files")
    return data


BYTE_TOKENIZER = "bytes"  # UTF-8 bytes as ids 0-255, no special tokens


def _read_tokens(path: Path) -> tuple[np.ndarray, str, str]:
    try:
        return _read_tokens_unchecked(path)
    except OSError as exc:
        raise DataError(f"--data {exc.filename or path}: cannot read it ({exc.strerror or exc}); fix its "
                        "permissions or pass another --data") from None


def _map(path: Path, dtype: str) -> np.ndarray:
    """The file as a read-only memory map of `dtype` ids (an empty array for an empty file, which mmap refuses)."""
    import numpy as np

    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _read_tokens_unchecked(path: Path) -> tuple[np.ndarray, str, str]:
    import numpy as np

    if path.exists() and not path.is_dir() and not path.is_file():
        # A FIFO or device would block the read forever or never end; refuse it up front.
        raise DataError(f"--data {path}: not a regular file or directory (a pipe, socket or device); "
                        "write the data to a file and pass its path")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"--data {path}: directory has no files; put .txt files in it or pass a token file")
        raw = b"\n".join(p.read_bytes() for p in files)
        return np.frombuffer(raw, dtype=np.uint8), f"dir:{path} ({len(files)} files, bytes)", BYTE_TOKENIZER
    if not path.exists():
        raise DataError(f"--data {path}: no such file or directory; pass an existing directory, .npy, .bin or text file")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError) as exc:
            raise DataError(f"--data {path}: not a readable .npy array ({exc or 'empty file'}); "
                            "save it with numpy.save") from None
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"--data {path}: expected a 1-D integer token array, got shape {arr.shape} "
                            f"dtype {arr.dtype}; save tokens with numpy.save(path, ids.astype('int32'))")
        if arr.size:
            low, high = _id_range(arr)
            if low < 0:
                raise DataError(f"--data {path}: negative token id {low}; token ids must be >= 0")
            if high > np.iinfo(np.int64).max:
                raise DataError(f"--data {path}: token id {high} does not fit int64; token ids must be "
                                "below the model's --vocab")
        return arr, f"npy:{path}", ""
    if path.suffix == ".bin":
        if path.stat().st_size % 2:
            raise DataError(f"--data {path}: odd byte length; .bin must be raw little-endian uint16 token ids")
        return _map(path, "<u2"), f"bin-uint16:{path}", ""
    return _map(path, "u1"), f"text:{path} (bytes)", BYTE_TOKENIZER


def load_corpus(data: str | Path | None, seq_len: int, vocab_size: int, init: str | None = None) -> Corpus:
    """Tokens split into train/validation; refuses data that cannot fill one window or exceeds the vocab.

    `init`: the --init checkpoint the vocab came from, so a too-small vocab is blamed on it, not on --vocab.
    """
    import numpy as np

    if data is None:
        tokens = np.frombuffer(default_corpus_bytes(), dtype=np.uint8)
        # What `pretrain inspect --quality` shows as provenance: which sources, and their own license.
        source = f"{platform.python_implementation()} {platform.python_version()} standard library sources (bytes)"
        license_ = "PSF-2.0"
        tokenizer = BYTE_TOKENIZER
        where = "the default corpus"
    else:
        tokens, source, tokenizer = _read_tokens(Path(data))
        license_, where = "", f"--data {data}"
    n_val = max(int(len(tokens) * VAL_FRACTION), seq_len + 1)
    if len(tokens) - n_val < seq_len + 1:
        raise DataError(f"{where}: {len(tokens)} tokens cannot fill a train and a validation window of "
                        f"--seq-len {seq_len}; give more data or a smaller --seq-len")
    highest = _id_range(tokens)[1]
    if highest >= vocab_size:
        if init is not None:
            raise DataError(f"{where}: token id {highest} does not fit vocab_size {vocab_size} of "
                            f"--init {init}; pass --data whose token ids are below {vocab_size}")
        raise DataError(f"{where}: token id {highest} does not fit --vocab {vocab_size}; "
                        f"pass --vocab {highest + 1} or larger")
    # The fixed split is the last n_val tokens. A mapped file's two parts are mapped on their own (not sliced),
    # so each keeps its place in the file, where `windows` reads its batches.
    if _is_file_map(tokens):
        n_train, width = len(tokens) - n_val, tokens.dtype.itemsize
        train = np.memmap(tokens.filename, dtype=tokens.dtype, mode="r", offset=tokens.offset, shape=(n_train,))
        val = np.memmap(tokens.filename, dtype=tokens.dtype, mode="r", offset=tokens.offset + n_train * width,
                        shape=(n_val,))
    else:
        train, val = tokens[:-n_val], tokens[-n_val:]
    return Corpus(train=train, val=val, source=source, license=license_, tokenizer=tokenizer)


class BatchSampler:
    """Seeded random windows; under DDP every rank draws the same global batch and takes its own slice."""

    def __init__(self, tokens: np.ndarray | torch.Tensor, seq_len: int, batch: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        import torch

        self.tokens, self.seq_len, self.batch = tokens, seq_len, batch
        self.rank, self.world_size = rank, world_size
        self.gen = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        hi = len(self.tokens) - self.seq_len - 1
        starts = torch.randint(0, hi + 1, (self.batch * self.world_size,), generator=self.gen)
        starts = starts[self.rank * self.batch:(self.rank + 1) * self.batch]
        return windows(self.tokens, starts, self.seq_len)


def windows(tokens: np.ndarray | torch.Tensor, starts: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) int64 tensors of the windows at `starts`, widened to int64 here, per batch.

    From a mapped file the windows are read through the file (pread), not through the mapping: on a kernel
    whose page cache uses large folios, touching a mapping maps megabytes around each window into the
    process (15 MB a batch measured), so a long run's resident memory would grow towards the file's size.
    """
    import numpy as np
    import torch

    first = np.asarray(starts, dtype=np.int64)
    width = seq_len + 1
    if len(first) and (first.min() < 0 or first.max() + width > len(tokens)):
        raise IndexError(f"a window [{first.min()}, {first.max() + width}) lies outside the {len(tokens)} tokens")
    if _is_file_map(tokens):
        chunk = _read_windows(tokens, first, width)
    else:
        chunk = np.asarray(tokens)[first[:, None] + np.arange(width, dtype=np.int64)[None, :]]
    batch = torch.from_numpy(chunk.astype(np.int64, copy=False))
    return batch[:, :-1], batch[:, 1:]


def _read_windows(tokens: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    import numpy as np

    out = np.empty((len(starts), width), dtype=tokens.dtype)
    row_bytes = width * tokens.dtype.itemsize
    with open(tokens.filename, "rb", buffering=0) as f:
        for row, start in zip(out, starts.tolist()):
            f.seek(tokens.offset + start * tokens.dtype.itemsize)
            if f.readinto(memoryview(row).cast("B")) != row_bytes:
                raise DataError(f"--data {tokens.filename}: the file changed while training read it (shorter "
                                "than when it was opened); do not rewrite a corpus a run is reading")
    return out


def val_windows(val: np.ndarray | torch.Tensor, seq_len: int, n: int = DEFAULT_VAL_WINDOWS) -> torch.Tensor:
    """Start offsets of the fixed validation windows: evenly spaced over the split, same every run."""
    import torch

    hi = len(val) - seq_len - 1
    return torch.linspace(0, hi, steps=min(n, hi + 1)).round().long().unique()
