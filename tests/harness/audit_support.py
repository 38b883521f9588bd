"""Builders shared by the release-audit tests: a tiny committed project whose evidence and teeth come
from a real `harness.verify` + `harness.teeth` run, variants of that evidence for each NO-GO reason,
small fakes of the interfaces issue 12's other parts define (waivers in the gate, harness.diff,
harness.attest) until they are merged, and a headless-Chromium reader of the rendered page."""

from __future__ import annotations

import dataclasses
import fnmatch
import html.parser
import os
import shutil
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

import harness
from harness.model import Evidence, Outcome, SourceLocation
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


# ---------------------------------------------------------------------------------------- fakes of the other parts


def has_module(name: str) -> bool:
    """Whether this checkout's harness has `harness/<name>.py` (asked of the files, not of the import
    system: an editable install of another checkout would otherwise lend its module)."""
    return (Path(harness.__path__[0]) / f"{name}.py").is_file()


@dataclass(frozen=True)
class FakeWaiver:
    """harness.model.Waiver as issue 12's DIFF part defines it."""

    falsifier: str
    reason: str
    owner: str
    expires: date
    link: str | None
    location: SourceLocation


def waiver(falsifier: str, reason: str, owner: str, expires: date, link: str | None, location: SourceLocation) -> Any:
    """A harness.model.Waiver (FakeWaiver until issue 12's DIFF part defines it)."""
    import harness.model

    kind = getattr(harness.model, "Waiver", FakeWaiver)
    return kind(falsifier=falsifier, reason=reason, owner=owner, expires=expires, link=link, location=location)


def with_waivers(evidence: Evidence, waivers: tuple[Any, ...]) -> Evidence:
    """`evidence` recording `waivers` (Evidence.waivers, once DIFF's field exists; set directly until then)."""
    if "waivers" in {f.name for f in dataclasses.fields(Evidence)}:
        return dataclasses.replace(evidence, waivers=waivers)
    copy = dataclasses.replace(evidence)
    object.__setattr__(copy, "waivers", waivers)
    return copy


def gate_with_waivers(today: date) -> Callable[..., Any] | None:
    """A stand-in for the gate's waiver rules (the agreed interface) while harness.gate has none; None
    once the real gate takes `Policy(today=)`."""
    from harness import gate

    if "today" in {f.name for f in dataclasses.fields(gate.Policy)}:
        return None
    real = gate.verdict

    def verdict(evidence: Evidence, policy: Any = gate.Policy()) -> Any:
        waivers = getattr(evidence, "waivers", ())
        base = real(evidence, policy)
        failing = (Outcome.FALSIFIED, Outcome.ERROR, Outcome.VACUOUS, Outcome.FLAKY)
        reasons, waived = [], []
        for r in evidence.results:
            if r.outcome not in failing:
                continue
            if any(fnmatch.fnmatchcase(r.id, w.falsifier) and w.expires >= today for w in waivers):
                waived.append(r.id)
            else:
                reasons.append(next(x for x in base.reasons if x.startswith(r.id + ":")))
        reasons += [x for x in base.reasons if not any(x.startswith(r.id + ":") for r in evidence.results)]
        for w in waivers:
            if w.expires < today:
                reasons.append(f"waiver {w.falsifier} ({w.location.path}:{w.location.line}) expired on {w.expires}")
            elif not any(fnmatch.fnmatchcase(r.id, w.falsifier) for r in evidence.results):
                reasons.append(f"waiver {w.falsifier} matches no falsifier")
        expiring = tuple(w.falsifier for w in waivers if today <= w.expires <= today + timedelta(days=14))
        verdict_ = gate.Verdict(not reasons, 1 if reasons else 0, tuple(reasons))
        object.__setattr__(verdict_, "waived", tuple(waived))
        object.__setattr__(verdict_, "expiring", expiring)
        return verdict_

    return verdict


@dataclass(frozen=True)
class FakeAttestationCheck:
    valid: bool
    problems: tuple[str, ...] = ()
    subjects: tuple[Any, ...] = ()
    key_id: str | None = None


def fake_attest_module(check: FakeAttestationCheck) -> types.ModuleType:
    module = types.ModuleType("harness.attest")
    module.verify_attestation = lambda commit_dir, *, public_key=None, repo_root=".": check  # type: ignore[attr-defined]
    return module


@dataclass(frozen=True)
class FakeDiff:
    regressed: bool
    regressions: tuple[str, ...] = ()


def fake_diff_module() -> types.ModuleType:
    """harness.diff's agreed functions, comparing outcomes only."""
    module = types.ModuleType("harness.diff")

    def diff_evidence(base: Evidence, head: Evidence, *, base_teeth: Any = None, head_teeth: Any = None) -> FakeDiff:
        before = {r.id: r.outcome for r in base.results}
        regressions = tuple(
            f"{r.id}: {before[r.id].value} -> {r.outcome.value}" for r in head.results
            if before.get(r.id) is Outcome.PASSED and r.outcome is not Outcome.PASSED
        )
        return FakeDiff(bool(regressions), regressions)

    module.diff_evidence = diff_evidence  # type: ignore[attr-defined]
    module.diff_to_dict = lambda d: {"regressed": d.regressed, "regressions": list(d.regressions)}  # type: ignore[attr-defined]
    module.diff_markdown = lambda d: "".join(f"- regressed: {r}\n" for r in d.regressions) or "no change\n"  # type: ignore[attr-defined]
    return module


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
