"""read_header's cost must not depend on the checkpoint's size: a sparse 4 GiB file against a 1 KiB one.

Run with `python -m pytest benchmarks/test_checkpoint_header_bench.py --benchmark-enable` for the table;
the ratio assertion runs either way (with benchmarks disabled each measurement still takes the best of
many rounds timed here, in the same process, so the two files are compared under the same load).
"""

from __future__ import annotations

import timeit
from pathlib import Path

import pytest

from falsifiers.checkpoint_format import SPARSE_SIZE, make_sparse_checkpoint
from pretrain.checkpoint import read_header

# Generous: the two reads do identical work, so anything near 1 passes; reading the data would be ~1000x.
MAX_RATIO = 3.0


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sparse")
    big, small = d / "big.safetensors", d / "small.safetensors"
    make_sparse_checkpoint(big, SPARSE_SIZE)
    make_sparse_checkpoint(small, 1024)
    return big, small


def best_of(path: Path, repeat: int = 7, number: int = 200) -> float:
    return min(timeit.repeat(lambda: read_header(path), repeat=repeat, number=number)) / number


def test_header_read_time_is_independent_of_file_size(files: tuple[Path, Path]) -> None:
    big, small = files
    assert big.stat().st_size > SPARSE_SIZE and read_header(big).total_nbytes == SPARSE_SIZE
    big_s, small_s = best_of(big), best_of(small)
    ratio = big_s / small_s
    assert ratio < MAX_RATIO, f"4 GiB header read {big_s * 1e6:.1f} us vs 1 KiB {small_s * 1e6:.1f} us (ratio {ratio:.2f})"


@pytest.mark.parametrize("which", ["big_4GiB", "small_1KiB"])
def test_bench_read_header(benchmark, files: tuple[Path, Path], which: str) -> None:  # type: ignore[no-untyped-def]
    path = files[0] if which == "big_4GiB" else files[1]
    header = benchmark(read_header, path)
    assert header.tensor_names == ("big",)
