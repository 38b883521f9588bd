"""`harness verify --shard K/N` and `harness merge DIR...`: every falsifier runs in exactly one shard, shard
evidence is partial and says what it owns, and the merge is the commit's complete evidence, or is refused
(exit 2, one line, nothing written) for overlaps, gaps, mixed commits, contracts or totals, and incomplete shards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import harness
from harness.merge_run import MergeError

from tests.harness.verify_support import contract_text, entries, falsifier, harness_env, make_project, read_evidence, run_verify

CASES = [
    falsifier("FALSIFY-SHARD-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-SHARD-002", '{python: "fx_falsifiers:falsified"}'),
    falsifier("FALSIFY-SHARD-003", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-SHARD-004", '{python: "fx_falsifiers:holds"}', "gpus: 1"),
    falsifier("FALSIFY-SHARD-005", '{pytest: "tests/test_bound.py::test_bound_one"}'),
]
IDS = [f"FALSIFY-SHARD-00{i}" for i in range(1, 6)]


def run_merge(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "merge", *args], cwd=cwd, env=harness_env(), capture_output=True, text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose two shards ran on two "runners" (separate --out directories)."""
    root = tmp_path_factory.mktemp("sharded")
    make_project(root, {"shard.yaml": contract_text("shard-v1", CASES)})
    for k in (1, 2):
        proc = run_verify(root, "contracts", "--shard", f"{k}/2", "--out", f"runner{k}")
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        assert f"(partial run (--shard {k}/2))" in proc.stdout
    return root


def shard_file(root: Path, k: int) -> Path:
    (found,) = (root / f"runner{k}").glob("*/partial/*/evidence.json")
    return found


def test_each_shard_is_a_partial_run_that_records_what_it_owns(shards: Path) -> None:
    owned: list[str] = []
    for k in (1, 2):
        doc = read_evidence(shard_file(shards, k))
        assert doc["selection"] == {"shard": f"{k}/2"}
        assert doc["shard"]["index"] == k and doc["shard"]["total"] == 2
        assert [fid for _, fid in doc["shard"]["selected"]] == IDS
        assert sorted(entries(doc)) == sorted(fid for _, fid in doc["shard"]["owns"])
        owned += list(entries(doc))
        assert not harness.read_evidence(shard_file(shards, k)).is_full
    assert sorted(owned) == IDS  # every falsifier in exactly one shard
    # The GPU falsifier is in the last shard, the GPU runner's (here without a GPU: not_run, never passed).
    last = entries(read_evidence(shard_file(shards, 2)))
    assert last["FALSIFY-SHARD-004"]["outcome"] == "not_run"
    assert last["FALSIFY-SHARD-004"]["reason"] == "requires 1 GPU (gpus: 1); this machine has 0"


def test_merge_publishes_the_commits_complete_evidence(shards: Path, tmp_path: Path) -> None:
    proc = run_merge(shards, "runner1", "runner2", "--out", str(tmp_path / "reports"))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # FALSIFY-SHARD-002 is falsified: the gate says so
    assert "harness merge: 2 shards: 3 passed, 1 falsified, 0 error, 1 not_run" in proc.stdout
    published = tmp_path / "reports" / "uncommitted" / "evidence.json"
    assert f"evidence: {published}" in proc.stdout
    doc = read_evidence(published)
    assert doc["complete"] is True and doc["selection"] is None and doc["shard"] is None
    assert [f["id"] for c in doc["contracts"] for f in c["falsifiers"]] == IDS  # file order, each once
    assert [m["index"] for m in doc["merged_from"]] == [1, 2]
    assert harness.read_evidence(published).is_full
    assert {"junit.xml", "summary.md"} <= {p.name for p in published.parent.iterdir()}


def _mutated(shards: Path, tmp_path: Path, k: int, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of shard k's evidence directory with its evidence.json changed by `change`."""
    target = tmp_path / f"edited{k}"
    shutil.copytree(shard_file(shards, k).parent, target)
    doc = json.loads((target / "evidence.json").read_text())
    change(doc)
    (target / "evidence.json").write_text(json.dumps(doc))
    return target


def _steal_first_of_shard_1(shards: Path) -> Callable[[dict[str, Any]], None]:
    one = read_evidence(shard_file(shards, 1))
    stolen = one["contracts"][0]["falsifiers"][0]

    def change(doc: dict[str, Any]) -> None:
        doc["shard"]["owns"].append([stolen["contract_id"], stolen["id"]])
        doc["contracts"][0]["falsifiers"].append(stolen)

    return change


def _drop_a_falsifier(doc: dict[str, Any]) -> None:
    gone = doc["contracts"][0]["falsifiers"].pop()
    doc["shard"]["owns"].remove([gone["contract_id"], gone["id"]])


REFUSALS: dict[str, tuple[Callable[[Path], Callable[[dict[str, Any]], None]], str]] = {
    "overlap": (_steal_first_of_shard_1, r"^harness merge: overlap: FALSIFY-SHARD-00\d is in shard 1/2 \(.*\) and in shard 2/2 \(.*\)$"),
    "falsifier in no shard": (lambda s: _drop_a_falsifier, r"^harness merge: gap: FALSIFY-SHARD-00\d is in no shard$"),
    "mixed commits": (
        lambda s: lambda d: d.update(commit="a" * 40),
        r"^harness merge: mixed commits: shard 1/2 \(.*\) ran outside git, shard 2/2 \(.*\) ran a{40}; run every shard on the same commit$",
    ),
    "mixed contract digests": (
        lambda s: lambda d: d["shard"]["contracts"][0].update(sha256="0" * 64),
        r"^harness merge: mixed contract digests: contract shard-v1 differs between .* \(000000000000\); run every shard on the same contract files$",
    ),
    "mixed totals": (
        lambda s: lambda d: d["shard"].update(total=3),
        r"^harness merge: mixed shard totals: shard 1/2 \(.*\) and shard 2/3 \(.*\) are shards of different splits",
    ),
    "incomplete": (
        lambda s: lambda d: d.update(complete=False),
        r"^harness merge: shard 2/2 \(.*\) is incomplete \(complete: false: .*\); run it again: harness verify contracts --out runner2 --shard 2/2$",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_merge_refuses_with_one_line_and_writes_nothing(shards: Path, tmp_path: Path, case: str) -> None:
    make_change, message = REFUSALS[case]
    edited = _mutated(shards, tmp_path, 2, make_change(shards))
    out = tmp_path / "reports"
    proc = run_merge(shards, "runner1", str(edited), "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert __import__("re").match(message, lines[0]), lines[0]
    assert not out.exists()


def test_merge_refuses_a_missing_shard(shards: Path, tmp_path: Path) -> None:
    proc = run_merge(shards, "runner1", "--out", str(tmp_path / "reports"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "harness merge: gap: shard 2/2 is missing (1 of 2 given); add its evidence directory, or run it: "
        "harness verify PATH... --shard 2/2"
    )
    assert not (tmp_path / "reports").exists()


def test_merge_refuses_a_shard_given_twice(shards: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(shard_file(shards, 1).parent, copy)
    proc = run_merge(shards, "runner1", str(copy), "runner2", "--out", str(tmp_path / "reports"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("harness merge: shard 1/2 given twice: ") and proc.stderr.count("\n") == 1


def test_merge_refuses_evidence_that_is_not_a_shards(shards: Path, tmp_path: Path) -> None:
    full = run_verify(shards, "contracts", "--out", str(tmp_path / "full"), "-k", "SHARD-001")
    assert full.returncode == 0, full.stdout + full.stderr
    (partial,) = (tmp_path / "full").glob("*/partial/*/evidence.json")
    with pytest.raises(MergeError, match=r"not shard evidence \(written without --shard K/N\)"):
        harness.merge([partial, shards / "runner1"])


def test_a_bad_shard_flag_is_one_line_and_exit_2(shards: Path) -> None:
    proc = run_verify(shards, "contracts", "--shard", "3/2", "--out", "never")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "harness verify: --shard 3/2: K must be between 1 and N, and N at least 1, e.g. --shard 1/2"
    assert not (shards / "never").exists()


def test_more_shards_than_falsifiers_still_merge(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "many"
    for k in range(1, 8):
        proc = run_verify(shards, "contracts", "-k", "SHARD-001", "-k", "SHARD-003", "--shard", f"{k}/7", "--out", str(out))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    merged = harness.merge([out], out=tmp_path / "merged")
    assert [r.id for r in merged.results] == ["FALSIFY-SHARD-001", "FALSIFY-SHARD-003"]
    # A -k selection stays one after the merge: partial, published apart from the commit's evidence.
    assert merged.selection == {"k": ["SHARD-001", "SHARD-003"]} and not merged.is_full
