"""What measuring the guards (harness.guard_coverage, coverage.py) costs a falsifier.

Real falsifiers of this repository, each run through `harness.execute.run_falsifier` two ways in the same
session, alternately: as the contract has it (its invariants' guards measured) and with the guards taken
off the contract (nothing measured: the peer). Two kinds: a pure-Python, guard-dense one (the hostile
safetensors headers: the header parser, a guard, runs for every file) and a torch one (the init-arch gate
on a real checkpoint). The ratio measured/unmeasured of the best of a few rounds goes into extra_info; the
target is at most 1.2. Under --benchmark-disable (the test suite) each side runs once and only the
results are checked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.execute import run_falsifier
from harness.model import Contract, Falsifier, Outcome
from harness.validate import validate

REPO = Path(__file__).resolve().parents[1]

# case -> (contract file, falsifier id, rounds with --benchmark-enable)
CASES = {
    "python-guard-dense": ("contracts/apr-checkpoint-format-v1.yaml", "FALSIFY-CKPT-HOSTILE-001", 7),
    "torch": ("contracts/apr-pretrain-from-init-v1.yaml", "FALSIFY-INIT-ARCH-MATCH-001", 3),
}


def _load(path: str, fid: str) -> tuple[Contract, Falsifier]:
    contracts, problems = validate([REPO / path], check_bindings=False)
    assert not problems, problems
    [contract] = contracts
    return contract, next(f for f in contract.falsifiers if f.id == fid)


def _unguarded(contract: Contract) -> Contract:
    return dataclasses.replace(contract, invariants=tuple(dataclasses.replace(i, guards=()) for i in contract.invariants))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_guard_measurement_overhead(benchmark, case: str) -> None:
    path, fid, enabled_rounds = CASES[case]
    contract, falsifier = _load(path, fid)
    bare = _unguarded(contract)
    rounds = 1 if benchmark.disabled else enabled_rounds
    bare_s: list[float] = []
    measured_s: list[float] = []

    def run_bare() -> None:  # pedantic's untimed setup: the peer runs right before each measured round
        plain = run_falsifier(falsifier, bare, REPO)
        assert plain.outcome is Outcome.PASSED and plain.guards_executed is None, plain.reason
        bare_s.append(plain.duration_s)

    def run_measured() -> dict[str, tuple[int, ...]]:
        measured = run_falsifier(falsifier, contract, REPO)
        assert measured.outcome is Outcome.PASSED and measured.guards_executed, measured.reason
        measured_s.append(measured.duration_s)
        return measured.guard_lines or {}

    lines = benchmark.pedantic(run_measured, setup=run_bare, rounds=rounds, iterations=1)
    benchmark.extra_info.update(
        {"falsifier": falsifier.id, "rounds": rounds, "bare_s": min(bare_s), "measured_s": min(measured_s),
         "overhead_ratio": round(min(measured_s) / min(bare_s), 3), "guard_lines": sum(map(len, lines.values()))}
    )
