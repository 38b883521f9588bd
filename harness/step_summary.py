"""`$GITHUB_STEP_SUMMARY`: a command's Markdown summary appended to the job's summary page on GitHub Actions.

GitHub names a file per step in that variable and renders whatever the step appends to it (up to 1 MiB)
on the run's page. Several commands of one step may write it, so the file is only ever appended to,
never truncated. The summary is a courtesy of the CI run, not part of the evidence: a failure to write
it comes back as a warning for the caller to print, and never changes a verdict or an exit status.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def append_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Append `markdown` to the file `$GITHUB_STEP_SUMMARY` names, when it names one. Returns None when
    written or when the variable is unset or empty, else a one-line warning naming the file and why."""
    environ = os.environ if environ is None else environ
    target = environ.get(STEP_SUMMARY_ENV, "")
    if not target:
        return None
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    try:
        # "a": O_APPEND, so another command of the same step appending at the same time is not overwritten.
        with open(target, "a", encoding="utf-8", errors="backslashreplace") as summary:
            summary.write(text + "\n")  # a blank line keeps the next command's Markdown from running on
    except OSError as exc:
        return f"could not append the summary to ${STEP_SUMMARY_ENV} ({target}): {exc.strerror or exc}"
    return None


def append_summary_file(path: os.PathLike[str] | str, environ: Mapping[str, str] | None = None) -> str | None:
    """`append_step_summary` of the Markdown file at `path` (a command's summary.md), read only when the
    variable is set; an unreadable file is a warning like an unwritable summary."""
    environ = os.environ if environ is None else environ
    if not environ.get(STEP_SUMMARY_ENV, ""):
        return None
    try:
        with open(path, encoding="utf-8", errors="backslashreplace") as source:
            markdown = source.read()
    except OSError as exc:
        return f"could not read {os.fspath(path)} for ${STEP_SUMMARY_ENV}: {exc.strerror or exc}"
    return append_step_summary(markdown, environ)
