"""The gate: decide from evidence, under a policy, whether a run passes, and its exit status.

A pure function of its inputs (no files, no clock, no environment), so `harness verify`, and later
diff, audit, attest, waivers and sharded runs, all reach the same verdict from the same evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from harness.console import EXIT_INTERRUPTED
from harness.model import Evidence, FalsifierResult, Outcome, Waiver

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
    # The date the evidence's waivers are judged on (harness.clock.today() in the CLIs): a waiver applies
    # through its `expires` day. None: the waivers are not applied (a failure stays a reason), since
    # without a date an expired waiver could not be told apart from one in force.
    today: date | None = None


# A waiver this close to its expiry is named in Verdict.expiring, and shown as expiring by verify and diff.
EXPIRING_DAYS = 14


def is_expired(waiver: Waiver, today: date) -> bool:
    """`expires` is the last day a waiver is in force."""
    return waiver.expires < today


def is_expiring(waiver: Waiver, today: date) -> bool:
    """In force, and expiring within EXPIRING_DAYS of `today`."""
    return not is_expired(waiver, today) and waiver.expires <= today + timedelta(days=EXPIRING_DAYS)


@dataclass(frozen=True)
class Verdict:
    """The gate's decision: `exit_code` 0 (passes), 1 (fails) or 130 (the run was interrupted);
    `reasons` says why it fails (one line per failing falsifier, or the interruption), `warnings` what a
    passing run must still not be read as (nothing verified)."""

    passed: bool
    exit_code: int
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # The failing results an unexpired waiver in the evidence accepted (not reasons; their true outcome
    # stays in the evidence), one line each naming the waiver; and the waivers in force that expire
    # within EXPIRING_DAYS of Policy.today.
    waived: tuple[str, ...] = ()
    expiring: tuple[str, ...] = ()


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


# How every reason and warning about a waiver itself (not a falsifier) begins.
WAIVER_REASON = "waiver "


def _waiver_label(w: Waiver) -> str:
    return f"{WAIVER_REASON}{w.falsifier} ({w.location})"


def _apply_waivers(
    evidence: Evidence, failing: list[FalsifierResult], today: date | None
) -> tuple[list[str], list[str], list[str], list[str], list[FalsifierResult]]:
    """(reasons, warnings, waived, expiring, the failures still failing) for the evidence's waivers."""
    reasons: list[str] = []
    warnings: list[str] = []
    waived: list[str] = []
    expiring: list[str] = []
    if not evidence.waivers:
        return reasons, warnings, waived, expiring, failing
    if today is None:
        warnings.append(
            f"{len(evidence.waivers)} waiver(s) recorded but not applied: the policy has no date to judge their "
            "expiry by (Policy(today=...))"
        )
        return reasons, warnings, waived, expiring, failing
    in_force = [w for w in evidence.waivers if not is_expired(w, today)]
    for w in evidence.waivers:
        if is_expired(w, today):
            reasons.append(
                f"{_waiver_label(w)} expired on {w.expires.isoformat()} (owner: {w.owner}): fix the falsifier and "
                "remove the waiver, or renew it with a new expires: and reason"
            )
        elif is_expiring(w, today):
            days = (w.expires - today).days
            expiring.append(f"{_waiver_label(w)} expires on {w.expires.isoformat()}, in {days} day{'s' if days != 1 else ''} (owner: {w.owner})")
        matched = [r for r in evidence.results if w.matches(r.id)]
        if not matched:
            # A partial run (-k, a shard) holds only some falsifiers: there `harness validate` is the check.
            message = f"{_waiver_label(w)} matches no falsifier in the evidence: fix its id or glob, or remove it"
            (reasons if evidence.is_full else warnings).append(message)
        elif not any(r.outcome is not Outcome.PASSED for r in matched):
            warnings.append(f"{_waiver_label(w)} waives nothing: every falsifier it matches passed; remove it")
    still = []
    for r in failing:
        cover = next((w for w in in_force if w.matches(r.id)), None)
        if cover is None:
            still.append(r)
        else:
            waived.append(
                f"{r.id}: {r.outcome.value}: {_first_line(r.reason)} (waived by {_waiver_label(cover)} until "
                f"{cover.expires.isoformat()}, owner: {cover.owner}: {_first_line(cover.reason)})"
            )
    return reasons, warnings, waived, expiring, still


def verdict(evidence: Evidence, policy: Policy = Policy()) -> Verdict:
    """The gate for `evidence` under `policy`; `harness verify` exits with its `exit_code`.

    A failing result that an unexpired waiver recorded in the evidence matches is listed in `waived`
    instead of `reasons`; an expired waiver, or (in a full run) one matching no falsifier, is a reason."""
    if not evidence.complete:
        return Verdict(False, EXIT_INTERRUPTED, ("the run was interrupted: the evidence is incomplete",))
    failing = _FAILING + (_UNVERIFIED if policy.strict else ())
    waiver_reasons, waiver_warnings, waived, expiring, still = _apply_waivers(
        evidence, [r for r in evidence.results if r.outcome in failing], policy.today
    )
    reasons = tuple(f"{r.id}: {r.outcome.value}: {_first_line(r.reason)}" for r in still) + tuple(waiver_reasons)
    if policy.release:
        reasons += release_reasons(evidence)
    extra = {"waived": tuple(waived), "expiring": tuple(expiring)}
    if reasons:
        return Verdict(False, EXIT_FAILED, reasons, tuple(waiver_warnings), **extra)
    counts = {o: sum(1 for r in evidence.results if r.outcome is o) for o in Outcome}
    if counts[Outcome.PASSED] == 0 and waived:
        # Every failure waived and nothing passed: accepted, but nothing here says an invariant holds.
        return Verdict(
            True, EXIT_OK,
            warnings=(f"no falsifier passed ({len(waived)} failing, waived), so nothing was verified", *waiver_warnings),
            **extra,
        )
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
                *waiver_warnings,
            ),
            **extra,
        )
    return Verdict(True, EXIT_OK, warnings=tuple(waiver_warnings), **extra)
