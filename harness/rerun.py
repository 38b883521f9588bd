"""`harness verify --rerun N`: a failing falsifier run again, and `flaky` when its attempts disagree.

Done where the item runs (harness.plugin, in the pytest process or the xdist worker that owns it), so
it works the same under `-j N`. A falsified or error result is run again up to N more times, stopping
at the first attempt whose outcome differs: then the result is `flaky`, never `passed`, whatever the
last attempt said. When every attempt agrees the first result stands. Either way each attempt's outcome,
reason and duration is recorded in `FalsifierResult.attempts`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from harness.model import Attempt, Contract, Falsifier, FalsifierResult, Outcome

RERUN_OUTCOMES = (Outcome.FALSIFIED, Outcome.ERROR)
Runner = Callable[[Falsifier, Contract, Path], FalsifierResult]


def _attempt(result: FalsifierResult) -> Attempt:
    return Attempt(result.outcome, result.reason, result.duration_s)


def flaky_reason(attempts: tuple[Attempt, ...]) -> str:
    """`flaky: falsified, then passed (2 attempts)` plus the first attempt's reason."""
    seen = ", then ".join(a.outcome.value for a in attempts)
    first = attempts[0].reason.splitlines()[0] if attempts[0].reason else ""
    return f"flaky: {seen} ({len(attempts)} attempts); attempt 1: {first}"


def run_with_reruns(falsifier: Falsifier, contract: Contract, repo_root: Path, rerun: int, run: Runner) -> FalsifierResult:
    """`run(falsifier, contract, repo_root)`, and up to `rerun` more times while it keeps failing the same way."""
    first = run(falsifier, contract, repo_root)
    if rerun < 1 or first.outcome not in RERUN_OUTCOMES:
        return first
    attempts = [_attempt(first)]
    for _ in range(rerun):
        again = run(falsifier, contract, repo_root)
        attempts.append(_attempt(again))
        if again.outcome is not first.outcome:
            break
    recorded = tuple(attempts)
    duration = round(sum(a.duration_s for a in recorded), 3)
    if all(a.outcome is first.outcome for a in recorded):
        return dataclasses.replace(first, attempts=recorded, duration_s=duration)
    # The first failure's counterexample and replay stay: they are what to look at (and replay).
    return dataclasses.replace(first, outcome=Outcome.FLAKY, reason=flaky_reason(recorded), attempts=recorded, duration_s=duration)
