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
    # A release accepts only the commit's own fresh full evidence: no result carried over from another
    # commit (`--changed-since`), no partial run. A pull-request gate may accept carried results.
    release: bool = False


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


def release_reasons(evidence: Evidence) -> tuple[str, ...]:
    """Why `evidence` cannot back a release: each carried-over result (naming its source commit), and a
    run that was restricted in any way (-k, --changed-since, a shard)."""
    reasons = tuple(
        f"{r.id}: carried over from {r.carried_from[:12]} (--changed-since), not run at this commit; "
        "a release needs every falsifier run fresh"
        for r in evidence.results if r.carried_from is not None
    )
    selection = evidence.selection
    if selection:
        what = ", ".join(f"{k}={v if isinstance(v, str) else ' '.join(map(str, v))}" for k, v in selection.items())
        reasons += (f"the run was restricted ({what}): a release needs the commit's full evidence",)
    return reasons


def verdict(evidence: Evidence, policy: Policy = Policy()) -> Verdict:
    """The gate for `evidence` under `policy`; `harness verify` exits with its `exit_code`."""
    if not evidence.complete:
        return Verdict(False, EXIT_INTERRUPTED, ("the run was interrupted: the evidence is incomplete",))
    failing = _FAILING + (_UNVERIFIED if policy.strict else ())
    reasons = tuple(
        f"{r.id}: {r.outcome.value}: {_first_line(r.reason)}" for r in evidence.results if r.outcome in failing
    )
    if policy.release:
        reasons += release_reasons(evidence)
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
