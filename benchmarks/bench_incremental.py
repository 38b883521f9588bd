"""What `harness verify --changed-since REF` saves: one changed module among N falsifiers.

A generated git repository of N python falsifiers, each importing a module of its own. The peer is the
full `harness verify` at the base commit (which is also REF's evidence); then one module changes, is
committed, and `harness verify --changed-since HEAD~1` runs again: only the falsifier importing it runs,
the other N-1 are carried over. Both are whole CLI runs in the same session; `extra_info` holds the two
times and `incremental_ratio` (incremental / full). Under --benchmark-disable each side runs once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_env import benchmark_env

N = 20


def _git(root: Path, *args: str) -> str:
    argv = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def _commit(root: Path, message: str) -> str:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)
    return _git(root, "rev-parse", "HEAD")


def _project(root: Path) -> None:
    root.mkdir(parents=True)
    _git(root, "init", "-q")
    (root / "pyproject.toml").write_text("[project]\nname = 'bench-incremental'\nversion = '0'\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    lines = [
        "id: bench-incremental-v1", "version: 1.0.0", "title: Incremental benchmark", "description: One module each.",
        "invariants:", "  - id: INV-BENCH-INCR-001", "    kind: safety", "    statement: Each module sorts.", "falsifiers:",
    ]
    for i in range(N):
        (root / f"bench_mod_{i}.py").write_text(f"def value():\n    return sorted([{i}, 1, 0])\n")
        (root / f"bench_fx_{i}.py").write_text(
            f"from bench_mod_{i} import value\n\n\ndef check():\n    assert value() == sorted([{i}, 1, 0])\n"
        )
        lines += [
            f"  - id: FALSIFY-BENCH-INCR-{i:03d}", "    attacks: [INV-BENCH-INCR-001]", "    prediction: Sorted.",
            "    if_fails: the module is broken.", f"    binding: {{python: 'bench_fx_{i}:check'}}",
        ]
    (root / "contracts").mkdir()
    (root / "contracts" / "bench.yaml").write_text("\n".join(lines) + "\n")


def _run(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=benchmark_env(), capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return elapsed


def test_changed_since_one_module_against_the_full_run(benchmark, tmp_path: Path) -> None:
    root, out = tmp_path / "repo", tmp_path / "out"
    _project(root)
    _commit(root, "base")
    verify = [sys.executable, "-m", "harness", "verify", "contracts", "--out", str(out)]
    full_s = _run(verify, root)
    (root / "bench_mod_0.py").write_text("def value():\n    return sorted([0, 1, 0])  # changed\n")
    head = _commit(root, "change one module")
    incremental_s = benchmark.pedantic(_run, args=([*verify, "--changed-since", "HEAD~1"], root), rounds=1, iterations=1)
    [path] = (out / head / "partial").glob("changed-since-*/evidence.json")
    results = [f for c in json.loads(path.read_text())["contracts"] for f in c["falsifiers"]]
    ran = [f["id"] for f in results if f["carried_from"] is None]
    assert ran == ["FALSIFY-BENCH-INCR-000"] and len(results) == N
    benchmark.extra_info.update(
        {"falsifiers": N, "changed_modules": 1, "full_s": round(full_s, 3), "incremental_s": round(incremental_s, 3),
         "incremental_ratio": round(incremental_s / full_s, 3)}
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "--benchmark-enable", "-q"]))
