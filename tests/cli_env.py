"""The environment for running this checkout's CLIs (`python -m pretrain`, `python -m harness`) in a child.

The checkout goes first on PYTHONPATH so the child imports the code under test, and whatever the caller
already had there stays behind it: on a machine whose packages live on PYTHONPATH (a lent GPU box, a
pip --target install) replacing it would hide jsonschema or torch from the child.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli_env(root: Path = ROOT, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def benchmark_env(root: Path = ROOT) -> dict[str, str]:
    """cli_env for the CLI runs a benchmark times: as CI runs them (CI=1: no colour, no progress bars), and
    without the caller's PYTEST_ADDOPTS, which would change what the timed pytest sessions do."""
    env = cli_env(root, CI="1")
    env.pop("PYTEST_ADDOPTS", None)
    return env
