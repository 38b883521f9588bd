"""The loader's falsifiers pass on this code (the harness runs them too; this keeps plain pytest honest)."""

from __future__ import annotations

import inspect

import pytest

import falsifiers.checkpoint_format as checkpoint_format

FALSIFIERS = [
    (module.__name__, name, fn)
    for module in (checkpoint_format,)
    for name, fn in inspect.getmembers(module, inspect.isfunction)
    if name.startswith("falsify_") and fn.__module__ == module.__name__
]


@pytest.mark.parametrize(("module", "name", "fn"), FALSIFIERS, ids=[f"{m.split('.')[-1]}:{n}" for m, n, _ in FALSIFIERS])
def test_falsifier_holds(module: str, name: str, fn) -> None:  # type: ignore[no-untyped-def]
    fn()
