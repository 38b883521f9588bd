"""harness.resolve: binding checks run in child processes, so a hostile module cannot stop validation."""

from __future__ import annotations

import ast
import os
import signal
import time
from pathlib import Path

import pytest

from harness.resolve import check_program, check_python_targets, collect_pytest


def make_package(root: Path, **modules: str) -> None:
    (root / "hvres").mkdir()
    (root / "hvres" / "__init__.py").write_text("")
    for name, source in modules.items():
        (root / "hvres" / f"{name}.py").write_text(source)


def test_a_hanging_import_is_named_and_the_rest_still_checked(tmp_path: Path) -> None:
    make_package(tmp_path, hangs="import time\nwhile True:\n    time.sleep(0.05)\n", fine="def f():\n    pass\n")
    results = check_python_targets(tmp_path, ["hvres.hangs:f", "hvres.fine:f", "hvres.fine:g"], timeout_s=1.5)
    assert results["hvres.hangs:f"] == "importing module 'hvres.hangs' hung for more than 1.5 s"
    assert results["hvres.fine:f"] is None
    assert results["hvres.fine:g"] == "'hvres.fine' has no attribute 'g'"


def test_each_module_is_imported_once_in_one_child(tmp_path: Path) -> None:
    counter = tmp_path / "imports.txt"
    make_package(
        tmp_path,
        counted=f"with open({str(counter)!r}, 'a') as f:\n    f.write('x')\n\ndef a():\n    pass\n\ndef b():\n    pass\n",
    )
    results = check_python_targets(tmp_path, ["hvres.counted:a", "hvres.counted:b", "hvres.counted:a"])
    assert results == {"hvres.counted:a": None, "hvres.counted:b": None}
    assert counter.read_text() == "x"


def test_module_output_does_not_confuse_the_protocol(tmp_path: Path) -> None:
    make_package(tmp_path, noisy="print('R\\thvres.noisy:f\\tfake')\nimport sys\nsys.stderr.write('E\\n')\n\ndef f():\n    pass\n")
    assert check_python_targets(tmp_path, ["hvres.noisy:f"]) == {"hvres.noisy:f": None}


def test_check_program(tmp_path: Path) -> None:
    assert check_program(tmp_path, "sh") is None
    assert "not found on PATH" in (check_program(tmp_path, "hv-no-such-program") or "")
    assert "does not exist" in (check_program(tmp_path, "bin/tool") or "")


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int) -> bool:
    # SIGKILL is delivered at once, but the reparented process is reaped asynchronously.
    for _ in range(100):
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


SPAWNS = """\
import subprocess, sys
proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open({pid_file!r}, "w") as f:
    f.write(str(proc.pid))

def f():
    pass
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_process_an_import_leaves_behind_is_killed_with_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid.txt"
    make_package(tmp_path, spawns=SPAWNS.format(pid_file=str(pid_file)))
    assert check_python_targets(tmp_path, ["hvres.spawns:f"]) == {"hvres.spawns:f": None}
    pid = int(pid_file.read_text())
    try:
        assert _wait_gone(pid), f"the import's background process {pid} outlived validation"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_process_a_conftest_leaves_behind_during_collection_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid.txt"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(SPAWNS.format(pid_file=str(pid_file)))
    (tmp_path / "tests" / "test_x.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    found = collect_pytest(tmp_path, ["tests/test_x.py::test_a"], {"k": ("test_b", ["tests"])})
    assert (found.failure, found.node_counts, found.k_counts) == (None, {"tests/test_x.py::test_a": 1}, {"k": 1})
    pid = int(pid_file.read_text())
    try:
        assert _wait_gone(pid), f"the conftest's background process {pid} outlived validation"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_collection_uses_only_public_pytest_api() -> None:
    """`-k` is evaluated by pytest's own -k option, not by importing pytest internals."""
    import harness.collect_child
    import harness.resolve

    for module in (harness.resolve, harness.collect_child):
        source = Path(module.__file__).read_text()
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # Code run in a child is passed as a string: its imports count too.
                imported.update(m for m in ("_pytest",) if f"from {m}" in node.value or f"import {m}" in node.value)
        assert not {m for m in imported if m.split(".")[0] == "_pytest"}, module.__name__
