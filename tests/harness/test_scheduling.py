"""The scheduler's and the shard split's decisions as pure functions (harness.scheduling, harness.sharding):
given durations, exclusivity, GPUs and idle workers, which falsifier starts where, and who owns what."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.requirements import CudaFacts, gpu_count, unmet_gpus
from harness.scheduling import Task, lpt_order, next_assignments, recorded_durations, split, stable_bin
from harness.sharding import ShardSpecError, parse_shard

from tests.cli_env import cli_env


def t(name: str, duration: float | None = None, *, exclusive: bool = False, gpus: int = 0, cuda: bool = False) -> Task:
    return Task(("c", name), duration, exclusive, gpus, cuda)


def names(tasks: list[Task]) -> list[str]:
    return [task.key[1] for task in tasks]


# ---------------------------------------------------------------------------------------- order


def test_longest_first_by_recorded_duration() -> None:
    assert names(lpt_order([t("a", 1.0), t("b", 9.0), t("c", 4.0)])) == ["b", "c", "a"]


def test_without_any_duration_the_order_is_file_order() -> None:
    assert names(lpt_order([t("a"), t("b"), t("c")])) == ["a", "b", "c"]


def test_unknown_durations_count_as_the_median_after_the_known_long_ones() -> None:
    # known: 10, 5, 1 -> median 5; the new falsifier comes after the known ones of 5 s and before 1 s.
    order = names(lpt_order([t("new"), t("short", 1.0), t("mid", 5.0), t("long", 10.0)]))
    assert order == ["long", "mid", "new", "short"]


# ---------------------------------------------------------------------------------------- next assignments


def test_each_idle_worker_gets_exactly_one_falsifier_in_run_order() -> None:
    queue = [t("a", 9.0), t("b", 5.0), t("c", 1.0)]
    chosen = next_assignments(queue, running=[], idle=["w1", "w2"], gpus=0)
    assert [(w, task.key[1]) for w, task in chosen] == [("w1", "a"), ("w2", "b")]


def test_an_exclusive_falsifier_waits_for_the_running_ones_and_nothing_starts_before_it() -> None:
    queue = [t("x", 9.0, exclusive=True), t("b", 1.0)]
    assert next_assignments(queue, running=[t("r")], idle=["w2"], gpus=0) == []


def test_an_exclusive_falsifier_starts_alone_when_nothing_runs() -> None:
    queue = [t("x", 9.0, exclusive=True), t("b", 1.0)]
    chosen = next_assignments(queue, running=[], idle=["w1", "w2"], gpus=0)
    assert [(w, task.key[1]) for w, task in chosen] == [("w1", "x")]


def test_nothing_starts_while_an_exclusive_falsifier_runs() -> None:
    assert next_assignments([t("b")], running=[t("x", exclusive=True)], idle=["w2"], gpus=0) == []


def test_an_exclusive_falsifier_later_in_the_queue_is_a_barrier_for_the_rest() -> None:
    queue = [t("a", 9.0), t("x", 5.0, exclusive=True), t("b", 1.0)]
    chosen = next_assignments(queue, running=[], idle=["w1", "w2", "w3"], gpus=0)
    assert [task.key[1] for _, task in chosen] == ["a"]


def test_running_falsifiers_never_need_more_gpus_than_the_machine_has() -> None:
    queue = [t("g2", 9.0, gpus=2), t("g1", 5.0, gpus=1), t("cpu", 1.0)]
    chosen = next_assignments(queue, running=[t("r", gpus=1)], idle=["w1", "w2"], gpus=2)
    # 1 GPU free: the 2-GPU falsifier does not fit now, the 1-GPU one and a CPU one do.
    assert [task.key[1] for _, task in chosen] == ["g1", "cpu"]


def test_a_falsifier_needing_more_gpus_than_exist_is_started_so_it_ends_not_run() -> None:
    chosen = next_assignments([t("g8", gpus=8)], running=[], idle=["w1"], gpus=1)
    assert [task.key[1] for _, task in chosen] == ["g8"]


def test_gpu_count_follows_cuda_visible_devices() -> None:
    facts = CudaFacts(True, ("H200", "H200", "H200", "H200"))
    assert gpu_count(facts, {}) == 4
    assert gpu_count(facts, {"CUDA_VISIBLE_DEVICES": "0,2"}) == 2
    assert gpu_count(CudaFacts(False), {}) == 0


def test_unmet_gpus_says_how_many_are_needed_and_how_many_there_are() -> None:
    assert unmet_gpus(0, 0) is None
    assert unmet_gpus(2, 2) is None
    assert unmet_gpus(2, 1) == "requires 2 GPUs (gpus: 2); this machine has 1"


# ---------------------------------------------------------------------------------------- shards


def test_every_falsifier_is_in_exactly_one_shard() -> None:
    tasks = [t(f"f{i}", float(i % 7) if i % 3 else None) for i in range(40)]
    for total in (1, 2, 3, 7, 50):
        bins = split(tasks, total)
        assert len(bins) == total
        flat = [key for b in bins for key in b]
        assert sorted(flat) == sorted(task.key for task in tasks)


def test_the_split_is_greedy_longest_first_into_the_lightest_shard() -> None:
    bins = split([t("a", 1.0), t("b", 8.0), t("c", 4.0), t("d", 3.0), t("e", 2.0)], 2)
    # b(8) -> shard 1 (8); c(4) -> 2 (4); d(3) -> 2 (7); e(2) -> 2, the lighter (9); a(1) -> 1 (9).
    assert [[k[1] for k in b] for b in bins] == [["a", "b"], ["c", "d", "e"]]


def test_gpu_falsifiers_go_to_the_last_shard() -> None:
    tasks = [t("g", 1.0, gpus=1), t("cu", 1.0, cuda=True), t("a", 50.0), t("b", 40.0)]
    bins = split(tasks, 3)
    assert {("c", "g"), ("c", "cu")} <= set(bins[2])


def test_without_durations_the_split_is_a_stable_hash_of_the_ids() -> None:
    tasks = [t(f"f{i}") for i in range(20)]
    assert split(tasks, 3) == split(list(tasks), 3)
    assert all(key in split(tasks, 3)[stable_bin(key, 3)] for key in (task.key for task in tasks))


def test_the_hash_split_does_not_depend_on_the_interpreter_hash_seed() -> None:
    code = "from harness.scheduling import stable_bin; print([stable_bin(('c', f'f{i}'), 4) for i in range(30)])"
    outputs = set()
    for seed in ("1", "2"):
        env = dict(cli_env(), PYTHONHASHSEED=seed)
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "-1/2", ""])
def test_a_bad_shard_spec_says_what_to_write(text: str) -> None:
    with pytest.raises(ShardSpecError, match=r"--shard .*(K/N|between 1 and N)"):
        parse_shard(text)


def test_parse_shard() -> None:
    assert parse_shard("2/3") == (2, 3)


# ---------------------------------------------------------------------------------------- durations


def _evidence(directory: Path, durations: dict[str, float], *, complete: bool = True, selection: object = None) -> None:
    directory.mkdir(parents=True)
    doc = {
        "complete": complete,
        "selection": selection,
        "contracts": [{"falsifiers": [{"contract_id": "c", "id": k, "duration_s": v} for k, v in durations.items()]}],
    }
    (directory / "evidence.json").write_text(json.dumps(doc))


def test_durations_come_from_the_newest_complete_evidence(tmp_path: Path) -> None:
    _evidence(tmp_path / "old", {"a": 1.0})
    _evidence(tmp_path / "new", {"a": 2.0})
    _evidence(tmp_path / "killed", {"a": 3.0}, complete=False)
    os.utime(tmp_path / "old" / "evidence.json", (1, 1))
    os.utime(tmp_path / "new" / "evidence.json", (2, 2))
    assert recorded_durations(tmp_path) == {("c", "a"): 2.0}


def test_shards_split_only_by_full_evidence(tmp_path: Path) -> None:
    _evidence(tmp_path / "sha" / "partial" / "shard-1", {"a": 5.0}, selection={"shard": "1/2"})
    _evidence(tmp_path / "sha2", {"a": 1.0})
    os.utime(tmp_path / "sha2" / "evidence.json", (1, 1))
    assert recorded_durations(tmp_path) == {("c", "a"): 5.0}
    assert recorded_durations(tmp_path, full_only=True) == {("c", "a"): 1.0}


def test_no_evidence_no_durations(tmp_path: Path) -> None:
    assert recorded_durations(tmp_path / "missing") == {}
    assert recorded_durations(None) == {}
