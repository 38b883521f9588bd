"""harness.line_probe: the lines the guards' own functions executed, from probes in their code (no tracer)."""

from __future__ import annotations

import functools
import inspect
import os
import sys

import pytest

from harness import line_probe

pytestmark = pytest.mark.skipif(not line_probe.AVAILABLE, reason="slipcover's probes are used before Python 3.12 only")


def _decorated(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper


class Guarded:
    def plain(self, x):
        return x + 1

    @staticmethod
    def static(x):
        return x * 2

    @classmethod
    def klass(cls, x):
        return x - 1

    @property
    def value(self):
        return 7

    @_decorated
    def wrapped(self, x):
        return -x

    class Inner:
        def deep(self):
            return "deep"

    Alias = dict  # a class defined elsewhere: not this guard's code


HERE = os.path.realpath(__file__)


def _line(function, text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_a_class_yields_every_method_it_defines_unwrapped() -> None:
    names = sorted(f.__qualname__ for f in line_probe.functions_of(Guarded))
    assert names == sorted([
        "Guarded.plain", "Guarded.static", "Guarded.klass", "Guarded.value", "Guarded.wrapped", "Guarded.Inner.deep",
    ])


def test_the_probed_functions_report_the_lines_they_ran_and_get_their_code_back() -> None:
    originals = {f: f.__code__ for f in line_probe.functions_of(Guarded)}
    probe = line_probe.LineProbe([Guarded])
    try:
        assert all(f.__code__ is not code for f, code in originals.items()), "not probed"
        g = Guarded()
        assert (g.plain(1), Guarded.static(2), Guarded.klass(3), g.value, g.wrapped(4)) == (2, 4, 2, 7, -4)
        ran = probe.lines()[HERE]
    finally:
        probe.restore()
    assert all(f.__code__ is code for f, code in originals.items()), "the original code is not back"
    for function, text in [(Guarded.plain, "x + 1"), (Guarded.static, "x * 2"), (Guarded.klass, "x - 1"),
                           (Guarded.value.fget, "return 7"), (inspect.unwrap(Guarded.wrapped), "return -x")]:
        assert _line(function, text) in ran, (function.__qualname__, sorted(ran))
    assert _line(Guarded.Inner.deep, '"deep"') not in ran  # never called


def test_a_nested_function_inside_a_guard_is_probed_with_it() -> None:
    def outer(n):
        def inner(k):
            return k * 3  # INNER
        return inner(n)

    probe = line_probe.LineProbe([outer])
    try:
        assert outer(2) == 6
        ran = probe.lines()[HERE]
    finally:
        probe.restore()
    assert _line(outer, "# INNER") in ran, sorted(ran)


def test_no_probe_reaches_code_it_was_not_given() -> None:
    before, static = sys.gettrace(), Guarded.static.__code__
    probe = line_probe.LineProbe([Guarded.plain])
    try:
        assert sys.gettrace() is before  # no tracer: the rest of the process runs as it would unmeasured
        assert Guarded.static.__code__ is static
        Guarded.static(1)
        assert _line(Guarded.static, "x * 2") not in probe.lines().get(HERE, set())
    finally:
        probe.restore()
