"""Validation and collection stay linear in the number of contracts: the work that is per run (isolated
resolution children, imports) does not grow with the contracts, and the work that is per contract is
done once (each file read once; `-k ONE-ID` builds one item, not one per contract to deselect).

Counted, never timed: benchmarks/bench_validate.py and bench_verify.py measure the times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import harness
import harness.crossref
import harness.plugin
import harness.resolve
import harness.validate
from harness.validate import validate

from tests.harness.verify_support import REPO, contract_text, falsifier, harness_env, make_project


def _contracts(project: Path, count: int) -> None:
    """`count` contracts, each with a python binding, a guard, a pytest node id and a -k binding, each
    depending on the one before (cross-file references resolved among the validated files)."""
    files = {}
    for i in range(count):
        text = contract_text(
            f"s{i}-v1",
            [
                falsifier(f"FALSIFY-S{i}-001", '{python: "fx_falsifiers:holds"}', attacks=f"INV-S{i}-001"),
                falsifier(f"FALSIFY-S{i}-002", '{pytest: "tests/test_bound.py::test_bound_one"}', attacks=f"INV-S{i}-001"),
                falsifier(f"FALSIFY-S{i}-003", '{pytest: {k: "bound_two", paths: [tests]}}', attacks=f"INV-S{i}-001"),
            ],
            invariants=(f"INV-S{i}-001",),
        )
        text = text.replace("    statement: The fixture holds.", "    statement: The fixture holds.\n    guards: [fx_falsifiers:holds]")
        if i:
            text = text.replace("invariants:", f"depends_on: [s{i - 1}-v1]\ninvariants:", 1)
        files[f"s{i}.yaml"] = text
    make_project(project, files)


def _count_children(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    started: list[list[str]] = []
    real = harness.resolve.run_isolated

    def counting(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        started.append(list(argv))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(harness.resolve, "run_isolated", counting)
    return started


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    read: list[Path] = []
    real = harness.validate.load_contract_file

    def counting(path: Any) -> Any:
        read.append(Path(path))
        return real(path)

    # Both places a contract file is read: validate (the files named) and crossref (siblings of a
    # dependency not among them).
    monkeypatch.setattr(harness.validate, "load_contract_file", counting)
    monkeypatch.setattr(harness.crossref, "load_contract_file", counting)
    return read


@pytest.mark.parametrize("count", [2, 12])
def test_resolution_children_do_not_grow_with_the_contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    _contracts(tmp_path, count)
    started = _count_children(monkeypatch)
    reads = _count_reads(monkeypatch)
    contracts, problems = validate([tmp_path / "contracts"])
    assert problems == [] and len(contracts) == count
    # One import child (every python target and guard) and one collection child (every node id and -k)
    # for the repository root, whatever the number of contracts; each file read once.
    assert len(started) == 2, started
    assert sorted(reads) == sorted((tmp_path / "contracts").glob("*.yaml"))


def test_a_dependency_outside_the_named_files_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _contracts(tmp_path, 6)
    reads = _count_reads(monkeypatch)
    named = tmp_path / "contracts" / "s5.yaml"
    contracts, problems = validate([named], check_bindings=False)
    assert problems == [] and [c.id for c in contracts] == ["s5-v1"]
    # s5 depends on s4, which is beside it: the siblings are read (once) to find it.
    assert reads.count(named) == 1 and len(reads) == 6


def test_selecting_one_falsifier_builds_one_item_not_one_per_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_project(tmp_path, {
        f"n{i}.yaml": contract_text(f"n{i}-v1", [falsifier(f"FALSIFY-N{i}-001", '{python: "fx_falsifiers:holds"}', attacks=f"INV-N{i}-001")],
                                    invariants=(f"INV-N{i}-001",))
        for i in range(30)
    })
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("CI", "1")
    reads = _count_reads(monkeypatch)
    built: list[str] = []
    real_items = harness.plugin.ContractFile._items

    def counting_items(self: harness.plugin.ContractFile, contract: Any, root: Path) -> Iterator[Any]:
        for item in real_items(self, contract, root):
            built.append(item.name)
            yield item

    monkeypatch.setattr(harness.plugin.ContractFile, "_items", counting_items)
    evidence = harness.verify(["contracts"], out=None, select=["FALSIFY-N29-001"])
    assert [(r.id, r.outcome.value) for r in evidence.results] == [("FALSIFY-N29-001", "passed")]
    assert built == ["FALSIFY-N29-001"]
    assert len(reads) == 30  # each contract file read once, by the controller


def test_validate_imports_neither_pytest_nor_the_other_commands() -> None:
    # `harness validate` starts as fast as its own work allows: the verify/teeth/replay modules (pytest,
    # the runner) and the --version lookup are not imported, nor jsonschema when the fast path decides.
    code = (
        "import sys\n"
        "before = set(sys.modules)  # whatever the interpreter's start-up (site, .pth files) imported\n"
        "from harness.cli import main\n"
        f"status = main(['validate', '--no-bindings', {str(REPO / 'contracts')!r}])\n"
        "from harness import schema_check\n"
        "heavy = ['pytest', 'harness.pipeline', 'harness.execute', 'harness.teeth_run', 'importlib.metadata']\n"
        "if schema_check.fast_validator() is not None:\n"
        "    heavy.append('jsonschema')\n"
        "print(status, sorted(m for m in heavy if m in sys.modules and m not in before))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=harness_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr
