"""os.environ changed for the length of a `with` block, and restored afterwards.

The replay of a failure (harness.replay_run) and a Ray task (harness.ray_executor) both run a falsifier
under the environment recorded or forwarded for it, in a process that serves other work afterwards.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def scoped_environ(values: dict[str, str | None]) -> Iterator[None]:
    """os.environ with `values` set (None: removed) inside the block; the previous values (or their
    absence) are put back however the block ends. A child started inside the block inherits them."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _apply(values)
        yield
    finally:
        _apply(saved)


def _apply(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
