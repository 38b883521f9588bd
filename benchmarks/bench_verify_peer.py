"""`harness verify` against its peer: bare pytest running the same falsifier functions and tests in ONE process.

    python -m pytest benchmarks/bench_verify_peer.py --benchmark-enable -s

The peer is generated from the contracts (harness.validate): a python binding `module:function` becomes a
test that imports the module and calls the function; a pytest binding contributes its node id (a `-k`
binding: the node ids it collects, listed before timing); a command binding becomes a test that runs the
command. Falsifiers whose requirements are unmet here, or that are deferred, are left out of the peer
(verify does not run them either). Serial (`harness verify` vs `pytest`) and parallel (`-j 2` vs
`pytest -n 2`) runs alternate; extra_info holds each side's median and the ratio (target <= 1.10).

With --benchmark-enable the contracts are this repository's; under --benchmark-disable (the test suite)
each side runs once on a tiny generated contract set, so the benchmark cannot rot.

And the fork server's fixed cost (`test_fork_server_overhead_per_falsifier`): N trivial falsifiers through
execute.run_falsifier (fork server) against N bare calls of the same function, in ms per falsifier
(target <= 10 ms).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import execute, fork_server, parameters, requirements
from harness.model import Binding, BindingKind, Contract, Falsifier, SourceLocation
from harness.validate import validate_report

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["CI"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _tiny_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "peer"\nversion = "0"\n\n[tool.harness]\npreload = ["json"]\n')
    (root / "peer_falsifiers.py").write_text("def holds():\n    assert sorted([2, 1]) == [1, 2]\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_peer.py").write_text("def test_a():\n    assert 1\n\ndef test_b():\n    assert 2\n")
    (root / "contracts").mkdir()
    (root / "contracts" / "peer.yaml").write_text(textwrap.dedent(
        """\
        id: peer-v1
        version: 1.0.0
        title: Peer benchmark
        description: Tiny.
        invariants:
          - {id: INV-PEER-001, kind: safety, statement: Sorting sorts.}
        falsifiers:
          - id: FALSIFY-PEER-001
            attacks: [INV-PEER-001]
            prediction: Sorted.
            if_fails: sorted is broken.
            binding: {python: 'peer_falsifiers:holds'}
          - id: FALSIFY-PEER-002
            attacks: [INV-PEER-001]
            prediction: Passes.
            if_fails: broken.
            binding:
              pytest: {k: "test_a or test_b", paths: [tests/test_peer.py]}
              min_tests: 2
        """
    ))
    return root


def _peer(root: Path, contracts: Path, scratch: Path) -> list[str]:
    """Write the peer test module into `scratch`; the pytest argv (relative to `root`) that runs it all."""
    validation = validate_report([contracts], check_bindings=False)
    assert validation.ok, [str(p) for p in validation.problems]
    body, nodes = ["import subprocess\n"], []
    for contract in validation.contracts:
        for falsifier in contract.falsifiers:
            # What verify does not run here either: deferred, unmet requirements (CUDA), a parameter not given.
            if falsifier.deferred is not None or requirements.unmet(falsifier.requires) is not None \
                    or parameters.missing(falsifier, contract):
                continue
            binding, name = falsifier.binding, "test_" + falsifier.id.replace("-", "_").lower()
            if binding.kind is BindingKind.PYTHON:
                module, _, function = str(binding.target).partition(":")
                body.append(f"def {name}():\n    import {module}\n    {module}.{function}()\n")
            elif binding.kind is BindingKind.COMMAND:
                body.append(f"def {name}():\n    subprocess.run({list(binding.argv)!r}, check=True)\n")
            elif binding.k is not None:
                listed = subprocess.run(
                    [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-k", binding.k,
                     *binding.paths], cwd=root, env=_env(), capture_output=True, text=True, timeout=600,
                )
                nodes += [line for line in listed.stdout.splitlines() if "::" in line]
            else:
                nodes.append(str(binding.target))
    peer = scratch / "test_verify_peer_generated.py"
    peer.write_text("\n\n".join(body))
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:harness",
            f"--rootdir={root}", str(peer), *dict.fromkeys(nodes)]


def _timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    # verify exits 1 when a falsifier fails: the comparison is of cost, so both sides may fail alike.
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return elapsed


def test_verify_against_bare_pytest_peer(benchmark, tmp_path: Path) -> None:
    if benchmark.disabled:
        root, rounds = _tiny_project(tmp_path / "project"), 1
    else:
        root, rounds = REPO, int(os.environ.get("PEER_ROUNDS", "3"))
    peer = _peer(root, root / "contracts", tmp_path)
    out = tmp_path / "out"
    verify = [sys.executable, "-m", "harness", "verify", str(root / "contracts"), "--out", str(out)]
    sides = {
        "verify_serial": verify, "peer_serial": peer,
        "verify_j2": [*verify, "-j", "2"], "peer_n2": [*peer, "-n", "2"],
    }
    times: dict[str, list[float]] = {k: [] for k in sides}

    def one_round() -> None:
        for key, argv in sides.items():  # alternating: each round runs every side once
            times[key].append(_timed(argv, root))

    benchmark.pedantic(one_round, rounds=rounds, iterations=1)
    median = {k: statistics.median(v) for k, v in times.items()}
    benchmark.extra_info.update({f"{k}_s": round(v, 2) for k, v in median.items()})
    benchmark.extra_info["ratio_serial"] = round(median["verify_serial"] / median["peer_serial"], 2)
    benchmark.extra_info["ratio_j2"] = round(median["verify_j2"] / median["peer_n2"], 2)
    benchmark.extra_info["rounds"] = rounds
    print("\n", dict(benchmark.extra_info))


TRIVIAL = "".join(f"def check_{i}():\n    assert sorted([{i}, 0]) == [0, {i}] or {i} == 0\n\n" for i in range(200))


@pytest.mark.parametrize("preload", ["stdlib", "repository"])
def test_fork_server_overhead_per_falsifier(benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preload: str) -> None:
    if not fork_server.available():
        pytest.skip("the fork server needs Linux")
    n = 3 if benchmark.disabled else 100
    listed = '"json"' if preload == "stdlib" or benchmark.disabled else ", ".join(
        f'"{m}"' for m in __import__("harness.project_config").project_config.load(REPO).preload
    )
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "o"\n\n[tool.harness]\npreload = [{listed}]\n')
    (tmp_path / "overhead_falsifiers.py").write_text(TRIVIAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(fork_server.DISABLE_ENV, raising=False)
    import overhead_falsifiers

    contract = Contract("C-O", "1", "t", "d", "c.yaml", "0" * 64, (), ())
    falsifiers = [
        Falsifier(id=f"F-{i}", attacks=(), prediction="p", if_fails="f",
                  binding=Binding(BindingKind.PYTHON, f"overhead_falsifiers:check_{i}"), location=SourceLocation("c", 1))
        for i in range(n)
    ]
    execute.run_falsifier(falsifiers[0], contract, tmp_path)  # the server starts (and preloads) once, untimed

    def forked() -> float:
        start = time.perf_counter()
        for falsifier in falsifiers:
            assert execute.run_falsifier(falsifier, contract, tmp_path).outcome.value == "passed"
        return time.perf_counter() - start

    def bare() -> float:
        start = time.perf_counter()
        for i in range(n):
            getattr(overhead_falsifiers, f"check_{i}")()
        return time.perf_counter() - start

    rounds = 1 if benchmark.disabled else 3
    forked_s, bare_s = [], []

    def one_round() -> None:
        forked_s.append(forked())
        bare_s.append(bare())

    benchmark.pedantic(one_round, rounds=rounds, iterations=1)
    fork_server.shutdown()
    per = (statistics.median(forked_s) - statistics.median(bare_s)) / n * 1000
    benchmark.extra_info.update({"falsifiers": n, "preload": listed, "overhead_ms_per_falsifier": round(per, 2)})
    print("\n", dict(benchmark.extra_info))
