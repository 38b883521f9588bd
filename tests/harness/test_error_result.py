"""The one `error` result for a falsifier the harness could not get a result from (harness.execute.error_result):
the pipeline's collector records it when the harness around a falsifier's pytest item broke, with the
falsifier's own ids, attacks and binding, so it is never a pass and never missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.execute import error_result
from harness.model import Outcome
from harness.pipeline import Observer, ResultCollector
from harness.validate import validate_report

from tests.harness.verify_support import contract_text, falsifier, make_project


def test_a_failure_around_a_falsifier_is_its_error_result(tmp_path: Path) -> None:
    make_project(tmp_path, {"c.yaml": contract_text("err-v1", [falsifier("FALSIFY-ERR-001", '{python: "fx_falsifiers:holds"}')])})
    (contract,) = validate_report([tmp_path / "contracts"], check_bindings=False).contracts
    (fal,) = contract.falsifiers
    seen = []

    class Seen(Observer):
        def result(self, result):  # type: ignore[no-untyped-def]
            seen.append(result)

    collector = ResultCollector({(contract.id, fal.id): (contract, fal)}, Seen())
    # What pytest reports when the harness's own code around the item raised (no result property on it).
    report = pytest.TestReport(
        nodeid=f"contracts/c.yaml::{fal.id}", location=("contracts/c.yaml", 0, fal.id), keywords={},
        outcome="failed", longrepr="RuntimeError: the plugin broke", when="call", user_properties=[],
    )
    collector.pytest_runtest_logreport(report)
    result = collector.results[(contract.id, fal.id)]
    assert result == error_result(fal, contract, "harness failed around the falsifier: RuntimeError: the plugin broke")
    assert (result.outcome, result.id, result.contract_id, result.invariant) == (Outcome.ERROR, "FALSIFY-ERR-001", "err-v1", ("INV-FX-001",))
    assert result.binding == fal.binding and result.duration_s == 0.0 and seen == [result]
    assert error_result(fal, contract, "lost", duration_s=1.23456).duration_s == 1.235
