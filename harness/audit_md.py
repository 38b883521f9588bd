"""audit.md: the release audit as Markdown (for a pull request, a release note, a terminal pager).

The same sections as audit.html, in the same order (harness.audit's row builders), every untrusted
text through harness.escape's Markdown functions, so no falsifier message adds structure or rows."""

from __future__ import annotations

from harness import escape
from harness.audit import (
    OUTCOMES,
    Audit,
    attestation_summary,
    digest_rows,
    environment_rows,
    falsifier_rows,
    not_run_rows,
    summary_lines,
    parameter_rows,
    teeth_rows,
    waiver_rows,
)
from harness.record import describe_selection


def _c(text: object, limit: int | None = 300) -> str:
    return escape.markdown(text, limit)


def _code(text: object) -> str:
    return escape.markdown_code(text, in_table=True)


def render_markdown(audit: Audit) -> str:
    d = audit.decision
    e = audit.evidence
    lines = [
        f"# Release {_c(audit.release)}: **{d.verdict}**",
        "",
        f"Commit {_code(audit.commit)}, audited {_c(audit.audited_at)}"
        + (" with --require-cuda" if audit.require_cuda else "") + ".",
        "",
    ]
    lines += [f"- {_c(line, 600)}" for line in summary_lines(audit)] + [""]
    if d.reasons:
        lines += ["## Why NO-GO", ""] + [f"- {_c(r, 600)}" for r in d.reasons] + [""]
    else:
        lines += ["Every GO condition holds (docs/audit.md lists them).", ""]
    if d.warnings:
        lines += ["## Notes (not blocking)", ""] + [f"- {_c(w, 600)}" for w in d.warnings] + [""]
    t = e.totals
    lines += [
        "## Falsifiers",
        "",
        f"{_c(describe_selection(e.selection))}, {'complete' if e.complete else 'INCOMPLETE'}; "
        + ", ".join(f"{t.get(o, 0)} {o}" for o in OUTCOMES) + ".",
        "",
    ]
    for contract, rows in falsifier_rows(audit):
        lines += [
            f"### {_code(contract.id)} {_c(contract.version)}", "", _code(contract.path), "",
            "| Invariant | Falsifier | Outcome | Time | CUDA | Guards | Reason |", "|---|---|---|---:|---|---|---|",
        ]
        lines += [
            f"| {_code(r.invariant)} | {_code(r.falsifier)} | {_c(r.outcome)} | {r.duration} | {_c(r.cuda)} | {_c(r.guards)} | {_c(r.reason, 200)} |"
            for r in rows
        ]
        lines.append("")
    skipped = not_run_rows(audit)
    if skipped:
        lines += ["### Not run", ""] + [f"- {_code(fid)} ({outcome}): {_c(reason, 400)}" for fid, outcome, reason in skipped] + [""]
    lines += ["## Teeth", ""]
    teeth = audit.teeth
    if teeth is None:
        lines += ["No teeth.json for this commit.", ""]
    else:
        tt = teeth.totals
        lines += [
            f"{tt['mutants']} mutants: {tt['killed']} killed, {tt['survived']} survived, {tt['timeout']} timeout, "
            f"{tt['error']} error, {tt['not_run']} not_run, {tt['equivalent']} equivalent; "
            f"{tt['baseline_failed']} baseline failure(s)" + ("" if teeth.complete else " (INCOMPLETE)") + ".",
            "",
            "| Contract | Invariant | Guards | Mutants | Killed | Survived | Other | Note |", "|---|---|---|---:|---:|---:|---|---|",
        ]
        lines += [
            f"| {_code(c)} | {_code(i)} | {_c('; '.join(g))} | {n} | {k} | {s} | {_c(o)} | {_c(note)} |"
            for c, i, g, n, k, s, o, note in teeth_rows(audit)
        ]
        lines.append("")
        for inv, m in teeth.survivors:
            fence, body = escape.markdown_block(m.diff)
            lines += [f"Survivor {_code(m.id)} of {_code(inv.id)}, missed by {_c(', '.join(m.missed_by))}:", "",
                      f"{fence}diff", body.rstrip("\n"), fence, ""]
    lines += ["## Waivers", ""]
    waivers = waiver_rows(audit)
    if waivers:
        lines += ["| Falsifier | Status | Expires | Owner | Reason | Link | Where |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {_code(f)} | {s} | {_c(x)} | {_c(o)} | {_c(r)} | {_c(l)} | {_c(w)} |" for f, s, x, o, r, l, w in waivers]
        lines.append("")
    else:
        lines += ["None recorded in the evidence.", ""]
    if d.waived:
        lines += ["Waived failures (their true outcome is in the evidence):", ""] + [f"- {_c(w)}" for w in d.waived] + [""]
    if d.expiring:
        lines += ["Expiring within 14 days:", ""] + [f"- {_c(w)}" for w in d.expiring] + [""]
    lines += ["## Against the previous release", ""]
    if audit.previous is None:
        lines += ["No previous release audit found beside this one.", ""]
    elif d.diff is None:
        lines += [f"Previous release {_c(audit.previous.tag)}; no diff (see the notes).", ""]
    else:
        from harness.diff import diff_markdown

        lines += [f"Previous release {_c(audit.previous.tag)} (audited {_c(audit.previous.audited_at)}):", "",
                  diff_markdown(d.diff).rstrip("\n"), ""]
    lines += ["## History", ""]
    if audit.history:
        lines += ["| Commit | Finished | Full | " + " | ".join(OUTCOMES) + " |", "|---|---|---|" + "---:|" * len(OUTCOMES)]
        lines += [
            f"| {_code(p.commit[:12])} | {_c(p.finished_at)} | {'yes' if p.full else 'no'} | "
            + " | ".join(str(p.totals.get(o, 0)) for o in OUTCOMES) + " |"
            for p in audit.history
        ]
        lines.append("")
    else:
        lines += ["No evidence found under the reports directory.", ""]
    lines += ["## Attestation", "", _c(attestation_summary(audit), 1000), "", "## Environment", "", "| Key | Value |", "|---|---|"]
    lines += [f"| {_c(k)} | {_c(v)} |" for k, v in environment_rows(e)]
    lines += _parameters_section(audit)
    lines += ["", "## Digests", "", "| What | Digest |", "|---|---|"]
    lines += [f"| {_c(k)} | {_code(v)} |" for k, v in digest_rows(audit)]
    return "\n".join(lines) + "\n"


def _parameters_section(audit: Audit) -> list[str]:
    """## Parameters: the artifact the run was given (each file with its sha256); nothing for a run without."""
    rows = parameter_rows(audit)
    if not rows:
        return []
    lines = ["", "## Parameters", "", "| Contract | Parameter | Kind | Value | File | sha256 |", "|---|---|---|---|---|---|"]
    return lines + [f"| {_code(c)} | {_code(n)} | {_c(k)} | {_code(v)} | {_code(f) if f else ''} | {_code(d) if d else ''} |"
                    for c, n, k, v, f, d in rows]
