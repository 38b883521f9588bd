"""The harness's one way to write a file: complete or not at all, and on disk before it is named.

Every file the harness (or a child it starts) writes goes through `write_atomic`: the text goes to a
uniquely named hidden sibling, is fsynced, and is renamed over the target, and the directory is
fsynced so the rename survives a crash. A reader, a parent polling for a child's result, or a
concurrent run into the same directory therefore sees the previous file or the new one, never half
of one. (`harness.record.publish` replaces a whole directory of them from the same pieces.)
"""

from __future__ import annotations

import os
from pathlib import Path


def create_file(path: Path, text: str, mode: int = 0o666) -> None:
    """Create `path` (it must not exist yet) holding `text` as UTF-8, on disk before returning.

    Opened with mode 0o666 by default, so the file gets what the umask leaves (0644 under 022), like any
    tool's output: CI artifact upload and other users of a container must be able to read evidence. A
    secret (a private key) passes 0o600: created so, never readable by others for an instant."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def unique_sibling(directory: Path, name: str, suffix: str) -> Path:
    """A hidden sibling name no other process or run can pick: `.NAME.PID.RANDOM.SUFFIX`."""
    # os.urandom, not uuid: importing uuid (and the platform module it pulls in) costs every command.
    return directory / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.{suffix}"


def fsync_dir(directory: Path) -> None:
    """Make the renames in `directory` durable (a crash right after cannot bring the old names back)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # e.g. a platform whose directories cannot be opened: durability is best effort
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` via a fsynced temp file in the same directory, then os.replace and a
    directory fsync: readers (and a concurrent run into the same directory) only ever see a complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_sibling(path.parent, path.name, "tmp")
    try:
        create_file(tmp, text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def create_atomic(path: str | os.PathLike[str], text: str, mode: int = 0o666) -> None:
    """Write `text` to `path`, which must not exist: complete or not at all, like write_atomic, but never
    replacing anything (FileExistsError, and nothing written, if `path` exists, a dangling link included).

    The temp file is hard-linked to its name (link(2) refuses an existing target atomically) and then
    unlinked, so two concurrent writers cannot both succeed and a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_sibling(path.parent, path.name, "tmp")
    try:
        create_file(tmp, text, mode)
        os.link(tmp, path, follow_symlinks=False)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    fsync_dir(path.parent)
