"""The supervisor every isolated child runs under (Linux): it ends every descendant when the child ends.

    python -I -S harness/supervisor.py ERROR_FD ARGV...

harness.isolation starts this script (by path, with -I -S: stdlib only, nothing of the repository or its
site-packages is imported, so it starts in about as long as a bare interpreter) as the leader of a new
session. It makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so every process the child
forks and abandons - a daemon that double-forked into a new session included, which killpg of our group
would miss - is re-parented to it instead of to init. It forks and execs ARGV, waits for it, then kills
every remaining descendant: SIGKILL to each direct child, reap, repeat until ECHILD (a killed process's
own children re-parent to us and are found on the next round). It then exits with the child's status, or
kills itself with the signal that killed the child, so harness.isolation.exit_of classifies it as before.

SIGTERM (the parent at a timeout, or on Ctrl-C) kills the child and then every descendant the same way.

ERROR_FD is a pipe the parent reads: when ARGV cannot be executed, the forked child writes the errno there
(the descriptor is close-on-exec in the child, so a successful exec leaves it empty), and the parent raises
the same OSError a direct Popen would.

Limits: a descendant that kills this supervisor itself (it is its ancestor, same user) escapes to init;
the parent's SIGKILL of the session's process group still ends everything left in the group.
"""

import ctypes
import errno
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36
_child = 0
_terminated = False


def _children() -> list[int]:
    """Our direct children: /proc/self/task/TID/children, else a scan of /proc for our pid as parent."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        pass
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ')'.
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me:
                found.append(int(name))
    return found


def _end_descendants() -> None:
    while True:
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _on_term(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    if _child:
        try:
            os.kill(_child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> None:
    global _child
    error_fd, argv = int(sys.argv[1]), sys.argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGTERM, _on_term)
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            # The child starts with no signal blocked, whatever our parent had blocked (a Ray worker
            # blocks SIGINT; the mask survives exec and a falsifier's Ctrl-C would never arrive).
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            os.set_inheritable(error_fd, False)
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(error_fd, str(exc.errno or errno.ENOEXEC).encode())
        os._exit(127)
    _child = pid
    if _terminated:  # SIGTERM arrived while we forked
        _on_term(signal.SIGTERM, None)
    os.close(error_fd)
    # Descriptors handed to the child (the result channel's secret) must not stay readable here.
    os.closerange(3, 1024)
    status = None
    while status is None:
        try:
            got, raw = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if got == pid:
            status = raw
    _end_descendants()
    if status is None:
        os._exit(127)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        # No core file of ours on top of the child's.
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ImportError, ValueError, OSError):
            pass
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    main()
