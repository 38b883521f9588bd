"""teeth.json and teeth.md: `Teeth` serialised field for field, read back, and summarised in Markdown.

    teeth_to_dict(teeth) -> dict          teeth_from_dict(data, source) -> Teeth
    read_teeth(path) -> Teeth             write_teeth(directory, teeth) -> Path
    teeth_markdown(teeth) -> str

Both files are written with harness.atomic next to whatever else the commit's directory holds (verify's
evidence): nothing else in it is touched. A test holds harness/schemas/teeth.schema.json and the
dataclasses in harness.teeth_run together.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema

from harness import escape
from harness.atomic import write_atomic
from harness.guards import GuardSite
from harness.record import _json_value, parameter_value_from_dict
from harness.schema import load_schema
from harness.teeth_run import (
    SURVIVED,
    BaselineRun,
    ContractDigest,
    InvariantTeeth,
    MutantResult,
    StaleAcknowledgement,
    Teeth,
)

TEETH_FILE = "teeth.json"
TEETH_SUMMARY = "teeth.md"
READABLE_SCHEMA_VERSIONS = (1,)


class TeethError(ValueError):
    """A teeth.json that cannot be read back; the message is one line naming the file and the fault."""


def teeth_to_dict(teeth: Teeth) -> dict[str, Any]:
    return _json_value(teeth)


def teeth_problems(document: Any) -> list[str]:
    """Every way `document` breaks the teeth schema, as `path: message`; empty when valid."""
    validator = jsonschema.Draft202012Validator(load_schema("teeth"))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _guard(data: dict[str, Any]) -> GuardSite:
    lines = data.get("lines")
    return GuardSite(**{**data, "lines": tuple(lines) if lines is not None else None})


def _invariant(data: dict[str, Any]) -> InvariantTeeth:
    return InvariantTeeth(
        **{
            **data,
            "guards": tuple(_guard(g) for g in data["guards"]),
            "falsifiers": tuple(BaselineRun(**b) for b in data["falsifiers"]),
            "mutants": tuple(MutantResult(**{**m, "missed_by": tuple(m["missed_by"])}) for m in data["mutants"]),
            "stale_acknowledgements": tuple(StaleAcknowledgement(**s) for s in data["stale_acknowledgements"]),
        }
    )


def teeth_from_dict(data: Any, source: str = "teeth") -> Teeth:
    if isinstance(data, dict) and data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise TeethError(f"{source}: schema_version {data.get('schema_version')!r} is not one this harness reads ({READABLE_SCHEMA_VERSIONS})")
    problems = teeth_problems(data)
    if problems:
        raise TeethError(f"{source}: not a teeth file: {problems[0]}")
    return Teeth(
        **{
            **data,
            "command": tuple(data["command"]),
            "selection": tuple(data["selection"]),
            "contracts": tuple(
                ContractDigest(**{**c, "parameters": tuple(parameter_value_from_dict(p) for p in c.get("parameters") or ())})
                for c in data["contracts"]
            ),
            "invariants": tuple(_invariant(i) for i in data["invariants"]),
        }
    )


def read_teeth(path: str | os.PathLike[str]) -> Teeth:
    """Read a teeth.json, or the commit directory `harness teeth` wrote it into, back into Teeth."""
    path = Path(path)
    file = path / TEETH_FILE if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = f"{path} holds no {TEETH_FILE}" if path.is_dir() else f"{file}: no such file"
        raise TeethError(f"{where} (give a teeth.json or a DIR/<commit>/ directory written by harness teeth)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TeethError(f"{file}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TeethError(f"{file}:{exc.lineno}: not JSON: {exc.msg}") from None
    return teeth_from_dict(data, str(file))


def write_teeth(directory: Path, teeth: Teeth) -> Path:
    """Write teeth.json and teeth.md into `directory`, each atomically; other files there are left alone."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TEETH_FILE
    write_atomic(path, json.dumps(escape.json_safe(teeth_to_dict(teeth)), indent=2, ensure_ascii=False) + "\n")
    write_atomic(directory / TEETH_SUMMARY, teeth_markdown(teeth))
    return path


# ---------------------------------------------------------------------------------------- markdown


def _cell(text: Any) -> str:
    return escape.markdown(text, 300)


def teeth_markdown(teeth: Teeth) -> str:
    t = teeth.totals
    lines = [
        "# harness teeth",
        "",
        f"Commit {escape.markdown_code(teeth.commit or 'uncommitted')}"
        + (" (dirty)" if teeth.dirty else "")
        + f", {teeth.duration_s:.0f} s. "
        + ("" if teeth.complete else "**Incomplete: interrupted; the mutants run so far only.** "),
        "",
        f"{t['mutants']} mutants: {t['killed']} killed, **{t['survived']} survived**, {t['timeout']} timeout, "
        f"{t['error']} error, {t['not_run']} not run, {t['equivalent']} equivalent; "
        f"{t['not_compiling']} did not compile (skipped); {t['baseline_failed']} falsifier(s) failed their baseline; "
        f"{t['not_measurable']} invariant(s) not measurable.",
        "",
        "| invariant | contract | guards | mutants | killed | survived | other | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for inv in teeth.invariants:
        killed = sum(m.status == "killed" for m in inv.mutants)
        survived = len(inv.survivors)
        other = len(inv.mutants) - killed - survived
        guards = ", ".join(
            f"{g.guard} ({g.file}:{g.lines[0]}-{g.lines[1]})" if g.status == "resolved" and g.lines else f"{g.guard} (skipped: {g.reason})"
            for g in inv.guards
        ) or "none"
        lines.append(
            f"| {_cell(inv.id)} | {_cell(inv.contract_id)} | {_cell(guards)} | {len(inv.mutants)} | {killed} | "
            f"{survived} | {other} | {_cell(inv.note or '')} |"
        )
    survivors = teeth.survivors
    if survivors:
        lines += ["", "## Survivors", ""]
        for inv, m in survivors:
            fence, body = escape.markdown_block(m.diff)
            lines += [
                f"### {escape.markdown(inv.id)}: {escape.markdown_code(m.id)}",
                "",
                f"Missed by: {escape.markdown(', '.join(m.missed_by))}",
                "",
                f"{fence}diff", body.rstrip("\n"), fence, "",
            ]
    others = [(inv, m) for inv in teeth.invariants for m in inv.mutants if m.status not in ("killed", SURVIVED)]
    if others:
        lines += ["", "## Not killed, not survived", ""]
        for inv, m in others:
            lines.append(f"- {escape.markdown(inv.id)} {escape.markdown_code(m.id)}: {m.status}: {escape.markdown(m.reason, 500)}")
    baseline = teeth.baseline_failures
    stale = [(inv, s) for inv in teeth.invariants for s in inv.stale_acknowledgements]
    if baseline or stale:
        lines += ["", "## Findings", ""]
        for inv, b in baseline:
            lines.append(f"- baseline failed: {escape.markdown(b.id)} ({b.outcome}) on the unmutated code: {escape.markdown(b.reason, 500)}")
        for inv, s in stale:
            lines.append(f"- stale acknowledgement in {escape.markdown(inv.id)}: {escape.markdown_code(s.id)}: {escape.markdown(s.why)}")
    return "\n".join(lines) + "\n"
