"""Collect (never run) the pytest bindings of one repository root for `harness validate`.

    python -m harness.collect_child SPEC_FILE RESULT_FILE

harness.resolve runs this through harness.isolation with the repository root as cwd. SPEC_FILE holds
{"root", "args": [paths of node ids], "k": {key: [expression, [paths]]}}. The node ids' files are
collected once; each -k selection is collected with pytest's own `-k`, so its semantics (names,
parents, markers) are exactly those of a real run. All collections run in this one interpreter
through `pytest.main` with a recording plugin: test modules are imported once and re-used, and
nothing of pytest beyond its public API is touched. The first collection that fails as a whole
(a conftest that does not import) stops the child; its output tail is the reason.

RESULT_FILE gets {"items": [node ids] | null, "k": {key: count | "invalid -k expression: ..."},
"errors": [{nodeid, message}], "failed": null | exit status}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from harness.atomic import write_atomic

# Contract files are not tests of a binding: never count falsifier items as matches.
BASE_ARGS = ["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:harness", "-p", "no:harness.plugin"]


class _Recorder:
    """What one pytest.main(--collect-only) saw: the selected items, collection errors, a bad -k."""

    def __init__(self) -> None:
        self.items: list[str] | None = None
        self.errors: list[dict[str, str]] = []
        self.usage_error: str | None = None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = report.longreprtext.strip().splitlines()
            self.errors.append({"nodeid": report.nodeid, "message": text[-1] if text else "collection failed"})

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self) -> Any:
        # pytest deselects by -k here and raises UsageError for an expression it cannot parse.
        try:
            return (yield)
        except pytest.UsageError as exc:
            self.usage_error = str(exc)
            raise

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = [item.nodeid for item in session.items]


def _collect(root: str, args: list[str], k: str | None = None) -> tuple[_Recorder, int]:
    recorder = _Recorder()
    argv = [*BASE_ARGS, "--rootdir", root, *(["-k", k] if k is not None else []), "--", *args]
    status = int(pytest.main(argv, plugins=[recorder]))
    return recorder, status


def _invalid_k(message: str, expr: str) -> str:
    # pytest says "Wrong expression passed to '-k': EXPR: at column N: ..."; keep what is wrong.
    prefix = f"Wrong expression passed to '-k': {expr}: "
    return "invalid -k expression: " + (message[len(prefix):] if message.startswith(prefix) else message)


def collect(spec: dict[str, Any]) -> dict[str, Any]:
    root = spec["root"]
    out: dict[str, Any] = {"items": [], "k": {}, "errors": [], "failed": None}
    errors: dict[tuple[str, str], None] = {}

    def record(recorder: _Recorder) -> None:
        for e in recorder.errors:
            errors[(e["nodeid"], e["message"])] = None

    if spec["args"]:
        recorder, status = _collect(root, spec["args"])
        record(recorder)
        if recorder.items is None:
            out["failed"] = status
        else:
            out["items"] = recorder.items
    for key, (expr, paths) in spec["k"].items():
        if out["failed"] is not None:
            break
        recorder, status = _collect(root, list(paths), expr)
        record(recorder)
        if recorder.usage_error is not None:
            out["k"][key] = _invalid_k(recorder.usage_error, expr)
        elif recorder.items is None:
            out["failed"] = status
        else:
            out["k"][key] = len(dict.fromkeys(recorder.items))
    out["errors"] = [{"nodeid": n, "message": m} for n, m in errors]
    return out


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
