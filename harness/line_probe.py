"""The lines a set of functions executed in this process, without a trace function: slipcover's probes.

On Python 3.11 any trace function (coverage.py's C tracer included) puts every frame of the process on the
interpreter's slow tracing path, whichever file it belongs to: a torch falsifier ran about 1.4x slower with
only its guards' files measured. slipcover (https://github.com/plasma-umass/slipcover) instead rewrites the
code objects it is given, inserting a probe before each line, and leaves the rest of the process alone.
harness.guard_coverage gives it only the guards' own functions (their nested functions come with them),
replacing each function's `__code__`, so every reference to the function (imported names, bound methods,
decorators' wrappers) runs the probed code; `restore` puts the original code back.

Used where it helps and exists: Python before 3.12 (from 3.12 coverage.py's `sysmon` core is already as
cheap) with slipcover installed; otherwise `AVAILABLE` is False and the guards are measured by coverage.py.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any

# slipcover's probes, hit this many times after their first, stop the world to take themselves out (walking every
# frame and module, from inside whatever line hit them: a Ctrl-C landing there surfaced as another exception).
# The guards are a few functions: their probes stay, each hit one C call.
NEVER_DEINSTRUMENT = 2**31 - 1
# Looked up, not imported: every falsifier's child imports this module, and only a measured one pays for slipcover.
AVAILABLE = sys.version_info < (3, 12) and importlib.util.find_spec("slipcover") is not None


def functions_of(obj: Any) -> Iterator[types.FunctionType]:
    """The Python functions whose code is `obj`'s: a function itself, or every method of a class (nested
    classes, properties' accessors, static and class methods included)."""
    if isinstance(obj, types.FunctionType):
        yield obj
    elif inspect.isclass(obj):
        for value in vars(obj).values():  # the class's own definitions, not inherited ones, as resolve() counts
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                accessors = [value.fget, value.fset, value.fdel]
            elif inspect.isclass(value):
                if value.__qualname__.startswith(obj.__qualname__ + "."):  # defined inside, not an alias
                    yield from functions_of(value)
                continue
            else:
                accessors = [value]
            for accessor in accessors:
                # A decorator's wrapper (functools.wraps, torch.no_grad, lru_cache) calls the function it wraps:
                # that function's code is the method body resolve() counts.
                inner = inspect.unwrap(accessor) if callable(accessor) else accessor
                if isinstance(inner, types.FunctionType):
                    yield inner


class LineProbe:
    """Probes in the given functions' code from construction until `restore` (and in any code object given to
    `instrument`, harness.subprocess_probe's modules); `lines` reads what ran."""

    def __init__(self, objects: Iterable[Any] = ()) -> None:
        import slipcover

        # exclude_lines=[]: every line that ran counts, as in coverage.py's raw data (no pragma filtering).
        self._sc = slipcover.Slipcover(exclude_lines=[], d_miss_threshold=NEVER_DEINSTRUMENT)
        self._saved: list[tuple[types.FunctionType, types.CodeType]] = []
        seen: set[int] = set()
        for obj in objects:
            for function in functions_of(inspect.unwrap(obj) if callable(obj) else obj):
                if id(function) in seen:
                    continue
                seen.add(id(function))
                original = function.__code__
                function.__code__ = self.instrument(original)
                self._saved.append((function, original))

    def instrument(self, code: types.CodeType) -> types.CodeType:
        """`code` with a probe before each of its lines (nested code objects included)."""
        return self._sc.instrument(code)

    def lines(self) -> dict[str, set[int]]:
        """{real path of the file: the line numbers executed in it so far} over the probed functions."""
        found: dict[str, set[int]] = {}
        for name, data in self._sc.get_coverage()["files"].items():
            # slipcover names files relative to the current directory where it can.
            path = os.path.realpath(name if os.path.isabs(name) else os.path.join(os.getcwd(), name))
            found.setdefault(path, set()).update(data["executed_lines"])
        return found

    def restore(self) -> None:
        """The functions' original code back (a probe left in place would only cost time)."""
        for function, original in reversed(self._saved):
            function.__code__ = original
        self._saved.clear()
