"""Collect (never run) the pytest bindings of one repository root for `harness validate`.

    python -m harness.collect_child SPEC_FILE RESULT_FILE

harness.resolve runs this through harness.isolation with the repository root as cwd. SPEC_FILE holds
{"root", "args": [paths to collect], "k": {key: [expression, [paths]]}}. One
`pytest.main(["--collect-only", ...])` collects every path once. Each -k selection is then made the
way a real `pytest -k EXPR` run makes it, through public API only: with the `-k` option
(`config.option.keyword`) set to the expression, pytest's own `pytest_collection_modifyitems` hook
deselects from the items under the selection's paths. So -k semantics (names, parents, markers,
and what any installed plugin does to a selection) are exactly those of a real run, and the tree is
collected once however many -k bindings there are.

RESULT_FILE gets {"items": [node ids] | null, "k": {key: count | "invalid -k expression: ..."},
"errors": [{nodeid, message}], "failed": null | pytest's exit status when collection never finished}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.atomic import write_atomic

# Contract files are not tests of a binding: never count falsifier items as matches.
BASE_ARGS = ["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:harness", "-p", "no:harness.plugin"]


def _invalid_k(message: str, expr: str) -> str:
    # pytest says "Wrong expression passed to '-k': EXPR: at column N: ..."; keep what is wrong.
    prefix = f"Wrong expression passed to '-k': {expr}: "
    return "invalid -k expression: " + (message[len(prefix):] if message.startswith(prefix) else message)


class _Collector:
    """Records the collection, then counts each -k selection with pytest's own deselection."""

    def __init__(self, root: Path, k: dict[str, list[Any]]) -> None:
        self.root = root
        self.k = k
        self.items: list[str] | None = None
        self.k_counts: dict[str, int | str] = {}
        self.errors: list[dict[str, str]] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = report.longreprtext.strip().splitlines()
            self.errors.append({"nodeid": report.nodeid, "message": text[-1] if text else "collection failed"})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = list(session.items)
        self.items = [item.nodeid for item in items]
        config = session.config
        paths = [Path(item.path).resolve() for item in items]
        saved = config.option.keyword
        done: dict[tuple[str, tuple[str, ...]], int | str] = {}  # each distinct selection is made once
        try:
            for key, (expr, bases) in self.k.items():
                if (expr, tuple(bases)) in done:
                    self.k_counts[key] = done[expr, tuple(bases)]
                    continue
                roots = [(self.root / b).resolve() for b in bases]
                selected = [item for item, p in zip(items, paths) if any(p == r or r in p.parents for r in roots)]
                config.option.keyword = expr
                try:
                    config.hook.pytest_collection_modifyitems(session=session, config=config, items=selected)
                except pytest.UsageError as exc:
                    self.k_counts[key] = _invalid_k(str(exc), expr)
                else:
                    self.k_counts[key] = len(selected)
                done[expr, tuple(bases)] = self.k_counts[key]
        finally:
            config.option.keyword = saved


def collect(spec: dict[str, Any]) -> dict[str, Any]:
    collector = _Collector(Path(spec["root"]).resolve(), spec["k"])
    argv = [*BASE_ARGS, "--rootdir", spec["root"], "--", *spec["args"]]
    status = int(pytest.main(argv, plugins=[collector]))
    return {
        "items": collector.items or [],
        "k": collector.k_counts,
        "errors": collector.errors,
        "failed": status if collector.items is None else None,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.collect_child SPEC_FILE RESULT_FILE", file=sys.stderr)
        return 2
    spec_file, result_file = argv
    with open(spec_file, encoding="utf-8") as f:
        spec = json.load(f)
    write_atomic(result_file, json.dumps(collect(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
