"""Every guard named in this repository's contracts has teeth: `harness teeth contracts/` (the library
call) runs each invariant's falsifiers against every mutant of its guards, in copies of the repository,
and no mutant may survive.

A surviving mutant is a falsifier that stays green while the code that upholds its invariant is broken:
its green in the evidence would prove nothing. This replaces the hand-written sabotage this file held
before (eight monkeypatched bugs); `harness teeth` generates a few hundred from the guards' AST instead.
Slow (about 6 minutes on 2 cores, with the fork server): `pytest -m slow tests/test_falsifiers_have_teeth.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import harness

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow(minutes=6)


def test_no_mutant_of_any_guard_survives(tmp_path: Path) -> None:
    result = harness.teeth([ROOT / "contracts"], out=tmp_path, jobs=2)
    assert result.complete
    failed = [f"{b.id}: {b.outcome}: {b.reason[:300]}" for _, b in result.baseline_failures]
    assert not failed, "falsifiers fail on the unmutated code, so their kills mean nothing:\n" + "\n".join(failed)
    survivors = [f"{inv.id}: {m.id} missed by {', '.join(m.missed_by)}\n{m.diff}" for inv, m in result.survivors]
    assert not survivors, f"{len(survivors)} mutants survived:\n" + "\n".join(survivors)
    errors = [f"{inv.id}: {m.id}: {m.reason}" for inv in result.invariants for m in inv.mutants if m.status == "error"]
    assert not errors, "\n".join(errors)
    unmeasurable = [f"{inv.id}: {inv.note}" for inv in result.invariants if not inv.measurable]
    assert not unmeasurable, "every invariant here names guards that can be mutated:\n" + "\n".join(unmeasurable)
    stale = [f"{inv.id}: {s.id}: {s.why}" for inv in result.invariants for s in inv.stale_acknowledgements]
    assert not stale, "\n".join(stale)
    assert result.totals["killed"] > 200, result.totals
