"""The one clock the harness reads dates from.

A deferral's `until` is a calendar date, and "has it expired?" must have one answer at any instant:
validate and verify both ask `today()`, which is the UTC date, whatever the machine's time zone.
(Read from the local clock, a deferral expiring today was an exit-2 validation problem on one side
of midnight UTC and a falsifier `error` on the other, depending on where the machine stood.)
"""

from __future__ import annotations

from datetime import date, datetime, timezone


def today() -> date:
    """Today's date in UTC: the date `deferred.until` is compared with."""
    return datetime.now(timezone.utc).date()
