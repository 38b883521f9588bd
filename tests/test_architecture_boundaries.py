"""The two products stay separable: harness never imports pretrain, pretrain never imports harness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_top_level_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    names.add(node.args[0].value.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [("harness", "pretrain"), ("pretrain", "harness")])
def test_package_does_not_import_the_other_product(package: str, forbidden: str) -> None:
    modules = imported_top_level_packages(package)
    assert modules, f"{package}/ has no Python modules to check"
    offenders = [path for path, names in modules.items() if forbidden in names or "falsifiers" in names]
    assert offenders == [], f"{package} must not import {forbidden} or falsifiers: {offenders}"
