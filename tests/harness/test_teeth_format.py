"""teeth.json's schema and the dataclasses in harness.teeth_run are one format; mutants are minimal, readable
edits with ids that survive unrelated edits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from harness import mutate
from harness import teeth_run as teeth
from harness.guards import GuardSite
from harness.schema import load_schema
from harness.teeth_record import TeethError, read_teeth, teeth_problems, teeth_to_dict, write_teeth

from tests.cli_env import cli_env

SOURCE = textwrap.dedent(
    '''\
    import os  # a comment that must stay


    def check(size, limit, strict=False):
        """Refuse what is too big."""
        # why: the limit is inclusive
        if size > limit and strict:
            raise ValueError(f"{size} > {limit}")
        return size in (0, 1) or size <= 4096
    '''
)


def test_schema_properties_are_the_dataclass_fields() -> None:
    schema = load_schema("teeth")
    defs = schema["$defs"]
    assert list(schema["properties"]) == [f.name for f in fields(teeth.Teeth)]
    pairs = {
        "contract": teeth.ContractDigest, "guard": GuardSite, "baseline": teeth.BaselineRun,
        "mutant": teeth.MutantResult, "stale": teeth.StaleAcknowledgement, "invariant": teeth.InvariantTeeth,
    }
    for name, cls in pairs.items():
        assert list(defs[name]["properties"]) == [f.name for f in fields(cls)], name
    assert defs["mutant"]["properties"]["status"]["enum"] == list(teeth.STATUSES)
    assert defs["mutant"]["properties"]["operator"]["enum"] == list(mutate.OPERATORS)
    assert set(schema["properties"]["totals"]["required"]) >= set(teeth.STATUSES)


def _sample() -> teeth.Teeth:
    m = mutate.mutants(SOURCE, "pkg/mod.py", "pkg.mod:check", "check").mutants[0]
    mutant = teeth.MutantResult(
        id=m.id, guard=m.guard, function=m.function, operator=m.operator, path=m.path, line=m.line, diff=m.diff,
        status=teeth.SURVIVED, reason="every falsifier passed", missed_by=("FALSIFY-X-001",), duration_s=1.5,
    )
    inv = teeth.InvariantTeeth(
        contract_id="c-v1", id="INV-X-001", measurable=True, note=None,
        guards=(GuardSite("pkg.mod:check", "resolved", None, "pkg/mod.py", "check", (4, 9)),
                GuardSite("json:dumps", "skipped", "outside the repository")),
        falsifiers=(teeth.BaselineRun("FALSIFY-X-001", "c-v1", "passed", "ok", 0.5, True),),
        mutants=(mutant,), not_compiling=1,
        stale_acknowledgements=(teeth.StaleAcknowledgement("pkg.mod:check/return_none/00000000", "r", "it matches no mutant"),),
    )
    invariants = (inv,)
    return teeth.Teeth(
        schema_version=1, harness_version="0.1.0", commit=None, dirty=None, complete=True,
        started_at="2026-12-01T00:00:00.000+00:00", finished_at="2026-12-01T00:00:01.000+00:00", duration_s=1.0,
        command=("harness", "teeth", "contracts/"), selection=(),
        contracts=(teeth.ContractDigest("c-v1", "1.0.0", "contracts/c.yaml", "0" * 64),),
        invariants=invariants, totals=teeth.count_totals(invariants),
    )


def test_teeth_round_trips_through_teeth_json(tmp_path: Path) -> None:
    sample = _sample()
    assert teeth_problems(teeth_to_dict(sample)) == []
    write_teeth(tmp_path, sample)
    assert read_teeth(tmp_path) == sample
    assert sample.survivors and sample.totals["survived"] == 1 and sample.totals["not_compiling"] == 1
    summary = (tmp_path / "teeth.md").read_text()
    assert "## Survivors" in summary and "Missed by: FALSIFY-X-001" in summary


def test_reading_a_broken_teeth_file_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TeethError, match="holds no teeth.json"):
        read_teeth(tmp_path)
    (tmp_path / "teeth.json").write_text("{not json")
    with pytest.raises(TeethError, match=r"teeth.json:1: not JSON"):
        read_teeth(tmp_path)
    (tmp_path / "teeth.json").write_text(json.dumps({**teeth_to_dict(_sample()), "totals": {}}))
    with pytest.raises(TeethError, match="not a teeth file: totals"):
        read_teeth(tmp_path)


def test_the_teeth_schema_is_published() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "schema", "teeth"], env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout) == load_schema("teeth")


def _by_operator(found: mutate.Mutations) -> dict[str, list[mutate.Mutant]]:
    out: dict[str, list[mutate.Mutant]] = {}
    for m in found.mutants:
        out.setdefault(m.operator, []).append(m)
    return out


def test_every_operator_makes_a_minimal_edit_that_keeps_comments_and_lines() -> None:
    found = mutate.mutants(SOURCE, "pkg/mod.py", "pkg.mod:check", "check")
    ops = _by_operator(found)
    assert set(ops) == set(mutate.OPERATORS)
    changed = {
        op: [line for m in ms for line in m.diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
        for op, ms in ops.items()
    }
    assert changed["remove_raise"] == ["+        pass"]
    assert changed["return_first_arg"] == ["+    return size"]
    assert changed["return_none"] == ["+    return None"]
    assert "+    if size <= limit and strict:" in changed["negate_compare"]
    assert "+    return size not in (0, 1) or size <= 4096" in changed["negate_compare"]
    assert "+    return size in (0, 1) or size > 4096" in changed["negate_compare"]
    assert changed["swap_boolop"] == ["+    if size > limit or strict:", "+    return size in (0, 1) and size <= 4096"]
    assert changed["constant_plus_one"] == ["+    return size in (0, 1) or size <= 4097"]
    assert changed["constant_minus_one"] == ["+    return size in (0, 1) or size <= 4095"]
    for m in found.mutants:
        # one span changed, the docstring and comments kept, everything else byte for byte
        assert "# a comment that must stay" in m.mutated_source and "# why: the limit is inclusive" in m.mutated_source
        assert m.mutated_source.startswith(SOURCE.split("def check")[0])
        compile(m.mutated_source, m.path, "exec")
    assert "return_none" in ops and '"""Refuse what is too big."""' in ops["return_none"][0].mutated_source


def test_mutant_ids_survive_unrelated_edits() -> None:
    before = mutate.mutants(SOURCE, "pkg/mod.py", "pkg.mod:check", "check")
    edited = "# a new header line\n\n\ndef helper():\n    return 1 < 2\n\n\n" + SOURCE
    after = mutate.mutants(edited, "pkg/mod.py", "pkg.mod:check", "check")
    assert [m.id for m in before.mutants] == [m.id for m in after.mutants]
    assert len({m.id for m in before.mutants}) == len(before.mutants)
    assert all(a.line == b.line + 7 for a, b in zip(after.mutants, before.mutants))


def test_a_class_guard_mutates_every_method_in_its_body() -> None:
    source = "class C:\n    def a(self, x):\n        return x > 1\n\n    @staticmethod\n    def b(y):\n        return y\n"
    found = mutate.mutants(source, "m.py", "m:C", "C")
    assert found.functions == ("C.a", "C.b")
    assert {m.function for m in found.mutants} == {"C.a", "C.b"}
    with pytest.raises(mutate.GuardNotFound):
        mutate.mutants(source, "m.py", "m:C.z", "C.z")


def test_mutant_timeout_scales_with_the_baseline_and_never_exceeds_timeout_s() -> None:
    assert teeth.mutant_timeout(0.5, 60) == 10
    assert teeth.mutant_timeout(20, 300) == 65
    assert teeth.mutant_timeout(20, 30) == 30
