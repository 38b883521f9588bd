"""`harness verify -j N`'s pytest-xdist scheduler: one falsifier at a time per idle worker, longest first.

xdist's default `load` distribution sends items in chunks in file order, which balances falsifiers of
very unequal length badly, and knows nothing of `exclusive` or `gpus`. This plugin (loaded by
harness.pipeline for -j > 1, in the controller and in every worker) answers xdist's own extension point,
`pytest_xdist_make_scheduler`, with `FalsifierScheduling`, which asks `harness.scheduling.next_assignments`
what each idle worker starts next.

One detail of xdist's worker loop shapes this: a worker starts an item only once it holds the next one
(or the shutdown signal), for fixture teardown. Falsifier items have no fixtures, so every dispatch is
the falsifier followed by a no-op *spacer* item: the worker starts the falsifier at once and, when it
is done, waits on the spacer until the scheduler decides what it runs next. So the scheduler always
knows exactly which falsifiers are running, which `exclusive` and `gpus` need.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.scheduling import Task, lpt_order, next_assignments

SCHEDULE_OPTION = "--harness-schedule"
SPACER_PREFIX = "harness-spacer-"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("harness").addoption(
        SCHEDULE_OPTION,
        default=None,
        metavar="FILE",
        help="(set by harness verify -j N) the recorded durations the parallel run is ordered by",
    )


class Spacer(pytest.Item):
    """Holds a worker between two falsifiers (see the module docstring); runs nothing, reports nothing."""

    def runtest(self) -> None:
        pass


def is_spacer(nodeid: str) -> bool:
    return nodeid.rsplit("::", 1)[-1].startswith(SPACER_PREFIX)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """After harness.plugin ordered and selected the falsifiers: spacers at the end, one per dispatch the
    run can make (every falsifier once, plus one per worker restart xdist allows)."""
    if not config.getoption("harness_schedule", default=None) or not items:
        return
    parent = items[0].parent or session
    count = 2 * len(items) + 16
    items.extend(Spacer.from_parent(parent, name=f"{SPACER_PREFIX}{i}") for i in range(count))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if not config.getoption("harness_schedule", default=None):
        return None
    return FalsifierScheduling(config, log)


def _tasks(config: pytest.Config) -> dict[str, Task]:
    """Falsifier id -> Task, from the controller's validated contracts and the schedule file."""
    from harness.plugin import _compiled

    plan = json.loads(Path(config.getoption("harness_schedule")).read_text(encoding="utf-8"))
    durations = {(d[0], d[1]): float(d[2]) for d in plan.get("durations", [])}
    tasks: dict[str, Task] = {}
    for pairs in (_compiled(config) or {}).values():
        for contract, _root in pairs:
            for f in contract.falsifiers:
                key = (contract.id, f.id)
                # Falsifier ids are unique across the validated contracts (harness.crossref).
                tasks[f.id] = Task(key, durations.get(key), f.exclusive, f.gpus, f.requires.cuda)
    return tasks


class FalsifierScheduling:
    """xdist's scheduler protocol (see xdist.scheduler.LoadScheduling, whose collection checks this follows)."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        from xdist.remote import Producer
        from xdist.workermanage import parse_tx_spec_config

        self.config = config
        self.numnodes = len(parse_tx_spec_config(config))
        self.log = Producer("harnesssched") if log is None else log.harnesssched
        self.node2collection: dict[Any, list[str]] = {}
        self.node2pending: dict[Any, list[int]] = {}
        self.running: dict[Any, int] = {}  # node -> the falsifier index it runs
        self.collection: list[str] | None = None
        self.queue: list[int] = []  # falsifier indices not yet sent, in run order
        self.spacers: list[int] = []
        self.tasks: dict[int, Task] = {}
        from harness.requirements import gpu_count

        self.gpus = gpu_count()

    # -- the protocol's properties

    @property
    def nodes(self) -> list[Any]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed or self.collection is None or self.queue:
            return False
        return not self.running

    @property
    def has_pending(self) -> bool:
        return bool(self.queue) or any(self.node2pending.values())

    # -- nodes and collections

    def add_node(self, node: Any) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        assert node in self.node2pending
        if self.collection is not None and list(collection) != self.collection:
            from xdist.report import report_collection_diff

            self.log(report_collection_diff(self.collection, list(collection), "controller", node.gateway.id))
            return
        self.node2collection[node] = list(collection)

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is None:
            collections = list(self.node2collection.values())
            if any(c != collections[0] for c in collections[1:]):
                self._report_different_collections()
                return
            self.collection = collections[0]
            by_id = _tasks(self.config)
            real: list[Task] = []
            index_of: dict[Any, int] = {}
            for index, nodeid in enumerate(self.collection):
                if is_spacer(nodeid):
                    self.spacers.append(index)
                    continue
                # A nodeid xdist made up for something that is no falsifier: run it, last, like any other.
                task = by_id.get(nodeid.rsplit("::", 1)[-1]) or Task(("", nodeid))
                self.tasks[index] = task
                index_of[id(task)] = index
                real.append(task)
            self.queue = [index_of[id(t)] for t in lpt_order(real)]
        self._dispatch()

    def _report_different_collections(self) -> None:
        from xdist.report import report_collection_diff

        (first, col), *others = self.node2collection.items()
        for node, collection in others:
            msg = report_collection_diff(col, collection, first.gateway.id, node.gateway.id)
            if msg:
                self.log(msg)
                self.config.hook.pytest_collectreport(
                    report=pytest.CollectReport(nodeid=node.gateway.id, outcome="failed", longrepr=msg, result=[])
                )

    def _dispatch(self) -> None:
        if self.collection is None:
            return
        idle = [n for n in self.node2pending if n not in self.running and not n.shutting_down and n in self.node2collection]
        running = [self.tasks[i] for i in self.running.values()]
        queued = [self.tasks[i] for i in self.queue]
        assignments = next_assignments(queued, running, idle, self.gpus)
        started = {id(task) for _, task in assignments}
        index_of = {id(self.tasks[i]): i for i in self.queue}
        self.queue = [i for i in self.queue if id(self.tasks[i]) not in started]
        for node, task in assignments:
            index = index_of[id(task)]
            self.running[node] = index
            batch = [index, self.spacers.pop()] if self.spacers else [index]
            self.node2pending[node].extend(batch)
            node.send_runtest_some(batch)
            if len(batch) == 1:
                node.shutdown()  # no spacer left (cannot happen within xdist's restart limit): let it run and end
        if not self.queue:
            for node in self.node2pending:
                if node not in self.running and not node.shutting_down:
                    node.shutdown()

    # -- progress

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)
        if self.running.get(node) == item_index:
            del self.running[node]
            self._dispatch()

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self.queue.insert(0, self.collection.index(item))
        self._dispatch()

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        raise NotImplementedError()

    def remove_node(self, node: Any) -> str | None:
        """A worker ended: at shutdown with nothing pending, or crashed (its running falsifier is the crash
        item xdist reports as failed, which the harness records as that falsifier's error)."""
        self.node2pending.pop(node, None)
        index = self.running.pop(node, None)
        self._dispatch()
        return None if index is None or self.collection is None else self.collection[index]
