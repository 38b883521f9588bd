"""`harness.X` is what the package documents, whatever was imported before: a submodule named like an
export (`harness/teeth.py` beside the lazy export `harness.teeth`) would replace the function with the
module as soon as anything imported it, and `harness.teeth([...])` would fail with "'module' object is
not callable" depending on import order. This imports every submodule first, then checks each export."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import harness

from tests.cli_env import cli_env


def test_no_submodule_shadows_an_export() -> None:
    modules = {m.name for m in pkgutil.iter_modules(harness.__path__)}
    assert not modules & set(harness._EXPORTS), "rename the submodule: it shadows the export of the same name"


def test_every_export_is_what_it_names_after_every_submodule_is_imported() -> None:
    # In a fresh interpreter, so this test's own imports cannot hide the order effect.
    code = (
        "import importlib, inspect, pkgutil, harness\n"
        "for m in pkgutil.iter_modules(harness.__path__):\n"
        "    if m.name not in ('__main__', 'supervisor'):\n"
        "        importlib.import_module('harness.' + m.name)\n"
        "bad = [n for n in harness._EXPORTS if inspect.ismodule(getattr(harness, n))]\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert callable(harness.teeth) and not inspect.ismodule(harness.teeth)
    assert importlib.import_module("harness.teeth_run").teeth is harness.teeth
