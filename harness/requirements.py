"""Requirement kinds: what a falsifier's `requires:` can ask of the machine, and how each is probed.

A probe takes the value written under its kind in the contract and returns None when the requirement
is met here, or the one-line reason it is not (recorded as `not_run: <reason>`). Three kinds are
built in and closed in the contract schema:

    cuda: true            a GPU is present (see `cuda_facts`); never asks torch or any ML library
    packages: [...]       each name or PEP 508 requirement is installed, in a matching version
    min_memory_gib: N     at least N GiB of host memory is available

A project adds its own kinds without changing the harness, through the entry point group
`harness.requirements` (name = kind, value = "module:function" of its probe), e.g. in its
pyproject.toml:

    [project.entry-points."harness.requirements"]
    licence_server = "myproject.probes:licence_server"

or in code, with `register(kind, probe)`. `harness validate` rejects a kind nobody registered,
naming the known ones.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # imported where used: `harness validate` of built-in kinds never needs it (~60 ms)
    import importlib.metadata

from harness.isolation import child_env, run_isolated

Probe = Callable[[Any], "str | None"]
ENTRY_POINT_GROUP = "harness.requirements"
BUILTIN_KINDS = ("cuda", "packages", "min_memory_gib")
# `requires.parameters` names contract parameters: decided against the run's given values (harness.parameters,
# in harness.execute), never by a probe of the machine, so it is no requirement kind a project may register.
PARAMETERS = "parameters"

_registered: dict[str, Probe] = {}


class ProbeError(Exception):
    """A requirement's probe could not be loaded or raised: the falsifier's `error`, not a quiet not_run."""


def register(kind: str, probe: Probe) -> None:
    """Make `kind` a requirement kind contracts may use; `probe(value)` returns None or why it is unmet."""
    if kind in BUILTIN_KINDS or kind == PARAMETERS:
        raise ValueError(f"requirement kind {kind!r} is built in; choose another name")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
        raise ValueError(f"requirement kind {kind!r} must be lower_snake_case")
    _registered[kind] = probe


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    import importlib.metadata

    found = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in BUILTIN_KINDS and ep.name != PARAMETERS:
            found.setdefault(ep.name, ep)
    return found


def known_kinds() -> list[str]:
    """Built-in kinds first, then the registered and entry-point kinds, sorted."""
    return [*BUILTIN_KINDS, *sorted(set(_registered) | set(_entry_points()))]


def is_known(kind: str) -> bool:
    return kind in BUILTIN_KINDS or kind in _registered or kind in _entry_points()


def probe_for(kind: str) -> Probe:
    """The probe of a project kind; ProbeError when none is registered or its entry point does not load."""
    if kind in _registered:
        return _registered[kind]
    ep = _entry_points().get(kind)
    if ep is None:
        raise ProbeError(f"no probe is registered for requirement kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    try:
        probe = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken project probe is reported, not raised through
        raise ProbeError(f"the probe for requirement kind {kind!r} ({ep.value}) does not load: {type(exc).__name__}: {exc}") from exc
    if not callable(probe):
        raise ProbeError(f"the probe for requirement kind {kind!r} ({ep.value}) is not callable")
    _registered[kind] = probe
    return probe


# ---------------------------------------------------------------------------------------- cuda

NVIDIA_SMI_TIMEOUT_S = 10.0
PROC_GPUS = Path("/proc/driver/nvidia/gpus")
PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")
_SMI_GPU = re.compile(r"^GPU \d+: (.+?)(?: \(UUID: [^)]*\))?$")
_DRIVER = re.compile(r"Kernel Module(?: for [^ ]+)?\s+([0-9][0-9.]*)")


@dataclass(frozen=True)
class CudaFacts:
    """What the machine says about NVIDIA GPUs, without any ML library."""

    present: bool
    gpus: tuple[str, ...] = ()  # names, as nvidia-smi or the driver's /proc entries give them
    driver: str | None = None


def _nvidia_smi(program: str, args: list[str]) -> list[str] | None:
    """nvidia-smi's output lines, or None when it is absent, fails or hangs."""
    path = shutil.which(program)
    if path is None:
        return None
    try:
        run = run_isolated([path, *args], Path(os.sep), NVIDIA_SMI_TIMEOUT_S, child_env(Path(os.sep)))
    except OSError:
        return None
    if run.returncode != 0:
        return None
    return [line.strip() for line in run.output.splitlines() if line.strip()]


def _proc_gpu_names(proc_gpus: Path) -> tuple[str, ...] | None:
    """GPU model names from the driver's /proc/driver/nvidia/gpus/*/information; None without entries."""
    try:
        entries = sorted(p for p in proc_gpus.iterdir() if p.is_dir())
    except OSError:
        return None
    if not entries:
        return None
    names = []
    for entry in entries:
        name = entry.name
        try:
            for line in (entry / "information").read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model" and value.strip():
                    name = value.strip()
                    break
        except OSError:
            pass
        names.append(name)
    return tuple(names)


def _driver_version(version_file: Path, program: str) -> str | None:
    try:
        match = _DRIVER.search(version_file.read_text(errors="replace"))
        if match:
            return match.group(1)
    except OSError:
        pass
    lines = _nvidia_smi(program, ["--query-gpu=driver_version", "--format=csv,noheader"])
    return lines[0] if lines else None


def cuda_facts(
    environ: Mapping[str, str] | None = None,
    *,
    nvidia_smi: str = "nvidia-smi",
    proc_gpus: Path = PROC_GPUS,
    driver_version_file: Path = PROC_DRIVER_VERSION,
) -> CudaFacts:
    """Is an NVIDIA GPU usable here? Decided from the machine alone, never by importing torch.

    CUDA_VISIBLE_DEVICES set to "" or "-1" hides every GPU: none. Otherwise a GPU is present when
    `nvidia-smi -L` (found on PATH, run isolated with a short timeout) lists at least one, or when
    the driver's /proc/driver/nvidia/gpus/ has entries. The parameters exist so tests can point the
    probe at a fake nvidia-smi and a fake /proc tree.
    """
    environ = os.environ if environ is None else environ
    hidden = environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return CudaFacts(False)
    lines = _nvidia_smi(nvidia_smi, ["-L"])
    names = tuple(m.group(1) for m in map(_SMI_GPU.match, lines or ()) if m)
    if not names:
        names = _proc_gpu_names(proc_gpus) or ()
    if not names:
        return CudaFacts(False)
    return CudaFacts(True, names, _driver_version(driver_version_file, nvidia_smi))


@lru_cache(maxsize=1)
def machine_cuda() -> CudaFacts:
    """This machine's CudaFacts, probed once per process."""
    return cuda_facts()


def gpu_count(facts: CudaFacts | None = None, environ: Mapping[str, str] | None = None) -> int:
    """How many GPUs falsifiers here may use (a falsifier's `gpus:`): the machine's, or fewer when
    CUDA_VISIBLE_DEVICES names fewer (CUDA renumbers the visible ones from 0)."""
    facts = machine_cuda() if facts is None else facts
    if not facts.present:
        return 0
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    count = len(facts.gpus)
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip()]))
    return count


def unmet_gpus(gpus: int, available: int | None = None) -> str | None:
    """Why a falsifier needing `gpus` GPUs cannot run here, or None."""
    if gpus <= 0:
        return None
    available = gpu_count() if available is None else available
    if gpus <= available:
        return None
    return f"requires {gpus} GPU{'s' if gpus != 1 else ''} (gpus: {gpus}); this machine has {available}"


def _cuda_probe(value: Any) -> str | None:
    return "requires CUDA" if value and not machine_cuda().present else None


# ---------------------------------------------------------------------------------------- packages


def _package_present(name: str) -> bool:
    import importlib.metadata

    try:
        if importlib.util.find_spec(name.replace("-", "_")) is not None:
            return True
    except (ImportError, ValueError):
        pass
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def unmet_package(spec: str) -> str | None:
    """Why `spec` (a name or a PEP 508 requirement such as `transformers>=4.45`) is unmet here, or None."""
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement as PackageRequirement

    try:
        req = PackageRequirement(spec)
    except InvalidRequirement:
        # validate reports it; here it can only be looked up as written.
        return None if _package_present(spec) else f"requires package {spec}"
    if not _package_present(req.name):
        return f"requires package {spec}"
    if req.specifier:
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return f"requires package {spec} (importable, but its installed version is unknown)"
        if not req.specifier.contains(installed, prereleases=True):
            return f"requires package {spec} (installed: {installed})"
    return None


def _packages_probe(value: Any) -> str | None:
    for package in value or ():
        unmet = unmet_package(package)
        if unmet:
            return unmet
    return None


# ---------------------------------------------------------------------------------------- memory


def available_memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


def _memory_probe(value: Any) -> str | None:
    if value is None:
        return None
    have = available_memory_gib()
    if have is not None and have < value:
        return f"requires {value:g} GiB memory"
    return None


_BUILTIN: dict[str, Probe] = {"cuda": _cuda_probe, "packages": _packages_probe, "min_memory_gib": _memory_probe}


def unmet(requirements: Mapping[str, Any] | Any) -> str | None:
    """The first reason a falsifier cannot run here (built-in kinds first, then the project's in the
    order written), or None when every requirement is met. ProbeError when a project probe breaks."""
    items = _items(requirements)
    for kind, value in items:
        if kind in _BUILTIN:
            reason = _BUILTIN[kind](value)
        else:
            probe = probe_for(kind)
            try:
                reason = probe(value)
            except Exception as exc:  # noqa: BLE001 - the project's probe is the project's bug
                raise ProbeError(f"the probe for requirement kind {kind!r} raised {type(exc).__name__}: {exc}") from exc
            if reason is not None and not (isinstance(reason, str) and reason.strip()):
                raise ProbeError(
                    f"the probe for requirement kind {kind!r} returned {reason!r}; a probe returns None when the "
                    "requirement is met, else a one-line reason"
                )
        if reason is not None:
            return " ".join(str(reason).split())
    return None


def _items(requirements: Mapping[str, Any] | Any) -> list[tuple[str, Any]]:
    """(kind, value) pairs of a harness.model.Requirement (or a plain mapping), built-ins first."""
    if isinstance(requirements, Mapping):
        pairs = [(k, v) for k, v in requirements.items() if k != PARAMETERS]
    else:
        pairs = [
            ("cuda", requirements.cuda), ("packages", requirements.packages),
            ("min_memory_gib", requirements.min_memory_gib), *requirements.custom,
        ]
    return sorted(pairs, key=lambda kv: kv[0] not in _BUILTIN)
