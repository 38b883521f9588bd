"""The one way the harness runs a child process: validation probes and falsifiers alike.

Every child gets the same treatment, so a hostile import during `validate` and a hostile falsifier
during `verify` are contained the same way:

- its own session and process group (start_new_session), killed as a whole when the child exits,
  at the timeout, or when the harness is interrupted, so nothing it forks outlives the check;
- stdin from /dev/null, so a child that reads input cannot wait for a keyboard;
- stdout and stderr together into a temp file, not a pipe, of which only the last OUTPUT_KEEP bytes
  are read back: a background process left holding the descriptor cannot stall us, and a flood of
  output cannot exhaust memory;
- the same environment (`child_env`);
- one classification of how it ended (`exit_of`): exit status, signal, or timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

HARNESS_PARENT = str(Path(__file__).resolve().parents[1])
# Bytes of a child's output kept: enough for count_pattern lines and failure tails, bounded for a flood.
OUTPUT_KEEP = 64 * 2**20


@dataclass(frozen=True)
class ProcessRun:
    returncode: int | None  # None when we killed it at the timeout
    output: str
    timed_out: bool


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


def run_isolated(argv: Sequence[str], cwd: Path, timeout_s: float, env: dict[str, str]) -> ProcessRun:
    """Run argv in a new session; kill its whole process group when it exits, at the timeout, or on Ctrl-C.

    Raises OSError (FileNotFoundError, PermissionError) when argv[0] cannot be started at all.
    """
    with tempfile.TemporaryFile(prefix="harness-output-") as sink:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
        except BaseException:
            # Ctrl-C while a child runs: it sits in its own session and would outlive us.
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            # A child may leave grandchildren behind in its group even when it exits cleanly.
            _kill_group(proc)
        sink.seek(0, os.SEEK_END)
        size = sink.tell()
        # Only the tail is ever reported; a child that prints gigabytes must not exhaust memory here.
        sink.seek(max(0, size - OUTPUT_KEEP))
        output = sink.read().decode(errors="replace")
    return ProcessRun(None if timed_out else proc.returncode, output, timed_out)


def describe_exit(run: ProcessRun, timeout_s: float, what: str = "exited") -> str:
    """The reason for a child that ended without reporting: timeout, signal, or exit status."""
    end = exit_of(run)
    if end.how == "timeout":
        return f"timed out after {timeout_s:g}s"
    if end.how == "signal":
        return f"killed by signal {end.signal}"
    return f"{what} with status {end.status} without reporting"
