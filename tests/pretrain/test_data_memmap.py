"""Token and text files are memory-mapped, in their own dtype; batches are gathered and widened per batch.

Resident memory is not asserted here (benchmarks/bench_data.py measures it against the file's size); these
tests pin the mechanism: the corpus's arrays are np.memmap views of the file in the file's dtype, the
batches hold exactly the file's ids as int64, the fixed split and every data-loading error are kept, and
the id checks read the file in chunks (a bad id in the last chunk is still found).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain import data

SEQ = 16


def ids(n: int, high: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, n)


@pytest.mark.parametrize("suffix, dtype", [(".bin", "<u2"), (".npy", "int32"), (".npy", "uint16"), (".txt", "uint8")])
def test_token_files_are_memory_mapped_in_their_own_dtype(tmp_path: Path, suffix: str, dtype: str) -> None:
    tokens = ids(5000, 256 if suffix == ".txt" else 1000).astype(dtype)
    path = tmp_path / f"tokens{suffix}"
    if suffix == ".npy":
        np.save(path, tokens)
    else:
        tokens.tofile(path)
    corpus = data.load_corpus(path, SEQ, 1000)
    for split in (corpus.train, corpus.val):
        assert isinstance(split, np.memmap) and split.dtype == np.dtype(dtype)
        assert Path(split.filename) == path.resolve()
    # The fixed split: the last VAL_FRACTION of the tokens is validation, as before.
    n_val = int(len(tokens) * data.VAL_FRACTION)
    assert len(corpus.val) == n_val and len(corpus.train) == len(tokens) - n_val
    np.testing.assert_array_equal(np.concatenate([corpus.train, corpus.val]), tokens)


def test_batches_hold_the_files_ids_widened_to_int64(tmp_path: Path) -> None:
    tokens = ids(5000, 65535).astype("<u2")
    tokens.tofile(tmp_path / "t.bin")
    corpus = data.load_corpus(tmp_path / "t.bin", SEQ, 65536)
    x, y = data.BatchSampler(corpus.train, SEQ, 4, seed=3).next()
    assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (4, SEQ)
    # The same seed draws the same starts from an int64 tensor of the same ids (the pre-memmap behaviour).
    wide = torch.from_numpy(tokens[:len(corpus.train)].astype(np.int64))
    x_ref, y_ref = data.BatchSampler(wide, SEQ, 4, seed=3).next()
    assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    assert torch.equal(x[:, 1:], y[:, :-1])
    starts = data.val_windows(corpus.val, SEQ)
    vx, vy = data.windows(corpus.val, starts, SEQ)
    for row, start in zip(vx.tolist(), starts.tolist()):
        assert row == corpus.val[start:start + SEQ].astype(np.int64).tolist()


def test_the_id_checks_read_every_chunk_of_a_mapped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "SCAN_TOKENS", 7)  # many chunks: the offending id sits in the last one
    tokens = ids(1000, 100).astype("<u2")
    tokens[-1] = 500
    tokens.tofile(tmp_path / "t.bin")
    with pytest.raises(data.DataError, match=r"--data .*t\.bin: token id 500 does not fit --vocab 100; "
                                             r"pass --vocab 501 or larger"):
        data.load_corpus(tmp_path / "t.bin", SEQ, 100)
    negative = ids(1000, 100).astype("int16")
    negative[-2] = -4
    np.save(tmp_path / "neg.npy", negative)
    with pytest.raises(data.DataError, match=r"neg\.npy: negative token id -4; token ids must be >= 0"):
        data.load_corpus(tmp_path / "neg.npy", SEQ, 100)
    assert data.load_corpus(tmp_path / "t.bin", SEQ, 501).source.startswith("bin-uint16:")


@pytest.mark.parametrize("name, content, message", [
    ("empty.bin", b"", "0 tokens cannot fill a train and a validation window of --seq-len 16"),
    ("empty.txt", b"", "0 tokens cannot fill a train and a validation window of --seq-len 16"),
    ("odd.bin", b"\x01\x00\x02", "odd byte length; .bin must be raw little-endian uint16 token ids"),
])
def test_empty_and_odd_files_keep_their_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(data.DataError, match=message):
        data.load_corpus(tmp_path / name, SEQ, 256)


def test_a_pickled_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(data.DataError, match=r"o\.npy: not a readable \.npy array .*; save it with numpy\.save"):
        data.load_corpus(tmp_path / "o.npy", SEQ, 256)


def test_windows_of_a_slice_and_out_of_range_windows(tmp_path: Path) -> None:
    # A slice of a mapped split inherits its parent's `offset`: it must be gathered by index, not read at
    # that offset (which would silently return other tokens).
    tokens = ids(5000, 1000).astype("<u2")
    tokens.tofile(tmp_path / "t.bin")
    corpus = data.load_corpus(tmp_path / "t.bin", SEQ, 1000)
    part = corpus.train[100:]
    x, _ = data.windows(part, torch.tensor([0, 7]), SEQ)
    assert x.tolist() == [tokens[100:100 + SEQ].tolist(), tokens[107:107 + SEQ].tolist()]
    with pytest.raises(IndexError, match="lies outside"):
        data.windows(corpus.val, torch.tensor([len(corpus.val) - SEQ]), SEQ)


def test_a_corpus_shortened_while_training_reads_it_is_an_error(tmp_path: Path) -> None:
    tokens = ids(5000, 1000).astype("<u2")
    path = tmp_path / "t.bin"
    tokens.tofile(path)
    corpus = data.load_corpus(path, SEQ, 1000)
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(data.DataError, match=r"t\.bin: the file changed while training read it"):
        data.windows(corpus.train, torch.tensor([1000]), SEQ)
