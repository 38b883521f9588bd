"""harness.resolve: binding checks run in child processes, so a hostile module cannot stop validation."""

from __future__ import annotations

from pathlib import Path

from harness.resolve import check_program, check_python_targets


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
