"""Stage: report. Render evidence as junit.xml (for CI test tabs) and summary.md (for a GitHub job summary).

Every text that came from a falsifier, a test or a path goes through `harness.escape` for its format:
the XML always parses, and no message can add Markdown/HTML structure or rows to the summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from typing import Any

from harness import escape
from harness.gate import EXPIRING_DAYS
from harness.guard_coverage import summary as guard_summary
from harness.model import Evidence, Outcome
from harness.record import describe_selection, evidence_json, evidence_to_dict, waiver_from_dict

OUTCOME_ORDER = [o.value for o in Outcome]
ICON = {"passed": "✅", "falsified": "❌", "error": "💥", "not_run": "⏭️", "deferred": "⏳", "vacuous": "🕳️", "flaky": "🎲"}


def totals_line(totals: dict[str, int]) -> str:
    """`24 passed, 0 falsified, 0 error, 1 not_run, 0 deferred`."""
    return ", ".join(f"{totals.get(name, 0)} {name}" for name in OUTCOME_ORDER)


def _falsifiers(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for c in evidence["contracts"] for f in c["falsifiers"]]


def _xml_element(parent: ET.Element | None, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    """An element whose attribute values and text are XML-safe; ElementTree escapes markup itself."""
    safe = {k: escape.xml(v) for k, v in attrs.items()}
    element = ET.Element(tag, safe) if parent is None else ET.SubElement(parent, tag, safe)
    if text is not None:
        element.text = escape.xml(text)
    return element


def render_junit(evidence: dict[str, Any]) -> str:
    t = evidence["totals"]
    selection = evidence.get("selection")
    root = _xml_element(
        None,
        "testsuites",
        name=f"harness verify ({describe_selection(selection)})" if selection else "harness verify",
        tests=sum(t.values()),
        failures=t["falsified"] + t["flaky"] + t.get("vacuous", 0),
        errors=t["error"],
        skipped=t["not_run"] + t["deferred"],
        time=f"{evidence['duration_s']:.3f}",
    )
    for contract in evidence["contracts"]:
        entries = contract["falsifiers"]
        count = {o: sum(1 for f in entries if f["outcome"] == o) for o in OUTCOME_ORDER}
        suite = _xml_element(
            root,
            "testsuite",
            name=contract["id"],
            tests=len(entries),
            failures=count["falsified"] + count["flaky"] + count["vacuous"],
            errors=count["error"],
            skipped=count["not_run"] + count["deferred"],
            time=f"{sum(f['duration_s'] for f in entries):.3f}",
            file=contract["path"],
        )
        for f in entries:
            case = _xml_element(suite, "testcase", classname=contract["id"], name=f["id"], time=f"{f['duration_s']:.3f}")
            props = _xml_element(case, "properties")
            _xml_element(props, "property", name="invariant", value=" ".join(f["invariant"]))
            _xml_element(props, "property", name="binding", value=f["binding"]["kind"])
            if f.get("carried_from"):  # --changed-since: not run now, copied from that commit's evidence
                _xml_element(props, "property", name="carried_from", value=f["carried_from"])
            if f["outcome"] == "falsified":
                _xml_element(case, "failure", f["counterexample"] or "", message=f["reason"])
            elif f["outcome"] == "vacuous":
                _xml_element(case, "failure", f["reason"], message=f["reason"])
            elif f["outcome"] == "error":
                _xml_element(case, "error", f["reason"], message=f["reason"])
            elif f["outcome"] == "flaky":
                _xml_element(case, "failure", "\n".join(_attempt_lines(f)), message=f["reason"])
            elif f["outcome"] in ("not_run", "deferred"):
                _xml_element(case, "skipped", message=f"{f['outcome']}: {f['reason']}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _attempt_lines(entry: dict[str, Any]) -> list[str]:
    """`attempt 1: falsified (0.12s): reason`, one per attempt of a --rerun run."""
    return [
        f"attempt {i}: {a['outcome']} ({a['duration_s']:.2f}s): {(a['reason'].splitlines() or [''])[0]}"
        for i, a in enumerate(entry.get("attempts") or [], 1)
    ]


def _carried_note(entry: dict[str, Any]) -> str:
    """` (carried from abc123def456)` for a result --changed-since copied from another commit, else ``."""
    source = entry.get("carried_from")
    return f" (carried from {_cell(source[:12])})" if source else ""


def _cell(text: Any, limit: int = 160) -> str:
    return escape.markdown(text, limit)


def _parameter_lines(parameters: list[dict[str, Any]]) -> list[str]:
    """The contract's --param values and what they named (the artifact verified), before its results."""
    if not parameters:
        return []
    lines = ["| Parameter | Value | sha256 |", "|---|---|---|"]
    for p in parameters:
        if p["sha256"]:
            digest = escape.markdown_code(p["sha256"], in_table=True)
        elif p["files"] is not None:
            digest = f"{len(p['files'])} files (evidence.json lists each)"
        else:
            digest = ""
        lines.append(f"| {escape.markdown_code(p['name'], in_table=True)} | {_cell(p['absolute'] or p['value'])} | {digest} |")
    return [*lines, ""]


def render_summary(evidence: dict[str, Any]) -> str:
    """Markdown fit for $GITHUB_STEP_SUMMARY: totals, one table per contract, then the details
    a reader needs to act: counterexamples, errors, not_run reasons, deferrals."""
    commit = evidence["commit"]
    head = f"`{commit[:12]}`" if commit else "an uncommitted tree (not a git checkout)"
    if evidence["dirty"]:
        head += " (with uncommitted changes)"
    selection = evidence.get("selection")
    lines = [f"## harness verify on {head}" + (f": {escape.markdown(describe_selection(selection))}" if selection else ""), ""]
    if selection:
        lines += [
            f"> **Partial run:** only the falsifiers selected by {escape.markdown(describe_selection(selection).removeprefix('partial run '))} "
            "ran; this is not the commit's full evidence.",
            "",
        ]
    carried = [f for f in _falsifiers(evidence) if f.get("carried_from")]
    if carried:
        sources = ", ".join(f"`{s[:12]}`" for s in sorted({f["carried_from"] for f in carried}))
        lines += [
            f"> **Carried over:** {len(carried)} result(s) were not run at this commit but copied from the evidence of "
            f"{sources} (--changed-since: their contract, binding and imported files are unchanged); a release gate "
            "never accepts them.",
            "",
        ]
    if not evidence["complete"]:
        lines += ["> **Incomplete:** the run was interrupted; only the results below were recorded.", ""]
    t = evidence["totals"]
    if evidence["complete"] and t["passed"] + t["falsified"] + t["error"] + t["flaky"] == 0:
        lines += ["> **Nothing verified:** no falsifier ran (every one not_run or deferred); nothing here is evidence that an invariant holds.", ""]
    lines += ["| Outcome | Count |", "|---|---:|"]
    lines += [f"| {ICON[o]} {o} | {t[o]} |" for o in OUTCOME_ORDER]
    lines.append("")
    for contract in evidence["contracts"]:
        lines += [
            f"### {escape.markdown_code(contract['id'])} {escape.markdown(contract['version'])}",
            "",
            escape.markdown_code(contract["path"]),
            "",
        ]
        lines += _parameter_lines(contract.get("parameters") or [])
        lines += ["| Falsifier | Attacks | Outcome | Time | Tests | Guards | Reason |", "|---|---|---|---:|---:|---|---|"]
        for f in contract["falsifiers"]:
            tests = "" if f["tests_matched"] is None else f"{f['tests_executed']}/{f['tests_matched']}"
            lines.append(
                f"| {escape.markdown_code(f['id'], in_table=True)} | {_cell(', '.join(f['invariant']))} | {ICON[f['outcome']]} {f['outcome']}"
                f"{_carried_note(f)} "
                f"| {f['duration_s']:.2f}s | {tests} | {guard_summary(f.get('guards_executed'), f.get('guard_lines'))} "
                f"| {_cell(f['reason'])} |"
            )
        lines.append("")
    entries = _falsifiers(evidence)
    falsified = [f for f in entries if f["outcome"] == "falsified"]
    if falsified:
        lines += ["### Counterexamples", ""]
        for f in falsified:
            fence, body = escape.markdown_block(f["counterexample"] or "")
            lines += [
                # Raw HTML: Markdown is not parsed inside, so this line is HTML-escaped instead.
                f"<details><summary><code>{escape.html(f['id'])}</code>: {escape.html(f['reason'], 160)}</summary>",
                "",
                f"{fence}text",
                body,
                fence,
                "",
                "</details>",
                "",
            ]
    flaky = [f for f in entries if f["outcome"] == "flaky"]
    if flaky:
        # Never a pass: the outcome changed between runs of the same code; every attempt is shown.
        lines += ["### Flaky", ""]
        for f in flaky:
            lines.append(f"- {escape.markdown_code(f['id'])}: {_cell(f['reason'], 400)}")
            lines += [f"  - {_cell(line, 400)}" for line in _attempt_lines(f)]
        lines.append("")
    for outcome, title in (("vacuous", "Vacuous"), ("error", "Errors"), ("not_run", "Not run"), ("deferred", "Deferred")):
        chosen = [f for f in entries if f["outcome"] == outcome]
        if chosen:
            lines += [f"### {title}", ""]
            lines += [f"- {escape.markdown_code(f['id'])}: {_cell(f['reason'], 400)}" for f in chosen]
            lines.append("")
    lines += _waiver_lines(evidence)
    lines += [f"harness {evidence['harness_version']}: {totals_line(t)}", ""]
    return "\n".join(lines)


def _waiver_lines(evidence: dict[str, Any]) -> list[str]:
    """The run's waivers: each with what it matches (the true outcomes) and its expiry, judged on the day
    the run finished (UTC), so the summary is a function of the evidence alone."""
    waivers = evidence.get("waivers") or []
    if not waivers:
        return []
    day = datetime.fromisoformat(evidence["finished_at"]).astimezone(timezone.utc).date()
    lines = [
        "### Waivers",
        "",
        f"A waived falsifier still ran: its outcome above is the true one; the waiver changes only the verdict. "
        f"Judged on {day.isoformat()} (UTC); expiring means within {EXPIRING_DAYS} days.",
        "",
        "| Waiver | Matches | Expires | Owner | Reason |",
        "|---|---|---|---|---|",
    ]
    for w in waivers:
        expires = date.fromisoformat(w["expires"])
        if expires < day:
            status = f"❌ expired {expires.isoformat()}"
        elif expires <= day + timedelta(days=EXPIRING_DAYS):
            status = f"⚠️ {expires.isoformat()}, in {(expires - day).days} days"
        else:
            status = expires.isoformat()
        matched = [f for f in _falsifiers(evidence) if waiver_from_dict(w).matches(f["id"])]
        matches = ", ".join(f"{f['id']} ({f['outcome']})" for f in matched) or "nothing"
        reason = w["reason"] + (f" ({w['link']})" if w.get("link") else "")
        lines.append(
            f"| {escape.markdown_code(w['falsifier'], in_table=True)} ({_cell(w['path'])}:{w['line']}) | {_cell(matches, 400)} "
            f"| {status} | {_cell(w['owner'])} | {_cell(reason, 400)} |"
        )
    lines.append("")
    return lines


def evidence_files(evidence: Evidence | dict[str, Any]) -> dict[str, str]:
    """The evidence set as file name -> text, every file rendered before any is written."""
    if isinstance(evidence, Evidence):
        evidence = evidence_to_dict(evidence)
    return {"junit.xml": render_junit(evidence), "summary.md": render_summary(evidence), "evidence.json": evidence_json(evidence)}
