"""The result channel between the harness and a child it runs: one authenticated record, written once.

A falsifier runs in the child process, so anything the child can write, the falsifier's code can
write too: a JSON verdict at the child's result path, a pytest count file, an `atexit` hook that
rewrites either after an `assert` failed. This module makes such a write worthless:

- the parent draws a random key (`secrets`) per child and hands it over a pipe (`Channel.pass_fds`);
  the child reads it and closes the pipe (`receive_key`) before the falsifier - or pytest's test
  modules - is imported, so the key is in no environment variable, file, argument or open descriptor
  the falsifier can read, and the pipe is empty once read;
- the child writes its verdict exactly once (`send`): one line, `HMAC-SHA256(key, body) body`, in one
  write with O_APPEND, then ends itself with `os._exit(status)` (after flushing stdout/stderr), so no
  atexit hook, finaliser or thread runs after the verdict;
- the parent (`Channel.receive`) accepts exactly one authentic record whose `status` equals the
  child's exit status. A missing, forged (bad MAC), duplicated, truncated or oversized record, or any
  other text in the file, is an `InvalidRecord` naming what happened: the caller records `error`,
  never `passed`.

Limits, honestly: the key lives for the child's lifetime in its memory (a local of the child's main
function, or a closure of the pytest plugin; never a module global). Code running in that same
process that walks frames (`sys._getframe`), the gc (`gc.get_objects`), closures or pytest's plugin
manager, or that patches `hmac`/`json`/this module before the verdict is signed, can reach it or bend
the verdict: that is deliberate sabotage from inside the process, not "ordinary means", and no
in-process channel can stop it. Likewise a falsifier may corrupt or delete the record file (it can
find its path): that yields `error`, never `passed`. What this rules out is every pass produced by
writing files, exiting early, or exit hooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY_BYTES = 32
KEY_FD_ENV = "HARNESS_KEY_FD"
# A verdict is small; a record file larger than this was written by someone else.
MAX_RECORD_BYTES = 4 * 2**20


class InvalidRecord(Exception):
    """The child's record is missing or not authentic; the message says what was found, on one line."""


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass
class Channel:
    """The parent's side: a fresh key, its pipe for the child, and the record file the child appends to."""

    path: Path
    key: bytes = field(default_factory=lambda: secrets.token_bytes(KEY_BYTES))
    _read_fd: int = -1

    def __post_init__(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, self.key)  # KEY_BYTES fit a pipe's buffer: this never blocks
        finally:
            os.close(write_fd)
        self._read_fd = read_fd

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self._read_fd,)

    def env(self) -> dict[str, str]:
        return {KEY_FD_ENV: str(self._read_fd)}

    def close(self) -> None:
        if self._read_fd >= 0:
            os.close(self._read_fd)
            self._read_fd = -1

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _authentic(self, line: bytes, into: list[dict[str, Any]]) -> bool:
        mac, _, body = line.partition(b" ")
        if not hmac.compare_digest(mac, _mac(self.key, body).encode()):
            return False
        into.append(json.loads(body))
        return True

    def receive(self, returncode: int | None) -> dict[str, Any]:
        """The one authentic record, checked against the child's exit status; raises InvalidRecord."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            raise InvalidRecord("no result record") from None
        if len(data) > MAX_RECORD_BYTES:
            raise InvalidRecord(f"the result record file holds more than {MAX_RECORD_BYTES} bytes: not written by the harness")
        if not data:
            raise InvalidRecord("the result record file is empty")
        *lines, tail = data.split(b"\n")
        authentic: list[dict[str, Any]] = []
        foreign = [line for line in lines if not self._authentic(line, authentic)]
        if tail:
            if not foreign and not authentic and _looks_signed(tail):
                raise InvalidRecord("the result record is truncated: its line has no end")
            foreign.append(tail)
        if foreign and not authentic:
            raise InvalidRecord(
                f"the result record is forged: {len(foreign)} line(s) in it are not signed with this run's key"
            )
        if foreign:
            raise InvalidRecord(f"the result record file holds {len(foreign)} forged line(s) besides the child's record")
        if len(authentic) > 1:
            raise InvalidRecord(f"the result record was written {len(authentic)} times; it must be written exactly once")
        record = authentic[0]
        if returncode != record.get("status"):
            raise InvalidRecord(
                f"the child reported exit status {record.get('status')} in its result record but exited with "
                f"{returncode}: something ran after the verdict"
            )
        return dict(record["result"])


def _looks_signed(line: bytes) -> bool:
    mac, space, _ = line.partition(b" ")
    return bool(space) and len(mac) == 64 and all(c in b"0123456789abcdef" for c in mac)


def open_channel(directory: str | os.PathLike[str]) -> Channel:
    return Channel(Path(directory) / "result.record")


# ------------------------------------------------------------------------------------------ child side


def receive_key() -> bytes | None:
    """Read the key from the pipe named in the environment and close it; None when not run by the harness.

    Call this before importing any code under test: after it, the key is nowhere but in the returned value.
    """
    fd_text = os.environ.pop(KEY_FD_ENV, None)
    if fd_text is None:
        return None
    fd = int(fd_text)
    try:
        key = b""
        while len(key) < KEY_BYTES:
            chunk = os.read(fd, KEY_BYTES - len(key))
            if not chunk:
                break
            key += chunk
    except OSError:
        return None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return key if len(key) == KEY_BYTES else None


def send(path: str | os.PathLike[str], key: bytes, result: dict[str, Any], status: int = 0, *, exit: bool = True) -> None:
    """Append the one signed record and, with `exit`, end this process with `status` at once, so nothing
    runs after the verdict. (The pytest plugin passes exit=False: pytest still reports and exits with
    its session status, which the parent checks against the record's.)"""
    body = json.dumps({"status": status, "result": result}, separators=(",", ":")).encode()
    line = _mac(key, body).encode() + b" " + body + b"\n"
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    if exit:
        os._exit(status)
