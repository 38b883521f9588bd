"""What `harness verify` costs on top of plain pytest for the same checks.

20 trivial falsifiers, run two ways in the same session: as plain pytest tests (`python -m pytest`,
the peer) and as a contract (`python -m harness verify`, which adds validation, one isolated child
interpreter per falsifier, evidence, junit and summary). The ratio verify/pytest goes into the
benchmark's extra_info; under --benchmark-disable each side runs once.

And what selecting one falsifier among many contracts costs (`harness verify DIR -k ID` on 100, 1,000 and
10,000 contracts of one falsifier each): validation once, linear in the number of contracts, and one item
collected (it was quadratic: 1,000 contracts took 147 s to run one falsifier); extra_info holds each
time and its ratio to the 100 case.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness
from tests.cli_env import benchmark_env

N = 20


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-verify")
    (root / "pyproject.toml").write_text("[project]\nname = 'bench'\nversion = '0'\n")
    body = "".join(f"def check_{i}():\n    assert sorted([{i}, 1, 0]) == [0, 1, {i}] or {i} < 2\n\n" for i in range(N))
    (root / "bench_falsifiers.py").write_text(body)
    (root / "test_bench_falsifiers.py").write_text(
        "import bench_falsifiers\n\n"
        + "".join(f"def test_check_{i}():\n    bench_falsifiers.check_{i}()\n\n" for i in range(N))
    )
    lines = [
        "id: bench-verify-v1", "version: 1.0.0", "title: Verify overhead benchmark", "description: Trivial falsifiers.",
        "invariants:", "  - id: INV-BENCH-001", "    kind: safety", "    statement: Sorting sorts.", "falsifiers:",
    ]
    for i in range(N):
        lines += [
            f"  - id: FALSIFY-BENCH-{i:03d}", "    attacks: [INV-BENCH-001]", "    prediction: Sorted.",
            "    if_fails: sorted is broken.", f"    binding: {{python: 'bench_falsifiers:check_{i}'}}",
        ]
    (root / "contracts").mkdir()
    (root / "contracts" / "bench.yaml").write_text("\n".join(lines) + "\n")
    return root


def _run(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=benchmark_env(), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return elapsed


def test_verify_overhead_against_bare_pytest(benchmark, project: Path) -> None:
    bare = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bench_falsifiers.py"]
    verify = [sys.executable, "-m", "harness", "verify", "contracts", "--out", "out"]
    pytest_s = _run(bare, project)
    verify_s = benchmark.pedantic(_run, args=(verify, project), rounds=1, iterations=1)
    evidence = (project / "out" / "uncommitted" / "evidence.json").read_text()
    assert evidence.count('"outcome": "passed"') == N
    benchmark.extra_info.update(
        {"falsifiers": N, "pytest_s": round(pytest_s, 3), "verify_s": round(verify_s, 3),
         "overhead_ratio": round(verify_s / pytest_s, 2)}
    )


def _one_falsifier_contracts(root: Path, count: int) -> None:
    (root / "pyproject.toml").write_text("[project]\nname = 'bench-scale'\nversion = '0'\n")
    directory = root / "contracts"
    directory.mkdir()
    for c in range(count):
        (directory / f"scale-{c}.yaml").write_text(
            f"id: scale-{c}-v1\nversion: 1.0.0\ntitle: Scale {c}\ndescription: One falsifier.\n"
            f"invariants:\n  - id: INV-SCALE-{c}-001\n    kind: safety\n    statement: gc can be enabled.\n"
            f"falsifiers:\n  - id: FALSIFY-SCALE-{c}-001\n    attacks: [INV-SCALE-{c}-001]\n"
            "    prediction: gc.enable returns None.\n    if_fails: gc is broken.\n    binding: {python: 'gc:enable'}\n"
        )


SCALE_SIZES = (100, 1_000, 10_000)
SMALL_SCALE_SIZES = (5, 10, 20)  # under --benchmark-disable: the same code paths, once, quickly


def test_verify_one_falsifier_among_many_contracts(benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`harness.verify(DIR, select=[LAST-ID])` among 100, 1,000 and 10,000 one-falsifier contracts: the time
    of each and its ratio to the 100 case (linear: about 10 and 100 at most, the run of the one falsifier
    being the same at every size; it was quadratic)."""
    sizes = SMALL_SCALE_SIZES if benchmark.disabled else SCALE_SIZES
    monkeypatch.setenv("CI", "1")
    roots = {}
    for n in sizes:
        roots[n] = tmp_path / str(n)
        roots[n].mkdir()
        _one_falsifier_contracts(roots[n], n)
    seconds: dict[int, float] = {}

    def run(n: int) -> None:
        monkeypatch.chdir(roots[n])
        last = f"FALSIFY-SCALE-{n - 1}-001"
        start = time.perf_counter()
        evidence = harness.verify(["contracts"], out=None, select=[last])
        seconds[n] = time.perf_counter() - start
        assert [(r.id, r.outcome.value) for r in evidence.results] == [(last, "passed")]

    if not benchmark.disabled:
        run(sizes[0])  # warm: the first call in this process imports pytest and the runner
    for n in sizes[:-1]:
        run(n)
    benchmark.pedantic(run, args=(sizes[-1],), rounds=1, iterations=1)
    base = sizes[0]
    benchmark.extra_info.update(
        {
            "contracts": list(sizes),
            "seconds": {str(n): round(seconds[n], 3) for n in sizes},
            **{f"ratio_{n}_{base}": round(seconds[n] / seconds[base], 2) for n in sizes[1:]},
        }
    )
