"""Facts about the machine and the source tree a verification ran on.

Evidence is only worth something if it says what it is evidence *of*: the commit, whether the tree
had uncommitted edits, and the hardware/software a falsifier ran on. torch is optional: the harness
verifies projects that have never heard of it: GPUs are found from the machine (nvidia-smi, the
driver's /proc entries), and torch's view is recorded beside that only where torch is installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.requirements import machine_cuda

def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        # No git binary, or a wedged repository: the run is then recorded as uncommitted.
        return None


def git_state(path: str | os.PathLike[str]) -> tuple[str | None, bool | None]:
    """(full commit sha, dirty) for the git checkout holding `path`; (None, None) outside one."""
    where = Path(path).resolve()
    if where.is_file():
        where = where.parent
    head = _git(["rev-parse", "HEAD"], where)
    if head is None or head.returncode != 0:
        return None, None
    commit = head.stdout.strip()
    status = _git(["status", "--porcelain"], where)
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return commit, dirty


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory_gib() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return round(pages * page_size / 2**30, 2)


def torch_facts(gpu_present: bool) -> dict[str, Any]:
    """torch version, and torch's own view of CUDA (its CUDA version, GPU 0's name); all None when
    torch is not installed. Only recorded, never required: the requirement `cuda` is decided from the
    machine (harness.requirements.cuda_facts).

    torch is imported (seconds of CPU) only when it already is, or when the machine has a GPU for it
    to see; otherwise its installed version is read from its metadata."""
    facts: dict[str, Any] = {"torch": None, "cuda": None, "gpu": None}
    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None:
            return facts
        if not gpu_present:
            try:
                facts["torch"] = importlib.metadata.version("torch")
                return facts
            except importlib.metadata.PackageNotFoundError:
                pass  # torch importable but not installed as a distribution: ask torch itself
    try:
        import torch
    except Exception as exc:  # a broken torch install must not stop verification
        facts["torch"] = f"unimportable: {type(exc).__name__}: {exc}"
        return facts
    facts["torch"] = torch.__version__
    try:
        if torch.cuda.is_available():
            facts["cuda"] = torch.version.cuda
            facts["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return facts


def collect_environment() -> dict[str, Any]:
    """The machine facts stored in evidence.json under `environment`."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "os": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _total_memory_gib(),
    }
    machine = machine_cuda()
    env.update(torch_facts(machine.present))
    # The machine's own view, whatever torch says: what `requires: {cuda: true}` was decided by.
    env["gpus"] = list(machine.gpus)
    env["nvidia_driver"] = machine.driver
    return env
