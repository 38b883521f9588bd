"""audit.html: the release audit as one self-contained page (inline CSS and SVG, no script, no network).

Every text on it went through harness.escape (`html` for a line, `html_block` for a <pre>), and a
Content-Security-Policy meta tag forbids scripts and every fetch besides: whatever a falsifier wrote
into its reason shows as text and runs nothing. The page reads without JavaScript and prints (a print
stylesheet: no colours needed, tables not split mid-row). The sections and their order are audit.md's.

Stable hooks for tools and the browser test: `#verdict` (GO or NO-GO), `#summary`, `#reasons`, `table.falsifiers`
(one per contract, `data-contract`), `#not-run`, `#teeth`, `#waivers`, `#diff`, `#history` (the SVG
chart), `#environment`, `#parameters` (when the run was given any), `#digests`.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from harness import escape
from harness.audit import (
    OUTCOMES,
    Audit,
    HistoryPoint,
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

COLOURS = {
    "passed": "#2e7d32", "falsified": "#c62828", "error": "#6a1b9a", "not_run": "#9e9e9e",
    "deferred": "#f9a825", "vacuous": "#ef6c00", "flaky": "#ad1457",
}

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #111; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
#verdict { display: inline-block; padding: .1em .6em; border-radius: .3em; color: #fff; }
.go #verdict { background: #2e7d32; } .nogo #verdict { background: #c62828; }
table { border-collapse: collapse; margin: .5em 0 1em; width: 100%; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; }
td.o-passed { color: #2e7d32; } td.o-falsified, td.o-error, td.o-vacuous, td.o-flaky { color: #c62828; font-weight: bold; }
td.o-not_run, td.o-deferred { color: #666; } tr.waived td { background: #fff8e1; }
td code { white-space: nowrap; }
td.guards { overflow-wrap: anywhere; }  /* long module:qualname guards wrap, so the table stays on the page */
code, pre { font-family: ui-monospace, monospace; font-size: .92em; } pre { background: #f6f6f6; padding: .5em; overflow-x: auto; }
.status-expired { color: #c62828; font-weight: bold; } .status-expiring { color: #ef6c00; }
.muted { color: #666; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .go #verdict, .nogo #verdict { color: #000; background: none; border: 2px solid #000; }
  h2 { break-after: avoid; } tr, pre { break-inside: avoid; } pre { white-space: pre-wrap; }
  svg { max-width: 100%; }
}
"""


def _t(text: Any, limit: int | None = None) -> str:
    return escape.html(text, limit)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], attrs: str = "", row_attrs: Sequence[str] | None = None) -> str:
    """A table of already-escaped cells (each `<td ...>...</td>` or plain escaped text)."""
    head = "".join(f"<th>{_t(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
        extra = f" {row_attrs[i]}" if row_attrs and row_attrs[i] else ""
        body.append(f"<tr{extra}>{cells}</tr>")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _link(url: str) -> str:
    # Only http(s) becomes a link: a javascript: or data: URL stays text.
    if url.startswith(("https://", "http://")):
        return f'<a href="{_t(url)}" rel="noreferrer">{_t(url)}</a>'
    return _t(url)


def history_svg(points: Sequence[HistoryPoint]) -> str:
    """Stacked bars of outcome counts per commit, oldest left, drawn by hand (a <title> per segment)."""
    bar, gap, left, top, plot_h = 28, 10, 40, 20, 160
    width = max(left + max(1, len(points)) * (bar + gap) + 20, left + 80 * len(OUTCOMES))  # the legend fits
    height = top + plot_h + 70
    peak = max([sum(p.totals.get(o, 0) for o in OUTCOMES) for p in points] + [1])
    parts = [
        f'<svg id="history" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="outcomes per commit">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    for i, p in enumerate(points):
        x = left + i * (bar + gap) + gap // 2
        y = top + plot_h
        for outcome in OUTCOMES:
            count = p.totals.get(outcome, 0)
            if not count:
                continue
            h = count / peak * plot_h
            y -= h
            parts.append(
                f'<rect class="bar" data-commit="{_t(p.commit)}" data-outcome="{outcome}" data-count="{count}" x="{x}" '
                f'y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="{COLOURS[outcome]}">'
                f"<title>{_t(p.commit[:12])}: {count} {outcome}</title></rect>"
            )
        label_y = top + plot_h + 12
        parts.append(
            f'<text x="{x + bar / 2}" y="{label_y}" font-size="9" text-anchor="end" '
            f'transform="rotate(-45 {x + bar / 2} {label_y})">{_t(p.commit[:7])}{"" if p.full else "*"}</text>'
        )
    legend_x = left
    for outcome in OUTCOMES:
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{COLOURS[outcome]}"/>'
                     f'<text x="{legend_x + 13}" y="{height - 5}" font-size="10">{outcome}</text>')
        legend_x += 80
    parts.append("</svg>")
    return "".join(parts)


def _diff_section(audit: Audit) -> str:
    if audit.previous is None:
        return "<p>No previous release audit found beside this one.</p>"
    d = audit.decision.diff
    if d is None:
        return f"<p>Previous release {_t(audit.previous.tag)}; no diff (see the notes).</p>"
    from harness.diff import diff_to_dict

    data = diff_to_dict(d)
    out = [f"<p>Previous release <strong>{_t(audit.previous.tag)}</strong> (audited {_t(audit.previous.audited_at)}); "
           f"regressed: <strong>{'yes' if d.regressed else 'no'}</strong>.</p>"]
    # Rendered from the diff's own JSON (harness.diff_to_dict): every category it has, whatever it holds.
    for key, value in data.items():
        if isinstance(value, list) and value:
            out.append(f"<h3>{_t(key)}</h3>")
            if all(isinstance(v, dict) for v in value):
                columns = list(dict.fromkeys(k for v in value for k in v))
                rows = [[_t(_plain(v.get(c, ""))) for c in columns] for v in value]
                out.append(_table(columns, rows, f' class="diff-{_t(key)}"'))
            else:
                out.append("<ul>" + "".join(f"<li>{_t(_plain(v))}</li>" for v in value) + "</ul>")
        elif not isinstance(value, (list, dict)) and key != "regressed":
            out.append(f"<p>{_t(key)}: {_t(_plain(value))}</p>")
    return "".join(out)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_html(audit: Audit) -> str:
    d = audit.decision
    e = audit.evidence
    t = e.totals
    body: list[str] = [
        f'<h1>Release {_t(audit.release)}: <span id="verdict">{d.verdict}</span></h1>',
        f"<p>Commit <code>{_t(audit.commit)}</code>, audited {_t(audit.audited_at)}"
        + (" with --require-cuda" if audit.require_cuda else "") + ".</p>",
    ]
    body.append('<ul id="summary">' + "".join(f"<li>{_t(line)}</li>" for line in summary_lines(audit)) + "</ul>")
    if d.reasons:
        body += ["<h2>Why NO-GO</h2>", '<ul id="reasons">' + "".join(f"<li>{_t(r)}</li>" for r in d.reasons) + "</ul>"]
    else:
        body.append('<ul id="reasons"></ul><p>Every GO condition holds.</p>')
    if d.warnings:
        body += ["<h2>Notes (not blocking)</h2>", '<ul id="notes">' + "".join(f"<li>{_t(w)}</li>" for w in d.warnings) + "</ul>"]
    body += [
        "<h2>Falsifiers</h2>",
        f"<p>{_t(describe_selection(e.selection))}, {'complete' if e.complete else 'INCOMPLETE'}; "
        + _t(", ".join(f"{t.get(o, 0)} {o}" for o in OUTCOMES)) + ".</p>",
    ]
    for contract, rows in falsifier_rows(audit):
        body.append(f"<h3><code>{_t(contract.id)}</code> {_t(contract.version)} <span class=\"muted\">{_t(contract.path)}</span></h3>")
        cells = [
            [f"<code>{_t(r.invariant)}</code>", f"<code>{_t(r.falsifier)}</code>",
             f'<td class="o-{_t(r.outcome.split()[0])}">{_t(r.outcome)}</td>', f'<td class="num">{_t(r.duration)}</td>',
             _t(r.cuda), _t(r.guards), _t(r.reason, 300)]
            for r in rows
        ]
        body.append(_table(
            ["Invariant", "Falsifier", "Outcome", "Time", "CUDA", "Guards", "Reason"], cells,
            f' class="falsifiers" data-contract="{_t(contract.id)}"', ['class="waived"' if r.waived else "" for r in rows],
        ))
    skipped = not_run_rows(audit)
    if skipped:
        body += ["<h3>Not run</h3>", _table(["Falsifier", "Outcome", "Reason"],
                                            [[f"<code>{_t(f)}</code>", _t(o), _t(r, 500)] for f, o, r in skipped], ' id="not-run"')]
    body.append("<h2>Teeth</h2>")
    teeth = audit.teeth
    if teeth is None:
        body.append('<p id="teeth-missing">No teeth.json for this commit.</p>')
    else:
        tt = teeth.totals
        body.append(
            f"<p>{tt['mutants']} mutants: {tt['killed']} killed, <strong>{tt['survived']} survived</strong>, {tt['timeout']} timeout, "
            f"{tt['error']} error, {tt['not_run']} not_run, {tt['equivalent']} equivalent; {tt['baseline_failed']} baseline "
            f"failure(s){'' if teeth.complete else ' (INCOMPLETE)'}.</p>"
        )
        body.append(_table(
            ["Contract", "Invariant", "Guards", "Mutants", "Killed", "Survived", "Other", "Note"],
            [[f"<code>{_t(c)}</code>", f"<code>{_t(i)}</code>", '<td class="guards">' + "<br>".join(_t(x) for x in g) + "</td>",
              f'<td class="num">{n}</td>', f'<td class="num">{k}</td>',
              f'<td class="num">{s}</td>', _t(o), _t(note)] for c, i, g, n, k, s, o, note in teeth_rows(audit)],
            ' id="teeth"',
        ))
        for inv, m in teeth.survivors:
            body.append(f'<h3 class="survivor">Survivor <code>{_t(m.id)}</code> of <code>{_t(inv.id)}</code>, missed by '
                        f"{_t(', '.join(m.missed_by))}</h3><pre>{escape.html_block(m.diff)}</pre>")
    body.append("<h2>Waivers</h2>")
    waivers = waiver_rows(audit)
    if waivers:
        body.append(_table(
            ["Falsifier", "Status", "Expires", "Owner", "Reason", "Link", "Where"],
            [[f"<code>{_t(f)}</code>", f'<td class="status-{s.replace(" ", "-")}">{_t(s)}</td>', _t(x), _t(o), _t(r), _link(l), _t(w)]
             for f, s, x, o, r, l, w in waivers],
            ' id="waivers"',
        ))
    else:
        body.append('<p id="waivers-none">None recorded in the evidence.</p>')
    if d.waived:
        body.append('<p>Waived failures (their true outcome is in the evidence):</p><ul id="waived">'
                    + "".join(f"<li>{_t(w)}</li>" for w in d.waived) + "</ul>")
    if d.expiring:
        body.append('<p>Expiring within 14 days:</p><ul id="expiring">' + "".join(f"<li>{_t(w)}</li>" for w in d.expiring) + "</ul>")
    body += ['<h2>Against the previous release</h2><div id="diff">', _diff_section(audit), "</div>"]
    body.append("<h2>History</h2>")
    if audit.history:
        body.append(f"<p>Outcomes of the last {len(audit.history)} commits' evidence under the reports directory, oldest "
                    "first (* marks a partial or incomplete run).</p>" + history_svg(audit.history))
    else:
        body.append("<p>No evidence found under the reports directory.</p>")
    if audit.history_skipped:
        body.append(f"<p class=\"muted\">{audit.history_skipped} evidence file(s) there could not be read and are not drawn.</p>")
    body += [
        f'<h2>Attestation</h2><p id="attestation">{_t(attestation_summary(audit))}</p>',
        "<h2>Environment</h2>", _table(["Key", "Value"], [[_t(k), _t(v, 500)] for k, v in environment_rows(e)], ' id="environment"'),
        *_parameters_section(audit),
        "<h2>Digests</h2>", _table(["What", "Digest"], [[_t(k), f"<code>{_t(v)}</code>"] for k, v in digest_rows(audit)], ' id="digests"'),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        # No script, no fetch: the page is read as it is, offline, whatever the texts in it say.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Release {_t(audit.release)}: {d.verdict}</title><style>{CSS}</style></head>\n"
        f'<body class="{"go" if d.go else "nogo"}">\n' + "\n".join(body) + "\n</body></html>\n"
    )


def _parameters_section(audit: Audit) -> list[str]:
    """<h2>Parameters</h2> and `table#parameters`: the artifact the run was given, each file with its sha256."""
    rows = parameter_rows(audit)
    if not rows:
        return []
    cells = [[f"<code>{_t(c)}</code>", f"<code>{_t(n)}</code>", _t(k), f"<code>{_t(v)}</code>",
              f"<code>{_t(f)}</code>" if f else "", f"<code>{_t(d)}</code>" if d else ""] for c, n, k, v, f, d in rows]
    return ["<h2>Parameters</h2>", _table(["Contract", "Parameter", "Kind", "Value", "File", "sha256"], cells, ' id="parameters"')]
