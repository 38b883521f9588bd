"""A falsified result's reason is its assertion's first line: bounded, but long enough that a fix command
with long paths in it is recorded (and so printed by verify) whole, runnable as printed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.child import REASON_MAX, classify


def test_a_long_fix_command_stays_whole_and_a_runaway_line_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = "/tmp/pytest-of-ci/pytest-7/" + "x" * 300 + "/release.safetensors"
    fix = f"pretrain stamp {deep} --license Apache-2.0 -o {deep}.fixed"
    (tmp_path / "fx_reason.py").write_text(
        "def long_fix():\n"
        f"    raise AssertionError('the checkpoint lacks its license; fix: {fix}\\nmore detail')\n"
        "def runaway():\n"
        f"    raise AssertionError('y' * {REASON_MAX * 3})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        result = classify("fx_reason:long_fix")
        assert result["outcome"] == "falsified" and len(fix) > 500
        assert result["reason"] == f"AssertionError: the checkpoint lacks its license; fix: {fix}"
        assert result["counterexample"].endswith("more detail")
        runaway = classify("fx_reason:runaway")
        assert runaway["outcome"] == "falsified" and len(runaway["reason"]) == REASON_MAX
        assert len(runaway["counterexample"]) > REASON_MAX  # the whole message is still in the evidence
    finally:
        sys.modules.pop("fx_reason", None)
