"""Standard output whose reader may go away: `pretrain train ... | head -1` closes the pipe after one line.

Python ignores SIGPIPE, so the next write raises BrokenPipeError, and even after it is caught the
interpreter's final flush of sys.stdout raises again ("Exception ignored ... BrokenPipeError", exit 120).
Pointing file descriptor 1 at /dev/null once the reader is gone makes every later write, and that final
flush, succeed quietly. This is the one copy of that mechanism in `pretrain`.
"""

from __future__ import annotations

import os
import sys


def silence_stdout() -> None:
    """Send everything still to be written to stdout (buffered or not) to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by an object with no descriptor
        pass
    finally:
        os.close(devnull)


def print_line(text: str) -> bool:
    """Print one flushed line to stdout; False (and stdout silenced) when its reader has closed the pipe."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        silence_stdout()
        return False
    return True
