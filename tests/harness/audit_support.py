"""Builders shared by the release-audit tests: a tiny committed project whose evidence and teeth come
from a real `harness.verify` + `harness.teeth` run, variants of that evidence for each NO-GO reason,
waivers and real attestations (harness.attest's keygen, attest, and an edit after signing), and a
headless-Chromium reader of the rendered page."""

from __future__ import annotations

import dataclasses
import html.parser
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

import harness
from harness.model import Evidence, Outcome, SourceLocation, Waiver
from harness.record import evidence_json
from harness.teeth_record import write_teeth

from tests.cli_env import cli_env

GUARD = textwrap.dedent(
    '''
    """Code the tiny contract guards."""


    def clamp(x, low, high):
        """x, kept within [low, high]."""
        if x < low:
            return low
        if x > high:
            return high
        return x
    '''
)

CHECKS = textwrap.dedent(
    '''
    from tinypkg.guard import clamp


    def strong_clamp():
        assert clamp(5, 0, 10) == 5
        assert clamp(-3, 0, 10) == 0
        assert clamp(30, 0, 10) == 10
        assert clamp(0, 0, 10) == 0
        assert clamp(10, 0, 10) == 10
        assert clamp(-1, 0, 10) == 0
        assert clamp(11, 0, 10) == 10


    def on_gpu():
        assert clamp(1, 0, 2) == 1
    '''
)

CONTRACT = textwrap.dedent(
    """\
    id: tiny-audit-v1
    version: 1.0.0
    title: Tiny
    description: Tiny.
    invariants:
      - id: INV-CLAMP-001
        kind: safety
        statement: clamp keeps x within its bounds.
        guards: [tinypkg.guard:clamp]
      - id: INV-GPU-001
        kind: safety
        statement: clamp agrees on the GPU.
        guards: [tinypkg.guard:clamp]
    falsifiers:
      - id: FALSIFY-CLAMP-001
        attacks: [INV-CLAMP-001]
        prediction: it holds.
        if_fails: it does not.
        binding:
          python: checks:strong_clamp
        timeout_s: 60
      - id: FALSIFY-GPU-001
        attacks: [INV-GPU-001]
        prediction: it holds.
        if_fails: it does not.
        binding:
          python: checks:on_gpu
        requires: {cuda: true}
        timeout_s: 60
    """
)

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]


def make_project(root: Path) -> str:
    """The tiny project at `root`, committed; its sha."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'tiny'\nversion = '0'\n")
    (root / ".gitignore").write_text("__pycache__/\n.hypothesis/\nreports/\n.coverage*\n")
    (root / "tinypkg").mkdir(exist_ok=True)
    (root / "tinypkg" / "__init__.py").write_text("")
    (root / "tinypkg" / "guard.py").write_text(GUARD)
    (root / "checks.py").write_text(CHECKS)
    (root / "contracts").mkdir(exist_ok=True)
    (root / "contracts" / "tiny.yaml").write_text(CONTRACT)
    return commit_all(root)


def commit_all(root: Path, message: str = "tiny") -> str:
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=root, check=True)
    subprocess.run(GIT + ["commit", "-qm", message, "--allow-empty"], cwd=root, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


@dataclass(frozen=True)
class Run:
    """A real verify + teeth run of the tiny project: its root, commit, Evidence and Teeth."""

    root: Path
    sha: str
    evidence: Evidence
    teeth: Any


def real_run(root: Path) -> Run:
    sha = make_project(root)
    reports = root / "reports"
    evidence = harness.verify([root / "contracts"], out=reports)
    teeth = harness.teeth([root / "contracts"], out=reports)
    return Run(root, sha, evidence, teeth)


def write_set(reports: Path, sha: str, evidence: Evidence | None, teeth: Any = None, extra: dict[str, str] | None = None) -> Path:
    """reports/<sha>/ holding `evidence` (and `teeth`, and `extra` files), as verify and teeth write them."""
    directory = reports / sha
    directory.mkdir(parents=True, exist_ok=True)
    if evidence is not None:
        (directory / "evidence.json").write_text(evidence_json(evidence), encoding="utf-8")
    if teeth is not None:
        write_teeth(directory, teeth)
    for name, text in (extra or {}).items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def with_result(evidence: Evidence, falsifier: str, **changes: Any) -> Evidence:
    """`evidence` with one falsifier's result changed (and the totals counted again)."""
    from harness.record import totals

    if changes.get("outcome") is Outcome.FALSIFIED:
        changes.setdefault("counterexample", "AssertionError: " + changes.get("reason", ""))
    contracts = tuple(
        dataclasses.replace(c, falsifiers=tuple(dataclasses.replace(r, **changes) if r.id == falsifier else r for r in c.falsifiers))
        for c in evidence.contracts
    )
    return dataclasses.replace(evidence, contracts=contracts, totals=totals(r for c in contracts for r in c.falsifiers))


def with_survivor(teeth: Any) -> Any:
    """`teeth` with its first killed mutant turned into a survivor."""
    from harness.teeth_run import count_totals

    invariants = list(teeth.invariants)
    for i, inv in enumerate(invariants):
        for j, m in enumerate(inv.mutants):
            if m.status == "killed":
                mutants = list(inv.mutants)
                mutants[j] = dataclasses.replace(m, status="survived", killed_by=None, killed_outcome=None,
                                                 missed_by=(m.killed_by or "FALSIFY-CLAMP-001",))
                invariants[i] = dataclasses.replace(inv, mutants=tuple(mutants))
                return dataclasses.replace(teeth, invariants=tuple(invariants), totals=count_totals(invariants))
    raise AssertionError("no killed mutant to turn into a survivor")


def audit_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "audit", *args], cwd=root, env=cli_env(), capture_output=True, text=True, timeout=300,
    )


# ---------------------------------------------------------------------------------------- waivers, attestations


def waiver(falsifier: str, reason: str, owner: str, expires: date, link: str | None, location: SourceLocation) -> Waiver:
    return Waiver(falsifier=falsifier, reason=reason, owner=owner, expires=expires, link=link, location=location)


def with_waivers(evidence: Evidence, waivers: tuple[Waiver, ...]) -> Evidence:
    """`evidence` recording `waivers` (as verify records contracts/waivers.yaml's)."""
    return dataclasses.replace(evidence, waivers=waivers)


def signed_run(root: Path) -> Run:
    """The tiny project with `[tool.harness] attestation_public_key` set (its key pair made by
    harness.attest.keygen under keys/, the private key ignored by git), committed, verified, given teeth
    and signed by harness.attest.attest: reports/<sha>/attestation.dsse.json."""
    from harness import attest

    make_project(root)
    attest.keygen(root / "keys")
    with (root / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.harness]\nattestation_public_key = "keys/attestation.pub"\n')
    with (root / ".gitignore").open("a") as fh:
        fh.write("keys/attestation.key\n")
    sha = commit_all(root, "the key that signs our evidence")
    evidence = harness.verify([root / "contracts"], out=root / "reports")
    teeth = harness.teeth([root / "contracts"], out=root / "reports")
    attest.attest(root / "reports" / sha, root / "keys" / "attestation.key", repo_root=root)
    return Run(root, sha, evidence, teeth)


def tamper(path: Path) -> None:
    """An edit after signing. A signed file: one more space after a `:` (only its bytes differ). The DSSE
    envelope: its payload's statement with one more space (the envelope's own JSON layout is not signed,
    so reformatting it changes nothing a verifier checks)."""
    import base64
    import json

    text = path.read_text(encoding="utf-8")
    if path.name == "attestation.dsse.json":
        envelope = json.loads(text)
        payload = base64.b64decode(envelope["payload"]).decode("utf-8")
        envelope["payload"] = base64.b64encode(payload.replace('":', '": ', 1).encode("utf-8")).decode("ascii")
        edited = json.dumps(envelope)
    else:
        edited = text.replace('": ', '":  ', 1)
    assert edited != text, path
    path.write_text(edited, encoding="utf-8")


# ---------------------------------------------------------------------------------------- the browser


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def artifacts_dir(default: Path) -> Path:
    """Where screenshots go: $HARNESS_ARTIFACTS_DIR (CI uploads it), else the test's tmp_path."""
    directory = Path(os.environ.get("HARNESS_ARTIFACTS_DIR") or default)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _browser_args(binary: str, profile: Path) -> list[str]:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            f"--user-data-dir={profile}", "--virtual-time-budget=2000"]


def rendered_dom(page: Path, profile: Path) -> str:
    """The DOM Chromium built from `page` (its --dump-dom serialisation)."""
    binary = chromium()
    assert binary is not None, "no chromium binary: CI must install it (.ci/run does: apt-get install chromium)"
    proc = subprocess.run(_browser_args(binary, profile) + ["--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def screenshot(page: Path, profile: Path, png: Path) -> Path:
    binary = chromium()
    assert binary is not None
    proc = subprocess.run(_browser_args(binary, profile) + [f"--screenshot={png}", "--window-size=1280,2400",
                                                            page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and png.is_file() and png.stat().st_size > 1000, proc.stderr[-2000:]
    return png


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list["Node | str"]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, predicate: Callable[["Node"], bool]) -> list["Node"]:
        found = [self] if predicate(self) else []
        for c in self.children:
            if isinstance(c, Node):
                found += c.find_all(predicate)
        return found

    def by_id(self, ident: str) -> "Node | None":
        found = self.find_all(lambda n: n.attrs.get("id") == ident)
        return found[0] if found else None

    def rows(self) -> list[list[str]]:
        """A table's body rows as cell texts."""
        return [[" ".join(td.text().split()) for td in tr.find_all(lambda n: n.tag == "td")]
                for tr in self.find_all(lambda n: n.tag == "tr") if tr.find_all(lambda n: n.tag == "td")]


class _Builder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, [])
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, [])
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}, []))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_dom(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root
