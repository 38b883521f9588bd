"""The CI gate itself: `harness verify contracts/` over this repository's own contracts.

This is the job the project exists for, so the test suite runs it end to end and checks what a
reviewer of the evidence would check: enough contracts and falsifiers, every invariant attacked,
nothing falsified or broken, and nothing counted as passed that did not run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.cli_env import cli_env

ROOT = Path(__file__).resolve().parents[1]


# The end-to-end runs of this repository's contracts: minutes each, scheduled first (conftest.py).
pytestmark = pytest.mark.slow(minutes=5)


@pytest.fixture(scope="module")
def repository_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(the --out directory, the evidence) of `harness verify contracts/ -j 2`, once for this file."""
    out = tmp_path_factory.mktemp("reports")
    env = cli_env()
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "verify", "contracts/", "-j", "2", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"harness verify contracts/ exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    files = list(out.glob("*/evidence.json"))
    assert len(files) == 1, f"expected one evidence.json under {out}, found {files}"
    for sibling in ("junit.xml", "summary.md"):
        assert (files[0].parent / sibling).is_file(), f"{sibling} missing beside {files[0]}"
    return out, json.loads(files[0].read_text())


@pytest.fixture(scope="module")
def evidence(repository_run: tuple[Path, dict]) -> dict:
    return repository_run[1]


def test_evidence_validates_against_the_published_schema(evidence: dict) -> None:
    schema = json.loads(subprocess.run(
        [sys.executable, "-m", "harness", "schema", "evidence"],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, check=True,
    ).stdout)
    jsonschema.validate(evidence, schema)


def test_repository_has_at_least_five_contracts_and_25_falsifiers(evidence: dict) -> None:
    contracts = evidence["contracts"]
    falsifiers = [f for c in contracts for f in c["falsifiers"]]
    assert len(contracts) >= 5, [c["id"] for c in contracts]
    assert len(falsifiers) >= 25, len(falsifiers)
    assert "apr-pretrain-from-init-v1" in {c["id"] for c in contracts}


# The contracts over an artifact: their falsifiers need a --param, so this run (given none) must report each
# not_run with the command that supplies it, never run it and never pass it.
# Falsifier 7 (the model card) also requires `card`, so its reason names both parameters.
ARTIFACT_CONTRACTS = {"model-release-v1": {
    "needs parameter checkpoint (harness verify contracts/model-release-v1.yaml --param checkpoint=PATH)",
    "needs parameters checkpoint, card (harness verify contracts/model-release-v1.yaml --param checkpoint=PATH "
    "--param card=PATH)",
}}


def test_every_falsifier_passed_or_was_not_run_for_want_of_cuda(evidence: dict) -> None:
    bad = [
        (f["id"], f["outcome"], f["reason"])
        for c in evidence["contracts"]
        for f in c["falsifiers"]
        if c["id"] not in ARTIFACT_CONTRACTS
        and not (f["outcome"] == "passed" or (f["outcome"] == "not_run" and "requires CUDA" in f["reason"]))
    ]
    assert bad == []


def test_the_artifact_contracts_are_not_run_without_their_parameters(evidence: dict) -> None:
    by_id = {c["id"]: c for c in evidence["contracts"]}
    for cid, reasons in ARTIFACT_CONTRACTS.items():
        assert by_id[cid]["falsifiers"], cid
        assert {(f["outcome"], f["reason"]) for f in by_id[cid]["falsifiers"]} == {("not_run", r) for r in reasons}, cid
        assert by_id[cid]["parameters"] == []


def test_every_passed_python_and_pytest_falsifier_executed_a_guard(evidence: dict) -> None:
    # Every invariant here names its guards, so every python/pytest pass was measured and ran one.
    unmeasured = [
        (f["id"], f["guards_executed"])
        for c in evidence["contracts"]
        for f in c["falsifiers"]
        if f["outcome"] == "passed" and f["binding"]["kind"] in ("python", "pytest") and not f["guards_executed"]
    ]
    assert unmeasured == []


def test_the_init_arch_match_falsifier_really_ran(evidence: dict) -> None:
    by_id = {f["id"]: f for c in evidence["contracts"] for f in c["falsifiers"]}
    assert by_id["FALSIFY-INIT-ARCH-MATCH-001"]["outcome"] == "passed"


def test_serial_parallel_and_sharded_runs_give_identical_evidence(
    repository_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """Serial, -j 2 (this file's run) and --shard 1/2 + --shard 2/2 + harness merge of this repository's
    contracts record the same evidence, order and timings aside (tests/harness/test_evidence_equivalence.py)."""
    from tests.harness.test_evidence_equivalence import assert_same, normalised, three_ways

    out, parallel = repository_run
    runs = three_ways(ROOT, "contracts/", tmp_path, cli_env(), timeout=3600, given={"-j 2": normalised(parallel, out)})
    assert_same(runs)
