"""The project's `[tool.harness]` table in its pyproject.toml: the one reader of the harness's project settings.

    [tool.harness]
    preload = ["torch", "transformers"]   # modules the fork server imports once (harness.fork_server)
    attestation_public_key = "keys/attestation.pub"   # what `harness attest --verify` and the audit check with

The file read is `pyproject.toml` at the repository root that verify resolves (harness.discover). An
absent file or table means the defaults. An unknown key, a value of the wrong type, or a file that is
not TOML is a `ProjectConfigError` whose one-line message names the file and the key. Other parts of the
harness add their keys here (`_KEYS`), never through a second reader.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "pyproject.toml"
# A dotted module name, as `import` accepts it (no relative imports, no paths).
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ProjectConfigError(ValueError):
    """pyproject.toml's [tool.harness] is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class ProjectConfig:
    # Modules the fork server imports once before it forks a child per falsifier, in the order written.
    preload: tuple[str, ...] = ()
    # The Ed25519 public key (PEM) attestations are verified with (harness.attest), relative to the
    # repository root; None: none configured (then `harness attest --verify` needs --pub).
    attestation_public_key: str | None = None


def _preload(path: Path, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProjectConfigError(
            f"{path}: [tool.harness] preload must be a list of module names, e.g. preload = [\"numpy\"]; got {value!r}"
        )
    for name in value:
        if not _MODULE.fullmatch(name):
            raise ProjectConfigError(f"{path}: [tool.harness] preload: {name!r} is not a module name (dotted, like 'torch.nn')")
    return tuple(dict.fromkeys(value))


def _attestation_public_key(path: Path, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProjectConfigError(
            f"{path}: [tool.harness] attestation_public_key must be the path of a public key file, relative to "
            f"the repository root, e.g. attestation_public_key = \"keys/attestation.pub\"; got {value!r}"
        )
    return value


_KEYS = {"preload": _preload, "attestation_public_key": _attestation_public_key}


def parse(path: Path, table: Any) -> ProjectConfig:
    """The ProjectConfig of a `[tool.harness]` table read from `path` (for messages)."""
    if not isinstance(table, dict):
        raise ProjectConfigError(f"{path}: [tool.harness] must be a table; got {type(table).__name__}")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ProjectConfigError(
            f"{path}: [tool.harness] has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    return ProjectConfig(**{key: _KEYS[key](path, value) for key, value in table.items()})


_cache: dict[Path, tuple[tuple[int, int], ProjectConfig]] = {}


def load(repo_root: str | os.PathLike[str]) -> ProjectConfig:
    """The `[tool.harness]` settings of the repository at `repo_root`; defaults without the file or table.

    Cached by the file's mtime and size: run_falsifier asks once per falsifier."""
    path = Path(repo_root) / FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ProjectConfig()
    except OSError as exc:
        raise ProjectConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectConfigError(f"{path}: cannot read it: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("harness") if isinstance(tool, dict) else None
    config = ProjectConfig() if table is None else parse(path, table)
    _cache[path] = (stamp, config)
    return config


def check(repo_root: str | os.PathLike[str]) -> ProjectConfig:
    """load(), and every preload module findable here (its top-level package: finding `torch._dynamo`
    would import torch): what verify and teeth check before anything runs. Raises ProjectConfigError."""
    import importlib.util

    config = load(repo_root)
    for name in config.preload:
        top = name.partition(".")[0]
        try:
            found = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ProjectConfigError(
                f"{Path(repo_root) / FILE}: [tool.harness] preload: no module named {top!r} is installed; "
                f"install it or remove {name!r} from preload"
            )
    return config
