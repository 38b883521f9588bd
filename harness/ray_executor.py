"""`harness verify --executor ray [--address ADDR]`: the selected falsifiers as tasks on a Ray cluster.

The pytest session is the same as a local run's: the plugin compiles the contracts into items and the
controller's ResultCollector journals each result. This executor is a pytest plugin of that session:
once collection is final (`pytest_collection_finish`) it submits every selected falsifier as one Ray
task, and each item's runtest (through `harness.plugin.RUNNER`) waits for its own task. On the worker
the task calls `harness.execute.run_falsifier`, so the falsifier runs in the same isolated child, under
the same timeout and classification as locally, and the result travels back as record's plain dict.

What can go wrong on the way is an `error` naming the executor, never a hang or a pass:
- the task yields a start signal before it runs anything, so the wait is in two parts: queued (bounded
  by the serial budget of the session, for a cluster that runs at least one task at a time) and running
  (the falsifier's timeout_s plus MARGIN_S; run_falsifier ends the child at timeout_s itself, so only a
  worker that hangs outside the child, e.g. a stopped process, reaches it: the task is then cancelled);
- a task whose worker died or whose node was lost raises on the controller (max_retries=0: a falsifier
  is never re-run behind the harness's back; `--rerun` does that in the open);
- a worker whose checkout differs from the controller's (another commit, other edits, another harness
  version, a different contract file) refuses to run the falsifier.

`ray` is imported only when this executor is chosen (validate and a local verify never import it).
Ray Client addresses (`ray://`) are refused: the start signal is a Ray generator, which Ray Client
does not carry; run the controller on a node of the cluster (`--address auto`). See docs/executors.md.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import harness
from harness.execute import error_result
from harness.model import Contract, Falsifier, FalsifierResult
from harness.record import result_from_dict, result_to_dict
from harness.replay_record import REPLAY_ENV
from harness.scoped_env import scoped_environ

NAME = "ray"
INSTALL = "pip install 'contract-harness[ray]'"
# Seconds a running task may take beyond its falsifier's timeout_s (the worker's own start, the
# requirement probes, guard coverage, the result's way back) before the controller gives up on it.
MARGIN_S = 60.0
# How long the controller tries to reach an explicit HOST:PORT before saying no cluster answers there
# (ray.init itself retries for minutes).
CONNECT_TIMEOUT_S = 10.0

# The controller's variables that change a falsifier's run, set (or unset) on the worker for its task,
# so a Ray run behaves as the local one would: the hash seed, the hypothesis profile, and CI (pytest
# prints full assertion diffs under CI). Not CUDA_VISIBLE_DEVICES: Ray assigns each task its GPUs there.
FORWARDED_ENV = (*(n for n in REPLAY_ENV if n != "CUDA_VISIBLE_DEVICES"), "CI")

Key = tuple[str, str]


class ExecutorUnavailable(Exception):
    """The Ray executor cannot run here (ray missing, the address unreachable or unsupported); one line."""


# ---------------------------------------------------------------------------------------- the checkout


def _git(root: Path, *args: str) -> bytes | None:
    try:
        run = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout if run.returncode == 0 else None


def checkout_fingerprint(root: str | os.PathLike[str]) -> dict[str, Any]:
    """What must be equal on the controller and a worker for a result to be evidence of this checkout:
    the harness version, the commit, and a digest of its uncommitted edits (the diff against HEAD, and
    every untracked file git does not ignore, by name and content). Outside git, commit and edits are
    None and only the contract file's sha256 (checked per task) ties a worker to the controller."""
    path = Path(root)
    head = _git(path, "rev-parse", "HEAD")
    if head is None:
        return {"harness": harness.__version__, "commit": None, "edits": None}
    digest = hashlib.sha256(_git(path, "diff", "HEAD", "--binary") or b"")
    for name in sorted((_git(path, "ls-files", "--others", "--exclude-standard", "-z") or b"").split(b"\0")):
        if not name:
            continue
        digest.update(b"\0" + name + b"\0")
        try:
            digest.update(hashlib.sha256((path / os.fsdecode(name)).read_bytes()).digest())
        except OSError:
            digest.update(b"unreadable")
    return {"harness": harness.__version__, "commit": head.decode().strip(), "edits": digest.hexdigest()}


@functools.lru_cache(maxsize=8)
def _worker_fingerprint(root: str, run_id: str) -> dict[str, Any]:
    """Once per worker process and run (`run_id`): a worker serves many tasks, and later runs may see a
    checkout that has moved on."""
    return checkout_fingerprint(root)


def _mismatch(expected: dict[str, Any], found: dict[str, Any]) -> str | None:
    for key, what in (("harness", "the harness version"), ("commit", "the commit"), ("edits", "the uncommitted edits")):
        if expected.get(key) != found.get(key):
            return f"{what} differs: the controller has {expected.get(key)!r}, this worker {found.get(key)!r}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _where() -> str:
    return f"node {socket.gethostname()} (pid {os.getpid()})"


@contextlib.contextmanager
def _signals_unblocked() -> Iterator[None]:
    """No signal blocked in this thread while the falsifier's child is started: a Ray worker runs tasks with
    SIGINT blocked, and a blocked mask survives fork and exec, so every process of the falsifier would
    never see a Ctrl-C (a falsifier that interrupts its own training run hung under Ray). A local run's
    children start with nothing blocked; so do these. The worker's mask is put back afterwards."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    saved = signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)


def run_task(
    falsifier: Falsifier, contract: Contract, repo_root: str, expected: dict[str, Any], run_id: str,
    env: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The worker's side of one task, as a plain function: check that this node holds the controller's
    checkout at `repo_root`, then `run_falsifier` there with the controller's `env` (FORWARDED_ENV).
    Returns record's dict of the FalsifierResult."""
    from harness.execute import run_falsifier

    root = Path(repo_root)
    if not root.is_dir():
        reason = (
            f"executor ray: the repository root {repo_root} does not exist on {_where()}; every node needs the "
            "checkout at the same path (docs/executors.md)"
        )
        return result_to_dict(error_result(falsifier, contract, reason))
    differs = _mismatch(expected, _worker_fingerprint(str(root), run_id))
    if differs is None:
        try:
            sha = hashlib.sha256((root / contract.path).read_bytes()).hexdigest()
        except OSError as exc:
            sha = f"unreadable ({exc.strerror or exc})"
        if sha != contract.sha256:
            differs = f"the contract file {contract.path} differs: the controller validated sha256 {contract.sha256}, this worker has {sha}"
    if differs is not None:
        reason = (
            f"executor ray: refused on {_where()}: its checkout at {repo_root} is not the controller's ({differs}); "
            "check out the controller's commit there, or run from a shared checkout (docs/executors.md)"
        )
        return result_to_dict(error_result(falsifier, contract, reason))
    with scoped_environ(env or {}), _signals_unblocked():
        return result_to_dict(run_falsifier(falsifier, contract, root))


def _task(
    falsifier: Falsifier, contract: Contract, repo_root: str, expected: dict[str, Any], run_id: str,
    env: dict[str, str | None],
) -> Iterator[Any]:
    """The Ray task (a generator): first where it started, so the controller knows it left the queue,
    then the result."""
    yield _where()
    yield run_task(falsifier, contract, repo_root, expected, run_id, env)


# ---------------------------------------------------------------------------------------- the controller


def _import_ray() -> Any:
    if importlib.util.find_spec("ray") is None:
        raise ExecutorUnavailable(f"harness verify: --executor ray needs Ray, which is not installed: {INSTALL}")
    import ray

    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _probe(address: str) -> None:
    """An explicit HOST:PORT that no one answers on is refused at once (ray.init retries for minutes)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ExecutorUnavailable(
            f"harness verify: --address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
            "pass the address `ray status` prints on the head node, or --address auto on a node of the cluster"
        ) from exc


def _request(falsifier: Falsifier, nodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The task's resource request: the falsifier's `gpus` (a CUDA falsifier needs at least one: Ray hides
    every GPU from a task that asked for none) and its `requires.min_memory_gib` as Ray's memory.
    A request no node of the cluster can satisfy is dropped, so the task runs anywhere and the
    falsifier's own `requires:` decides on the worker (not_run, with the reason a local run gives)."""
    gpus = int(getattr(falsifier, "gpus", 0) or 0)
    if falsifier.requires.cuda:
        gpus = max(gpus, 1)
    memory = int(falsifier.requires.min_memory_gib * 2**30) if falsifier.requires.min_memory_gib else 0

    def fits(resource: str, amount: float) -> bool:
        return any(float(n.get("Resources", {}).get(resource, 0)) >= amount for n in nodes)

    request: dict[str, Any] = {}
    if gpus and fits("GPU", gpus):
        request["num_gpus"] = gpus
    if memory and fits("memory", memory):
        request["memory"] = memory
    return request


class RayExecutor:
    """Connects to (or starts) a Ray cluster, submits the session's falsifiers, and hands each item its
    result. A pytest plugin of the verify session; `harness.plugin.RUNNER` is its `run`."""

    name = NAME

    def __init__(self, address: str | None = None, *, margin_s: float | None = None) -> None:
        self.address = address
        self.margin_s = MARGIN_S if margin_s is None else margin_s
        self.run_id = uuid.uuid4().hex
        self._ray: Any = None
        self._task: Any = None
        self._connected_here = False
        self._nodes: list[dict[str, Any]] = []
        self._expected: dict[str, Any] = {}
        self._pending: dict[Key, Any] = {}
        self._budget_s = 0.0

    # -- connection

    def connect(self, repo_root: Path) -> None:
        """Raises ExecutorUnavailable (the CLI's exit 2) before anything runs."""
        if self.address is not None and self.address.startswith("ray://"):
            raise ExecutorUnavailable(
                f"harness verify: --address {self.address}: Ray Client (ray://) addresses are not supported (the "
                "harness's task start signal is a Ray generator, which Ray Client does not carry); run harness verify "
                "on a node of the cluster with --address auto (docs/executors.md)"
            )
        ray = _import_ray()
        if self.address is not None and self.address != "auto":
            _probe(self.address)
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                what = f"--address {self.address}: cannot connect to Ray" if self.address else "--executor ray: cannot start a local Ray instance"
                raise ExecutorUnavailable(f"harness verify: {what}: {_first_line(exc)}") from exc
            self._connected_here = True
        self._ray = ray
        # Once per run: each ray.remote() would export the function to the cluster again.
        self._task = ray.remote(_task)
        self._nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._expected = checkout_fingerprint(repo_root)

    def facts(self) -> dict[str, Any]:
        """The executor as evidence's environment records it: where the falsifiers ran."""
        nodes = [
            {k: v for k, v in n.get("Resources", {}).items() if k in ("CPU", "GPU", "memory")} for n in self._nodes
        ]
        return {
            "name": NAME,
            "address": self.address,
            "ray": getattr(self._ray, "__version__", None),
            "nodes": nodes,
        }

    def close(self) -> None:
        """Cancel what is still outstanding (Ctrl-C, a session that broke) and disconnect."""
        ray = self._ray
        if ray is None:
            return
        for ref in self._pending.values():
            self._cancel(ref)
        self._pending.clear()
        if self._connected_here:
            ray.shutdown()
        self._ray = None

    # -- pytest hooks

    def pytest_configure(self, config: pytest.Config) -> None:
        from harness.plugin import RUNNER

        config.stash[RUNNER] = self.run

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Every selected falsifier goes to the cluster at once: Ray decides the parallelism."""
        from harness.plugin import FalsifierItem

        items = [i for i in session.items if isinstance(i, FalsifierItem)]
        self._budget_s = sum(i.falsifier.timeout_s + self.margin_s for i in items)
        for item in items:
            self._pending[(item.contract.id, item.falsifier.id)] = self._submit(item.falsifier, item.contract, item.repo_root)

    # -- tasks

    def _submit(self, falsifier: Falsifier, contract: Contract, repo_root: Path) -> Any:
        task = self._task.options(
            max_retries=0, retry_exceptions=False, name=f"harness:{falsifier.id}", **_request(falsifier, self._nodes)
        )
        env = {name: os.environ.get(name) for name in FORWARDED_ENV}
        return task.remote(falsifier, contract, str(repo_root), self._expected, self.run_id, env)

    def _cancel(self, ref: Any) -> None:
        try:
            self._ray.cancel(ref, force=True)
        except Exception:  # already finished, or the cluster is gone: nothing left to stop
            pass

    def run(self, falsifier: Falsifier, contract: Contract, repo_root: Path) -> FalsifierResult:
        """The falsifier's result from its task (the one submitted up front, or a new one for a --rerun
        attempt); an `error` naming the executor when the task was lost or overran its deadline."""
        start = time.monotonic()
        key = (contract.id, falsifier.id)
        ref = self._pending.pop(key, None)
        if ref is None:
            ref = self._submit(falsifier, contract, repo_root)
        ray = self._ray
        try:
            queued = max(self._budget_s, falsifier.timeout_s + self.margin_s)
            ready, _ = ray.wait([ref], timeout=queued)
            if not ready:
                self._cancel(ref)
                return error_result(falsifier, contract, (
                    f"executor ray: the task never started within {queued:g}s (the session's serial budget: every "
                    f"falsifier's timeout_s plus {self.margin_s:g}s); the cluster had no free worker for it"
                ), time.monotonic() - start)
            where = ray.get(next(ref))
            deadline = falsifier.timeout_s + self.margin_s
            ready, _ = ray.wait([ref], timeout=deadline)
            if not ready:
                self._cancel(ref)
                return error_result(falsifier, contract, (
                    f"executor ray: the task on {where} did not finish within {deadline:g}s (timeout_s {falsifier.timeout_s:g} "
                    f"plus {self.margin_s:g}s); its worker hung outside the falsifier's child and was cancelled"
                ), time.monotonic() - start)
            return result_from_dict(ray.get(next(ref)))
        except ray.exceptions.RayTaskError as exc:
            # An exception in the task itself, outside run_falsifier (which never raises): e.g. a node whose
            # Python cannot import the harness.
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            return error_result(falsifier, contract, (
                f"executor ray: the task failed on the worker ({_first_line(cause)}); every node needs the harness "
                "installed and the repository at the controller's path (docs/executors.md)"
            ), time.monotonic() - start)
        except (ray.exceptions.RayError, StopIteration) as exc:
            self._cancel(ref)
            return error_result(falsifier, contract, (
                f"executor ray: the task was lost ({_first_line(exc)}); the worker process died or its node was lost, "
                "so the falsifier has no result"
            ), time.monotonic() - start)
        except BaseException:
            # Ctrl-C (or SIGTERM) while waiting: the task must not run on after the run ended.
            self._cancel(ref)
            raise
