"""The harness's pytest plugin: contract YAML files become pytest items, one per falsifier.

Registered as the `pytest11` entry point `harness`, so an installed harness makes `pytest contracts/`
run falsifiers (`pytest -p harness.plugin contracts/` from a plain checkout). It is inert in any
other pytest run: it only claims YAML files that look like contracts (a top-level `id:` and
`falsifiers:`) or that were named on the command line, and it only deselects items when
`--harness-select` is given.

Each item runs its falsifier through `harness.execute` (in a child process) and attaches the
FalsifierResult as JSON in `report.user_properties`, which pytest-xdist serialises from its workers,
so a `-n N` run still delivers every result to the controller.
"""

from __future__ import annotations

import fnmatch
import json
import os
import pickle
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import escape, rerun
from harness.execute import run_falsifier
from harness.model import Contract, Falsifier, FalsifierResult, Outcome, Problem
from harness.record import result_to_dict

RESULT_PROPERTY = "harness_result"
# `harness verify` validates once, in the controller, and hands the Contract values to this plugin (in
# its own process and in every xdist worker, which get the same arguments) through this file.
CONTRACTS_OPTION = "--harness-contracts"
RERUN_OPTION = "--harness-rerun"
IDS_PROPERTY = "harness_ids"
# The executor's runner for this session (`harness verify --executor ray` sets it, harness.ray_executor);
# items call run_falsifier themselves where none is set.
RUNNER = pytest.StashKey[rerun.Runner]()
CONTRACT_SUFFIXES = (".yaml", ".yml")
_TOP_LEVEL_ID = re.compile(r"^id\s*:", re.MULTILINE)
_TOP_LEVEL_FALSIFIERS = re.compile(r"^falsifiers\s*:", re.MULTILINE)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "contract falsifiers (harness)")
    group.addoption(
        "--harness-select",
        action="append",
        default=[],
        metavar="ID-PATTERN",
        help="run only falsifiers whose id, contract id or attacked invariant id matches this glob or substring "
        "(repeatable; case-insensitive)",
    )
    group.addoption(
        CONTRACTS_OPTION,
        default=None,
        metavar="FILE",
        help="(set by harness verify) the validated contracts to compile, so no session re-reads the files",
    )
    group.addoption(
        RERUN_OPTION,
        type=int,
        default=0,
        metavar="N",
        help="run a falsified or error falsifier up to N more times; differing outcomes are recorded as flaky",
    )


def matches_selection(patterns: Sequence[str], contract: Contract, falsifier: Falsifier) -> bool:
    """True when no patterns are given, or any pattern matches the falsifier id, the contract id or
    an attacked invariant id, as a glob (`FALSIFY-INIT-*`) or a plain substring (`INIT-ARCH`)."""
    if not patterns:
        return True
    return matches_any(patterns, [falsifier.id, contract.id, *falsifier.attacks])


def matches_any(patterns: Sequence[str], names: Sequence[str]) -> bool:
    """True when any pattern matches any name, as a case-insensitive glob or a plain substring."""
    for pattern in patterns:
        p = pattern.lower()
        for name in names:
            n = name.lower()
            if p in n or fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, f"*{p}*"):
                return True
    return False


def looks_like_contract(path: Path) -> bool:
    """A YAML file with a top-level `id:` and `falsifiers:`; other YAML (CI configs, data) is left alone."""
    if path.suffix not in CONTRACT_SUFFIXES:
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
    except OSError:
        return False
    return bool(_TOP_LEVEL_ID.search(head) and _TOP_LEVEL_FALSIFIERS.search(head))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in CONTRACT_SUFFIXES:
        return None
    compiled = _compiled(parent.config)
    if compiled is not None:  # harness verify: exactly the files it validated, those holding a selected falsifier
        pairs = compiled.get(_compiled_key(file_path, compiled))
        if not pairs or not _any_selected(parent.config, pairs):
            return None
        return ContractFile.from_parent(parent, path=file_path)
    if parent.session.isinitpath(file_path) or looks_like_contract(file_path):
        return ContractFile.from_parent(parent, path=file_path)
    return None


def _any_selected(config: pytest.Config, pairs: Sequence[tuple[Contract, Any]]) -> bool:
    """Whether a file's contracts hold a falsifier --harness-select matches. Under harness verify a file
    with none gets no node at all: `-k ONE-ID` among 10,000 contracts builds one file's items, not 10,000
    files' to deselect them (pytest_collection_modifyitems still deselects within the files kept)."""
    patterns = config.getoption("harness_select", default=[]) or []
    return not patterns or any(matches_selection(patterns, contract, f) for contract, _ in pairs for f in contract.falsifiers)


@pytest.hookimpl(tryfirst=True)
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under harness verify, which names the contracts' directories (pytest re-collects a directory
    for each file named in it, so naming N files there costs N^2), collect only the validated contract
    files and the directories on the way to them: no tests, no other files, nothing read twice."""
    compiled = _compiled(config)
    if compiled is None:
        return None
    if _WANTED not in config.stash:
        wanted: set[str] = set()
        for name in compiled:
            wanted.add(name)
            # The directories above it, as strings (10,000 files' parents as Path objects cost seconds);
            # a directory already there has its own parents there too.
            parent = os.path.dirname(name)
            while parent not in wanted:
                wanted.add(parent)
                if os.path.dirname(parent) == parent:
                    break
                parent = os.path.dirname(parent)
        config.stash[_WANTED] = wanted
    return _compiled_key(collection_path, config.stash[_WANTED]) not in config.stash[_WANTED]


class InvalidContract(Exception):
    def __init__(self, problems: Sequence[Problem], others: Sequence[Problem] = ()) -> None:
        lines = [str(p) for p in problems]
        if others:
            lines.append("contract files validated together with this one have problems:")
            lines += [f"  {p}" for p in others]
        super().__init__("\n".join(lines))
        self.problems = tuple(problems)


_VALIDATIONS = pytest.StashKey[dict]()
_SCANS = pytest.StashKey[dict]()
_COMPILED = pytest.StashKey[dict]()
_NAMED = pytest.StashKey[tuple]()
_WANTED = pytest.StashKey[set]()


def _contract_files_under(config: pytest.Config, top: Path) -> tuple[Path, ...]:
    """Every contract file under `top` (hidden directories left out), scanned once per session: each of
    the directory's files asks for its group, and a walk per file made collection quadratic."""
    scans = config.stash.setdefault(_SCANS, {})
    if top not in scans:
        scans[top] = tuple(
            sorted(
                p
                for p in top.rglob("*")
                if p.suffix in CONTRACT_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(top).parts)
                and p.is_file()
                and looks_like_contract(p)
            )
        )
    return scans[top]


def _named(config: pytest.Config) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The command line's contract files and directories, resolved once per session."""
    if _NAMED not in config.stash:
        base = config.invocation_params.dir
        args = [(base / str(a).split("::")[0]).resolve() for a in config.args]
        config.stash[_NAMED] = (
            tuple(a for a in args if a.is_file() and a.suffix in CONTRACT_SUFFIXES),
            tuple(a for a in args if a.is_dir()),
        )
    return config.stash[_NAMED]


def _contract_group(config: pytest.Config, path: Path) -> tuple[Path, ...]:
    """The contract files validated together with `path`, so cross-file checks (`depends_on`,
    `attacks`, unique ids) see the same set as `harness validate`: the contract files named on the
    command line when `path` is one of them, else every contract file under the named directory
    that holds it."""
    named, directories = _named(config)
    if path in named:
        return named
    holders = [a for a in directories if a in path.parents]
    top = max(holders, key=lambda a: len(a.parts)) if holders else path.parent
    scanned = _contract_files_under(config, top)
    return scanned if path in scanned else tuple(sorted((*scanned, path)))


def _validation(
    config: pytest.Config, group: tuple[Path, ...]
) -> tuple[Any, dict[Path, list[tuple[Contract, Path]]], dict[Path, list[Problem]]]:
    """The group's validation, its contracts and its problems by resolved file path; once per group and
    session (each of the group's files asks for its own: looked up, not searched for)."""
    # Imported here so `pytest` runs that never meet a contract file never import the validator.
    from harness.validate import validate_report

    cache = config.stash.setdefault(_VALIDATIONS, {})
    if group not in cache:
        # Bindings are not resolved here: running them is the resolution, and a binding that does not
        # import or match any test becomes that falsifier's `error` with evidence, not a collection error.
        result = validate_report(group, check_bindings=False)
        by_file: dict[Path, list[tuple[Contract, Path]]] = {}
        for contract in result.contracts:
            root = Path(result.roots[contract.id])
            # Resolved already: validate made `path` relative to the resolved root from the resolved file.
            by_file.setdefault(root / contract.path, []).append((contract, root))
        problems_by_file: dict[Path, list[Problem]] = {}
        for problem in result.problems:
            problems_by_file.setdefault(Path(problem.location.path).resolve(), []).append(problem)
        cache[group] = (result, by_file, problems_by_file)
    return cache[group]


def _compiled(config: pytest.Config) -> dict[str, list[tuple[Contract, str]]] | None:
    """The controller's validated contracts by resolved file path (read once per session), or None in
    a plain pytest run, which validates the files itself."""
    source = config.getoption("harness_contracts", default=None)
    if not source:
        return None
    if _COMPILED not in config.stash:
        # Written by harness.pipeline into its own private scratch directory for this very session.
        config.stash[_COMPILED] = pickle.loads(Path(source).read_bytes())
    return config.stash[_COMPILED]


def _compiled_key(path: Path, known: dict[str, Any] | set[str]) -> str:
    """`path` as the controller's contracts name it (resolved); pytest's own paths under the resolved
    directories verify passes are that already, so resolve (a stat per part) only when they differ."""
    name = str(path)
    return name if name in known else str(path.resolve())


class ContractFile(pytest.File):
    """One contract YAML file; its falsifiers are the items."""

    def collect(self) -> Iterator[pytest.Item]:
        compiled = _compiled(self.config)
        if compiled is not None and _compiled_key(self.path, compiled) in compiled:
            for contract, root in compiled[_compiled_key(self.path, compiled)]:
                yield from self._items(contract, Path(root))
            return
        me = self.path.resolve()
        result, by_file, problems_by_file = _validation(self.config, _contract_group(self.config, me))
        if result.problems:
            mine = problems_by_file.get(me, [])
            others = [p for p in result.problems if p not in mine]
            raise InvalidContract(mine, others)
        for contract, root in by_file.get(me, []):
            yield from self._items(contract, root)

    def _items(self, contract: Contract, root: Path) -> Iterator[pytest.Item]:
        for falsifier in contract.falsifiers:
            yield FalsifierItem.from_parent(self, name=falsifier.id, contract=contract, falsifier=falsifier, repo_root=root)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, InvalidContract):
            return escape.printable(
                f"{excinfo.value}\nfix the contract, then check it with `harness validate {self.path}`", keep="\n\t"
            )
        return str(super().repr_failure(excinfo))


class FalsifierOutcome(Exception):
    """Raised by an item whose falsifier was falsified or broke; carries the result for the report."""

    def __init__(self, result: FalsifierResult) -> None:
        super().__init__(result.reason)
        self.result = result


class FalsifierItem(pytest.Item):
    def __init__(self, *, contract: Contract, falsifier: Falsifier, repo_root: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contract = contract
        self.falsifier = falsifier
        self.repo_root = repo_root
        # So plain `pytest -k INV-...` and `-k <contract id>` select falsifiers too.
        self.extra_keyword_matches.update({contract.id, *falsifier.attacks})

    def setup(self) -> None:
        self.user_properties.append((IDS_PROPERTY, json.dumps([self.contract.id, self.falsifier.id])))

    def runtest(self) -> None:
        times = int(self.config.getoption("harness_rerun", default=0) or 0)
        run = self.config.stash.get(RUNNER, run_falsifier)
        result = rerun.run_with_reruns(self.falsifier, self.contract, self.repo_root, times, run)
        self.user_properties.append((RESULT_PROPERTY, json.dumps(result_to_dict(result))))
        if result.outcome is Outcome.PASSED:
            return
        if result.outcome in (Outcome.FALSIFIED, Outcome.ERROR, Outcome.VACUOUS, Outcome.FLAKY):
            raise FalsifierOutcome(result)
        pytest.skip(escape.terminal(f"{result.outcome.value}: {result.reason}"))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, FalsifierOutcome):
            r = excinfo.value.result
            text = [f"{r.outcome.value.upper()} {r.id} ({r.binding.describe()}): {r.reason}"]
            if r.counterexample:
                text += ["counterexample:", r.counterexample]
            if r.outcome is Outcome.FALSIFIED:
                text.append(f"if it fails: {self.falsifier.if_fails}")
            # pytest prints this on the terminal: the falsifier's text must not drive it.
            return escape.printable("\n".join(text), keep="\n\t")
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        return self.path, max(self.falsifier.location.line - 1, 0), f"{self.contract.id}::{self.falsifier.id}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    compiled = _compiled(config)
    if compiled is not None:
        # Run in the order harness verify validated the files (the order its PATHs name them), not
        # pytest's directory order; items of one file keep their order (the sort is stable).
        order = {name: i for i, name in enumerate(compiled)}
        items.sort(key=lambda item: order.get(_compiled_key(item.path, order), len(order)))
    patterns = config.getoption("harness_select", default=[]) or []
    if not patterns:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if isinstance(item, FalsifierItem) and not matches_selection(patterns, item.contract, item.falsifier):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def report_properties(user_properties: Iterable[Any]) -> dict[str, str]:
    """user_properties as a dict; xdist turns the (name, value) tuples into lists on the way."""
    return {str(p[0]): p[1] for p in user_properties if len(p) == 2}
