"""Loading a checkpoint and starting the CLI, each against a peer measured in the same run (issue #11, items 5, 7).

- `from_pretrained` against `transformers.AutoModelForCausalLM.from_pretrained` on the same HF directory:
  in a fresh process (one subprocess per load, the two sides alternating; the time of the load call after
  torch and the library's entry point are imported, which includes whatever the library imports lazily
  on its first load) and warm (in process, alternating calls). `extra_info["ratio_ours_over_transformers"]`: < 1 is
  faster; the target is at most 0.5.
- Peak memory of a load: the RSS high-water above the RSS just before the load, in a subprocess (VmHWM,
  reset before the load through /proc/self/clear_refs so the imports' peak is not counted; where that
  is not available, `resource.getrusage`'s high-water since the start), against the weights' bytes (`ratio_peak_over_weights`, target at most 1.1); on a ~56M
  model when benchmarks are enabled, on a tiny one under `--benchmark-disable`.
- CLI start: `python -m pretrain --help` and `pretrain inspect FILE` against `python -c pass`: median wall
  and CPU seconds (`command_s`, `command_cpu_s`; the target is under 0.3 s in all; on a loaded machine
  CPU time is the figure that load does not inflate).

Under `--benchmark-disable` (the default here) each runs once, on tiny shapes, as a test.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from pretrain.model import ModelConfig, build_model, from_pretrained
from tests.cli_env import ROOT, cli_env

transformers = pytest.importorskip("transformers")

TINY = ModelConfig(family="qwen2", hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16, tie_word_embeddings=True)
# 58.1M parameters (232 MB in fp32): the "56M model".
MEDIUM = ModelConfig(family="llama", vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                     num_attention_heads=8, num_key_value_heads=8, head_dim=64)

# torch is imported before the clock starts on both sides: transformers imports it lazily, on the first
# load, and its 1.5 s (more on a loaded machine) would otherwise count as transformers' load time.
OURS = "import torch; from pretrain.model import from_pretrained as load"
THEIRS = "import torch; from transformers import AutoModelForCausalLM; load = AutoModelForCausalLM.from_pretrained"

# Prints the load call's seconds, the RSS high-water above the RSS before the load, and the weights' bytes.
CHILD = """
import json, os, resource, sys, time
{entry}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def high_water():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:  # reset the high-water mark, so the imports' own peak is not counted as the load's (Linux)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
before = rss()
start = time.perf_counter()
model = load(sys.argv[1])
seconds = time.perf_counter() - start
peak = high_water()
weights = sum(p.numel() * p.element_size() for p in model.parameters())
print(json.dumps({{"seconds": seconds, "peak_above_before": peak - before, "weights": weights}}))
"""


def child_load(entry: str, directory: Path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD.format(entry=entry), str(directory)], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def alternating(ours: Callable[[], float], theirs: Callable[[], float], rounds: int) -> tuple[float, float]:
    """Median of each side's measurements, alternating so that machine load hits both alike."""
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(rounds):
        times["ours"].append(ours())
        times["theirs"].append(theirs())
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def timed(fn: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def hf_directory(cfg: ModelConfig, directory: Path) -> Path:
    return build_model(cfg, seed=0).save_pretrained(directory)


def test_fresh_process_load_vs_transformers(benchmark: Any, tmp_path: Path) -> None:
    directory = hf_directory(TINY, tmp_path / "hf")
    rounds = 1 if benchmark.disabled else 7
    ours_s, theirs_s = alternating(lambda: child_load(OURS, directory)["seconds"],
                                   lambda: child_load(THEIRS, directory)["seconds"], rounds)
    benchmark.pedantic(lambda: child_load(OURS, directory), rounds=1, iterations=1)
    benchmark.extra_info.update(ours_load_s=ours_s, transformers_load_s=theirs_s,
                                ratio_ours_over_transformers=ours_s / theirs_s, rounds=rounds)
    print(f"\nfresh load: ours {ours_s:.3f} s, transformers {theirs_s:.3f} s, ratio {ours_s / theirs_s:.2f}")
    assert ours_s > 0 and theirs_s > 0


def test_warm_load_vs_transformers(benchmark: Any, tmp_path: Path) -> None:
    directory = hf_directory(TINY, tmp_path / "hf")
    ours, theirs = (lambda: from_pretrained(directory)), \
        (lambda: transformers.AutoModelForCausalLM.from_pretrained(directory))
    ours(), theirs()  # warm-up: each library's lazy imports happen here, not in the rounds
    rounds = 2 if benchmark.disabled else 15
    ours_s, theirs_s = alternating(timed(ours), timed(theirs), rounds)
    benchmark(ours)
    benchmark.extra_info.update(ours_load_s=ours_s, transformers_load_s=theirs_s,
                                ratio_ours_over_transformers=ours_s / theirs_s, rounds=rounds)
    print(f"\nwarm load: ours {ours_s * 1e3:.1f} ms, transformers {theirs_s * 1e3:.1f} ms, "
          f"ratio {ours_s / theirs_s:.2f}")
    assert ours_s > 0 and theirs_s > 0


def test_load_peak_memory_vs_the_weights(benchmark: Any, tmp_path: Path) -> None:
    cfg = TINY if benchmark.disabled else MEDIUM
    directory = hf_directory(cfg, tmp_path / "hf")
    ours = child_load(OURS, directory)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(weights_bytes=ours["weights"], ours_peak_bytes=ours["peak_above_before"],
                                ratio_peak_over_weights=ours["peak_above_before"] / ours["weights"])
    print(f"\npeak above the RSS before the load: {ours['peak_above_before'] / ours['weights']:.2f}x "
          f"the weights' {ours['weights'] / 1e6:.1f} MB")
    if not benchmark.disabled:  # on the tiny model the peer's figure is only its import noise; skipped there
        theirs = child_load(THEIRS, directory)
        benchmark.extra_info.update(transformers_peak_bytes=theirs["peak_above_before"],
                                    transformers_ratio_peak_over_weights=theirs["peak_above_before"] / theirs["weights"])
        print(f"transformers: {theirs['peak_above_before'] / theirs['weights']:.2f}x")
        assert theirs["weights"] == ours["weights"]
    assert ours["weights"] > 0


@pytest.mark.parametrize("argv", [["--help"], ["inspect", "{file}"]], ids=["help", "inspect"])
def test_cli_start_vs_bare_python(benchmark: Any, tmp_path: Path, argv: list[str]) -> None:
    directory = hf_directory(TINY, tmp_path / "hf")
    command = [sys.executable, "-m", "pretrain", *(a.format(file=directory / "model.safetensors") for a in argv)]
    bare = [sys.executable, "-c", "pass"]
    cpu: dict[str, list[float]] = {"command": [], "bare": []}

    def run(cmd: list[str], side: str) -> Callable[[], float]:
        """Wall seconds of one run; its CPU seconds (user + system, which a loaded machine does not inflate
        the way it does wall time) go to cpu[side]."""
        def once() -> float:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=cli_env(), capture_output=True, timeout=120, check=True)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[side].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            return wall

        return once

    rounds = 1 if benchmark.disabled else 15
    ours_s, bare_s = alternating(run(command, "command"), run(bare, "bare"), rounds)
    ours_cpu, bare_cpu = statistics.median(cpu["command"]), statistics.median(cpu["bare"])
    benchmark.pedantic(run(command, "command"), rounds=1, iterations=1)
    benchmark.extra_info.update(command_s=ours_s, bare_python_s=bare_s, extra_s=ours_s - bare_s,
                                ratio_command_over_bare=ours_s / bare_s, command_cpu_s=ours_cpu,
                                bare_python_cpu_s=bare_cpu, rounds=rounds)
    print(f"\npretrain {' '.join(argv)}: {ours_s:.3f} s wall, {ours_cpu:.3f} s CPU; "
          f"python -c pass {bare_s:.3f} s wall, {bare_cpu:.3f} s CPU")
    assert ours_s > 0 and bare_s > 0
