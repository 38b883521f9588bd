"""Put first on a falsifier's PYTHONPATH by harness.guard_coverage: its python subprocesses probe the guards'
files (harness.subprocess_probe), then the environment's own sitecustomize, if any, runs as it would have."""

import os
import sys


def _start() -> None:
    try:
        from harness import subprocess_probe
    except Exception:  # noqa: BLE001 - another interpreter, or the harness not importable: unmeasured
        return
    subprocess_probe.start_from_env()


def _chain() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    rest = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_start()
_chain()
