"""What the CLIs print and how they stop: one printing function and one signal policy for every command.

Printing: every line goes through `harness.escape.terminal`, because most of what the harness prints
quotes a falsifier, a test or a file name. A closed stdout (`harness verify ... | head -1`) or stderr
is not an error of the run: the stream is pointed at /dev/null and the command carries on, so the
evidence is still written in full and the exit status is still the run's. Nothing of this module is
heavy to import: `harness.cli` needs it before any command module is loaded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from harness.escape import terminal

EXIT_INTERRUPTED = 130


def silence(stream: TextIO) -> None:
    """Send whatever is still written to `stream` (and what it has buffered) to /dev/null, so a reader
    that went away (EPIPE) costs neither a traceback nor Python's 'Exception ignored' at exit."""
    try:
        fileno = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (e.g. io.StringIO): nothing can break
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)


def emit(text: str, stream: TextIO | None = None) -> None:
    """Print one line of `text` (untrusted parts included) to `stream` (default stdout), escaped for a
    terminal and flushed; if the reader has gone away, quietly print nothing more there."""
    stream = stream or sys.stdout
    line = terminal(text)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        line.encode(encoding)
    except UnicodeEncodeError:  # e.g. a Latin-1 terminal and a message in Japanese: shown escaped, not a crash
        line = line.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        pass
    try:
        print(line, file=stream, flush=True)
    except BrokenPipeError:
        silence(stream)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cancelled CI job, `kill`) stops the command the way Ctrl-C does, at any moment: during
    imports and validation it is `harness: interrupted` and 130 like SIGINT, and during a run the
    falsifiers' process groups are killed and the evidence so far is written, instead of dying with
    orphans left running."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
