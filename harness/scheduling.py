"""Which falsifier runs next, and where: longest first, `exclusive` ones alone, never more GPUs than exist.

Pure functions over `Task`s (a falsifier's key, its recorded duration, `exclusive`, `gpus`), so every
decision is testable without pytest or processes:

- `lpt_order(tasks)`: the order a parallel run hands falsifiers out in (longest processing time first,
  by the durations recorded in the last evidence; unknown ones at a default, after the known long ones;
  no durations at all: the order given, i.e. file order).
- `next_assignments(queue, running, idle, gpus)`: for each idle worker, the next task it starts now.
- `split(tasks, total)`: `--shard K/N`'s deterministic share of each shard (greedy LPT into N bins;
  without durations a stable hash split; GPU falsifiers always in the last shard).
- `recorded_durations(out)`: per falsifier, its duration in the newest evidence under `--out`.

`harness.xdist_schedule` applies `next_assignments` inside pytest-xdist (its scheduler hook); the
shard split is applied by `harness.pipeline.verify(shard=...)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

Key = tuple[str, str]  # (contract id, falsifier id)
W = TypeVar("W", bound=Hashable)


@dataclass(frozen=True)
class Task:
    """One falsifier as the scheduler sees it."""

    key: Key
    duration: float | None = None  # seconds, from the last evidence; None when never recorded
    exclusive: bool = False
    gpus: int = 0
    cuda: bool = False  # requires: {cuda: true}; with gpus > 0 it makes the falsifier a GPU falsifier (split)

    @property
    def needs_gpu(self) -> bool:
        return self.cuda or self.gpus > 0


def _estimates(tasks: Sequence[Task]) -> list[float]:
    """Each task's expected duration: its recorded one, else the median of the recorded ones (0 without any)."""
    known = [t.duration for t in tasks if t.duration is not None]
    default = statistics.median(known) if known else 0.0
    return [default if t.duration is None else t.duration for t in tasks]


def lpt_order(tasks: Sequence[Task]) -> list[Task]:
    """Longest first by recorded duration; a task without one counts as the median of the known ones and
    comes after known tasks of that length; ties (and a run without any durations) keep the given order."""
    estimates = _estimates(tasks)
    ranked = sorted(range(len(tasks)), key=lambda i: (-estimates[i], tasks[i].duration is None, i))
    return [tasks[i] for i in ranked]


def next_assignments(
    queue: Sequence[Task], running: Iterable[Task], idle: Sequence[W], gpus: int
) -> list[tuple[W, Task]]:
    """The tasks to start now, one per idle worker (in `idle`'s order), taken from `queue` (in run order).

    - While an exclusive task runs, nothing else starts; an exclusive task starts only when nothing runs,
      and while one waits at the head of the queue nothing starts before it (the others drain first).
    - The GPUs of the running tasks never add up to more than `gpus`; a task that does not fit now is
      passed over for one that does. A task needing more GPUs than the machine has is started anyway:
      it ends at once as not_run, saying so (harness.execute), and must not wait forever.
    """
    running = list(running)
    if any(t.exclusive for t in running):
        return []
    free = gpus - sum(t.gpus for t in running if t.gpus <= gpus)
    busy = bool(running)
    taken: set[int] = set()
    chosen: list[tuple[W, Task]] = []
    for worker in idle:
        pick = None
        for i, task in enumerate(queue):
            if i in taken:
                continue
            fits_gpus = task.gpus <= free or task.gpus > gpus
            if task.exclusive:
                if busy or chosen:
                    break  # a barrier: let what runs finish, then run it alone
                if fits_gpus:
                    pick = i
                break
            if fits_gpus:
                pick = i
                break
        if pick is None:
            break
        task = queue[pick]
        taken.add(pick)
        chosen.append((worker, task))
        if task.gpus <= gpus:
            free -= task.gpus
        if task.exclusive:
            break
    return chosen


def stable_bin(key: Key, total: int) -> int:
    """A bin in range(total) that depends on the key alone (not on Python's per-process hash seed)."""
    digest = hashlib.sha256(json.dumps(list(key)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total


def split(tasks: Sequence[Task], total: int) -> list[list[Key]]:
    """`total` shards of `tasks`' keys (each key in exactly one; the same tasks always give the same
    split). GPU falsifiers (`requires: {cuda: true}` or `gpus` > 0) all go to the last shard, the one a
    team runs on its GPU runner. The rest: with recorded durations, greedy longest-first into the
    currently lightest shard (lowest index on ties); without any, a stable hash of the key."""
    if total < 1:
        raise ValueError(f"a split into {total} shards")
    bins: list[list[Key]] = [[] for _ in range(total)]
    load = [0.0] * total
    estimates = dict(zip((t.key for t in tasks), _estimates(tasks)))
    rest = []
    for task in tasks:
        if task.needs_gpu:
            bins[-1].append(task.key)
            load[-1] += estimates[task.key]
        else:
            rest.append(task)
    if any(t.duration is not None for t in rest):
        for task in lpt_order(rest):
            lightest = min(range(total), key=lambda b: (load[b], b))
            bins[lightest].append(task.key)
            load[lightest] += estimates[task.key]
    else:
        for task in rest:
            bins[stable_bin(task.key, total)].append(task.key)
    order = {t.key: i for i, t in enumerate(tasks)}
    return [sorted(b, key=order.__getitem__) for b in bins]


# ---------------------------------------------------------------------------------------- durations

# How many of the newest evidence files under --out are looked at for one that qualifies: enough to pass
# over a few killed runs, few enough that a years-old reports/ directory costs nothing.
_CANDIDATES = 20


def _evidence_files(out: Path) -> list[Path]:
    """evidence.json files under OUT/<commit>/ and OUT/<commit>/partial/<slug>/, newest first."""
    found: list[tuple[float, Path]] = []
    for pattern in ("*/evidence.json", "*/partial/*/evidence.json"):
        for path in out.glob(pattern):
            try:
                found.append((path.stat().st_mtime, path))
            except OSError:
                continue
    return [p for _, p in sorted(found, key=lambda t: (-t[0], str(t[1])))]


def recorded_durations(out: str | os.PathLike[str] | None, *, full_only: bool = False) -> dict[Key, float]:
    """Each falsifier's duration_s in the newest complete evidence under `out` (`full_only`: the newest
    full one, a merged one included; shards are split from it so that every runner that has the same
    evidence computes the same split). {} when there is none; an unreadable file is passed over (these
    are hints for ordering, never results)."""
    if out is None or not Path(out).is_dir():
        return {}
    for path in _evidence_files(Path(out))[:_CANDIDATES]:
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(data, dict) or data.get("complete") is not True:
            continue
        if full_only and data.get("selection") is not None:
            continue
        durations: dict[Key, float] = {}
        for contract in data.get("contracts") or ():
            for result in (contract.get("falsifiers") or ()) if isinstance(contract, dict) else ():
                if not isinstance(result, dict):
                    continue
                cid, fid, seconds = result.get("contract_id"), result.get("id"), result.get("duration_s")
                if isinstance(cid, str) and isinstance(fid, str) and isinstance(seconds, (int, float)) and seconds >= 0:
                    durations[(cid, fid)] = float(seconds)
        if durations:
            return durations
    return {}
