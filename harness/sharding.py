"""`harness verify --shard K/N`: which of the selected falsifiers the K-th of N shards runs.

`shard(pairs, K, N, durations)` is a pure function of the selected falsifiers (in file order) and the
durations recorded in the newest full evidence: the same inputs give the same split on every machine, and
every falsifier is in exactly one shard (harness.scheduling.split: greedy longest-first, a stable hash
without durations, GPU falsifiers in shard N). Its `info` is what the shard's evidence records
(`Evidence.shard`), which `harness merge` checks shards against each other by.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.model import Contract, Falsifier
from harness.scheduling import Key, Task, split

_SPEC = re.compile(r"([0-9]+)/([0-9]+)")


class ShardSpecError(ValueError):
    """A `--shard` value that is not K/N with 1 <= K <= N; the message says what to write."""


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N); ShardSpecError for anything else."""
    match = _SPEC.fullmatch(text.strip())
    if not match:
        raise ShardSpecError(f"--shard {text}: expected K/N, e.g. --shard 1/2 (the first of two shards)")
    index, total = int(match.group(1)), int(match.group(2))
    if total < 1 or not 1 <= index <= total:
        raise ShardSpecError(f"--shard {text}: K must be between 1 and N, and N at least 1, e.g. --shard 1/{max(total, 2)}")
    return index, total


@dataclass(frozen=True)
class ShardPlan:
    index: int
    total: int
    owns: tuple[Key, ...]  # in file order
    info: dict[str, Any]  # Evidence.shard


def durations_basis(durations: Mapping[Key, float]) -> str:
    """A short digest of the durations a split was computed from (the same evidence, the same digest)."""
    text = json.dumps(sorted([*k, v] for k, v in durations.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def shard(
    pairs: Sequence[tuple[Contract, Falsifier]],
    index: int,
    total: int,
    durations: Mapping[Key, float],
    contracts: Sequence[Contract] = (),
) -> ShardPlan:
    """The K-th of N shards of the selected (contract, falsifier) `pairs`, given in file order.

    `durations` (harness.scheduling.recorded_durations(out, full_only=True)) balance the split; only those of
    the selected falsifiers count, so evidence of other falsifiers cannot change it. `contracts`: every
    contract validated for the run (default: those of `pairs`), recorded so a merge can refuse mixed ones."""
    if total < 1 or not 1 <= index <= total:
        raise ShardSpecError(f"shard {index}/{total}: K must be between 1 and N")
    keys = [(c.id, f.id) for c, f in pairs]
    relevant = {k: durations[k] for k in keys if k in durations}
    tasks = [
        Task((c.id, f.id), relevant.get((c.id, f.id)), f.exclusive, f.gpus, f.requires.cuda) for c, f in pairs
    ]
    bins = split(tasks, total)
    owns = tuple(bins[index - 1])
    listed = list(contracts) or list({c.id: c for c, _ in pairs}.values())
    info = {
        "index": index,
        "total": total,
        "owns": [list(k) for k in owns],
        "selected": [list(k) for k in keys],
        "contracts": [{"id": c.id, "version": c.version, "path": c.path, "sha256": c.sha256} for c in listed],
        "split": "durations" if relevant else "hash",
        "basis": durations_basis(relevant),
    }
    return ShardPlan(index, total, owns, info)
