"""The one atomic-write mechanism of `pretrain`: temp file beside the target, fsync, os.replace.

Signals (SIGINT, SIGTERM, SIGHUP) during a write remove the temp file and leave the target as it was;
a SIGKILLed writer's temp file (named with its pid) is removed by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pretrain.formats.header import CheckpointError

class WriteInterrupted(KeyboardInterrupt):
    """A SIGINT, SIGTERM or SIGHUP arrived during atomic_write; the temp file is gone, the target untouched."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP
        super().__init__(signal.Signals(signum).name)


CLEANUP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP (and SIGINT) into WriteInterrupted, so the `except` below removes the temp file.

    Only default dispositions are replaced: an ignored signal stays ignored and a program's own handler
    (the trainer's deferred Ctrl-C) stays in charge. Handlers can only be set from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise WriteInterrupted(signum)

    previous: dict[int, Any] = {}
    for sig in CLEANUP_SIGNALS:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[sig] = current
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, current in previous.items():
            signal.signal(sig, current)


def _temp_pattern(name: str) -> re.Pattern[str]:
    # mkstemp's random part is 8 characters of [a-z0-9_]
    return re.compile(re.escape(f".{name}.") + r"(\d+)\.[a-z0-9_]{8}\.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except (OverflowError, ValueError):
        return False
    return True


def remove_stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Remove temp files (or directories) an earlier write of `target` left behind when it was SIGKILLed.

    A temp file is provably stale when its name is ours (`.NAME.PID.XXXXXXXX.tmp`), it is a regular file
    of this user, and process PID is gone. A live PID (another write in progress, or a reused PID) is
    left alone: removing a file that might be in use is worse than leaving one behind.
    """
    target = Path(target)
    pattern = _temp_pattern(target.name)
    removed: list[Path] = []
    try:
        candidates = list(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match is None or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        try:
            st = candidate.lstat()
            if st.st_uid != os.getuid():
                continue
            if stat.S_ISREG(st.st_mode):
                candidate.unlink()
            elif stat.S_ISDIR(st.st_mode):  # a directory being built by `pretrain stamp DIR -o NEWDIR`
                shutil.rmtree(candidate)
            else:
                continue
            removed.append(candidate)
        except OSError:
            continue
    return removed


_FILE_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _refuse_non_regular_target(target: Path) -> None:
    # os.replace would swap the device, FIFO or socket for a regular file: /dev/null replaced by 81 KB.
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CheckpointError(target, f"cannot write here: {exc.strerror or exc}", "choose another output path") from None
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _FILE_KINDS if test(mode)), "not a regular file")
        raise CheckpointError(
            target, f"output is {kind}, not a regular file; refusing to replace it", "give a regular file path as the output"
        )


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Call `write(tmp_path)` on a temp file beside `path`, then os.replace it into place.

    The one atomic-write mechanism of `pretrain`. An error, SIGINT, SIGTERM or SIGHUP leaves `path` as it
    was (absent or the old file) and removes the temp file (a signal then raises WriteInterrupted); a
    SIGKILL's temp file, named with the writer's pid, is removed by the next write to `path`. An existing
    `path` that is not a regular file (/dev/null, a FIFO, a socket) is refused, not replaced.
    """
    target = Path(path)
    _refuse_non_regular_target(target)
    remove_stale_temps(target)
    with cleanup_on_signals():
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
            os.replace(tmp, target)
        except BaseException:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temp directory beside `path`; when the block succeeds, rename it to `path`.

    The directory form of atomic_write, for outputs that are several files (an HF model directory): an
    error or a signal (WriteInterrupted) removes the temp directory and leaves `path` as it was. An existing
    `path` is refused (FileExistsError) unless `replace`; then the old one is moved aside, the new one
    renamed in, and the old one removed, so `path` never holds a mixture of the two.
    """
    target = Path(path)
    if (target.exists() or target.is_symlink()) and not replace:
        raise FileExistsError(errno.EEXIST, "already exists", str(target))
    if replace and target.exists() and not target.is_dir():
        raise CheckpointError(target, "output exists and is not a directory; refusing to replace it",
                              "give a directory path as the output")
    with cleanup_on_signals():
        tmp: str | None = None
        old: str | None = None
        try:
            tmp = tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
            yield Path(tmp)
            for entry in Path(tmp).iterdir():
                if entry.is_file():
                    with open(entry, "rb") as f:
                        os.fsync(f.fileno())
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the directory normal permissions
            if replace and target.exists():
                old = tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".old", dir=target.parent)
                os.rename(target, Path(old) / target.name)
            os.rename(tmp, target)
            tmp = None
        except BaseException:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and not target.exists() and (Path(old) / target.name).exists():
                os.rename(Path(old) / target.name, target)  # put the old output back
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
