"""The evidence format: the published schema cannot drift from harness.model, and the record/report
stages turn results into files a reader (and a schema validator) accepts."""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ET
from dataclasses import fields
from datetime import date
from pathlib import Path

import pytest

from harness.execute import run_falsifier, unmet_requirement
from harness.model import (
    Binding,
    BindingKind,
    Contract,
    Deferred,
    Falsifier,
    FalsifierResult,
    Outcome,
    Requirement,
    SourceLocation,
)
from harness.record import (
    build_evidence,
    evidence_dir,
    evidence_problems,
    evidence_schema,
    result_from_dict,
    result_to_dict,
    write_evidence,
)
from harness.report import render_junit, render_summary
from harness.schema import load_schema

HERE = SourceLocation("contracts/x.yaml", 10)


def make_result(outcome: Outcome, **kw: object) -> FalsifierResult:
    values: dict[str, object] = dict(
        id="FALSIFY-X-001",
        contract_id="x-v1",
        invariant=("INV-X-001",),
        outcome=outcome,
        reason="why",
        duration_s=0.25,
        binding=Binding(BindingKind.PYTEST, k="a and b", paths=("tests",), min_tests=2),
        tests_matched=3,
        tests_executed=2,
        counterexample="x=3" if outcome is Outcome.FALSIFIED else None,
    )
    values.update(kw)
    return FalsifierResult(**values)  # type: ignore[arg-type]


def make_contract(*falsifiers: Falsifier) -> Contract:
    return Contract(
        id="x-v1", version="1.2.0", title="t", description="d", path="contracts/x.yaml",
        sha256="a" * 64, invariants=(), falsifiers=falsifiers,
    )


def make_falsifier(fid: str = "FALSIFY-X-001", **kw: object) -> Falsifier:
    values: dict[str, object] = dict(
        id=fid, attacks=("INV-X-001",), prediction="p", if_fails="f",
        binding=Binding(BindingKind.PYTHON, target="math:floor"), location=HERE,
    )
    values.update(kw)
    return Falsifier(**values)  # type: ignore[arg-type]


def sample_evidence(results: list[FalsifierResult], complete: bool = True) -> dict:
    contract = make_contract(*(make_falsifier(r.id) for r in results))
    return build_evidence(
        [contract], {(r.contract_id, r.id): r for r in results}, commit="0123456789abcdef0123456789abcdef01234567",
        dirty=False, complete=complete, started_at="2026-11-24T08:00:00.000+00:00",
        finished_at="2026-11-24T08:00:01.000+00:00", duration_s=1.0, command=["harness", "verify", "contracts"],
        environment={"python": "3.11.7", "os": "Linux", "cpu": "x86_64", "torch": None, "cuda": None, "gpu": None},
    )


# ---------------------------------------------------------------------------------------- drift


def test_schema_outcome_enum_is_the_outcome_enum() -> None:
    assert evidence_schema()["$defs"]["outcome"]["enum"] == [o.value for o in Outcome]


def test_schema_falsifier_entry_is_the_falsifier_result_dataclass() -> None:
    entry = evidence_schema()["$defs"]["falsifier"]
    names = [f.name for f in fields(FalsifierResult)]
    assert list(entry["properties"]) == names
    assert entry["required"] == names
    assert entry["additionalProperties"] is False


def test_schema_binding_is_the_binding_dataclass() -> None:
    binding = evidence_schema()["$defs"]["binding"]
    assert list(binding["properties"]) == [f.name for f in fields(Binding)]
    assert binding["properties"]["kind"]["enum"] == [k.value for k in BindingKind]


def test_schema_totals_count_every_outcome() -> None:
    totals = evidence_schema()["properties"]["totals"]
    assert sorted(totals["required"]) == sorted(o.value for o in Outcome)


def test_evidence_schema_is_published_under_its_name() -> None:
    assert load_schema("evidence") == evidence_schema()
    assert evidence_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_result_serialises_validly_and_round_trips(outcome: Outcome) -> None:
    result = make_result(outcome)
    assert result_from_dict(json.loads(json.dumps(result_to_dict(result)))) == result
    assert evidence_problems(sample_evidence([result])) == []


def test_schema_rejects_a_falsified_entry_without_a_counterexample() -> None:
    evidence = sample_evidence([make_result(Outcome.FALSIFIED, counterexample=None)])
    problems = evidence_problems(evidence)
    assert problems and problems[0].startswith("contracts/0/falsifiers/0/counterexample")


def test_schema_rejects_an_unknown_outcome() -> None:
    evidence = sample_evidence([make_result(Outcome.PASSED)])
    evidence["contracts"][0]["falsifiers"][0]["outcome"] = "probably_fine"
    assert any("probably_fine" in p for p in evidence_problems(evidence))


# ---------------------------------------------------------------------------------------- record


def test_totals_and_order_follow_the_contract_not_completion() -> None:
    results = [make_result(Outcome.PASSED, id="FALSIFY-X-002"), make_result(Outcome.ERROR, id="FALSIFY-X-001")]
    contract = make_contract(make_falsifier("FALSIFY-X-001"), make_falsifier("FALSIFY-X-002"), make_falsifier("FALSIFY-X-003"))
    evidence = build_evidence(
        [contract], {(r.contract_id, r.id): r for r in results}, commit=None, dirty=None, complete=False,
        started_at="2026-11-24T08:00:00+00:00", finished_at="2026-11-24T08:00:01+00:00", duration_s=1,
        command=["harness"], environment={"python": "3", "os": "L", "cpu": "c", "torch": None, "cuda": None, "gpu": None},
    )
    assert [f["id"] for f in evidence["contracts"][0]["falsifiers"]] == ["FALSIFY-X-001", "FALSIFY-X-002"]
    assert evidence["totals"] == {"passed": 1, "falsified": 0, "error": 1, "not_run": 0, "deferred": 0, "flaky": 0, "vacuous": 0}
    assert evidence_problems(evidence) == []


def test_evidence_dir_is_the_commit_or_uncommitted(tmp_path: Path) -> None:
    assert evidence_dir(tmp_path, "ab" * 20) == tmp_path / ("ab" * 20)
    assert evidence_dir(tmp_path, None) == tmp_path / "uncommitted"


def test_write_evidence_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    first = sample_evidence([make_result(Outcome.PASSED)])
    second = sample_evidence([make_result(Outcome.ERROR)])
    write_evidence(tmp_path, first)
    path = write_evidence(tmp_path, second)
    assert json.loads(path.read_text())["totals"]["error"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["evidence.json"]


# ---------------------------------------------------------------------------------------- report


def test_junit_maps_outcomes_to_failure_error_and_skipped() -> None:
    results = [
        make_result(Outcome.PASSED, id="FALSIFY-X-001"),
        make_result(Outcome.FALSIFIED, id="FALSIFY-X-002", reason="AssertionError: no"),
        make_result(Outcome.ERROR, id="FALSIFY-X-003", reason="timed out after 5s"),
        make_result(Outcome.NOT_RUN, id="FALSIFY-X-004", reason="requires CUDA"),
    ]
    root = ET.fromstring(render_junit(sample_evidence(results)))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("4", "1", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["FALSIFY-X-002"].find("failure").text == "x=3"
    assert cases["FALSIFY-X-003"].find("error").get("message") == "timed out after 5s"
    assert cases["FALSIFY-X-004"].find("skipped").get("message") == "not_run: requires CUDA"
    assert list(cases["FALSIFY-X-001"]) == [cases["FALSIFY-X-001"].find("properties")]


def test_summary_flags_an_incomplete_run_and_escapes_table_cells() -> None:
    results = [make_result(Outcome.ERROR, reason="ValueError: a|b")]
    summary = render_summary(sample_evidence(results, complete=False))
    assert "Incomplete" in summary
    assert "ValueError: a\\|b" in summary
    assert "`0123456789ab`" in summary


# ---------------------------------------------------------------------------------------- execute


def test_requirement_reasons() -> None:
    assert unmet_requirement(Requirement()) is None
    assert unmet_requirement(Requirement(packages=("no_such_package_fx",))) == "requires package no_such_package_fx"
    assert unmet_requirement(Requirement(packages=("jsonschema",))) is None
    assert unmet_requirement(Requirement(min_memory_gib=1_000_000)) == "requires 1e+06 GiB memory"
    assert unmet_requirement(Requirement(min_memory_gib=0.001)) is None


def test_cuda_requirement_without_a_gpu_reads_requires_cuda() -> None:
    # CUDA is the machine's (harness.requirements.cuda_facts), not torch's: no GPU listed, "requires CUDA".
    from harness import requirements

    if requirements.machine_cuda().present:
        pytest.skip("this machine has CUDA")
    assert unmet_requirement(Requirement(cuda=True)) == "requires CUDA"


def test_expired_deferral_is_an_error_not_a_quiet_skip(tmp_path: Path) -> None:
    f = make_falsifier(deferred=Deferred(reason="needs data", until=date(2026, 1, 1)))
    r = run_falsifier(f, make_contract(f), tmp_path, today=date(2026, 6, 1))
    assert r.outcome is Outcome.ERROR
    assert "deferral expired on 2026-01-01" in r.reason
    live = run_falsifier(f, make_contract(f), tmp_path, today=date(2025, 12, 31))
    assert live.outcome is Outcome.DEFERRED


def test_python_binding_runs_in_a_child_against_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / "fx_here.py").write_text("import os\ndef check():\n    assert os.getcwd() == 'nowhere', os.getcwd()\n")
    f = make_falsifier(binding=Binding(BindingKind.PYTHON, target="fx_here:check"))
    r = run_falsifier(f, make_contract(f), tmp_path)
    assert r.outcome is Outcome.FALSIFIED
    assert r.counterexample == str(tmp_path)


ENVIRONMENT_CHILD = """\
import json, sys
from harness.environment import collect_environment
env = collect_environment()
print(json.dumps({"facts": {k: env[k] for k in ("torch", "cuda", "gpu", "gpus")}, "imported": "torch" in sys.modules}))
"""


def test_environment_skips_importing_torch_when_no_gpu_is_present() -> None:
    import importlib.metadata
    import subprocess
    import sys

    from tests.cli_env import cli_env

    # A fresh interpreter, where nothing has imported torch yet; CUDA_VISIBLE_DEVICES="" hides any GPU.
    env = cli_env(CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", ENVIRONMENT_CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["imported"] is False
    if importlib.util.find_spec("torch") is None:
        assert got["facts"] == {"torch": None, "cuda": None, "gpu": None, "gpus": []}
    else:
        assert got["facts"] == {"torch": importlib.metadata.version("torch"), "cuda": None, "gpu": None, "gpus": []}


def test_git_state_outside_a_checkout_is_none(tmp_path: Path) -> None:
    from harness.environment import git_state

    assert git_state(tmp_path) == (None, None)
