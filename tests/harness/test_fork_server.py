"""The warm fork server (harness/fork_server.py): python and pytest falsifiers forked from a process that
imported the project's [tool.harness] preload list keep every isolation property of a fresh process."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from harness import fork_server, isolation, project_config
from harness.execute import fork_preload, run_falsifier
from harness.model import Binding, BindingKind, Contract, Falsifier, Outcome, Requirement, SourceLocation

pytestmark = pytest.mark.skipif(not fork_server.available(), reason="the fork server needs Linux")

# `fractions` is imported by nothing the harness or these falsifiers run: seeing it in sys.modules proves the
# child was forked from the server that preloaded it.
PYPROJECT = '[project]\nname = "fx"\n\n[tool.harness]\npreload = ["json", "textwrap", "fractions"]\n'

FALSIFIERS = textwrap.dedent(
    '''
    import json
    import os
    import subprocess
    import sys
    import textwrap
    import time


    def forked():
        assert "fractions" in sys.modules, "not forked from the fork server"
        # What a fresh `python -m` has: interpreter flags a python subprocess inherits, the repository first.
        assert not sys.flags.safe_path and not sys.flags.isolated
        assert sys.path[0] == os.getcwd()
        main = sys.modules["__main__"].__file__
        assert main.endswith((os.path.join("harness", "child.py"), os.path.join("pytest", "__main__.py"))), main
        if os.environ.get("FX_SERVER_FILE"):
            with open(os.environ["FX_SERVER_FILE"], "a") as handle:
                handle.write(f"{os.getppid()}\\n")


    def fresh():
        assert "fractions" not in sys.modules, "forked although the fork server must not be used"


    def corrupts():
        json.loads = None
        textwrap.dedent = None
        sys.modules["fractions"].Fraction = None


    def intact():
        forked()
        assert json.loads is not None and textwrap.dedent is not None
        assert sys.modules["fractions"].Fraction is not None


    def leaves_daemon():
        pid = os.fork()
        if pid == 0:
            os.setsid()
            daemon = subprocess.Popen(["sleep", "120"], start_new_session=True)
            with open(os.environ["FX_PID_FILE"], "w") as handle:
                handle.write(str(daemon.pid))
            os._exit(0)
        os.waitpid(pid, 0)
        while not os.path.exists(os.environ["FX_PID_FILE"]):
            time.sleep(0.01)


    def kills_server():
        os.kill(os.getppid(), 9)
        time.sleep(5)


    def hangs():
        time.sleep(600)


    def nothing_blocked():
        import signal

        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert not blocked, f"the falsifier started with {sorted(blocked)} blocked"


    def floods():
        sys.stdout.write("x" * 2_000_000)
        assert False, "flooded"


    def test_forked_pytest():
        forked()
    '''
)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (tmp_path / "fx.py").write_text(FALSIFIERS, encoding="utf-8")
    monkeypatch.delenv(fork_server.DISABLE_ENV, raising=False)
    yield tmp_path
    fork_server.shutdown()


def _falsifier(target: str, kind: BindingKind = BindingKind.PYTHON, timeout_s: float = 60.0, cuda: bool = False) -> Falsifier:
    return Falsifier(
        id=f"F-{target}", attacks=(), prediction="p", if_fails="f", binding=Binding(kind, target),
        location=SourceLocation("c.yaml", 1), requires=Requirement(cuda=cuda), timeout_s=timeout_s,
    )


CONTRACT = Contract("C-FX", "1", "t", "d", "c.yaml", "0" * 64, (), ())


def _run(project: Path, target: str, **kwargs: object):
    return run_falsifier(_falsifier(target, **kwargs), CONTRACT, project)  # type: ignore[arg-type]


def test_python_and_pytest_falsifiers_run_forked(project: Path) -> None:
    assert _run(project, "fx:forked").outcome is Outcome.PASSED
    result = _run(project, "fx.py::test_forked_pytest", kind=BindingKind.PYTEST)
    assert (result.outcome, result.reason) == (Outcome.PASSED, "1 passed, 0 skipped")


def test_one_server_serves_the_falsifiers_of_a_pytest_session(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = project / "servers.txt"
    monkeypatch.setenv("FX_SERVER_FILE", str(servers))
    for item in ("contracts/c.yaml::F-1 (call)", "contracts/c.yaml::F-2 (call)"):
        monkeypatch.setenv("PYTEST_CURRENT_TEST", item)  # pytest changes it for every item
        assert _run(project, "fx:forked").outcome is Outcome.PASSED
    first, second = servers.read_text().split()
    assert first == second, "each falsifier started a server of its own (preloading everything again)"


def test_a_corrupted_preloaded_module_does_not_reach_the_next_falsifier(project: Path) -> None:
    assert _run(project, "fx:corrupts").outcome is Outcome.PASSED
    result = _run(project, "fx:intact")
    assert result.outcome is Outcome.PASSED, result.reason


def test_a_daemon_of_a_forked_child_is_dead_afterwards(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = project / "daemon.pid"
    monkeypatch.setenv("FX_PID_FILE", str(pid_file))
    assert _run(project, "fx:leaves_daemon").outcome is Outcome.PASSED
    pid = int(pid_file.read_text())
    # The server ends every orphan before it reports the child's end; a zombie is reaped by it too.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_child_that_kills_the_server_is_an_error_and_the_next_falsifier_gets_a_fresh_server(project: Path) -> None:
    result = _run(project, "fx:kills_server")
    assert result.outcome is Outcome.ERROR
    assert "the fork server died while the falsifier ran" in result.reason
    result = _run(project, "fx:forked")
    assert result.outcome is Outcome.PASSED, result.reason


def test_a_forked_child_past_its_timeout_is_an_error_naming_the_timeout(project: Path) -> None:
    result = _run(project, "fx:hangs", timeout_s=1.0)
    assert result.outcome is Outcome.ERROR
    assert result.reason.startswith("timed out after 1s")
    assert _run(project, "fx:forked").outcome is Outcome.PASSED  # the server survived and serves the next


@pytest.mark.parametrize("server", ["forked", "fresh"])
def test_a_falsifier_starts_with_no_signal_blocked_whatever_its_parent_blocked(
    project: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    # A Ray worker runs tasks with SIGINT blocked; the mask survives fork and exec, so a falsifier that
    # interrupts its own run (the Ctrl-C tests of pretrain train) would hang. Both start paths clear it.
    import signal

    if server == "fresh":
        monkeypatch.setenv(fork_server.DISABLE_ENV, "0")
    fork_server.shutdown()  # the server, too, starts under the blocked mask
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR1})
    try:
        result = _run(project, "fx:nothing_blocked")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
    assert result.outcome is Outcome.PASSED, result.reason


def test_a_forked_childs_output_flood_is_bounded(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "OUTPUT_KEEP", 1000)
    run = fork_server.run(
        [sys.executable, "-m", "harness.child", "fx:floods", str(project / "none")], project, 60.0,
        isolation.child_env(project), preload=("json", "textwrap", "fractions"),
    )
    assert run is not None and run.returncode == 2  # no channel key: harness.child refuses, after the output
    assert len(run.output) <= 1000


def test_cuda_falsifiers_command_bindings_and_the_off_switch_take_the_fresh_process_path(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fork_preload(_falsifier("fx:forked"), project) == ("json", "textwrap", "fractions")
    assert fork_preload(_falsifier("fx:forked", cuda=True), project) is None
    command = Falsifier(
        id="F-cmd", attacks=(), prediction="p", if_fails="f", binding=Binding(BindingKind.COMMAND, argv=("true",)),
        location=SourceLocation("c.yaml", 1),
    )
    assert fork_preload(command, project) is None
    monkeypatch.setenv(fork_server.DISABLE_ENV, "0")
    assert fork_preload(_falsifier("fx:forked"), project) is None
    assert _run(project, "fx:fresh").outcome is Outcome.PASSED


def test_a_server_that_finds_cuda_initialised_refuses_and_the_falsifier_runs_fresh(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fake = tmp_path_factory.mktemp("fake-torch")
    (fake / "torch.py").write_text("class cuda:\n    is_initialized = staticmethod(lambda: True)\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]))
    (project / "pyproject.toml").write_text(PYPROJECT.replace('"fractions"]', '"fractions", "torch"]'), encoding="utf-8")
    result = _run(project, "fx:fresh")
    assert result.outcome is Outcome.PASSED, result.reason


def test_a_preload_module_that_cannot_be_imported_is_an_error_naming_pyproject_toml(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT.replace('"fractions"]', '"no_such_module_fx"]'), encoding="utf-8")
    result = _run(project, "fx:forked")
    assert result.outcome is Outcome.ERROR
    assert f"{project / 'pyproject.toml'}: [tool.harness] preload: the fork server cannot import 'no_such_module_fx'" in result.reason
    with pytest.raises(project_config.ProjectConfigError, match=r"pyproject\.toml: \[tool\.harness\] preload: no module named 'no_such_module_fx'"):
        project_config.check(project)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('preload = "torch"', r"\[tool\.harness\] preload must be a list of module names"),
        ('preload = ["../x"]', r"preload: '\.\./x' is not a module name"),
        ("prelaod = []", r"\[tool\.harness\] has unknown key\(s\) prelaod; known: attestation_public_key, preload"),
    ],
)
def test_a_malformed_tool_harness_table_is_a_clear_error_naming_the_file_and_key(
    project: Path, table: str, message: str
) -> None:
    (project / "pyproject.toml").write_text(f"[tool.harness]\n{table}\n", encoding="utf-8")
    with pytest.raises(project_config.ProjectConfigError, match=message) as caught:
        project_config.load(project)
    assert str(caught.value).startswith(f"{project / 'pyproject.toml'}: ")
    result = _run(project, "fx:forked")
    assert result.outcome is Outcome.ERROR and "pyproject.toml: [tool.harness]" in result.reason


def test_no_tool_harness_table_means_no_preload(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert project_config.load(tmp_path) == project_config.ProjectConfig()
    assert project_config.load(tmp_path / "missing") == project_config.ProjectConfig()


def test_a_preload_that_imports_the_repository_under_test_is_an_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "fx_own.py").write_text("VALUE = 1\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")]))
    (project / "pyproject.toml").write_text(PYPROJECT.replace('"fractions"]', '"fractions", "fx_own"]'), encoding="utf-8")
    result = _run(project, "fx:forked")
    assert result.outcome is Outcome.ERROR
    assert "preload: the fork server imported fx_own (" in result.reason
    assert "from the repository under test" in result.reason


def repository_falsifier() -> None:
    """Bound by the next test: a falsifier of this repository, which holds the harness itself."""
    assert "harness.fork_server" not in sys.modules or sys.modules["harness.fork_server"].__name__


def test_the_servers_own_files_do_not_count_as_the_repository_where_the_harness_is_the_repository() -> None:
    # This repository holds the harness: its server runs harness/fork_server.py from inside the root.
    repo = Path(__file__).resolve().parents[2]
    result = run_falsifier(_falsifier("tests.harness.test_fork_server:repository_falsifier"), CONTRACT, repo)
    fork_server.shutdown()
    assert (result.outcome, result.reason) == (Outcome.PASSED, "returned without an AssertionError")
    assert fork_server._from_repository("/r/", [("pkg", "/r/pkg/__init__.py")], ()) == "pkg (/r/pkg/__init__.py)"
    assert fork_server._from_repository("/r/", [("torch", "/r/.venv/lib/torch/__init__.py")], ("/r/.venv/lib/",)) is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('preload = ["no_such_module_fx"]', "preload: no module named 'no_such_module_fx' is installed"),
        ("prelaod = []", "has unknown key(s) prelaod"),
    ],
)
def test_verify_with_a_bad_tool_harness_table_exits_2_naming_pyproject_toml_and_runs_nothing(
    tmp_path: Path, table: str, message: str
) -> None:
    from tests.harness.verify_support import contract_text, falsifier, make_project, run_verify

    contracts = make_project(tmp_path, {"fx.yaml": contract_text("fx-v1", [falsifier("FALSIFY-FX-001", "{python: 'fx_falsifiers:holds'}")])})
    with (tmp_path / "pyproject.toml").open("a") as handle:
        handle.write(f"\n[tool.harness]\n{table}\n")
    proc = run_verify(tmp_path, str(contracts), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"harness verify: {tmp_path / 'pyproject.toml'}: [tool.harness] {message}" in proc.stderr
    assert "; nothing was run" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_forked_child_lists_the_repository_files_it_imported_and_none_the_server_held(project: Path) -> None:
    # harness.imported_files skips the modules the server held when it forked (harness.fork_server.HELD_MODULE:
    # the same name on both sides) and resolves only those imported since: the listing is what a fresh process's.
    from harness import imported_files

    assert fork_server.HELD_MODULE == imported_files.HELD_MODULE
    (project / "pkg").mkdir()
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "used.py").write_text("VALUE = 2\n")
    (project / "data.txt").write_text("2\n")
    (project / "reads.py").write_text(textwrap.dedent(
        """\
        import sys

        from pkg.used import VALUE


        def check():
            assert "fractions" in sys.modules, "not forked from the fork server"
            assert open("data.txt").read().strip() == str(VALUE)
        """
    ))
    forked = _run(project, "reads:check")
    assert forked.outcome is Outcome.PASSED, forked.reason
    assert forked.modules is not None
    assert sorted(forked.modules) == ["data.txt", "pkg/__init__.py", "pkg/used.py", "reads.py"]


def test_the_child_side_of_the_harness_imports_only_the_child_modules() -> None:
    # Every module harness.child imports is paid for in every forked child (once per falsifier): the
    # contract model (harness.model's dataclasses) and the parameter binding stay in the parent.
    import subprocess

    code = "import sys, harness.child; print(' '.join(sorted(m for m in sys.modules if m.startswith('harness'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(out) <= {
        "harness", "harness.child", "harness.channel", "harness.guard_coverage", "harness.imported_files",
        "harness.param_env", "harness.replay_child", "harness.line_probe", "harness.subprocess_probe",
    }, out


def test_a_forked_child_sizes_torch_threads_from_its_own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's OpenMP read the server's environment at import; a child given OMP_NUM_THREADS (harness -j
    # gives each child its share of the cores) must run with it, as a fresh process would.
    pytest.importorskip("torch")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n\n[tool.harness]\npreload = ["torch"]\n')
    (tmp_path / "threads.py").write_text(
        "import os\n\nimport torch\n\n\ndef check():\n"
        "    torch.ones(256, 256) @ torch.ones(256, 256)\n"
        "    assert torch.get_num_threads() == int(os.environ['OMP_NUM_THREADS']), torch.get_num_threads()\n"
    )
    monkeypatch.delenv(fork_server.DISABLE_ENV, raising=False)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    try:
        result = run_falsifier(_falsifier("threads:check"), CONTRACT, tmp_path, concurrent=2)
    finally:
        fork_server.shutdown()
    assert result.outcome is Outcome.PASSED, result.reason


def test_side_by_side_falsifiers_share_the_cores_unless_the_environment_says() -> None:
    from harness.execute import thread_share

    assert thread_share(2, {}, cores=2) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    assert thread_share(None, {"PYTEST_XDIST_WORKER_COUNT": "4"}, cores=16)["OMP_NUM_THREADS"] == "4"
    assert thread_share(3, {}, cores=2)["OMP_NUM_THREADS"] == "1"  # never zero
    assert thread_share(1, {}, cores=2) == {} and thread_share(None, {}, cores=2) == {}  # one at a time: every core
    assert thread_share(2, {"OMP_NUM_THREADS": "2"}, cores=2) == {}  # the user's choice stands


def test_a_child_that_finds_another_copy_of_the_harness_runs_that_copy(project: Path) -> None:
    # The server preloads the harness's child side from its own package; teeth's copy of a repository that
    # contains the harness must run the copy's (as a fresh `python -m harness.child` in the copy would).
    import shutil

    import harness

    shutil.copytree(Path(harness.__file__).parent, project / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "which.py").write_text(
        "import os\nimport sys\n\n\ndef check():\n"
        "    assert 'fractions' in sys.modules, 'not forked from the fork server'\n"
        "    here = os.path.realpath(os.getcwd())\n"
        "    for name in ('harness', 'harness.channel', 'harness.guard_coverage'):\n"
        "        assert os.path.realpath(sys.modules[name].__file__).startswith(here + os.sep), (name, sys.modules[name].__file__)\n"
    )
    result = _run(project, "which:check")
    assert result.outcome is Outcome.PASSED, result.reason
    # and where the child finds the server's own package, it keeps the preloaded one: its `harness.child` module
    # (a fresh `python -m harness.child` holds that file only as __main__)
    (project / "fresh.py").write_text("import sys\n\n\ndef check():\n    assert 'harness.child' in sys.modules\n")
    shutil.rmtree(project / "harness")
    assert _run(project, "fresh:check").outcome is Outcome.PASSED


def test_a_pytest_falsifier_forked_from_a_server_holding_pytest_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The counting plugin reads its result channel when the child's pytest loads it: the server must not hold it.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n\n[tool.harness]\npreload = ["pytest", "fractions"]\n')
    (tmp_path / "test_p.py").write_text("import sys\n\n\ndef test_forked():\n    assert 'fractions' in sys.modules\n")
    monkeypatch.delenv(fork_server.DISABLE_ENV, raising=False)
    try:
        result = run_falsifier(_falsifier("test_p.py::test_forked", kind=BindingKind.PYTEST), CONTRACT, tmp_path)
    finally:
        fork_server.shutdown()
    assert (result.outcome, result.reason) == (Outcome.PASSED, "1 passed, 0 skipped"), result.reason
