"""A tiny pytest plugin loaded into the child `python -m pytest` of a pytest binding (beside
harness.pytest_counter): hypothesis prints its reproduction blob, and under `harness replay` the
recorded blobs are applied to the failing tests, by node id (harness.replay_child does the work)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from harness import replay_child


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # trylast: after the project's conftest files and hypothesis's own plugin chose their profile.
    replay_child.prepare()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    replay = replay_child.requested()
    if replay is None:
        return
    by_id = {item.nodeid: item for item in items}
    applied: list[str] = []
    not_applied: dict[str, str] = {}
    for example in replay.get("examples", []):
        nodeid, blob = example["test"], example.get("blob")
        item = by_id.get(nodeid)
        test = getattr(item, "obj", None)
        if not blob:
            not_applied[nodeid] = "hypothesis printed no blob for it"
        elif item is None:
            not_applied[nodeid] = "no such test was collected"
        elif not (callable(test) and hasattr(test, "hypothesis")):
            not_applied[nodeid] = "it is not a hypothesis @given test"
        else:
            try:
                item.obj = replay_child.reproducing(test, replay["hypothesis_version"], blob)  # type: ignore[attr-defined]
            except ValueError as exc:
                not_applied[nodeid] = str(exc)
                continue
            applied.append(nodeid)
    replay_child.report(applied, not_applied)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    yield
    if call.when == "call" and call.excinfo is not None and replay_child.requested() is not None:
        from hypothesis.errors import DidNotReproduce

        replay_child.failed(item.nodeid, call.excinfo.errisinstance(DidNotReproduce))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if replay_child.requested() is not None:
        replay_child.report()
