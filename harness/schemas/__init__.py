"""The harness's published JSON Schemas (draft 2020-12), shipped as package data.

`load_schema("contract")` / `load_schema("evidence")` return the parsed schema, for
`harness schema NAME` and for validating documents in tests.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_NAMES = ("contract", "evidence")


@lru_cache(maxsize=None)
def _load(name: str) -> str:
    return (SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema called `name` ("contract" or "evidence"); a fresh copy each call."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; choose one of: {', '.join(SCHEMA_NAMES)}")
    return json.loads(_load(name))
