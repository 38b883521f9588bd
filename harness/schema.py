"""The published JSON Schemas (`harness/schemas/<name>.schema.json`), by name.

Public API:

    schema_names() -> list[str]          # e.g. ["contract"]; a stage adds one by adding a file
    load_schema(name: str) -> dict       # raises KeyError naming the available schemas
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_SUFFIX = ".schema.json"


def schema_names() -> list[str]:
    return sorted(p.name[: -len(_SUFFIX)] for p in SCHEMA_DIR.glob(f"*{_SUFFIX}"))


@functools.lru_cache(maxsize=None)
def _load(name: str) -> str:
    return (SCHEMA_DIR / f"{name}{_SUFFIX}").read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of the named schema (callers may mutate it)."""
    if name not in schema_names():
        raise KeyError(f"no schema named {name!r}; available: {', '.join(schema_names())}")
    return json.loads(_load(name))
