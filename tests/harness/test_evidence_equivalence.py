"""Evidence is the same whichever way the run was spread: serial, `-j 2`, and `--shard 1/2` + `--shard 2/2` +
`harness merge` record the same falsifiers with the same outcomes, reasons, counts, counterexamples, replay
records and guard coverage (order and timings aside: durations, timestamps, the command, the machine
facts, the run's own output directory, and the merge's list of shards are normalised away).

The same check over this repository's own contracts is in tests/test_repository_contracts.py, where it
reuses the `-j 2` run that file makes anyway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli_env import cli_env
from tests.harness.verify_support import contract_text, falsifier, harness_env, make_project, read_evidence

REPO = Path(__file__).resolve().parents[2]

CASES = [
    falsifier("FALSIFY-EQ-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-EQ-002", '{python: "fx_falsifiers:falsified"}'),
    falsifier("FALSIFY-EQ-003", '{python: "fx_falsifiers:hypothesis_falsified"}'),
    falsifier("FALSIFY-EQ-004", '{python: "fx_falsifiers:raises"}'),
    falsifier("FALSIFY-EQ-005", '{python: "fx_falsifiers:holds"}', "gpus: 2"),
    falsifier("FALSIFY-EQ-006", '{pytest: "tests/test_bound.py::test_bound_one"}', "exclusive: true"),
    falsifier("FALSIFY-EQ-007", '{command: ["python", "-c", "print(1)"]}'),
]
OTHER = [
    falsifier("FALSIFY-EQ-101", '{python: "fx_falsifiers:holds"}', attacks="INV-FY-001"),
    falsifier("FALSIFY-EQ-102", '{python: "fx_falsifiers:returns_verdict"}', attacks="INV-FY-001"),
]

TIMINGS = {"duration_s", "started_at", "finished_at"}
RUN_FACTS = {"command", "environment", "merged_from"}


def normalised(evidence: dict[str, Any], out: Path) -> Any:
    """The evidence's content: timings, run facts and the run's output directory taken out, results sorted."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMINGS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(out), "<OUT>")
        return value

    doc = {k: v for k, v in evidence.items() if k not in RUN_FACTS}
    doc = strip(doc)
    for contract in doc["contracts"]:
        contract["falsifiers"] = sorted(contract["falsifiers"], key=lambda f: f["id"])
    doc["contracts"] = sorted(doc["contracts"], key=lambda c: c["id"])
    return doc


def harness_run(cwd: Path, env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode in (0, 1), f"harness {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    return proc


def three_ways(
    cwd: Path, paths: str, work: Path, env: dict[str, str], timeout: float, given: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The same contracts verified serially, with -j 2, and as two shards merged: each run's normalised evidence.
    `given` holds runs already made (e.g. {"-j 2": normalised evidence}), which are not run again."""
    runs: dict[str, Any] = dict(given or {})
    for name, flags in (("serial", []), ("-j 2", ["-j", "2"])):
        if name in runs:
            continue
        out = work / name.replace(" ", "")
        harness_run(cwd, env, "verify", paths, "--out", str(out), *flags, timeout=timeout)
        (file,) = out.glob("*/evidence.json")
        runs[name] = normalised(read_evidence(file), out)
    shards = work / "shards"
    for k in (1, 2):
        harness_run(cwd, env, "verify", paths, "--out", str(shards / f"runner{k}"), "--shard", f"{k}/2", timeout=timeout)
    merged = work / "merged"
    harness_run(cwd, env, "merge", str(shards / "runner1"), str(shards / "runner2"), "--out", str(merged), timeout=timeout)
    (file,) = merged.glob("*/evidence.json")
    runs["shards+merge"] = normalised(read_evidence(file), merged)
    return runs


def assert_same(runs: dict[str, Any]) -> None:
    serial = runs["serial"]
    assert serial["complete"] is True and serial["selection"] is None
    for name, doc in runs.items():
        assert json.dumps(doc, sort_keys=True, indent=1) == json.dumps(serial, sort_keys=True, indent=1), name


def test_serial_parallel_and_sharded_merged_evidence_are_identical(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project, {"eq.yaml": contract_text("eq-v1", CASES), "fy.yaml": contract_text("fy-v1", OTHER, ("INV-FY-001",))})
    runs = three_ways(project, "contracts", tmp_path, harness_env(), timeout=300)
    assert_same(runs)
    ids = [f["id"] for c in runs["serial"]["contracts"] for f in c["falsifiers"]]
    assert len(ids) == len(CASES) + len(OTHER)
    # The set covers outcomes, not only passes: a comparison of all-green runs would prove little.
    outcomes = {f["outcome"] for c in runs["serial"]["contracts"] for f in c["falsifiers"]}
    assert {"passed", "falsified", "error", "not_run"} <= outcomes

