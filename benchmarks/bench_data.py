"""Resident memory a token file adds to a training process, against the file's size (issue #11, item 6).

In a subprocess: a 50M-token `.bin` (100 MB of uint16, written sparse in tmp: zeros but for real ids in
its last megabyte, so the vocabulary check reads to the end) is opened with `pretrain.data.load_corpus`,
then batches are drawn and the validation windows gathered. Measured: the RSS added (now, and at the
high-water, reset before opening through /proc/self/clear_refs) against the file's bytes. The target is
under 10 MB added. Peer, when benchmarks are enabled: the same file read whole and widened to int64 (what
`load_corpus` did before it memory-mapped: 4.8x the file). Under `--benchmark-disable` it runs once, on
the same 50M-token file (sparse: it costs no disk), without the peer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.cli_env import ROOT, cli_env

TOKENS = 50_000_000
SEQ, BATCH, BATCHES = 256, 8, 50

CHILD = """
import json, os, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def high_water():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
import numpy as np, torch
from pretrain import data
path, mode = sys.argv[1], sys.argv[2]
torch.randint(0, 10, (4,)); np.zeros(4).max()  # first-use allocations, before the baseline
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = rss()
if mode == "ours":
    corpus = data.load_corpus(path, {seq}, 65536)
    sampler = data.BatchSampler(corpus.train, {seq}, {batch}, seed=0)
    for _ in range({batches}):
        x, y = sampler.next()
    starts = data.val_windows(corpus.val, {seq})
    vx, vy = data.windows(corpus.val, starts, {seq})
    tokens = len(corpus.train) + len(corpus.val)
else:  # the peer: read whole, widened to int64
    whole = torch.from_numpy(np.fromfile(path, dtype="<u2").astype(np.int64))
    tokens = len(whole)
print(json.dumps({{"added": rss() - before, "peak_added": high_water() - before, "tokens": tokens}}))
""".format(seq=SEQ, batch=BATCH, batches=BATCHES)


def sparse_token_file(path: Path) -> Path:
    """TOKENS uint16 ids: a hole of zeros, then a megabyte of real ids (the highest id is in the last chunk)."""
    with open(path, "wb") as f:
        f.truncate(TOKENS * 2)
    tail = np.random.default_rng(0).integers(0, 50_000, 1 << 19).astype("<u2")
    with open(path, "r+b") as f:
        f.seek(TOKENS * 2 - tail.nbytes)
        f.write(tail.tobytes())
    return path


def measure(path: Path, mode: str) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def test_token_file_resident_memory_vs_its_size(benchmark: Any, tmp_path: Path) -> None:
    path = sparse_token_file(tmp_path / "tokens.bin")
    size = path.stat().st_size
    ours = measure(path, "ours")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    info: dict[str, Any] = dict(file_bytes=size, tokens=ours["tokens"], ours_added_bytes=ours["added"],
                                ours_peak_added_bytes=ours["peak_added"],
                                ratio_added_over_file=ours["added"] / size,
                                ratio_peak_added_over_file=ours["peak_added"] / size)
    if not benchmark.disabled:
        whole = measure(path, "read-whole")
        info.update(read_whole_added_bytes=whole["added"], read_whole_ratio_over_file=whole["added"] / size)
    benchmark.extra_info.update(info)
    print(f"\n{TOKENS:,}-token .bin ({size / 1e6:.0f} MB): adds {ours['added'] / 1e6:.1f} MB "
          f"(peak {ours['peak_added'] / 1e6:.1f} MB)"
          + (f"; read whole: {info['read_whole_added_bytes'] / 1e6:.0f} MB" if "read_whole_added_bytes" in info else ""))
    assert ours["tokens"] == TOKENS
