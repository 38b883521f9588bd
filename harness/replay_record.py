"""What a failed falsifier leaves behind so that `harness replay` can run the same failure again.

Recorded for every `falsified` or `error` result, as `FalsifierResult.replay`:

- `kind`: `hypothesis` when a property-based test printed its reproduction blob
  (`@reproduce_failure(version, blob)`; the child turns `print_blob` on, harness.replay_child), else
  `rerun`: the falsifier itself, run again with the same inputs, is the reproduction;
- `target`: the binding as it ran; `env`: the environment variables that change a run, where set;
- `hypothesis_version` and `examples`: each failing property's name (a pytest node id, or the @given
  function's name), its failing example text, and its blob.

Parsed from the failure text hypothesis writes into the exception's notes (PEP 678), which reach the
harness in the counterexample (python bindings) or in each failed test's report (pytest bindings): no
import of hypothesis here, and projects without it get `rerun`.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from harness.model import Binding, BindingKind, Outcome

# The environment a falsifier's run depends on beyond its code: replay sets these as recorded.
REPLAY_ENV = ("PYTHONHASHSEED", "HYPOTHESIS_PROFILE", "CUDA_VISIBLE_DEVICES")

# hypothesis >= 6.1xx: "Failing test case: f(...)"; earlier: "Falsifying example: f(...)".
# pytest prefixes each line of the exception text with "E" and an indent: the example is read without it.
_EXAMPLE = re.compile(
    r"^(?P<prefix>E\s+)?(?P<body>(?:Failing test case|Falsifying example): (?P<name>[A-Za-z_][\w.]*)\((?:\)|.*?^(?P=prefix)?\)))",
    re.M | re.S,
)
_BLOB = re.compile(r"@reproduce_failure\('([^']+)', (b'[A-Za-z0-9+/=]*')\)")


def parse_failure(text: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(function name, failing example text, hypothesis version, blob) found in one failure's text."""
    name = example = version = blob = None
    found = _EXAMPLE.search(text)
    if found:
        prefix = found.group("prefix") or ""
        lines = (prefix + found.group("body")).split("\n")
        example = "\n".join(line[len(prefix):] if line.startswith(prefix) else line for line in lines)
        name = found.group("name")
    hint = _BLOB.search(text)
    if hint:
        version = hint.group(1)
        blob = ast.literal_eval(hint.group(2)).decode("ascii")
    return name, example, version, blob


def recorded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The REPLAY_ENV variables that are set, with their values."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in REPLAY_ENV if name in environ}


def record(
    binding: Binding,
    outcome: Outcome,
    counterexample: str | None,
    failures: Iterable[tuple[str, str]] = (),
) -> dict[str, Any] | None:
    """The replay entry of a result: None unless it failed. `failures` are (pytest node id, failure
    text) of a pytest binding's failed tests; a python binding's failure text is its counterexample."""
    if outcome not in (Outcome.FALSIFIED, Outcome.ERROR):
        return None
    examples: list[dict[str, Any]] = []
    versions: set[str] = set()
    texts = list(failures) if binding.kind is BindingKind.PYTEST else [(None, counterexample or "")]
    for test, text in texts:
        name, example, version, blob = parse_failure(text)
        if example is None and blob is None:
            continue
        if version:
            versions.add(version)
        examples.append({"test": test or name or "", "example": example or "", "blob": blob})
    has_blob = any(e["blob"] for e in examples)
    return {
        "kind": "hypothesis" if has_blob else "rerun",
        "target": binding.describe(),
        "env": recorded_env(),
        "hypothesis_version": min(versions) if versions else None,
        "examples": examples,
    }
