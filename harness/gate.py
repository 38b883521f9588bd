"""The gate: decide from evidence, under a policy, whether a run passes, and its exit status.

A pure function of its inputs (no files, no clock, no environment), so `harness verify`, and later
diff, audit, attest, waivers and sharded runs, all reach the same verdict from the same evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.console import EXIT_INTERRUPTED
from harness.model import Evidence, Outcome

EXIT_OK, EXIT_FAILED = 0, 1

# vacuous: it would have passed without executing the code that upholds its invariant - never a pass.
_FAILING = (Outcome.FALSIFIED, Outcome.ERROR, Outcome.VACUOUS, Outcome.FLAKY)
_UNVERIFIED = (Outcome.NOT_RUN, Outcome.DEFERRED)


@dataclass(frozen=True)
class Policy:
    """What fails the gate besides `falsified`, `error` and `flaky` (which always do)."""

    strict: bool = False  # also fail on not_run and deferred


@dataclass(frozen=True)
class Verdict:
    """The gate's decision: `exit_code` 0 (passes), 1 (fails) or 130 (the run was interrupted);
    `reasons` says why it fails (one line per failing falsifier, or the interruption), `warnings` what a
    passing run must still not be read as (nothing verified)."""

    passed: bool
    exit_code: int
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def verdict(evidence: Evidence, policy: Policy = Policy()) -> Verdict:
    """The gate for `evidence` under `policy`; `harness verify` exits with its `exit_code`."""
    if not evidence.complete:
        return Verdict(False, EXIT_INTERRUPTED, ("the run was interrupted: the evidence is incomplete",))
    failing = _FAILING + (_UNVERIFIED if policy.strict else ())
    reasons = tuple(
        f"{r.id}: {r.outcome.value}: {_first_line(r.reason)}" for r in evidence.results if r.outcome in failing
    )
    if reasons:
        return Verdict(False, EXIT_FAILED, reasons)
    counts = {o: sum(1 for r in evidence.results if r.outcome is o) for o in Outcome}
    if counts[Outcome.PASSED] == 0:
        # Exit 0 (nothing falsified or in error), but it must never read as a pass: said on stderr and in
        # summary.md, and --strict turns it into a failure.
        return Verdict(
            True,
            EXIT_OK,
            warnings=(
                f"no falsifier ran ({counts[Outcome.NOT_RUN]} not_run, {counts[Outcome.DEFERRED]} deferred), so "
                "nothing was verified; run where their requirements are met (see the reasons above), select runnable "
                "falsifiers with -k, or pass --strict to fail such a run",
            ),
        )
    return Verdict(True, EXIT_OK)
