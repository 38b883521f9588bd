"""`harness validate --format {text,json,sarif,github}`: the problems of a validation, for whoever reads them.

- text: `FILE:LINE: ID: message`, one line each (what validate always printed);
- json: a list of `{path, line, subject, message, severity, rule}` (`path` as the text line spells it;
  severity `error` for a problem, `warning` for a warning such as a falsifier bound to no test);
- sarif: a SARIF 2.1.0 log (one run, tool driver `harness` with its version and one rule per check of
  `harness.validate.CHECKS`), for a code-scanning tab: each result at its file (repository-relative URI)
  and line;
- github: `::error file=PATH,line=N,title=SUBJECT::MESSAGE` workflow commands, so GitHub Actions marks
  each problem on its line in a pull request's diff (PATH repository-relative).

"Repository-relative" is relative to the checkout that holds the file: the nearest ancestor with `.git`
(what GitHub calls the workspace), not the contract's project root, which in a monorepo is a
subdirectory. A file outside any checkout keeps its absolute path (SARIF: a file: URI).

Pure functions of the problems: the CLI (harness.validate_cli) prints what they return.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.contract_doc import NO_ID
from harness.escape import github_data, github_property, json_safe
from harness.model import Problem
from harness.validate import CHECKS

FORMATS: tuple[str, ...] = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
# Every validation problem stops `harness verify` (exit 2); a warning (a falsifier bound to no runnable
# test, which verify records as `error`) does not fail validation but must still be seen.
SEVERITY = "error"
WARNING = "warning"
# A problem whose check is not named (a caller's own Problem) still needs a rule in a SARIF log.
OTHER_RULE = "contract"


def repository_relative(path: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """`path` (as a problem spells it: relative to `cwd`, default the current directory, or absolute)
    relative to the checkout holding it, with forward slashes; absolute when it is in none. Symlinks are
    not resolved: the path a pull request shows is the one the user named."""
    absolute = Path(os.path.abspath(os.path.join(cwd or os.getcwd(), path)))
    for candidate in absolute.parents:
        if (candidate / ".git").exists():
            return absolute.relative_to(candidate).as_posix()
    return str(absolute)


def _leveled(problems: Sequence[Problem], warnings: Sequence[Problem]) -> list[tuple[Problem, str]]:
    return [(p, SEVERITY) for p in problems] + [(w, WARNING) for w in warnings]


def records(problems: Sequence[Problem], warnings: Sequence[Problem] = ()) -> list[dict[str, Any]]:
    """The json format's list: one plain dict per problem, then per warning, in the order text prints them."""
    return [
        {
            "path": p.location.path, "line": p.location.line, "subject": p.subject, "message": p.message,
            "severity": level, "rule": p.check or OTHER_RULE,
        }
        for p, level in _leveled(problems, warnings)
    ]


# The SARIF rules: validate_report's checks, the waivers file `harness validate` also checks (its problems
# carry check="waivers"), and the rule of a problem that names none.
RULES: dict[str, str] = {
    **CHECKS,
    "unbound": "Every falsifier is bound to a runnable test (python, pytest or command); a warning, not a problem.",
    "waivers": "The waivers file loads, matches its schema, and every waiver is unexpired and matches a falsifier.",
    OTHER_RULE: "A contract breaks a rule of the contract format.",
}


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "id": name, "name": name.title().replace("-", ""), "shortDescription": {"text": text},
            "defaultConfiguration": {"level": SEVERITY},
        }
        for name, text in RULES.items()
    ]


def _message(problem: Problem) -> str:
    return problem.message if problem.subject == NO_ID else f"{problem.subject}: {problem.message}"


def sarif_log(
    problems: Sequence[Problem],
    version: str,
    cwd: str | os.PathLike[str] | None = None,
    warnings: Sequence[Problem] = (),
) -> dict[str, Any]:
    """The SARIF 2.1.0 log of `problems` (level error) and `warnings` (level warning); an empty `results`
    list when there are none."""
    rules = _rules()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for p, level in _leveled(problems, warnings):
        where = repository_relative(p.location.path, cwd)
        # A URI reference: relative (percent-encoded) inside the checkout, a file: URI outside it.
        uri = Path(where).as_uri() if os.path.isabs(where) else quote(where, safe="/")
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
        if p.location.line >= 1:
            physical["region"] = {"startLine": p.location.line}
        rule = p.check if p.check in index else OTHER_RULE
        results.append({
            "ruleId": rule, "ruleIndex": index[rule], "level": level, "message": {"text": _message(p)},
            "locations": [{"physicalLocation": physical}],
        })
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {"name": "harness", "version": version, "rules": rules}},
            "results": results,
        }],
    }


def github_commands(
    problems: Sequence[Problem], cwd: str | os.PathLike[str] | None = None, warnings: Sequence[Problem] = ()
) -> list[str]:
    """One `::error ...::` workflow command per problem, one `::warning ...::` per warning."""
    lines = []
    for p, level in _leveled(problems, warnings):
        properties = [f"file={github_property(repository_relative(p.location.path, cwd))}"]
        if p.location.line >= 1:
            properties.append(f"line={p.location.line}")
        properties.append(f"title={github_property(p.subject if p.subject != NO_ID else 'harness validate')}")
        lines.append(f"::{level} {','.join(properties)}::{github_data(p.message)}")
    return lines


def render(
    problems: Sequence[Problem],
    fmt: str,
    *,
    warnings: Sequence[Problem] = (),
    version: str = "",
    cwd: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The lines to print for `problems` and `warnings` in format `fmt` (one of FORMATS); json and sarif
    are one JSON document, ASCII only, so no terminal escaping can change a byte of it."""
    if fmt == "text":
        return [str(p) for p in (*problems, *warnings)]
    if fmt == "json":
        return json.dumps(json_safe(records(problems, warnings)), indent=2).splitlines()
    if fmt == "sarif":
        return json.dumps(json_safe(sarif_log(problems, version, cwd, warnings)), indent=2).splitlines()
    if fmt == "github":
        return github_commands(problems, cwd, warnings)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
