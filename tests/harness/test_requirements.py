"""Requirement probes: CUDA is decided from the machine without torch, and a project can register
its own requirement kinds, validated and probed end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import requirements
from harness.isolation import HARNESS_PARENT

from tests.harness.verify_support import REPO, contract_text, entries, falsifier, make_project, read_evidence, run_verify

FAKE_SMI = """\
#!/bin/sh
case "$1" in
  -L) printf 'GPU 0: NVIDIA H200 (UUID: GPU-0a1b)\\nGPU 1: NVIDIA H200 (UUID: GPU-2c3d)\\n' ;;
  --query-gpu=driver_version) echo 570.86.15 ;;
  *) exit 2 ;;
esac
"""
FAILING_SMI = "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 9\n"

# Runs with -I -S: no site-packages at all, so torch (and every other ML library) is genuinely
# unimportable; only this checkout's harness is put on sys.path.
PROBE_CHILD = """\
import importlib.util, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
args = json.loads(sys.argv[2])
assert importlib.util.find_spec("torch") is None, "torch must not be importable in this child"
from harness import requirements
from harness.environment import collect_environment
facts = requirements.cuda_facts(
    args["environ"], nvidia_smi=args["smi"], proc_gpus=Path(args["proc_gpus"]), driver_version_file=Path(args["version"])
)
env = collect_environment()
print(json.dumps({
    "present": facts.present, "gpus": list(facts.gpus), "driver": facts.driver,
    "unmet": requirements.unmet({"cuda": True}),
    "environment": {k: env[k] for k in ("torch", "cuda", "gpu", "gpus", "nvidia_driver")},
    "torch_imported": "torch" in sys.modules,
}))
"""


@pytest.fixture()
def machine(tmp_path: Path) -> dict[str, Path]:
    """Fake nvidia-smi programs and a fake /proc/driver/nvidia tree."""
    bin_dir, failing_dir = tmp_path / "bin", tmp_path / "failing"
    for directory, script in ((bin_dir, FAKE_SMI), (failing_dir, FAILING_SMI)):
        directory.mkdir()
        (directory / "nvidia-smi").write_text(script)
        (directory / "nvidia-smi").chmod(0o755)
    gpus = tmp_path / "proc" / "gpus"
    (gpus / "0000:00:1e.0").mkdir(parents=True)
    (gpus / "0000:00:1e.0" / "information").write_text("Model: \t\t Tesla T4\nIRQ:   \t\t 36\n")
    empty = tmp_path / "proc-empty" / "gpus"
    empty.mkdir(parents=True)
    version = tmp_path / "proc" / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n")
    return {"bin": bin_dir, "failing": failing_dir, "gpus": gpus, "empty": empty, "version": version,
            "no_version": tmp_path / "absent-version"}


def probe_without_torch(
    *, path: Path | None, environ: dict[str, str], proc_gpus: Path, version: Path, cuda_visible: str | None
) -> dict:
    """Run the CUDA probe (the machine's default one too) in a child where torch cannot be imported."""
    env = {"PATH": os.pathsep.join(p for p in (str(path) if path else "", "/usr/bin", "/bin") if p)}
    if cuda_visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible
    args = {"environ": environ, "smi": "nvidia-smi", "proc_gpus": str(proc_gpus), "version": str(version)}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE_CHILD, HARNESS_PARENT, json.dumps(args)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_gpus_listed_by_nvidia_smi_meet_cuda_without_torch(machine: dict[str, Path]) -> None:
    got = probe_without_torch(path=machine["bin"], environ={}, proc_gpus=machine["empty"],
                              version=machine["no_version"], cuda_visible=None)
    assert (got["present"], got["gpus"], got["driver"]) == (True, ["NVIDIA H200", "NVIDIA H200"], "570.86.15")
    assert got["unmet"] is None  # the machine's own probe: the fake nvidia-smi is first on PATH
    assert got["environment"]["torch"] is None and got["environment"]["gpus"] == ["NVIDIA H200", "NVIDIA H200"]
    assert got["torch_imported"] is False


def test_cuda_visible_devices_empty_or_minus_one_means_no_gpu(machine: dict[str, Path]) -> None:
    for hidden in ("", "-1"):
        got = probe_without_torch(path=machine["bin"], environ={"CUDA_VISIBLE_DEVICES": hidden},
                                  proc_gpus=machine["gpus"], version=machine["version"], cuda_visible=hidden)
        assert (got["present"], got["gpus"], got["driver"]) == (False, [], None), hidden
        assert got["unmet"] == "requires CUDA", hidden
        assert (got["environment"]["gpus"], got["environment"]["nvidia_driver"]) == ([], None)


def test_the_driver_proc_entries_count_when_nvidia_smi_is_missing_or_failing(machine: dict[str, Path]) -> None:
    for path in (None, machine["failing"]):
        got = probe_without_torch(path=path, environ={}, proc_gpus=machine["gpus"], version=machine["version"],
                                  cuda_visible="")
        assert (got["present"], got["gpus"], got["driver"]) == (True, ["Tesla T4"], "550.54.15"), path


def test_no_nvidia_smi_and_no_proc_entries_is_no_gpu(machine: dict[str, Path]) -> None:
    for path in (None, machine["failing"]):
        got = probe_without_torch(path=path, environ={}, proc_gpus=machine["empty"], version=machine["version"],
                                  cuda_visible="")
        assert (got["present"], got["gpus"]) == (False, []), path
        got = probe_without_torch(path=path, environ={}, proc_gpus=machine["empty"].parent / "missing",
                                  version=machine["version"], cuda_visible="")
        assert got["present"] is False, path


# ---------------------------------------------------------------------------------------- project kinds

PROBES = '''\
def licence(value):
    return None if value == "granted" else f"requires licence {value}"

def broken(value):
    raise RuntimeError("the licence server is down")
'''


def register_kinds(site: Path, kinds: dict[str, str]) -> Path:
    """A directory that, on PYTHONPATH, looks like an installed project declaring `harness.requirements`
    entry points (what `[project.entry-points."harness.requirements"]` in its pyproject.toml gives)."""
    dist = site / "fx_probes_project-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fx-probes-project\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in kinds.items())
    (dist / "entry_points.txt").write_text(f"[harness.requirements]\n{lines}")
    (site / "fx_probes.py").write_text(PROBES)
    return site


def pythonpath(site: Path) -> str:
    return os.pathsep.join(p for p in (str(REPO), str(site), os.environ.get("PYTHONPATH")) if p)


def test_a_project_registered_kind_is_probed_end_to_end(tmp_path: Path) -> None:
    site = register_kinds(tmp_path / "site", {"fx_licence": "fx_probes:licence", "fx_broken": "fx_probes:broken"})
    root = tmp_path / "project"
    make_project(root, {"kinds.yaml": contract_text("kinds-v1", [
        falsifier("FALSIFY-KIND-001", '{python: "fx_falsifiers:holds"}', "requires: {fx_licence: granted}"),
        falsifier("FALSIFY-KIND-002", '{python: "fx_falsifiers:holds"}', "requires: {fx_licence: denied}"),
        falsifier("FALSIFY-KIND-003", '{python: "fx_falsifiers:holds"}', "requires: {fx_broken: true}"),
    ])})
    proc = run_verify(root, "contracts", "--out", "out", PYTHONPATH=pythonpath(site))
    found = entries(read_evidence(root / "out" / "uncommitted" / "evidence.json"))
    assert (found["FALSIFY-KIND-001"]["outcome"], found["FALSIFY-KIND-001"]["reason"]) == ("passed", "returned without an AssertionError")
    assert (found["FALSIFY-KIND-002"]["outcome"], found["FALSIFY-KIND-002"]["reason"]) == ("not_run", "requires licence denied")
    assert found["FALSIFY-KIND-003"]["outcome"] == "error"
    assert "the probe for requirement kind 'fx_broken' raised RuntimeError: the licence server is down" in found["FALSIFY-KIND-003"]["reason"]
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the broken probe is an error


def test_an_unregistered_kind_is_a_validation_error_naming_the_known_kinds(tmp_path: Path) -> None:
    site = register_kinds(tmp_path / "site", {"fx_licence": "fx_probes:licence", "fx_gone": "fx_no_such_module:probe"})
    root = tmp_path / "project"
    text = contract_text("kinds-v1", [
        falsifier("FALSIFY-KIND-001", '{python: "fx_falsifiers:holds"}', "requires: {fx_licnce: granted}"),
        falsifier("FALSIFY-KIND-002", '{python: "fx_falsifiers:holds"}', "requires: {fx_gone: 1}"),
    ])
    make_project(root, {"kinds.yaml": text})
    proc = run_verify(root, "contracts", "--out", "out", PYTHONPATH=pythonpath(site))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    printed = proc.stdout + proc.stderr
    lines = text.splitlines()
    first = 1 + next(i for i, l in enumerate(lines) if "fx_licnce" in l)
    second = 1 + next(i for i, l in enumerate(lines) if "fx_gone" in l)
    assert (
        f"contracts/kinds.yaml:{first}: FALSIFY-KIND-001: unknown requirement kind 'fx_licnce' in falsifiers[0].requires "
        "(did you mean 'fx_licence'? known kinds: cuda, packages, min_memory_gib, fx_gone, fx_licence)"
    ) in printed
    assert (
        f"contracts/kinds.yaml:{second}: FALSIFY-KIND-002: the probe for requirement kind 'fx_gone' (fx_no_such_module:probe) "
        "does not load: ModuleNotFoundError"
    ) in printed
    assert "Traceback" not in printed
    assert not (root / "out").exists()


def test_register_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requirements, "_registered", {})
    requirements.register("fx_quota", lambda value: None if value <= 3 else f"requires quota {value}")
    assert "fx_quota" in requirements.known_kinds()
    assert requirements.unmet({"fx_quota": 2}) is None
    assert requirements.unmet({"fx_quota": 5}) == "requires quota 5"
    with pytest.raises(ValueError, match="built in"):
        requirements.register("cuda", lambda value: None)
