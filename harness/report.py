"""Stage: report. Render evidence as junit.xml (for CI test tabs) and summary.md (for a GitHub job summary)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.model import Outcome
from harness.record import write_atomic

OUTCOME_ORDER = [o.value for o in Outcome]
ICON = {"passed": "✅", "falsified": "❌", "error": "💥", "not_run": "⏭️", "deferred": "⏳"}


def totals_line(totals: dict[str, int]) -> str:
    """`24 passed, 0 falsified, 0 error, 1 not_run, 0 deferred`."""
    return ", ".join(f"{totals.get(name, 0)} {name}" for name in OUTCOME_ORDER)


def _falsifiers(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for c in evidence["contracts"] for f in c["falsifiers"]]


def render_junit(evidence: dict[str, Any]) -> str:
    t = evidence["totals"]
    root = ET.Element(
        "testsuites",
        name="harness verify",
        tests=str(sum(t.values())),
        failures=str(t["falsified"]),
        errors=str(t["error"]),
        skipped=str(t["not_run"] + t["deferred"]),
        time=f"{evidence['duration_s']:.3f}",
    )
    for contract in evidence["contracts"]:
        entries = contract["falsifiers"]
        count = {o: sum(1 for f in entries if f["outcome"] == o) for o in OUTCOME_ORDER}
        suite = ET.SubElement(
            root,
            "testsuite",
            name=contract["id"],
            tests=str(len(entries)),
            failures=str(count["falsified"]),
            errors=str(count["error"]),
            skipped=str(count["not_run"] + count["deferred"]),
            time=f"{sum(f['duration_s'] for f in entries):.3f}",
            file=contract["path"],
        )
        for f in entries:
            case = ET.SubElement(
                suite, "testcase", classname=contract["id"], name=f["id"], time=f"{f['duration_s']:.3f}"
            )
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="invariant", value=" ".join(f["invariant"]))
            ET.SubElement(props, "property", name="binding", value=f"{f['binding']['kind']}")
            if f["outcome"] == "falsified":
                ET.SubElement(case, "failure", message=f["reason"]).text = f["counterexample"] or ""
            elif f["outcome"] == "error":
                ET.SubElement(case, "error", message=f["reason"]).text = f["reason"]
            elif f["outcome"] in ("not_run", "deferred"):
                ET.SubElement(case, "skipped", message=f"{f['outcome']}: {f['reason']}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cell(text: Any, limit: int = 160) -> str:
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("|", "\\|")


def render_summary(evidence: dict[str, Any]) -> str:
    """Markdown fit for $GITHUB_STEP_SUMMARY: totals, one table per contract, then the details
    a reader needs to act: counterexamples, errors, not_run reasons, deferrals."""
    commit = evidence["commit"]
    head = f"`{commit[:12]}`" if commit else "an uncommitted tree (not a git checkout)"
    if evidence["dirty"]:
        head += " (with uncommitted changes)"
    lines = [f"## harness verify on {head}", ""]
    if not evidence["complete"]:
        lines += ["> **Incomplete:** the run was interrupted; only the results below were recorded.", ""]
    t = evidence["totals"]
    if evidence["complete"] and t["passed"] + t["falsified"] + t["error"] == 0:
        lines += ["> **Nothing verified:** no falsifier ran (every one not_run or deferred); nothing here is evidence that an invariant holds.", ""]
    lines += ["| Outcome | Count |", "|---|---:|"]
    lines += [f"| {ICON[o]} {o} | {t[o]} |" for o in OUTCOME_ORDER]
    lines.append("")
    for contract in evidence["contracts"]:
        lines += [f"### `{contract['id']}` {contract['version']}", "", f"`{contract['path']}`", ""]
        lines += ["| Falsifier | Attacks | Outcome | Time | Tests | Reason |", "|---|---|---|---:|---:|---|"]
        for f in contract["falsifiers"]:
            tests = "" if f["tests_matched"] is None else f"{f['tests_executed']}/{f['tests_matched']}"
            lines.append(
                f"| `{f['id']}` | {_cell(', '.join(f['invariant']))} | {ICON[f['outcome']]} {f['outcome']} "
                f"| {f['duration_s']:.2f}s | {tests} | {_cell(f['reason'])} |"
            )
        lines.append("")
    entries = _falsifiers(evidence)
    falsified = [f for f in entries if f["outcome"] == "falsified"]
    if falsified:
        lines += ["### Counterexamples", ""]
        for f in falsified:
            lines += [
                f"<details><summary><code>{f['id']}</code>: {_cell(f['reason'])}</summary>",
                "",
                "```text",
                (f["counterexample"] or "").replace("```", "`\u200b``"),
                "```",
                "",
                "</details>",
                "",
            ]
    for outcome, title in (("error", "Errors"), ("not_run", "Not run"), ("deferred", "Deferred")):
        chosen = [f for f in entries if f["outcome"] == outcome]
        if chosen:
            lines += [f"### {title}", ""]
            lines += [f"- `{f['id']}`: {_cell(f['reason'], 400)}" for f in chosen]
            lines.append("")
    lines += [f"harness {evidence['harness_version']}: {totals_line(t)}", ""]
    return "\n".join(lines)


def write_reports(directory: Path, evidence: dict[str, Any]) -> tuple[Path, Path]:
    junit = Path(directory) / "junit.xml"
    summary = Path(directory) / "summary.md"
    write_atomic(junit, render_junit(evidence))
    write_atomic(summary, render_summary(evidence))
    return junit, summary
