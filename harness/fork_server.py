"""The warm fork server: python and pytest falsifiers start as forks of a process that imported the heavy
modules once, instead of as fresh interpreters that import torch (seconds) and tear it down again.

    [tool.harness]
    preload = ["torch", "transformers"]     # pyproject.toml (harness.project_config)

Two halves in this one file:

- the server, run as this file (`python -c` running it by path) with SOCKET_FD PRELOAD_JSON, in a session of its own. It
  imports only the standard library, the preload list and the harness's own child side (harness.child and what it
  imports, from this file's package) - nothing of any repository under test (neither the current directory nor
  this file's is left on sys.path), so one server serves every repository root, teeth's mutated copies included
  (a child that finds another copy of the harness on its sys.path drops the preloaded one). It makes itself a
  child subreaper and serves one request at a time over a Unix socket pair: the descriptors a child needs arrive with SCM_RIGHTS (the output file and
  the result channel's key pipe, harness.channel; the server never reads the pipe, so no key is ever in
  its memory), with argv (`python -m MODULE ARGS...`), cwd and the environment. It forks one child,
  which starts a session of its own, puts /dev/null on 0 and the output file on 1 and 2, chdir()s, takes
  the environment and a sys.path built as a fresh `python -m` would have it (cwd first, then $PYTHONPATH),
  runs MODULE as __main__ exactly as `python -m` does, and ends with os._exit: no interpreter teardown.
  When the child ends, the server kills every process left that reached it as an orphan (they can only be
  the child's: it serves one child at a time), as harness/supervisor.py does, and reports the wait
  status. Before every fork it checks that CUDA is not initialised (a forked CUDA context is unusable);
  if it is, it refuses and the caller starts a fresh process instead. If the caller goes away, the
  server kills the running child and exits.
- the client (`run`), which keeps a small pool of servers per process (one per thread that runs a
  falsifier at the same time: teeth's -j threads, each xdist worker its own), started lazily and shut
  down at exit. `run` has the contract of harness.isolation.run_isolated (own process group, own timeout,
  the group killed at the timeout or on Ctrl-C, stdin /dev/null, bounded output) or returns None, and the
  caller then uses run_isolated: where fork or SCM_RIGHTS are unavailable (not Linux), when
  HARNESS_FORK_SERVER=0 (for debugging: every child a fresh process, as before), for argv that is not
  `python -m ...`, and when the server refused (CUDA initialised). A child that kills the server is that
  falsifier's `error` (`ProcessRun.lost`), and the next falsifier gets a fresh server.

What a fork shares with the server and a fresh process would not: modules already imported (a repository
module named like a preloaded library's top-level module loses to it), and the string hash seed. What is
redone in each child: os.environ, cwd, sys.path, numpy's global seed (`random` reseeds itself at fork),
hypothesis's default database directory (it records the cwd at import), coverage's process startup.

Limits, as for harness.channel: a falsifier runs as the same user as the server, so deliberate sabotage
from inside it (ptrace of the server, writing /proc/SERVER/mem) could change what later children are
forked from; killing the server cannot (the next falsifier gets a fresh one). Set HARNESS_FORK_SERVER=0
to give every falsifier a fresh interpreter when that matters more than time.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import struct
import sys
import threading
from typing import Any, Callable, Sequence

DISABLE_ENV = "HARNESS_FORK_SERVER"
# Seconds a server may take to import its preload list (torch + transformers on a loaded 2-core machine).
START_S = 300.0
# Seconds the server may take to answer a request with the child's pid, and to report after the child died.
ANSWER_S = 30.0
# Standard-library modules every child imports (harness.child, harness.channel, guard_coverage, pytest_counter):
# imported once here, as the preload list is. Never a module of the harness or of a repository under test.
_STDLIB = (
    "ast", "dataclasses", "enum", "fcntl", "hashlib", "hmac", "importlib.abc", "importlib.machinery", "importlib.util",
    "inspect", "json", "pathlib",
    "runpy", "secrets", "select", "shutil", "tempfile", "traceback", "typing",
)
# The harness's own child side (what `python -m harness.child` and the pytest child's `-p harness.pytest_counter`
# import): imported once here from the harness this file belongs to, under their own names, so a child does not
# import (or, without bytecode files, compile) them again. A child whose sys.path finds another copy of the harness
# (teeth's copy of a repository that contains it) drops them and imports its own (_drop_harness_unless_the_childs).
_HARNESS_CHILD = (
    "harness", "harness.channel", "harness.param_env", "harness.imported_files", "harness.line_probe",
    "harness.subprocess_probe", "harness.guard_coverage", "harness.replay_child", "harness.child",
)
# Not harness.pytest_counter: it reads the result channel's key when pytest imports it as a plugin, in the child.
_HEADER = struct.Struct(">I")
# Idle servers kept per process: one per thread that runs falsifiers at once (teeth -j), and a few spare.
MAX_IDLE = max(4, os.cpu_count() or 1)
_MAX_FDS = 16


# ---------------------------------------------------------------------------------------- wire


def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    payload = json.dumps(message).encode()
    header = _HEADER.pack(len(payload))
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(payload)


def _exactly(sock: socket.socket, size: int, got: bytes = b"") -> bytes | None:
    while len(got) < size:
        chunk = sock.recv(size - len(got))
        if not chunk:
            return None
        got += chunk
    return got


def _receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One message and the descriptors sent with it; None at EOF."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, _MAX_FDS)
    header = _exactly(sock, _HEADER.size, data) if data else None
    payload = _exactly(sock, _HEADER.unpack(header)[0]) if header else None
    if payload is None:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(payload), fds


# ---------------------------------------------------------------------------------------- server side


def _supervisor() -> Any:
    """harness/supervisor.py's descendant killing, loaded by path under a private name: importing the
    `harness` package here would shadow the copy of it a repository under test (teeth's) has."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervisor.py")
    spec = importlib.util.spec_from_file_location("_harness_fork_supervisor", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _cuda_initialised() -> bool:
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return bool(cuda is not None and cuda.is_initialized())
    except Exception:  # noqa: BLE001 - a torch that cannot say is treated as initialised
        return True


def _after_fork_fixups(cwd: str, env: dict[str, str]) -> None:
    """Undo what preloaded modules captured of the server's process state at import time."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # a fresh process seeds numpy's global generator from the OS; forks would share it
    hypothesis_config = sys.modules.get("hypothesis.configuration")
    if hypothesis_config is not None:
        # hypothesis records Path.cwd() / ".hypothesis" at import as its default database directory.
        from pathlib import Path

        vars(hypothesis_config)["__hypothesis_home_directory_default"] = Path(cwd) / ".hypothesis"
    torch = sys.modules.get("torch")
    threads = env.get("OMP_NUM_THREADS", "")
    if torch is not None and threads.isdigit() and int(threads) > 0:
        # A fresh process's torch sizes its intra-op pool from OMP_NUM_THREADS; the server's OpenMP read the
        # server's environment when torch was imported, so a child given its own (harness -j) must say it.
        torch.set_num_threads(int(threads))
    if env.get("COVERAGE_PROCESS_START") or env.get("COVERAGE_PROCESS_CONFIG"):
        # What coverage's .pth does at a fresh interpreter's start (an outer measurement of the run).
        try:
            import coverage

            coverage.process_startup(slug="pth")
        except Exception:  # noqa: BLE001 - as the .pth: an outer measurement never breaks the child
            pass


# The server's own files (this one, as __main__ and aliases such as multiprocessing's __mp_main__; supervisor.py,
# loaded by path): harness code that a child never imports under those names, so they do not count as the
# repository's even where the harness is the repository.
_OWN = tuple(os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), f)) for f in ("fork_server.py", "supervisor.py"))


def _preload_harness() -> tuple[str, ...]:
    """Import the harness's child-side modules from this file's package; the names imported (none if that fails)."""
    import importlib

    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, parent)
    try:
        for name in _HARNESS_CHILD:
            importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - never fatal: each child then imports the harness itself
        _forget_harness()
        return ()
    finally:
        sys.path.remove(parent)
    return _HARNESS_CHILD


def _forget_harness() -> set[str]:
    gone = {n for n in sys.modules if n == "harness" or n.startswith("harness.")}
    for name in gone:
        del sys.modules[name]
    return gone


def _drop_harness_unless_the_childs() -> None:
    """In the child: keep the preloaded harness only if the child's sys.path finds the same package (as a fresh
    `python -m harness.child` there would import it); otherwise drop it, and what it imported is imported anew."""
    held = sys.modules.get("harness")
    if held is None:
        return
    import importlib.util

    del sys.modules["harness"]
    try:
        spec = importlib.util.find_spec("harness")
    except (ImportError, ValueError):
        spec = None
    sys.modules["harness"] = held
    same = spec is not None and spec.origin is not None and isinstance(getattr(held, "__file__", None), str) \
        and os.path.realpath(spec.origin) == os.path.realpath(held.__file__)
    if not same:
        gone = _forget_harness()
        state = sys.modules.get(HELD_MODULE)
        if state is not None:
            state.names = state.names - gone  # type: ignore[attr-defined] - imported anew: listed as the child's own


def _held_files(exempt: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(module, real path of its file) of every module the server holds, once after preloading; `exempt`: the
    harness's child side, which a child keeps only where it finds the same files (_drop_harness_unless_the_childs)."""
    held = []
    for name, module in list(sys.modules.items()):
        if name in exempt:
            continue
        file = getattr(module, "__file__", None)
        # Only an absolute path says where a module came from (torch.ops claims a bare "_ops.py").
        if isinstance(file, str) and os.path.isabs(file) and os.path.realpath(file) not in _OWN:
            held.append((name, os.path.realpath(file)))
    return held


# harness.imported_files.HELD_MODULE: a child reads which modules it inherited from here, so that listing the
# repository files it imported does not resolve the path of every module the server holds (over 100 ms a child
# with torch preloaded). Every one is outside the repository the child runs in: _from_repository refused otherwise.
HELD_MODULE = "_harness_fork_server_held"


def _publish_held() -> None:
    import types

    state = types.ModuleType(HELD_MODULE, "The modules the fork server held when it forked this process.")
    state.names = frozenset(sys.modules)  # type: ignore[attr-defined]
    sys.modules[HELD_MODULE] = state


def _from_repository(root: str, held: list[tuple[str, str]], installed: tuple[str, ...]) -> str | None:
    """`module (file)` of a module the server holds that was imported from the repository root `root` (not
    from an installation inside it, such as a .venv): a child would run the server's copy of the
    repository's code, not the files at `root` (teeth's mutants). None when there is none."""
    inner = tuple(p for p in installed if p.startswith(root))
    for name, real in held:
        if real.startswith(root) and not real.startswith(inner or ("\0",)):
            return f"{name} ({real})"
    return None


def _child(request: dict[str, Any], fds: list[int], sock: socket.socket, base_path: list[str]) -> None:
    """In the forked child: become what `cd CWD && env ENV python -m MODULE ARGS` would be, run it, _exit."""
    status = 1
    try:
        os.setsid()
        sock.close()  # the falsifier must not reach the server
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Nothing blocked, whatever the process that started the server had blocked (a Ray worker blocks
        # SIGINT): a blocked mask survives fork and exec, and a falsifier's Ctrl-C would never arrive.
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        targets = [int(fd) for fd in request["pass_fds"]]
        import fcntl

        floor = max([*fds, *targets, 2]) + 1
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, floor) for fd in fds]
        for fd in fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(moved[0], 1)
        os.dup2(moved[0], 2)
        for fd, target in zip(moved[1:], targets):
            os.dup2(fd, target)
        for fd in (null, *moved):
            if fd not in targets:
                os.close(fd)
        cwd, env = request["cwd"], request["env"]
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
        pythonpath = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [cwd, *pythonpath, *base_path]
        import importlib

        importlib.invalidate_caches()
        _drop_harness_unless_the_childs()
        _after_fork_fixups(cwd, env)
        module, *args = request["argv"][2:]
        sys.argv = [module, *args]
        import runpy

        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            status = 0
        except SystemExit as exc:
            code = exc.code
            if code is None:
                status = 0
            elif isinstance(code, int):
                status = code & 0xFF
            else:
                print(code, file=sys.stderr)
                status = 1
        except BaseException:  # noqa: BLE001 - what the interpreter does for an uncaught exception
            import traceback

            traceback.print_exc()
            status = 1
    except BaseException:  # noqa: BLE001 - the child could not be set up (a cwd that is gone): say so, exit 1
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken stream must not keep us from exiting
                pass
        os._exit(status)


def _wait(pid: int, sock: socket.socket) -> int | None:
    """The child's wait status; None when the client went away first (the child is then killed)."""
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return os.waitpid(pid, 0)[1]
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(sock, select.POLLIN | select.POLLHUP)
        while True:
            ready = dict(poller.poll())
            if pidfd in ready:
                return os.waitpid(pid, 0)[1]
            if sock.fileno() in ready and not sock.recv(1, socket.MSG_PEEK):
                for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                    try:
                        kill()
                    except OSError:
                        pass
                os.waitpid(pid, 0)
                return None
    finally:
        os.close(pidfd)


def serve(sock: socket.socket, preload: Sequence[str]) -> None:
    """The server's loop: preload, then one child per request until the client closes the socket."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, as supervisor.py
    supervisor = _supervisor()
    own_path = {p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    base_path = [p for p in sys.path if p not in own_path]
    import importlib

    for name in _STDLIB:
        importlib.import_module(name)
    for name in preload:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - reported to the client, which names pyproject.toml
            _send(sock, {"ready": False, "error": f"cannot import {name!r}: {type(exc).__name__}: {exc}"[:2000]})
            return
    harness_modules = _preload_harness()
    _send(sock, {"ready": True, "pid": os.getpid()})
    installed = tuple(os.path.join(os.path.realpath(p), "") for p in base_path if p)
    held = _held_files(exempt=harness_modules)
    _publish_held()
    while True:
        received = _receive(sock)
        if received is None:
            return
        request, fds = received
        inside = _from_repository(os.path.join(os.path.realpath(request["cwd"]), ""), held, installed)
        if inside is not None:
            for fd in fds:
                os.close(fd)
            _send(sock, {"foreign": inside})
            continue
        if _cuda_initialised():
            for fd in fds:
                os.close(fd)
            _send(sock, {"refused": "CUDA is initialised in the fork server"})
            continue
        # Everything the server holds moves to the gc's permanent generation: a collection in the child would
        # otherwise write to every object's header and copy the whole preloaded heap page by page.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            _child(request, fds, sock, base_path)
        for fd in fds:
            os.close(fd)
        _send(sock, {"pid": pid})
        status = _wait(pid, sock)
        supervisor._end_descendants()  # every orphan that reached us is the child's
        if status is None:
            return
        _send(sock, {"status": status})


# ---------------------------------------------------------------------------------------- client side


class PreloadError(Exception):
    """The fork server could not import its preload list; the message names pyproject.toml and the module."""


def available() -> bool:
    """Whether falsifiers can start through a fork server here (Linux: fork, SCM_RIGHTS, a subreaper)."""
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds") and hasattr(os, "fork")


def enabled(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """available(), and not turned off with HARNESS_FORK_SERVER=0."""
    value = (os.environ if environ is None else environ).get(DISABLE_ENV, "1").strip().lower()
    return available() and value not in ("0", "false", "no", "off")


# Variables that change from one falsifier to the next in the same run (pytest sets PYTEST_CURRENT_TEST for
# each item): not part of a server's environment, so they do not ask for a new server. Each child gets its
# own environment, these included, from its request.
_VOLATILE = ("PYTEST_CURRENT_TEST",)


def _server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _VOLATILE}


# The server's start: this file as __main__ with nothing of the current directory on sys.path (not `-P`, which
# the children would inherit as sys.flags.safe_path and pass on to their python subprocesses).
_BOOT = "import runpy, sys; del sys.path[0]; sys.argv.pop(0); runpy.run_path(sys.argv[0], run_name='__main__')"


class _Server:
    def __init__(self, preload: tuple[str, ...], cwd: str) -> None:
        import subprocess

        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = _server_env()
        env["PYTHONUNBUFFERED"] = "1"  # the children's streams are the server's: unbuffered, as child_env asks
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        for key in ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG"):
            env.pop(key, None)  # a tracer started here would run in every child; children start their own
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, os.path.abspath(__file__), str(child.fileno()), json.dumps(list(preload))],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, pass_fds=(child.fileno(),),
            )
        finally:
            child.close()
        self.sock = parent
        self.sock.settimeout(START_S)
        try:
            ready = _receive(self.sock)
        except (OSError, ValueError):
            ready = None
        if ready is None or not ready[0].get("ready"):
            why = ready[0].get("error") if ready is not None else None
            self.close()
            if why:
                raise PreloadError(why)
            raise OSError("the fork server did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=1.0)
            except Exception:  # noqa: BLE001 - still there: killed below
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()


class _Pool:
    """Idle servers per (preload, environment); a thread takes one for a run and gives it back. At most
    MAX_IDLE stay idle (the oldest go first): each may hold a preloaded torch."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[tuple[Any, _Server]] = []
        self.failed: dict[Any, str] = {}
        self.owner = os.getpid()

    def _mine(self) -> None:
        if self.owner != os.getpid():  # a forked copy of the harness must not share its parent's servers
            self.idle, self.failed, self.owner = [], {}, os.getpid()

    def take(self, key: Any, preload: tuple[str, ...], cwd: str) -> _Server:
        stale: list[_Server] = []
        with self.lock:
            self._mine()
            if key in self.failed:
                raise PreloadError(self.failed[key])
            found = None
            for i in range(len(self.idle) - 1, -1, -1):
                if self.idle[i][0] == key:
                    server = self.idle.pop(i)[1]
                    if server.alive():
                        found = server
                        break
                    stale.append(server)
        for server in stale:
            server.close()
        if found is not None:
            return found
        try:
            return _Server(preload, cwd)
        except PreloadError as exc:
            with self.lock:
                self.failed[key] = str(exc)
            raise

    def give(self, key: Any, server: _Server) -> None:
        evicted = [server]
        with self.lock:
            if self.owner == os.getpid():
                self.idle.append((key, server))
                evicted = [s for _, s in self.idle[:-MAX_IDLE]]
                del self.idle[:-MAX_IDLE]
        for stale in evicted:
            stale.close()

    def shutdown(self) -> None:
        with self.lock:
            servers = [s for _, s in self.idle] if self.owner == os.getpid() else []
            self.idle = []
        for server in servers:
            server.close()


_pool = _Pool()


def shutdown() -> None:
    """End every idle server of this process (also at exit)."""
    _pool.shutdown()


def _kill(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


def run(
    argv: Sequence[str], cwd: Any, timeout_s: float, env: dict[str, str], *, pass_fds: Sequence[int] = (),
    on_started: Callable[[], None] | None = None, preload: Sequence[str] = (),
) -> Any:
    """run_isolated's contract through a fork server (a harness.isolation.ProcessRun), or None when the
    caller must start a fresh process instead (see the module docstring). Raises PreloadError."""
    import tempfile

    from harness.isolation import ProcessRun, read_tail

    if not enabled() or len(argv) < 3 or argv[0] != sys.executable or argv[1] != "-m" or any(fd <= 2 for fd in pass_fds):
        return None
    # A server per preload list and environment: what a preloaded module read of the environment at import
    # must be what a fresh process would read.
    key = (tuple(preload), tuple(sorted(_server_env().items())))
    try:
        server = _pool.take(key, tuple(preload), str(cwd))
    except OSError:
        return None  # no server could start: a fresh process
    with tempfile.TemporaryFile(prefix="harness-output-") as sink:
        try:
            server.sock.settimeout(ANSWER_S)
            _send(server.sock, {"argv": list(argv), "cwd": str(cwd), "env": env, "pass_fds": list(pass_fds)},
                  [sink.fileno(), *pass_fds])
            answer = _receive(server.sock)
        except (OSError, ValueError):
            answer = None
        if answer is None:
            server.close()  # it died (of the previous child?) before forking: a fresh process is always right
            return None
        if "foreign" in answer[0]:
            _pool.give(key, server)
            raise PreloadError(
                f"imported {answer[0]['foreign']} from the repository under test; preload only modules installed "
                "outside it (a falsifier must run the repository's files as they are now)"
            )
        if "refused" in answer[0]:
            _pool.give(key, server)
            return None
        pid = int(answer[0]["pid"])
        if on_started is not None:
            on_started()
        timed_out = False
        try:
            server.sock.settimeout(timeout_s)
            try:
                done = _receive(server.sock)
            except TimeoutError:
                timed_out = True
                _kill(pid)  # the server then ends the descendants outside the group and reports
                server.sock.settimeout(ANSWER_S)
                done = _receive(server.sock)
        except (OSError, ValueError):
            done = None
        except BaseException:
            _kill(pid)  # Ctrl-C: the child must not outlive us
            server.close()
            raise
        if done is None:
            # The server died (a falsifier can kill its parent) or stopped answering: the child's status is
            # unknown, so this run can never count; the next falsifier gets a fresh server.
            _kill(pid)
            server.close()
        else:
            # The server reaped the child and killed every descendant before it answered: nothing is left to
            # kill (killing the pid now could hit an unrelated process that reused it).
            _pool.give(key, server)
        output = read_tail(sink)
    if timed_out:
        return ProcessRun(None, output, True)
    if done is None:
        return ProcessRun(None, output, False, "the fork server died while the falsifier ran, so its exit is unknown")
    return ProcessRun(os.waitstatus_to_exitcode(int(done[0]["status"])), output, False)


if __name__ == "__main__":
    import atexit  # noqa: F401 - nothing registered: children end with os._exit, the server on EOF

    serve(socket.socket(fileno=int(sys.argv[1])), json.loads(sys.argv[2]))
else:
    import atexit

    atexit.register(shutdown)
