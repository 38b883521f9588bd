"""How long `harness validate` takes on a large contract set: 1,000 contracts, 10,000 falsifiers.

The python bindings point at two real zero-argument stdlib functions, so the import child runs once for the
whole set; what is measured is the loader, the schema and the cross-file checks. The peer
benchmark validates a tenth of the set; their ratio (printed by pytest-benchmark) should stay
near 10, i.e. validation is linear in the number of falsifiers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.validate import validate

TARGETS = ("platform:python_version", "gc:isenabled")


def write_contracts(root: Path, contracts: int, falsifiers_per_contract: int) -> Path:
    (root / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
    directory = root / "contracts"
    directory.mkdir()
    for c in range(contracts):
        lines = [
            f"id: bench-contract-{c}-v1",
            "version: 1.0.0",
            f"title: Benchmark contract {c}",
            f"depends_on: [bench-contract-{c - 1}-v1]" if c else "depends_on: []",
            "invariants:",
            f"  - id: INV-BENCH-{c}-001",
            "    kind: safety",
            "    statement: The benchmark invariant holds.",
            f"    guards: [{TARGETS[c % 2]}]",
            "falsifiers:",
        ]
        for f in range(falsifiers_per_contract):
            lines += [
                f"  - id: FALSIFY-BENCH-{c}-{f:03d}",
                f"    attacks: [INV-BENCH-{c}-001]",
                "    prediction: The function returns without raising.",
                "    if_fails: The benchmark invariant is broken.",
                f"    binding: {{python: {TARGETS[f % 2]}}}",
                "    timeout_s: 30",
            ]
        (directory / f"bench-contract-{c}.yaml").write_text("\n".join(lines) + "\n")
    return directory


@pytest.mark.parametrize(("contracts", "per_contract"), [(100, 10), (1000, 10)], ids=["1k-falsifiers", "10k-falsifiers"])
def test_validate_scales_linearly(benchmark, tmp_path: Path, contracts: int, per_contract: int) -> None:
    directory = write_contracts(tmp_path, contracts, per_contract)
    loaded, problems = benchmark(validate, [directory])
    assert problems == []
    assert len(loaded) == contracts
    assert sum(len(c.falsifiers) for c in loaded) == contracts * per_contract
