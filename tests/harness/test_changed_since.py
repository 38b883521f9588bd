"""`harness verify --changed-since REF` (harness.incremental): in a throwaway git repository, only the
falsifiers whose contract, binding or imported files changed run again; the others are carried over from
REF's evidence marked with REF's commit, and a release gate never accepts them."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.gate import Policy, verdict
from harness.record import read_evidence as read_evidence_value

from tests.harness.verify_support import entries, falsifier, read_evidence, run_verify

MODULES = {
    "pkg_a.py": "def value():\n    return 1\n",
    "pkg_b.py": "def value():\n    return 2\n",
    "fx_a.py": "from pkg_a import value\n\n\ndef holds():\n    assert value() == 1\n",
    "fx_b.py": "from pkg_b import value\n\n\ndef holds():\n    assert value() == 2\n",
    "fx_spawns.py": textwrap.dedent(
        """
        import subprocess
        import sys


        def holds():
            # What the child imports is invisible from here: never carried over.
            subprocess.run([sys.executable, "-c", "import pkg_a"], check=True)
        """
    ),
    "tests/test_t.py": "from pkg_b import value\n\n\ndef test_value():\n    assert value() == 2\n",
    ".gitignore": "__pycache__/\n.hypothesis/\n",
    "pyproject.toml": "[project]\nname = 'fixture'\nversion = '0'\n",
}


def _contract(cid: str, inv: str, items: list[str]) -> str:
    return (
        f"id: {cid}\nversion: 1.0.0\ntitle: Fixture\ndescription: Fixture contract.\n"
        f"invariants:\n  - id: {inv}\n    kind: safety\n    statement: The fixture holds.\n"
        "falsifiers:\n" + "".join(items)
    )


CONTRACTS = {
    "contracts/c-python.yaml": _contract(
        "fx-python-v1",
        "INV-PY-001",
        [
            falsifier("FALSIFY-A-001", "{python: 'fx_a:holds'}", attacks="INV-PY-001"),
            falsifier("FALSIFY-B-001", "{python: 'fx_b:holds'}", attacks="INV-PY-001"),
            falsifier("FALSIFY-SPAWNS-001", "{python: 'fx_spawns:holds'}", attacks="INV-PY-001"),
        ],
    ),
    "contracts/c-other.yaml": _contract(
        "fx-other-v1",
        "INV-OTHER-001",
        [
            falsifier("FALSIFY-T-001", "{pytest: tests/test_t.py}", attacks="INV-OTHER-001"),
            falsifier("FALSIFY-CMD-001", "{command: ['true']}", attacks="INV-OTHER-001"),
        ],
    ),
}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=root, capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A repository with one commit and its full evidence (out/<sha>/), built once and copied per test."""
    work = tmp_path_factory.mktemp("changed-since")
    root, out = work / "repo", work / "out"
    root.mkdir()
    git(root, "init", "-q")
    write(root, {**MODULES, **CONTRACTS})
    sha = commit(root, "base")
    done = run_verify(root, "contracts", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return root, out, sha


@pytest.fixture
def project(base: tuple[Path, Path, str], tmp_path: Path) -> tuple[Path, Path, str]:
    root, out, sha = base
    shutil.copytree(root, tmp_path / "repo", symlinks=True)
    shutil.copytree(out, tmp_path / "out", symlinks=True)
    return tmp_path / "repo", tmp_path / "out", sha


def incremental_evidence(out: Path, head: str) -> tuple[Path, dict[str, Any]]:
    found = list((out / head / "partial").glob("changed-since-*/evidence.json"))
    assert len(found) == 1, found
    return found[0], read_evidence(found[0])


def test_full_run_records_the_imported_files_with_their_hashes(base: tuple[Path, Path, str]) -> None:
    root, out, sha = base
    results = entries(read_evidence(out / sha / "evidence.json"))
    modules = results["FALSIFY-A-001"]["modules"]
    assert {"fx_a.py", "pkg_a.py"} <= set(modules) and "pkg_b.py" not in modules
    assert all(v.startswith("sha256:") for v in modules.values())
    assert {"tests/test_t.py", "pkg_b.py"} <= set(results["FALSIFY-T-001"]["modules"])
    # Not measured: a command, and a child that started a process.
    assert results["FALSIFY-CMD-001"]["modules"] is None
    assert results["FALSIFY-SPAWNS-001"]["modules"] is None
    assert all(r["carried_from"] is None for r in results.values())


def test_only_the_falsifier_importing_the_changed_module_runs_again(project: tuple[Path, Path, str]) -> None:
    root, out, sha = project
    write(root, {"pkg_a.py": "def value():\n    return 1  # changed\n"})
    head = commit(root, "change pkg_a")
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", "HEAD~1")
    assert done.returncode == 0, done.stdout + done.stderr
    path, evidence = incremental_evidence(out, head)
    assert evidence["selection"] == {"changed_since": sha}
    results = entries(evidence)
    assert set(results) == {"FALSIFY-A-001", "FALSIFY-B-001", "FALSIFY-SPAWNS-001", "FALSIFY-T-001", "FALSIFY-CMD-001"}
    ran = {fid for fid, r in results.items() if r["carried_from"] is None}
    assert ran == {"FALSIFY-A-001", "FALSIFY-SPAWNS-001", "FALSIFY-CMD-001"}
    assert results["FALSIFY-B-001"]["carried_from"] == sha and results["FALSIFY-T-001"]["carried_from"] == sha
    assert all(r["outcome"] == "passed" for r in results.values())
    # Said on the terminal, and in summary.md and junit.xml.
    assert "RUN FALSIFY-A-001: changed: pkg_a.py" in done.stdout
    assert "RUN FALSIFY-CMD-001: a command binding: what it runs is never measured" in done.stdout
    assert f"RUN FALSIFY-SPAWNS-001: what it imports was not measured at {sha[:12]} (it started a process" in done.stdout
    assert f"CARRIED FALSIFY-B-001 (passed at {sha[:12]})" in done.stdout
    assert f"2 carried over from {sha[:12]}" in done.stdout
    assert f"(carried from {sha[:12]})" in (path.parent / "summary.md").read_text()
    assert f'name="carried_from" value="{sha}"' in (path.parent / "junit.xml").read_text()
    # Never mistaken for the commit's full evidence: that directory holds none.
    assert not (out / head / "evidence.json").exists()


def test_a_changed_contract_file_runs_its_falsifiers_again(project: tuple[Path, Path, str]) -> None:
    root, out, sha = project
    text = (root / "contracts/c-other.yaml").read_text()
    write(root, {"contracts/c-other.yaml": text + "# a comment changes the file's sha256\n"})
    head = commit(root, "touch c-other")
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", sha)
    assert done.returncode == 0, done.stdout + done.stderr
    results = entries(incremental_evidence(out, head)[1])
    assert results["FALSIFY-T-001"]["carried_from"] is None
    assert "RUN FALSIFY-T-001: its contract file contracts/c-other.yaml changed" in done.stdout
    assert results["FALSIFY-A-001"]["carried_from"] == sha and results["FALSIFY-B-001"]["carried_from"] == sha


def test_a_new_test_file_under_a_pytest_binding_runs_it_again(project: tuple[Path, Path, str]) -> None:
    root, out, sha = project
    write(
        root,
        {
            "contracts/c-other.yaml": CONTRACTS["contracts/c-other.yaml"].replace(
                "{pytest: tests/test_t.py}", "{pytest: {k: value, paths: [tests]}}"
            )
        },
    )
    sha = commit(root, "bind by -k")
    assert run_verify(root, "contracts", "--out", str(out)).returncode == 0
    write(root, {"tests/test_new.py": "def test_value_new():\n    assert False, 'a new matching test fails'\n"})
    head = commit(root, "new test")
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", sha)
    assert done.returncode == 1, done.stdout + done.stderr
    results = entries(incremental_evidence(out, head)[1])
    assert results["FALSIFY-T-001"]["outcome"] == "falsified" and results["FALSIFY-T-001"]["carried_from"] is None
    assert "new test files under its paths: tests/test_new.py" in done.stdout


def test_a_failed_ref_result_runs_again(project: tuple[Path, Path, str]) -> None:
    root, out, _ = project
    write(root, {"pkg_b.py": "def value():\n    return 3\n"})
    broken = commit(root, "break pkg_b")
    done = run_verify(root, "contracts", "--out", str(out))
    assert done.returncode == 1
    assert entries(read_evidence(out / broken / "evidence.json"))["FALSIFY-B-001"]["outcome"] == "falsified"
    # Fixed without touching pkg_b.py's REF content? No: here nothing changes at all, and still the
    # failures run again (a failure is never carried over).
    write(root, {"README": "unrelated\n"})
    head = commit(root, "unrelated")
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", broken)
    assert done.returncode == 1, done.stdout + done.stderr
    results = entries(incremental_evidence(out, head)[1])
    assert results["FALSIFY-B-001"]["carried_from"] is None and results["FALSIFY-B-001"]["outcome"] == "falsified"
    assert results["FALSIFY-T-001"]["carried_from"] is None  # a pytest failure too
    assert f"RUN FALSIFY-B-001: it was falsified at {broken[:12]}" in done.stdout
    assert results["FALSIFY-A-001"]["carried_from"] == broken


def test_the_release_policy_refuses_carried_results(project: tuple[Path, Path, str]) -> None:
    root, out, sha = project
    write(root, {"README": "unrelated\n"})
    head = commit(root, "unrelated")
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", sha)
    assert done.returncode == 0, done.stdout + done.stderr
    path, _ = incremental_evidence(out, head)
    evidence = read_evidence_value(path)
    assert verdict(evidence, Policy()).passed  # a pull-request gate accepts them
    gate = verdict(evidence, Policy(release=True))
    assert not gate.passed and gate.exit_code == 1
    assert f"FALSIFY-B-001: carried over from {sha[:12]} (--changed-since), not run at this commit; " \
        "a release needs every falsifier run fresh" in gate.reasons
    assert any(r.startswith("the run was restricted (changed_since=") for r in gate.reasons)
    # The CLI refuses the combination before running anything, printing the full run to use instead.
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", sha, "--release")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(f"run every falsifier: harness verify contracts --out {out} --release")
    # A fresh full run passes the release gate.
    done = run_verify(root, "contracts", "--out", str(out), "--release")
    assert done.returncode == 0, done.stdout + done.stderr
    assert verdict(read_evidence_value(out / head), Policy(release=True)).passed


def test_ref_without_evidence_is_exit_2_with_the_command_that_writes_it(project: tuple[Path, Path, str]) -> None:
    root, out, sha = project
    write(root, {"README": "unrelated\n"})
    head = commit(root, "unrelated")
    done = run_verify(root, "contracts", "--out", str(out / "elsewhere"), "--changed-since", "HEAD~1")
    assert done.returncode == 2, done.stdout + done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"harness verify: --changed-since: no evidence of {sha[:12]} in {out / 'elsewhere' / sha}")
    command = f"git checkout {sha} && harness verify contracts --out {out / 'elsewhere'}; git checkout -"
    assert line.endswith(f"write it with `{command}`")
    assert not (out / "elsewhere" / head).exists()  # nothing was run or written
    # Not a commit at all.
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", "no-such-branch")
    assert done.returncode == 2
    assert "--changed-since no-such-branch: not a commit of the git repository at" in done.stderr


def test_incomplete_ref_evidence_is_exit_2(project: tuple[Path, Path, str]) -> None:
    root, out, sha = project
    document = json.loads((out / sha / "evidence.json").read_text())
    document["complete"] = False
    (out / sha / "evidence.json").write_text(json.dumps(document))
    write(root, {"README": "unrelated\n"})
    commit(root, "unrelated")
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", sha)
    assert done.returncode == 2
    assert "is incomplete (that run was interrupted); write it again with `git checkout" in done.stderr


# ---------------------------------------------------------------------------------------- the recording, unit


def test_a_process_that_cannot_run_repository_code_keeps_the_measurement(tmp_path: Path) -> None:
    from harness.imported_files import Watch

    (tmp_path / "tool.py").write_text("")
    git_spawn = ("subprocess.Popen", (None, ["git", "--version"], None, None))  # e.g. pytest-benchmark probing git
    cases = {
        "git": [git_spawn],
        "python": [git_spawn, ("subprocess.Popen", (None, ["python3", "-c", "pass"], None, None))],
        "inside": [("os.posix_spawn", (str(tmp_path / "tool.py"), ["tool.py"], {}))],
        "shell": [("os.system", ("echo hi",))],
        "fork": [("os.fork", ())],
        "env": [("subprocess.Popen", ("/usr/bin/env", ["env", "python3"], None, None))],
    }
    found = {}
    for name, events in cases.items():
        watch = Watch(str(tmp_path))
        for event, args in events:
            watch._hook(event, args)
        found[name] = watch.finish()
    assert isinstance(found["git"]["imported_files"], list)
    for name in ("python", "inside", "shell", "fork", "env"):
        assert found[name]["imported_files"] is None, name
        assert found[name]["imports_unmeasured"].startswith("the falsifier started another process ("), name
    assert "a Python interpreter" in found["python"]["imports_unmeasured"]
    assert "inside the repository" in found["inside"]["imports_unmeasured"]


def test_the_parent_refuses_a_listing_it_cannot_hash_whole(tmp_path: Path) -> None:
    from harness.imported_files import hash_files

    (tmp_path / "a.py").write_text("x = 1\n")
    assert hash_files(tmp_path, ["a.py"]) == {"a.py": "sha256:" + __import__("hashlib").sha256(b"x = 1\n").hexdigest()}
    # A path outside the repository, a file that is gone, or no list at all: not measured (always runs again).
    assert hash_files(tmp_path, ["a.py", "../outside.py"]) is None
    assert hash_files(tmp_path, ["a.py", "gone.py"]) is None
    assert hash_files(tmp_path, None) is None
    assert hash_files(tmp_path, [1]) is None


def test_with_k_and_nothing_changed_everything_is_carried_and_nothing_runs(project: tuple[Path, Path, str]) -> None:
    root, out, sha = project
    write(root, {"README": "unrelated\n"})
    head = commit(root, "unrelated")
    done = run_verify(root, "contracts", "--out", str(out), "-k", "FALSIFY-B-001", "-k", "FALSIFY-T-001", "--changed-since", sha)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"--changed-since {sha[:12]}: 0 to run, 2 carried over" in done.stdout
    [path] = (out / head / "partial").glob("*/evidence.json")
    evidence = read_evidence(path)
    assert evidence["selection"] == {"k": ["FALSIFY-B-001", "FALSIFY-T-001"], "changed_since": sha}
    assert {fid: r["carried_from"] for fid, r in entries(evidence).items()} == {"FALSIFY-B-001": sha, "FALSIFY-T-001": sha}
    assert evidence["complete"] is True and evidence["totals"]["passed"] == 2


def test_a_data_file_the_falsifier_reads_is_recorded_and_runs_it_again(project: tuple[Path, Path, str], tmp_path: Path) -> None:
    root, out, _ = project
    write(
        root,
        {
            "data/expected.txt": "2\n",
            "fx_b.py": "from pathlib import Path\n\nfrom pkg_b import value\n\n\ndef holds():\n"
            "    assert value() == int(Path('data/expected.txt').read_text())\n",
        },
    )
    sha = commit(root, "read a data file")
    assert run_verify(root, "contracts", "--out", str(out)).returncode == 0
    modules = entries(read_evidence(out / sha / "evidence.json"))["FALSIFY-B-001"]["modules"]
    assert "data/expected.txt" in modules
    write(root, {"data/expected.txt": "3\n"})
    head = commit(root, "change the data")
    done = run_verify(root, "contracts", "--out", str(out), "--changed-since", sha)
    assert done.returncode == 1, done.stdout + done.stderr
    results = entries(incremental_evidence(out, head)[1])
    assert results["FALSIFY-B-001"]["outcome"] == "falsified" and results["FALSIFY-B-001"]["carried_from"] is None
    assert "RUN FALSIFY-B-001: changed: data/expected.txt" in done.stdout
