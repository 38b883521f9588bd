"""What the subreaper supervisor (harness/supervisor.py) costs per child, and what ending the python child
with os._exit right after its verdict saves.

Each benchmark times the harness's way and its peer in the same run, alternating calls so machine
load hits both alike, and records both medians and their difference in `extra_info`:

- `run_isolated(["true"])` supervised against the same call with the supervisor switched off (the
  process-group kill only, as on non-Linux): the difference is the supervisor's per-child overhead;
- a python falsifier run through `harness.execute.run_falsifier` against the same child run to a
  normal interpreter exit (the same import and call, then `sys.exit`): the difference is what
  skipping teardown and atexit after the verdict saves (positive = saved).

Under `--benchmark-disable` (the pytest default here) each runs a few rounds as a test.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from harness import isolation
from harness.isolation import child_env, run_isolated

ROUNDS = 5


def interleaved_medians(ours: Callable[[], None], theirs: Callable[[], None], rounds: int) -> tuple[float, float]:
    ours(), theirs()  # warm-up
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("theirs", theirs)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


@pytest.mark.skipif(not isolation.supervised(), reason="the supervisor is Linux only")
def test_supervisor_overhead_per_child(benchmark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = child_env(tmp_path)

    def supervised() -> None:
        run_isolated(["true"], tmp_path, 30, env)

    def direct() -> None:
        with monkeypatch.context() as m:
            m.setattr(isolation, "supervised", lambda: False)
            run_isolated(["true"], tmp_path, 30, env)

    ours, theirs = interleaved_medians(supervised, direct, ROUNDS)
    benchmark.extra_info.update(supervised_s=ours, direct_s=theirs, overhead_s=ours - theirs)
    benchmark(supervised)


FALSIFIER = "def holds():\n    import json, hypothesis  # a typical falsifier's imports: teardown has work to do\n"


def test_os_exit_after_the_verdict_saves_interpreter_teardown(benchmark: Any, tmp_path: Path) -> None:
    from harness import channel
    from harness.execute import _run_python
    from harness.model import Binding, BindingKind

    (tmp_path / "bench_falsifier.py").write_text(FALSIFIER)
    binding = Binding(BindingKind.PYTHON, target="bench_falsifier:holds")
    # The peer: the same child, ending through a normal interpreter exit instead of os._exit.
    normal_exit = (
        "import sys; from harness import channel, child; key = channel.receive_key(); sys.path.insert(0, '.'); "
        "result = child.classify(sys.argv[1]); channel.send(sys.argv[2], key, result, 0, exit=False); sys.exit(0)"
    )

    def ours() -> None:
        assert _run_python(binding, tmp_path, 60).reason == "returned without an AssertionError"

    def theirs() -> None:
        with channel.open_channel(tmp_path) as results:
            results.path.unlink(missing_ok=True)
            env = child_env(tmp_path) | results.env()
            run = run_isolated(
                [sys.executable, "-c", normal_exit, binding.target or "", str(results.path)], tmp_path, 60, env,
                pass_fds=results.pass_fds,
            )
            assert results.receive(run.returncode)["outcome"] == "passed"

    mine, peer = interleaved_medians(ours, theirs, ROUNDS)
    benchmark.extra_info.update(os_exit_s=mine, normal_exit_s=peer, saved_s=peer - mine)
    benchmark(ours)
