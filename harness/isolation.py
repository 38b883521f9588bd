"""The one way the harness runs a child process: validation probes and falsifiers alike.

Every child gets the same treatment, so a hostile import during `validate` and a hostile falsifier
during `verify` are contained the same way:

- on Linux, a supervisor (harness/supervisor.py, `python -I -S`, stdlib only) between us and the child:
  a child subreaper that, when the child exits (or on SIGTERM from us at the timeout or on Ctrl-C), kills
  every remaining descendant, daemons that double-forked into a session of their own included, then
  exits with the child's status. It costs one bare interpreter start plus `import ctypes` per child
  (benchmarks/bench_isolation.py: about 30 ms on an idle 2-core machine, 120 ms at load average 8).
  Where PR_SET_CHILD_SUBREAPER does not
  exist (not Linux) the child runs directly and only the process-group kill below applies: a descendant
  that calls setsid() escapes it there;
- its own session and process group (start_new_session), killed as a whole when the child exits,
  at the timeout, or when the harness is interrupted (SIGTERM to the supervisor first, so it can end the
  descendants outside the group, then SIGKILL to the group after TERM_GRACE_S);
- stdin from /dev/null, so a child that reads input cannot wait for a keyboard;
- stdout and stderr together into a temp file, not a pipe, of which only the last OUTPUT_KEEP bytes
  are read back: a background process left holding the descriptor cannot stall us, and a flood of
  output cannot exhaust memory;
- the same environment (`child_env`);
- one classification of how it ended (`exit_of`): exit status, signal, or timeout;
- descriptors the caller names (`pass_fds`, e.g. the result channel's secret, harness.channel) and no others.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Literal, Sequence

HARNESS_PARENT = str(Path(__file__).resolve().parents[1])
# Bytes of a child's output kept: enough for count_pattern lines and failure tails, bounded for a flood.
OUTPUT_KEEP = 64 * 2**20
SUPERVISOR = str(Path(__file__).resolve().with_name("supervisor.py"))
# How long the supervisor gets to end the descendants after SIGTERM before the group is SIGKILLed.
TERM_GRACE_S = 2.0


def supervised() -> bool:
    """Whether children run under the subreaper supervisor here (Linux only: PR_SET_CHILD_SUBREAPER)."""
    return sys.platform.startswith("linux")


@dataclass(frozen=True)
class ProcessRun:
    returncode: int | None  # None when we killed it at the timeout, or when its end is unknown (`lost`)
    output: str
    timed_out: bool
    # Why the child's end is unknown (harness.fork_server: the server it was forked from died), else None.
    lost: str | None = None


@dataclass(frozen=True)
class Exit:
    """How a child ended: `exited` with `status`, killed by `signal` (its name), or `timeout`."""

    how: Literal["exited", "signal", "timeout"]
    status: int | None = None
    signal: str | None = None


def exit_of(run: ProcessRun) -> Exit:
    """Classify a finished run; the one place a return code is turned into exit/signal/timeout."""
    if run.timed_out or run.returncode is None:
        return Exit("timeout")
    if run.returncode < 0:
        try:
            name = signal.Signals(-run.returncode).name
        except ValueError:
            name = f"signal {-run.returncode}"
        return Exit("signal", signal=name)
    return Exit("exited", status=run.returncode)


def child_env(repo_root: Path) -> dict[str, str]:
    """The environment for every child: the repository and the harness itself importable, output
    unbuffered, no bytecode written into the repository, pytest plugins autoloaded as the project has them."""
    env = dict(os.environ)
    parts = [str(repo_root), HARNESS_PARENT]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    # Unbuffered, so the output of a child that then hangs is still there when we kill it.
    env["PYTHONUNBUFFERED"] = "1"
    # Checking or verifying a repository must not leave __pycache__ directories in it.
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    # verify turns plugin autoload off for its own pytest session; children run as the project runs them.
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _end(proc: subprocess.Popen[bytes], supervised_run: bool) -> None:
    """Timeout or Ctrl-C: let the supervisor end every descendant, then SIGKILL whatever is left in the group."""
    if supervised_run:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=TERM_GRACE_S)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    _kill_group(proc)
    proc.wait()


def _exec_error(error_r: int, argv0: str) -> OSError | None:
    """The OSError the supervisor's child got from exec, if it got one (see harness/supervisor.py)."""
    data = os.read(error_r, 64)
    if not data:
        return None
    code = int(data)
    error = {errno.ENOENT: FileNotFoundError, errno.EACCES: PermissionError}.get(code, OSError)
    return error(code, os.strerror(code), argv0)


def run_isolated(
    argv: Sequence[str], cwd: Path, timeout_s: float, env: dict[str, str], *, pass_fds: Sequence[int] = (),
    on_started: Callable[[], None] | None = None,
) -> ProcessRun:
    """Run argv in a new session under the supervisor; end every descendant when it exits, at the timeout,
    or on Ctrl-C. `pass_fds` are handed to the child; `on_started` runs once it is started (the result
    channel closes our copy of the key's pipe there, so nothing can read it through /proc/OUR_PID/fd).

    Raises OSError (FileNotFoundError, PermissionError) when argv[0] cannot be started at all.
    """
    supervised_run = supervised()
    error_r, error_w = os.pipe() if supervised_run else (-1, -1)
    command = [sys.executable, "-I", "-S", SUPERVISOR, str(error_w), *argv] if supervised_run else list(argv)
    fds = (*pass_fds, error_w) if supervised_run else tuple(pass_fds)
    with tempfile.TemporaryFile(prefix="harness-output-") as sink:
        try:
            proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=fds,
            )
        except BaseException:
            if supervised_run:
                os.close(error_r)
                os.close(error_w)
            raise
        if supervised_run:
            os.close(error_w)
        if on_started is not None:
            on_started()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _end(proc, supervised_run)
        except BaseException:
            # Ctrl-C while a child runs: it sits in its own session and would outlive us.
            _end(proc, supervised_run)
            raise
        finally:
            # A child may leave grandchildren behind in its group even when it exits cleanly.
            _kill_group(proc)
            if supervised_run:
                failed = _exec_error(error_r, argv[0])
                os.close(error_r)
        if supervised_run and failed is not None:
            raise failed
        output = read_tail(sink)
    return ProcessRun(None if timed_out else proc.returncode, output, timed_out)


def read_tail(sink: IO[bytes]) -> str:
    """The last OUTPUT_KEEP bytes of a child's output file, decoded."""
    sink.seek(0, os.SEEK_END)
    size = sink.tell()
    # Only the tail is ever reported; a child that prints gigabytes must not exhaust memory here.
    sink.seek(max(0, size - OUTPUT_KEEP))
    return sink.read().decode(errors="replace")


def describe_exit(run: ProcessRun, timeout_s: float, what: str = "exited") -> str:
    """The reason for a child that ended without reporting: timeout, signal, or exit status."""
    if run.lost is not None:
        return run.lost
    end = exit_of(run)
    if end.how == "timeout":
        return f"timed out after {timeout_s:g}s"
    if end.how == "signal":
        return f"killed by signal {end.signal}"
    return f"{what} with status {end.status} without reporting"
