"""audit.html in a real browser: headless Chromium loads the page, and these tests read the verdict, the
reasons and the tables from the DOM Chromium built (--dump-dom), not from the HTML source; each page's
screenshot is kept under $HARNESS_ARTIFACTS_DIR (CI uploads it; default: the test's tmp_path).

Skipped only when no Chromium binary exists (Debian: `apt-get install chromium`; .ci/run installs it), and
never where $CI is set, where a missing Chromium fails instead."""

from __future__ import annotations

import dataclasses
import os
from datetime import date, timedelta
from pathlib import Path

import pytest

from harness import audit as audit_lib
from harness.audit_html import render_html
from harness.model import Outcome, SourceLocation

from tests.harness.audit_support import (
    Node,
    Run,
    artifacts_dir,
    chromium,
    parse_dom,
    real_run,
    rendered_dom,
    screenshot,
    signed_run,
    tamper,
    with_result,
    with_survivor,
    waiver,
    with_waivers,
    write_set,
)

# CI must have it (.ci/run installs it): there, a missing Chromium fails these tests instead of skipping them.
pytestmark = pytest.mark.skipif(
    chromium() is None and not os.environ.get("CI"), reason="no chromium binary (apt-get install chromium); CI installs it"
)

TODAY = date(2026, 12, 1)
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">\x1b[2J\u202eDEILSIFLAF'


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return real_run(tmp_path_factory.mktemp("audit-html") / "tiny")


def _page(run: Run, tmp_path: Path, name: str, *, evidence=None, teeth=None, require_cuda: bool = False,
          extra: dict[str, str] | None = None) -> tuple[Node, Path]:
    """Audit `evidence`/`teeth` (default: the real run's) from files, render the page in Chromium, keep its
    screenshot; the DOM as Chromium built it, and the audit directory."""
    reports = tmp_path / "reports"
    write_set(reports, run.sha, run.evidence if evidence is None else evidence, run.teeth if teeth is None else teeth, extra)
    audit_lib.release_audit("v1.0.0", reports=reports, repo_root=run.root, today=TODAY, require_cuda=require_cuda)
    return _render(reports / "releases" / "v1.0.0" / "audit.html", tmp_path, name)


def _render(page: Path, tmp_path: Path, name: str) -> tuple[Node, Path]:
    dom = parse_dom(rendered_dom(page, tmp_path / "profile"))
    screenshot(page, tmp_path / "profile", artifacts_dir(tmp_path) / f"audit-{name}.png")
    return dom, page.parent


def _verdict(dom: Node) -> str:
    node = dom.by_id("verdict")
    assert node is not None, "no #verdict on the rendered page"
    return node.text().strip()


def _reasons(dom: Node) -> list[str]:
    node = dom.by_id("reasons")
    assert node is not None
    return [" ".join(li.text().split()) for li in node.find_all(lambda n: n.tag == "li")]


def test_a_go_page_shows_go_every_falsifier_the_cuda_leg_teeth_and_digests(run: Run, tmp_path: Path) -> None:
    dom, _ = _page(run, tmp_path, "go")
    assert _verdict(dom) == "GO" and _reasons(dom) == []
    tables = dom.find_all(lambda n: n.tag == "table" and "falsifiers" in n.attrs.get("class", ""))
    assert [t.attrs["data-contract"] for t in tables] == ["tiny-audit-v1"]
    rows = {r[1]: r for r in tables[0].rows()}
    assert rows["FALSIFY-CLAMP-001"][0] == "INV-CLAMP-001" and rows["FALSIFY-CLAMP-001"][2] == "passed"
    assert rows["FALSIFY-CLAMP-001"][5].startswith("1/1 guards")
    assert rows["FALSIFY-GPU-001"][2] == "not_run" and rows["FALSIFY-GPU-001"][4] == "needs CUDA: not run"
    not_run = dom.by_id("not-run")
    assert not_run is not None and not_run.rows()[0][:2] == ["FALSIFY-GPU-001", "not_run"]
    assert "requires CUDA" in not_run.rows()[0][2]
    teeth = dom.by_id("teeth")
    assert teeth is not None
    clamp = next(r for r in teeth.rows() if r[1] == "INV-CLAMP-001")
    assert int(clamp[4]) > 0 and clamp[5] == "0", clamp  # killed, none survived
    gpu = next(r for r in teeth.rows() if r[1] == "INV-GPU-001")
    assert gpu[6] == f"{gpu[3]} not_run", gpu  # what the mutants that were neither killed nor survived were
    summary = dom.by_id("summary")
    assert summary is not None
    lines = [" ".join(li.text().split()) for li in summary.find_all(lambda n: n.tag == "li")]
    assert lines[0] == "Falsifiers: 2 in 1 contract: 1 passed, 1 not_run", lines
    assert lines[1].startswith(f"Teeth: {run.teeth.totals['mutants']} mutants of 2 invariants: ") and ", 0 survived" in lines[1], lines
    assert lines[2:] == ["Attestation: none (not required: [tool.harness] attestation_public_key is not set)", "Waivers: none",
                         "Previous release: none found beside this one"], lines
    digests = dict(r for r in dom.by_id("digests").rows())  # type: ignore[union-attr]
    assert digests["commit"] == run.sha
    assert digests["evidence.json"] == audit_lib.sha256((tmp_path / "reports" / run.sha / "evidence.json").read_bytes())
    bars = dom.find_all(lambda n: n.tag == "rect" and "bar" in n.attrs.get("class", ""))
    assert {(b.attrs["data-outcome"], b.attrs["data-count"]) for b in bars} == {("passed", "1"), ("not_run", "1")}
    env = dict(r for r in dom.by_id("environment").rows())  # type: ignore[union-attr]
    assert env["python"] == run.evidence.environment["python"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("failure", "FALSIFY-CLAMP-001: falsified: clamp(30, 0, 10) was 30"),
        ("survivor", "INV-CLAMP-001: mutant tinypkg.guard:clamp/"),
        ("partial", "the run was restricted (k=CLAMP): a release needs the commit's full evidence"),
        ("cuda", "FALSIFY-GPU-001: needs CUDA and was not run on CUDA (not_run: requires CUDA"),
    ],
)
def test_each_no_go_reason_is_on_the_rendered_page(run: Run, tmp_path: Path, case: str, expected: str) -> None:
    evidence, teeth = run.evidence, run.teeth
    if case == "failure":
        evidence = with_result(evidence, "FALSIFY-CLAMP-001", outcome=Outcome.FALSIFIED, reason="clamp(30, 0, 10) was 30")
    elif case == "survivor":
        teeth = with_survivor(teeth)
    elif case == "partial":
        evidence = dataclasses.replace(evidence, selection={"k": ["CLAMP"]})
    dom, _ = _page(run, tmp_path, f"nogo-{case}", evidence=evidence, teeth=teeth, require_cuda=case == "cuda")
    assert _verdict(dom) == "NO-GO"
    assert any(expected in r for r in _reasons(dom)), _reasons(dom)
    if case == "survivor":
        survivor = dom.find_all(lambda n: n.tag == "h3" and "survivor" in n.attrs.get("class", ""))
        assert survivor and "INV-CLAMP-001" in survivor[0].text()
    if case == "failure":
        table = dom.find_all(lambda n: n.tag == "table" and "falsifiers" in n.attrs.get("class", ""))[0]
        assert any(r[1] == "FALSIFY-CLAMP-001" and r[2] == "falsified" for r in table.rows())


def test_an_invalid_attestation_is_on_the_rendered_page(tmp_path: Path) -> None:
    from harness.attest import key_id, load_public_key

    signed = signed_run(tmp_path / "signed")
    tamper(signed.root / "reports" / signed.sha / "teeth.json")  # edited after signing
    audit_lib.release_audit("v1.0.0", reports=signed.root / "reports", repo_root=signed.root, today=TODAY)
    dom, _ = _render(signed.root / "reports" / "releases" / "v1.0.0" / "audit.html", tmp_path, "nogo-attestation")
    problems = [r for r in _reasons(dom) if r.startswith("attestation: ")]
    assert _verdict(dom) == "NO-GO" and problems and all("teeth.json" in p for p in problems), _reasons(dom)
    signer = key_id(load_public_key(signed.root / "keys" / "attestation.pub"))
    shown = dom.by_id("attestation").text()  # type: ignore[union-attr]
    assert shown.startswith(f"INVALID (key {signer})") and "teeth.json" in shown, shown


def test_an_expired_waiver_is_on_the_rendered_page_and_one_in_force_shows_as_waived(run: Run, tmp_path: Path) -> None:
    failing = with_result(run.evidence, "FALSIFY-CLAMP-001", outcome=Outcome.FALSIFIED, reason="clamp(30, 0, 10) was 30")
    failing = with_result(failing, "FALSIFY-GPU-001", outcome=Outcome.PASSED, reason="")
    where = SourceLocation("contracts/waivers.yaml", 2)
    for name, expires in (("waived", TODAY + timedelta(days=3)), ("expired", TODAY - timedelta(days=1))):
        entry = waiver("FALSIFY-CLAMP-*", "upstream bug", "ana", expires, "javascript:alert(1)", where)
        evidence = with_waivers(failing, (entry,))
        files = {"evidence.json": b"{}", "teeth.json": b"{}"}
        audit = audit_lib.assemble("v1.0.0", evidence, run.teeth, commit=run.sha, today=TODAY, files=files,
                                   cuda=frozenset({"FALSIFY-GPU-001"}))
        page = tmp_path / name / "audit.html"
        page.parent.mkdir()
        page.write_text(render_html(audit), encoding="utf-8")
        dom, _ = _render(page, tmp_path, f"waiver-{name}")
        waivers = dom.by_id("waivers")
        assert waivers is not None
        row = waivers.rows()[0]
        assert row[0] == "FALSIFY-CLAMP-*" and row[3] == "ana" and row[6] == "contracts/waivers.yaml:2"
        assert not dom.find_all(lambda n: n.tag == "a" and n.attrs.get("href", "").startswith("javascript:"))
        if name == "waived":
            assert _verdict(dom) == "GO", _reasons(dom)
            assert row[1] == "expiring" and dom.by_id("expiring") is not None
            table = dom.find_all(lambda n: n.tag == "table" and "falsifiers" in n.attrs.get("class", ""))[0]
            # The true outcome stays: falsified, marked waived.
            assert any(r[1] == "FALSIFY-CLAMP-001" and r[2] == "falsified (waived)" for r in table.rows())
        else:
            assert _verdict(dom) == "NO-GO" and row[1] == "expired"
            assert any("expired" in r for r in _reasons(dom)), _reasons(dom)


def test_hostile_text_in_a_reason_is_shown_as_text_and_runs_nothing(run: Run, tmp_path: Path) -> None:
    evidence = with_result(run.evidence, "FALSIFY-CLAMP-001", outcome=Outcome.FALSIFIED, reason=HOSTILE)
    dom, directory = _page(run, tmp_path, "hostile", evidence=evidence)
    head = dom.find_all(lambda n: n.tag == "title")[0].text()
    assert head == "Release v1.0.0: NO-GO", head  # no script retitled the page
    assert not dom.find_all(lambda n: n.tag in ("script", "img")), "markup from a reason became an element"
    shown = next(r for r in _reasons(dom) if r.startswith("FALSIFY-CLAMP-001"))
    assert '<script>document.title="pwned"</script>' in shown and "\\x1b[2J" in shown and "\\u202e" in shown
    assert "<script>" not in (directory / "audit.html").read_text(encoding="utf-8")
