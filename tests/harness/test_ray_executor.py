"""`harness verify --executor ray`: falsifiers as tasks on a Ray cluster give the evidence a local run gives,
and whatever happens to a task (a hang, a dead worker, a frozen one, another checkout) is `error`, never a
pass or a hang. The cluster is a small local Ray instance the module starts (2 CPUs, a small object
store) and shuts down; the option checks need no cluster."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import ray_executor
from harness.cli import main as harness_main
from harness.model import Outcome, Requirement
from harness.validate import validate_report

from tests.harness.verify_support import contract_text, falsifier, harness_env, make_project, read_evidence, run_verify

REQUIRES_RAY = "requires ray: pip install 'contract-harness[ray]'"
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason=REQUIRES_RAY)

# Falsifiers that attack the Ray worker running them: the child's parent is the isolation supervisor,
# whose parent is the worker process.
WORKER_ATTACKS = textwrap.dedent(
    '''
    import os
    import signal


    def _worker_pid():
        supervisor = os.getppid()
        with open(f"/proc/{supervisor}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])


    def kills_worker():
        os.kill(_worker_pid(), signal.SIGKILL)


    def freezes_worker():
        os.kill(_worker_pid(), signal.SIGSTOP)


    def signals_arrive():
        # A Ray worker blocks SIGINT; a child that inherited that mask would never see a Ctrl-C.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert not blocked, f"signals blocked in the falsifier: {sorted(s.name for s in blocked)}"
    '''
)

# Every way a falsifier ends that the local tests know, so the Ray run is compared on all of them.
SAME_AS_LOCAL = [
    falsifier("FALSIFY-RAY-001", '{python: "fx_falsifiers:holds"}'),
    falsifier("FALSIFY-RAY-002", '{python: "fx_falsifiers:falsified"}'),
    falsifier("FALSIFY-RAY-003", '{python: "fx_falsifiers:hypothesis_falsified"}'),
    falsifier("FALSIFY-RAY-004", '{python: "fx_falsifiers:raises"}'),
    falsifier("FALSIFY-RAY-005", "{pytest: {k: bound, paths: [tests]}, min_tests: 2}"),
    falsifier("FALSIFY-RAY-006", "{pytest: tests/test_bound.py::test_bound_one}"),
    falsifier("FALSIFY-RAY-007", '{python: "fx_falsifiers:hang"}', "timeout_s: 3"),
    falsifier("FALSIFY-RAY-008", '{python: "fx_falsifiers:exits"}'),
    falsifier("FALSIFY-RAY-009", '{python: "fx_falsifiers:holds"}', "requires: {cuda: true}"),
    falsifier("FALSIFY-RAY-010", '{python: "fx_falsifiers:holds"}', "deferred: {reason: later, until: 2999-01-31}"),
    falsifier("FALSIFY-RAY-011", "{command: [python, -c, 'print(\"3 passed\")'], count_pattern: '(\\d+) passed'}"),
    falsifier("FALSIFY-RAY-012", '{python: "fx_attacks:signals_arrive"}'),
]
# The environment both runs share: no GPU, CI, a fixed hash seed, and Ray's token auth off (it would
# write a token under ~/.ray).
RUN_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONHASHSEED": "0"}

HEAD = textwrap.dedent(
    '''
    import sys, ray
    context = ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
                       _temp_dir=sys.argv[1], log_to_driver=False)
    print(context.address_info["gcs_address"], flush=True)
    sys.stdin.read()  # until the test closes our stdin
    ray.shutdown()
    '''
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray instance (2 CPUs) in its own process, as an existing cluster; its address."""
    pytest.importorskip("ray", reason=REQUIRES_RAY)
    temp = tempfile.mkdtemp(prefix="hr", dir="/tmp")  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD, temp], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=harness_env(**RUN_ENV), start_new_session=True,
    )
    try:
        address = head.stdout.readline().strip()
        assert address, "the local Ray instance did not start"
        yield address
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _normalised(document: dict[str, Any]) -> dict[str, Any]:
    """Evidence without what differs between two runs of the same thing: clocks, durations, the machine and
    executor facts, the command line."""
    doc = json.loads(json.dumps(document))
    for key in ("started_at", "finished_at", "duration_s", "environment", "command"):
        doc[key] = None
    for contract in doc["contracts"]:
        for entry in contract["falsifiers"]:
            entry["duration_s"] = None
            for attempt in entry["attempts"]:
                attempt["duration_s"] = None
    return doc


@needs_ray
@pytest.mark.slow
def test_ray_run_gives_the_evidence_of_a_serial_run(tmp_path: Path, cluster: str) -> None:
    make_project(tmp_path, {"ray.yaml": contract_text("ray-v1", SAME_AS_LOCAL)})
    (tmp_path / "fx_attacks.py").write_text(WORKER_ATTACKS)
    local = run_verify(tmp_path, "contracts", "--out", "local", "--rerun", "1", **RUN_ENV)
    remote = run_verify(
        tmp_path, "contracts", "--out", "ray", "--rerun", "1", "--executor", "ray", "--address", cluster,
        timeout=300, **RUN_ENV,
    )
    assert (local.returncode, remote.returncode) == (1, 1), local.stderr + remote.stdout + remote.stderr
    serial = read_evidence(tmp_path / "local" / "uncommitted" / "evidence.json")
    on_ray = read_evidence(tmp_path / "ray" / "uncommitted" / "evidence.json")
    assert json.dumps(_normalised(on_ray), indent=1).splitlines() == json.dumps(_normalised(serial), indent=1).splitlines()
    outcomes = {f["id"]: f["outcome"] for c in on_ray["contracts"] for f in c["falsifiers"]}
    assert outcomes["FALSIFY-RAY-001"] == "passed" and outcomes["FALSIFY-RAY-007"] == "error"
    assert outcomes["FALSIFY-RAY-012"] == "passed"  # the falsifier's child can be interrupted, as locally
    # The hanging falsifier was ended by its own timeout on the worker, as locally.
    hang = next(f for c in on_ray["contracts"] for f in c["falsifiers"] if f["id"] == "FALSIFY-RAY-007")
    assert hang["reason"].startswith("timed out after 3s")
    pid = int((tmp_path / "hang.pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    # The evidence says where the falsifiers ran.
    assert serial["environment"]["executor"] == {"name": "local"}
    executor = on_ray["environment"]["executor"]
    assert (executor["name"], executor["address"], executor["nodes"][0]["CPU"]) == ("ray", cluster, 2.0)
    assert on_ray["command"][-4:] == ["--executor", "ray", "--address", cluster]


@needs_ray
@pytest.mark.slow
def test_a_falsifier_that_kills_its_ray_worker_is_error(tmp_path: Path, cluster: str) -> None:
    make_project(tmp_path, {"ray.yaml": contract_text("ray-v1", [falsifier("FALSIFY-RAYKILL-001", '{python: "fx_attacks:kills_worker"}')])})
    (tmp_path / "fx_attacks.py").write_text(WORKER_ATTACKS)
    proc = run_verify(tmp_path, "contracts", "--out", "out", "--executor", "ray", "--address", cluster, timeout=300, **RUN_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [entry] = [f for c in read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")["contracts"] for f in c["falsifiers"]]
    assert entry["outcome"] == "error"
    assert entry["reason"].startswith("executor ray: the task was lost"), entry["reason"]
    assert "ERROR FALSIFY-RAYKILL-001" in proc.stdout


@needs_ray
@pytest.mark.slow
def test_a_frozen_ray_worker_is_error_at_the_deadline(tmp_path: Path, cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that stops answering (SIGSTOP: Ray still sees it alive) must not hang the run: at the
    falsifier's timeout plus the margin the task is cancelled and the falsifier is `error`."""
    make_project(tmp_path, {"ray.yaml": contract_text("ray-v1", [
        falsifier("FALSIFY-RAYFREEZE-001", '{python: "fx_attacks:freezes_worker"}', "timeout_s: 2"),
        falsifier("FALSIFY-RAYAFTER-001", '{python: "fx_falsifiers:holds"}'),
    ])})
    (tmp_path / "fx_attacks.py").write_text(WORKER_ATTACKS)
    monkeypatch.chdir(tmp_path)
    for name, value in {**RUN_ENV, "CI": "1", "CUDA_VISIBLE_DEVICES": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(ray_executor, "MARGIN_S", 3.0)
    evidence = harness.verify(["contracts"], out=None, executor="ray", address=cluster)
    by_id = {r.id: r for r in evidence.results}
    frozen = by_id["FALSIFY-RAYFREEZE-001"]
    assert frozen.outcome is Outcome.ERROR
    assert frozen.reason.startswith("executor ray: the task on node ") and "did not finish within 5s" in frozen.reason
    # The run went on: the next falsifier ran on another worker.
    assert by_id["FALSIFY-RAYAFTER-001"].outcome is Outcome.PASSED
    assert evidence.environment["executor"]["name"] == "ray"


# ---------------------------------------------------------------------------------------- options


def _verify_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    make_project(tmp_path, {"one.yaml": contract_text("one-v1", [falsifier("FALSIFY-ONE-001", '{python: "fx_falsifiers:holds"}')])})
    code = harness_main(["verify", str(tmp_path / "contracts"), "--out", str(tmp_path / "out"), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "ray", "-j", "2"], "harness verify: -j 2 with --executor ray: Ray schedules the falsifiers across the cluster; drop -j"),
        (["--address", "127.0.0.1:6379"], "harness verify: --address 127.0.0.1:6379: only --executor ray takes an address (add --executor ray)"),
        (["--executor", "ray", "--address", "ray://head:10001"], "harness verify: --address ray://head:10001: Ray Client (ray://) addresses are not supported"),
    ],
)
def test_executor_options_that_cannot_work_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, output = _verify_cli(tmp_path, capsys, *args)
    assert code == 2
    assert message in output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("evidence.json"))


def test_missing_ray_is_bad_input_with_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    code, output = _verify_cli(tmp_path, capsys, "--executor", "ray")
    assert code == 2
    assert output.strip() == "harness verify: --executor ray needs Ray, which is not installed: pip install 'contract-harness[ray]'"


@needs_ray
def test_an_unreachable_address_is_bad_input_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = _verify_cli(tmp_path, capsys, "--executor", "ray", "--address", "127.0.0.1:1")
    assert code == 2
    assert output.startswith("harness verify: --address 127.0.0.1:1: no Ray cluster answers there (")
    assert len(output.strip().splitlines()) == 1


def test_validate_and_a_local_verify_never_import_ray(tmp_path: Path) -> None:
    make_project(tmp_path, {"one.yaml": contract_text("one-v1", [falsifier("FALSIFY-ONE-001", '{python: "fx_falsifiers:holds"}')])})
    probe = (
        "import sys; from harness.cli import main; "
        "codes = [main(['validate', 'contracts']), main(['verify', 'contracts', '--out', 'out'])]; "
        "print(codes, 'ray' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.stdout.strip().splitlines()[-1] == "[0, 0] False", proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------- the worker's side


@pytest.fixture()
def checkout(tmp_path: Path) -> tuple[Any, Path]:
    """A committed git checkout with one contract, validated; (the contract, the root)."""
    make_project(tmp_path, {"one.yaml": contract_text("one-v1", [falsifier("FALSIFY-ONE-001", '{python: "fx_falsifiers:holds"}')])})
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fixture"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)
    [contract] = validate_report([tmp_path / "contracts"], check_bindings=False).contracts
    return contract, tmp_path


def test_a_worker_on_another_commit_refuses_to_run(checkout: tuple[Any, Path]) -> None:
    contract, root = checkout
    expected = ray_executor.checkout_fingerprint(root)
    assert expected["commit"] and expected["edits"]
    same = ray_executor.run_task(contract.falsifiers[0], contract, str(root), expected, "run-1")
    assert same["outcome"] == "passed", same["reason"]
    other = dict(expected, commit="0" * 40)
    refused = ray_executor.run_task(contract.falsifiers[0], contract, str(root), other, "run-2")
    assert refused["outcome"] == "error"
    assert refused["reason"].startswith("executor ray: refused on node ")
    assert f"the commit differs: the controller has '{'0' * 40}', this worker '{expected['commit']}'" in refused["reason"]


def test_a_worker_with_other_edits_or_another_contract_file_refuses_to_run(checkout: tuple[Any, Path]) -> None:
    contract, root = checkout
    expected = ray_executor.checkout_fingerprint(root)
    (root / "fx_falsifiers.py").write_text("def holds():\n    pass\n")  # an edit the controller never saw
    edited = ray_executor.run_task(contract.falsifiers[0], contract, str(root), expected, "run-3")
    assert edited["outcome"] == "error" and "the uncommitted edits differ" in edited["reason"]
    (root / "contracts" / "one.yaml").write_text((root / "contracts" / "one.yaml").read_text() + "\n")
    now = ray_executor.checkout_fingerprint(root)
    refused = ray_executor.run_task(contract.falsifiers[0], contract, str(root), now, "run-4")
    assert refused["outcome"] == "error" and "the contract file contracts/one.yaml differs" in refused["reason"]


def test_a_worker_without_the_repository_refuses_to_run(checkout: tuple[Any, Path]) -> None:
    contract, root = checkout
    missing = root / "not-here"
    result = ray_executor.run_task(contract.falsifiers[0], contract, str(missing), {}, "run-5")
    assert result["outcome"] == "error"
    assert f"the repository root {missing} does not exist on node " in result["reason"]


def test_resources_asked_of_ray(checkout: tuple[Any, Path]) -> None:
    contract, _ = checkout
    plain = contract.falsifiers[0]
    cuda = dataclasses.replace(plain, requires=Requirement(cuda=True, min_memory_gib=2))
    gpu_node = [{"Resources": {"CPU": 8, "GPU": 2, "memory": 64 * 2**30}}]
    cpu_node = [{"Resources": {"CPU": 2, "memory": 1 * 2**30}}]
    assert ray_executor._request(plain, gpu_node) == {}
    # A CUDA falsifier asks for a GPU (Ray hides GPUs from tasks that ask for none) and its memory.
    assert ray_executor._request(cuda, gpu_node) == {"num_gpus": 1, "memory": 2 * 2**30}
    # No node could serve it: run it anywhere, so its requires: says not_run there as a local run would.
    assert ray_executor._request(cuda, cpu_node) == {}
