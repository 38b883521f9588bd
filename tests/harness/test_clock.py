"""One clock for deferrals: `deferred.until` is compared with the UTC date by validate and by verify
alike, so a deferral cannot be an exit-2 validation problem and a falsifier `error` (or neither) at
the same instant depending on the machine's time zone."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from harness import clock
from harness.execute import run_falsifier
from harness.model import Binding, BindingKind, Contract, Deferred, Falsifier, Outcome, SourceLocation
from harness.validate import validate

CONTRACT = """\
id: clock-v1
version: 1.0.0
title: Clock
invariants:
  - {id: INV-CLOCK-001, kind: safety, statement: It holds.}
falsifiers:
  - id: FALSIFY-CLOCK-001
    attacks: [INV-CLOCK-001]
    prediction: holds.
    if_fails: it does not.
    binding: {python: "math:floor"}
    deferred: {reason: waits for data, until: UNTIL}
"""

# Each case: the instant (UTC), a zone whose local date differs from the UTC date then, the deferral's
# `until`, and whether it has expired. Decided by the UTC date, never by the local one.
CASES = [
    # 23:30 UTC on 1 December is already 2 December at UTC+14: expiring "today" (UTC) is still live.
    pytest.param(datetime(2026, 12, 1, 23, 30, tzinfo=timezone.utc), "Etc/GMT-14", "2026-12-01", False, id="local-ahead"),
    # 05:00 UTC on 2 December is still 1 December at UTC-12: a deferral until 1 December has expired.
    pytest.param(datetime(2026, 12, 2, 5, 0, tzinfo=timezone.utc), "Etc/GMT+12", "2026-12-01", True, id="local-behind"),
]


def _falsifier(until: str) -> Falsifier:
    return Falsifier(
        id="FALSIFY-CLOCK-001", attacks=("INV-CLOCK-001",), prediction="holds.", if_fails="it does not.",
        binding=Binding(BindingKind.PYTHON, target="math:floor"), location=SourceLocation("contracts/clock.yaml", 7),
        deferred=Deferred(reason="waits for data", until=datetime.fromisoformat(until).date()),
    )


@pytest.mark.parametrize(("instant", "zone", "until", "expired"), CASES)
def test_validate_and_execute_agree_on_a_deferral_at_the_utc_day_boundary(
    tmp_path: Path, instant: datetime, zone: str, until: str, expired: bool
) -> None:
    path = tmp_path / "contracts" / "clock.yaml"
    path.parent.mkdir()
    path.write_text(CONTRACT.replace("UNTIL", until))
    falsifier = _falsifier(until)
    contract = Contract(id="clock-v1", version="1.0.0", title="Clock", description="", path="contracts/clock.yaml",
                        sha256="0" * 64, invariants=(), falsifiers=(falsifier,))
    # A zoned destination makes time-machine set the local time zone (TZ) too, and restore it after.
    with time_machine.travel(instant.astimezone(ZoneInfo(zone)), tick=False):
        assert datetime.now().date() != instant.date(), "the case must put the local date on the other side"
        assert clock.today() == instant.date()
        _, problems = validate([path], check_bindings=False)
        result = run_falsifier(falsifier, contract, tmp_path)
    messages = [p.message for p in problems]
    if expired:
        assert len(messages) == 1 and messages[0].startswith(f"deferral expired on {until}"), messages
        assert result.outcome is Outcome.ERROR and result.reason.startswith(f"deferral expired on {until}")
    else:
        assert messages == []
        assert (result.outcome, result.reason) == (Outcome.DEFERRED, f"deferred until {until}: waits for data")
