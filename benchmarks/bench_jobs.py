"""What `harness verify -j 2` gains over a serial run (target: at least 1.7x on 2 cores).

A generated contract of falsifiers with very unequal durations (sleeps, so the figure is the schedule's,
not the machine's load), the longest last in file order, which is what xdist's default `load`
distribution balanced worst. Three runs in the same session: serial (which records the durations in
its evidence), `-j 2` over the same --out (longest first by those durations: harness.xdist_schedule),
and `-j 2` over a fresh --out (no durations: file order, one at a time per idle worker). The ratios
serial/parallel go into extra_info.

With BENCH_JOBS_REPO=1 it also runs this repository's `contracts/` serial and with -j 2 (minutes).
Under --benchmark-disable (the test suite) the sleeps are a tenth as long: the benchmark runs, nothing
is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_env import benchmark_env

REPO = Path(__file__).resolve().parents[1]
# Seconds each falsifier sleeps, in file order: 64 s of work (about half of what this repository's contracts
# take serially) whose best 2-worker schedule takes 32 s.
SLEEPS = [4, 4, 4, 4, 4, 4, 8, 8, 24]


def _project(root: Path, scale: float) -> Path:
    (root / "pyproject.toml").write_text("[project]\nname = 'bench'\nversion = '0'\n")
    body = "import time\n\n" + "".join(
        f"def sleep_{i}():\n    time.sleep({s * scale})\n\n" for i, s in enumerate(SLEEPS)
    )
    (root / "bench_sleeps.py").write_text(body)
    lines = [
        "id: bench-jobs-v1", "version: 1.0.0", "title: -j benchmark", "description: Falsifiers of unequal length.",
        "invariants:", "  - id: INV-JOBS-001", "    kind: safety", "    statement: Sleeping returns.", "falsifiers:",
    ]
    for i in range(len(SLEEPS)):
        lines += [
            f"  - id: FALSIFY-JOBS-{i:03d}", "    attacks: [INV-JOBS-001]", "    prediction: It returns.",
            "    if_fails: time.sleep is broken.", f"    binding: {{python: 'bench_sleeps:sleep_{i}'}}",
        ]
    (root / "contracts").mkdir()
    (root / "contracts" / "jobs.yaml").write_text("\n".join(lines) + "\n")
    return root


def _verify(cwd: Path, paths: str, out: Path, *flags: str, timeout: float = 600) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "verify", paths, "--out", str(out), *flags],
        cwd=cwd, env=benchmark_env(), capture_output=True, text=True, timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return elapsed


def _outcomes(out: Path) -> dict[str, str]:
    (file,) = out.glob("*/evidence.json")
    doc = json.loads(file.read_text())
    return {f["id"]: f["outcome"] for c in doc["contracts"] for f in c["falsifiers"]}


def test_jobs_2_against_serial_on_unequal_falsifiers(benchmark, tmp_path: Path) -> None:
    scale = 0.1 if benchmark.disabled else 1.0
    project = _project(tmp_path, scale)
    out = tmp_path / "out"
    serial_s = _verify(project, "contracts", out)
    fresh_s = _verify(project, "contracts", tmp_path / "fresh", "-j", "2")
    parallel_s = benchmark.pedantic(_verify, args=(project, "contracts", out, "-j", "2"), rounds=1, iterations=1)
    assert set(_outcomes(out).values()) == {"passed"} and _outcomes(out) == _outcomes(tmp_path / "fresh")
    benchmark.extra_info.update(
        {
            "falsifiers": len(SLEEPS), "work_s": sum(SLEEPS) * scale, "serial_s": round(serial_s, 2),
            "j2_longest_first_s": round(parallel_s, 2), "j2_no_durations_s": round(fresh_s, 2),
            "speedup_longest_first": round(serial_s / parallel_s, 2), "speedup_no_durations": round(serial_s / fresh_s, 2),
            "loadavg": round(os.getloadavg()[0], 1),
        }
    )


@pytest.mark.skipif(os.environ.get("BENCH_JOBS_REPO") != "1", reason="BENCH_JOBS_REPO=1 runs this repository's contracts")
def test_jobs_2_against_serial_on_this_repositorys_contracts(benchmark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    serial_s = _verify(REPO, "contracts/", out, timeout=3600)
    parallel_s = benchmark.pedantic(_verify, args=(REPO, "contracts/", out, "-j", "2"), kwargs={"timeout": 3600}, rounds=1, iterations=1)
    benchmark.extra_info.update(
        {"serial_s": round(serial_s, 1), "j2_s": round(parallel_s, 1), "speedup": round(serial_s / parallel_s, 2),
         "loadavg": round(os.getloadavg()[0], 1)}
    )
