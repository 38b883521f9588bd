"""A tiny pytest plugin loaded into the child `python -m pytest` of a pytest binding.

It counts what the bound selection really did (matched, passed, failed, skipped) and writes that
as JSON to $HARNESS_COUNT_FILE, because a pytest exit status of 0 cannot tell "12 tests passed"
from "every test was skipped" - and a binding that executed nothing must never count as a pass.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from harness import guard_coverage
from harness.atomic import write_atomic

MAX_FAILURE_TEXT = 4000

_counts: dict[str, Any] = {
    "collected": 0,
    "passed": 0,
    "failed": 0,
    "skipped": 0,
    "errors": 0,
    "collect_errors": [],
    "failures": [],
}
_reported: set[str] = set()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _counts["collect_errors"].append(f"{report.nodeid}: {report.longreprtext[-MAX_FAILURE_TEXT:]}")


def pytest_collection_finish(session: pytest.Session) -> None:
    _counts["collected"] = len(session.items)
    # Vacuity: measure the guards from here (the bound test modules are imported) to the session's end.
    guard_coverage.start_from_env()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _reported.add(report.nodeid)
    if report.when == "call":
        if report.passed:
            _counts["passed"] += 1
        elif report.failed:
            _counts["failed"] += 1
            _counts["failures"].append({"nodeid": report.nodeid, "text": report.longreprtext[-MAX_FAILURE_TEXT:]})
        elif report.skipped:
            _counts["skipped"] += 1
    elif report.skipped and report.when == "setup":
        _counts["skipped"] += 1
    elif report.failed:
        # A fixture that breaks in setup/teardown is the binding's error, not a counterexample.
        _counts["errors"] += 1
        _counts["failures"].append(
            {"nodeid": report.nodeid, "when": report.when, "text": report.longreprtext[-MAX_FAILURE_TEXT:]}
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("HARNESS_COUNT_FILE")
    if not target or hasattr(session.config, "workerinput"):
        return
    # Under xdist the controller collects nothing itself; the distinct reported node ids are the matches.
    _counts["collected"] = max(_counts["collected"], len(_reported))
    _counts["exitstatus"] = int(exitstatus)
    _counts.update(guard_coverage.finish_current())
    write_atomic(target, json.dumps(_counts))
