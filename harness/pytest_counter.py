"""A tiny pytest plugin loaded into the child `python -m pytest` of a pytest binding.

It counts what the bound selection really did (matched, passed, failed, skipped with each skip's
reason) and how the session ended (its exit status; a KeyboardInterrupt or `pytest.exit()` that cut
it short; session.shouldstop/shouldfail), because a pytest exit status of 0 cannot tell "12 tests
passed" from "every test was skipped" or "the session was stopped after the first test" - and a
binding that executed nothing, or not everything it matched, must never count as a pass.

The counts travel through harness.channel: the key is read when pytest imports this plugin (`-p`
plugins are imported before any conftest.py or test module), kept only in a closure, and the record
is signed and appended once to $HARNESS_COUNT_FILE at pytest_unconfigure with the session's final exit
status, which the parent checks against the child's real exit status. A test that writes that file
itself, or calls os._exit before pytest finishes, produces no authentic record: an error, never a pass.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest

from harness import channel, guard_coverage, imported_files

MAX_FAILURE_TEXT = 4000
MAX_REASON_TEXT = 300


def _signer() -> Callable[[str, dict[str, Any], int], None] | None:
    """Read the channel key now and close over it; None outside the harness (or in an xdist worker)."""
    key = channel.receive_key()
    if key is None:
        return None
    send = channel.send

    def write(path: str, result: dict[str, Any], status: int) -> None:
        send(path, key, result, status, exit=False)

    return write


_write = _signer()
# --changed-since: what the session imports, watched from before any conftest.py or test module is imported.
_imports = imported_files.watch() if _write is not None else None
_counts: dict[str, Any] = {
    "collected": 0,
    "passed": 0,
    "failed": 0,
    "skipped": 0,
    "errors": 0,
    "collect_errors": [],
    "failures": [],
    "skips": [],
    "interrupted": None,
    "stopped": None,
    "exitstatus": None,
}
_reported: set[str] = set()
_session: list[pytest.Session] = []


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    text = str(text).removeprefix("Skipped: ")
    if hasattr(report, "wasxfail"):
        text = f"xfail: {report.wasxfail or text}"
    return text[:MAX_REASON_TEXT]


def _test_files(config: pytest.Config) -> list[str]:
    """The collected test modules, every conftest.py loaded (whatever pytest's import mode), and the
    configuration file pytest read (read before this plugin could watch it)."""
    files = [str(item.path) for item in (_session[0].items if _session else ())]
    files += [str(config.inipath)] if config.inipath else []
    return files + [str(getattr(p, "__file__", "")) for p in config.pluginmanager.get_plugins() if getattr(p, "__file__", None)]


def pytest_sessionstart(session: pytest.Session) -> None:
    _session.append(session)


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
            _counts["skips"].append({"nodeid": report.nodeid, "reason": _skip_reason(report)})
    elif report.skipped and report.when == "setup":
        _counts["skipped"] += 1
        _counts["skips"].append({"nodeid": report.nodeid, "reason": _skip_reason(report)})
    elif report.failed:
        # A fixture that breaks in setup/teardown is the binding's error, not a counterexample.
        _counts["errors"] += 1
        _counts["failures"].append(
            {"nodeid": report.nodeid, "when": report.when, "text": report.longreprtext[-MAX_FAILURE_TEXT:]}
        )


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    # Ctrl-C, a test raising KeyboardInterrupt, or pytest.exit() (whatever returncode it asks for).
    _counts["interrupted"] = excinfo.exconly()[:MAX_REASON_TEXT]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stopped = session.shouldstop or session.shouldfail
    if stopped:
        _counts["stopped"] = str(stopped)[:MAX_REASON_TEXT]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    target = os.environ.get("HARNESS_COUNT_FILE")
    if not target or _write is None or hasattr(config, "workerinput") or not _session:
        return
    # Under xdist the controller collects nothing itself; the distinct reported node ids are the matches.
    _counts["collected"] = max(_counts["collected"], len(_reported))
    # The session's final status, after sessionfinish: what `python -m pytest` exits with.
    status = int(_session[0].exitstatus)
    _counts["exitstatus"] = status
    _counts.update(guard_coverage.finish_current())
    if _imports is not None:
        _counts.update(_imports.finish(_test_files(config)))
    _write(target, _counts, status)
