"""How long `harness validate` takes at 100, 1,000 and 10,000 falsifiers (10 per contract).

Two figures per size, measured alternately in the same run (best of the rounds):
- `cli_s`: the command a user runs, `python -m harness validate contracts/` (interpreter start, imports,
  bindings resolved in their isolated child): the issue's targets are 0.2, 0.4 and 2 s;
- `library_s`: `harness.validate.validate(..., check_bindings=False)` in this process: the loader, the
  schema, the cross-file checks and the model, i.e. the work per contract. Its ratios 10,000/1,000 and
  1,000/100 stay near 10 when validation is linear (they were quadratic parts that made them grow).

The python bindings point at two real zero-argument stdlib functions, so the import child does the same
work at every size. Under --benchmark-disable (the test suite) it runs once on small sets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from harness.validate import validate

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("platform:python_version", "gc:isenabled")
PER_CONTRACT = 10
SIZES = (100, 1_000, 10_000)  # falsifiers
SMALL_SIZES = (10, 20, 40)  # under --benchmark-disable: the same code paths, once, quickly


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


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _cli(directory: Path, falsifiers: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", "contracts"],
        cwd=directory.parent, env=_env(), capture_output=True, text=True, timeout=600,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{falsifiers} falsifiers: valid" in proc.stdout, proc.stdout
    return elapsed


def _library(directory: Path, falsifiers: int) -> float:
    start = time.perf_counter()
    loaded, problems = validate([directory], check_bindings=False)
    elapsed = time.perf_counter() - start
    assert problems == []
    assert sum(len(c.falsifiers) for c in loaded) == falsifiers
    return elapsed


def test_validate_scales_linearly(benchmark, tmp_path: Path) -> None:
    sizes = SMALL_SIZES if benchmark.disabled else SIZES
    rounds = 1 if benchmark.disabled else 3
    directories = {}
    for n in sizes:
        (tmp_path / str(n)).mkdir()
        directories[n] = write_contracts(tmp_path / str(n), n // PER_CONTRACT, PER_CONTRACT)
    cli: dict[int, float] = {n: float("inf") for n in sizes}
    library: dict[int, float] = {n: float("inf") for n in sizes}
    for _ in range(rounds):  # sizes alternate, so a load spike on the shared machine hits them alike
        for n in sizes:
            cli[n] = min(cli[n], _cli(directories[n], n))
            library[n] = min(library[n], _library(directories[n], n))
    largest = sizes[-1]
    benchmark.pedantic(_cli, args=(directories[largest], largest), rounds=1, iterations=1)
    small, middle, large = sizes
    benchmark.extra_info.update(
        {
            "falsifiers": list(sizes),
            "cli_s": {str(n): round(cli[n], 3) for n in sizes},
            "library_s": {str(n): round(library[n], 3) for n in sizes},
            f"library_ratio_{large}_{middle}": round(library[large] / library[middle], 2),
            f"library_ratio_{middle}_{small}": round(library[middle] / library[small], 2),
            f"cli_ratio_{large}_{middle}": round(cli[large] / cli[middle], 2),
            f"cli_ratio_{middle}_{small}": round(cli[middle] / cli[small], 2),
            "cli_targets_s": {"100": 0.2, "1000": 0.4, "10000": 2.0},
        }
    )
