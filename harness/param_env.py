"""How contract parameters reach a falsifier's child: `HARNESS_PARAM_<NAME>` and the list of names given.

The child's half of harness.parameters, split out so that harness.child imports only the standard library
and the harness's other child-side modules (the fork server forks a child per falsifier: every module it
imports is paid for once per falsifier, and harness.model's dataclasses cost more than the rest together).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

ENV_PREFIX = "HARNESS_PARAM_"
# The names given to the child, so harness.child can pass the ones its function takes as keywords.
NAMES_ENV = "HARNESS_PARAMS"


def env_name(name: str) -> str:
    """`HARNESS_PARAM_<NAME upper-cased>`: the variable that carries parameter `name`."""
    return ENV_PREFIX + name.upper()


def keyword_arguments(func: Callable[..., object], environ: Mapping[str, str]) -> dict[str, str]:
    """In the child: the given parameters `func` takes as keyword arguments (by name), from the environment."""
    names = [n for n in environ.get(NAMES_ENV, "").split(",") if n]
    if not names:
        return {}
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    accepted = {
        name for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {n: environ[env_name(n)] for n in names if n in accepted and env_name(n) in environ}
