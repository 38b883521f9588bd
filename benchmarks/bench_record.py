"""What recording each result durably as it arrives costs: the journal (one append and one fsync per
result, harness.record.Journal) for 1,000 and 10,000 results, and reading a killed run back.

The journal must stay linear in the number of results: rewriting evidence.json per result would be
quadratic (10,000 falsifiers: 50 million entries written). The two sizes run in the same session;
their ratio (printed by pytest-benchmark, and in extra_info) should stay near 10.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.model import Binding, BindingKind, Contract, Falsifier, FalsifierResult, Outcome, SourceLocation
from harness.record import make_evidence, read_evidence, start_run

HERE = SourceLocation("contracts/bench.yaml", 1)


def _contract(n: int) -> Contract:
    falsifiers = tuple(
        Falsifier(id=f"FALSIFY-REC-{i:05d}", attacks=("INV-REC-001",), prediction="p", if_fails="f",
                  binding=Binding(BindingKind.PYTHON, target="gc:enable"), location=HERE)
        for i in range(n)
    )
    return Contract(id="rec-v1", version="1.0.0", title="t", description="d", path="contracts/bench.yaml",
                    sha256="a" * 64, invariants=(), falsifiers=falsifiers)


def _journal(directory: Path, n: int) -> float:
    contract = _contract(n)
    skeleton = make_evidence(
        [contract], {}, commit=None, dirty=None, complete=False, started_at="2026-12-01T08:00:00.000+00:00",
        finished_at="2026-12-01T08:00:00.000+00:00", duration_s=0.0, command=["harness", "verify"],
        environment={"python": "3.11", "os": "Linux", "cpu": "x", "torch": None, "cuda": None, "gpu": None},
        keep_empty=True,
    )
    start = time.perf_counter()
    journal = start_run(directory, skeleton)
    for f in contract.falsifiers:
        journal.append(FalsifierResult(id=f.id, contract_id=contract.id, invariant=f.attacks, outcome=Outcome.PASSED,
                                       reason="returned without an AssertionError", duration_s=0.1, binding=f.binding))
    journal.close()
    return time.perf_counter() - start


@pytest.mark.parametrize("results", [1000, pytest.param(10_000, marks=pytest.mark.slow)], ids=["1k", "10k"])
def test_journal_each_result_and_read_a_killed_run_back(benchmark, tmp_path: Path, results: int) -> None:
    directory = tmp_path / "uncommitted"
    elapsed = benchmark.pedantic(_journal, args=(directory, results), rounds=1, iterations=1)
    start = time.perf_counter()
    evidence = read_evidence(directory)
    read_s = time.perf_counter() - start
    assert len(evidence.results) == results and evidence.complete is False
    benchmark.extra_info.update({"results": results, "journal_s": round(elapsed, 3), "per_result_ms": round(elapsed / results * 1000, 3),
                                 "read_back_s": round(read_s, 3)})
