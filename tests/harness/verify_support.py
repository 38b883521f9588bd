"""Builders shared by the verify tests: a throwaway project with falsifier modules and contracts,
and helpers to run `python -m harness verify` against it and read back schema-checked evidence."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from harness.record import evidence_problems

from tests.cli_env import cli_env

REPO = Path(__file__).resolve().parents[2]

# Falsifiers covering every way a falsifier can end. `hang` records its pid so a test can check
# the harness killed it rather than leaving it running.
FALSIFIER_MODULE = textwrap.dedent(
    '''
    import os
    import signal
    import time
    from pathlib import Path

    from hypothesis import given, settings, strategies as st


    def holds():
        assert sorted([3, 1, 2]) == [1, 2, 3]


    def falsified():
        total = 1 + 1
        assert total == 3, f"1 + 1 was {total}, predicted 3"


    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(st.integers(min_value=0, max_value=1000))
    def _below_ten(x):
        assert x < 10


    def hypothesis_falsified():
        _below_ten()


    def raises():
        raise ValueError("the falsifier itself is broken")


    def hang():
        Path(os.environ.get("FX_PID_FILE", "hang.pid")).write_text(str(os.getpid()))
        time.sleep(600)


    def exits():
        os._exit(3)


    def segfaults():
        os.kill(os.getpid(), signal.SIGSEGV)


    def leaves_background_process():
        import subprocess
        # Forgotten, with our stdout: the falsifier itself has finished and held.
        subprocess.Popen(["sleep", "120"])


    def returns_verdict():
        return 1 + 1 == 3  # meant as an assert: the False verdict must not read as a pass


    def generator():
        assert False, "never reached: calling a generator function runs nothing"
        yield
    '''
)

BOUND_TESTS = textwrap.dedent(
    '''
    import pytest


    def test_bound_one():
        assert 1 == 1


    def test_bound_two():
        assert "a" in "abc"


    @pytest.mark.skip(reason="not today")
    def test_skipped_only():
        pass


    def test_broken_case():
        assert [1, 2] == [1, 3]
    '''
)


def falsifier(fid: str, binding: str, extra: str = "", attacks: str = "INV-FX-001") -> str:
    """One falsifier entry; `binding` and `extra` are YAML flow/block text for its keys."""
    text = (
        f"  - id: {fid}\n"
        f"    attacks: [{attacks}]\n"
        f"    prediction: The fixture behaves as coded.\n"
        f"    if_fails: The harness misclassified a fixture.\n"
        f"    binding: {binding}\n"
    )
    if extra:
        text += textwrap.indent(textwrap.dedent(extra).strip("\n"), "    ") + "\n"
    return text


def contract_text(contract_id: str, falsifiers: list[str], invariants: tuple[str, ...] = ("INV-FX-001",)) -> str:
    lines = [
        f"id: {contract_id}",
        "version: 1.0.0",
        "title: Fixture contract for the verify tests",
        "description: Falsifiers with known outcomes.",
        "invariants:",
    ]
    for inv in invariants:
        lines += [f"  - id: {inv}", "    kind: safety", "    statement: The fixture holds."]
    return "\n".join(lines) + "\nfalsifiers:\n" + "".join(falsifiers)


def make_project(root: Path, contracts: dict[str, str]) -> Path:
    """A repository-shaped directory (pyproject.toml at the root) with fixture modules and contracts."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'fixture'\nversion = '0'\n")
    (root / "fx_falsifiers.py").write_text(FALSIFIER_MODULE)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_bound.py").write_text(BOUND_TESTS)
    directory = root / "contracts"
    directory.mkdir(exist_ok=True)
    for name, text in contracts.items():
        (directory / name).write_text(text)
    return directory


def harness_env(**extra: str) -> dict[str, str]:
    env = cli_env(REPO)
    env["CI"] = "1"
    # These tests check the harness's mechanics; hiding any GPU makes the fixture's CUDA-requiring
    # falsifier read "requires CUDA" on every machine, a lent GPU box included.
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.pop("PYTEST_ADDOPTS", None)
    # Run under GitHub Actions, the fixture runs must not append to the real job's summary page.
    env.pop("GITHUB_STEP_SUMMARY", None)
    env.update(extra)
    return env


def plugin_args() -> list[str]:
    """`-p harness.plugin` from a plain checkout; nothing when the installed entry point loads it
    already (naming it again would make pytest refuse a second registration)."""
    import importlib.metadata

    if any(ep.value == "harness.plugin" for ep in importlib.metadata.entry_points(group="pytest11")):
        return []
    return ["-p", "harness.plugin"]


def fake_installation(site: Path) -> Path:
    """A directory that, on PYTHONPATH, makes importlib.metadata see the harness installed with its
    `pytest11` entry point, as `pip install .` would, without touching the real site-packages."""
    dist = site / "contract_harness-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: contract-harness\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nharness = harness.plugin\n")
    return site


def verify_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", "verify", *args]


def run_verify(cwd: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        verify_argv(*args), cwd=cwd, env=harness_env(**env), capture_output=True, text=True, timeout=timeout
    )


def read_evidence(path: Path) -> dict[str, Any]:
    """Parse evidence.json and fail the test unless it validates against the published schema."""
    document = json.loads(path.read_text())
    problems = evidence_problems(document)
    assert problems == [], f"{path} breaks the evidence schema: {problems}"
    return document


def entries(evidence: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for c in evidence["contracts"] for f in c["falsifiers"]}
