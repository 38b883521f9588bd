"""`harness audit --run` of this repository is GO: a committed copy of the checkout, audited as a release
is, with a real verify and teeth run first, and the page Chromium renders says GO.

Restricted to fit a test: the copy keeps one of this repository's contract files,
contracts/apr-hf-parity-v1.yaml (7 falsifiers, 9 mutants), since teeth of all of contracts/ takes 17
minutes on 2 cores. The restriction is in the copy's tree, not a `-k`, so the evidence is that commit's
full evidence, as a release audit requires. (The full contracts/ are verified by
tests/test_repository_contracts.py and given teeth by tests/test_falsifiers_have_teeth.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.teeth_run import copy_repository, repository_files

from tests.cli_env import cli_env
from tests.harness.audit_support import GIT, artifacts_dir, chromium, parse_dom, rendered_dom, screenshot

ROOT = Path(__file__).resolve().parents[1]
KEPT = "apr-hf-parity-v1.yaml"

pytestmark = pytest.mark.slow(minutes=5)


def test_the_audit_of_this_repository_is_go(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy_repository(ROOT, [f for f in repository_files(ROOT) if not f.startswith("reports/")], copy)
    for contract in (copy / "contracts").glob("*.yaml"):
        if contract.name != KEPT:
            contract.unlink()
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=copy, check=True)
    subprocess.run(GIT + ["commit", "-qm", "release candidate"], cwd=copy, check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "audit", "--release", "v0.0.0-test", "--run"],
        cwd=copy, env=cli_env(copy), capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    out = copy / "reports" / "releases" / "v0.0.0-test"
    recorded = json.loads((out / "audit.json").read_text())
    assert recorded["verdict"] == "GO" and recorded["reasons"] == []
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["totals"]["passed"] >= 7 and evidence["selection"] is None and evidence["dirty"] is False
    teeth = json.loads((out / "teeth.json").read_text())
    assert teeth["totals"]["killed"] > 0 and teeth["totals"]["survived"] == 0
    if chromium() is not None:
        dom = parse_dom(rendered_dom(out / "audit.html", tmp_path / "profile"))
        assert dom.by_id("verdict").text().strip() == "GO"  # type: ignore[union-attr]
        screenshot(out / "audit.html", tmp_path / "profile", artifacts_dir(tmp_path) / "audit-repository.png")
