"""harness: compiles YAML contracts into falsifiers, runs them with pytest, records evidence per commit.

It is a general tool and imports nothing from the systems it verifies. As a library:

    evidence = harness.verify(["contracts/"], out="reports")   # a typed Evidence
    gate = harness.verdict(evidence, harness.Policy(strict=True))
    again = harness.read_evidence(harness.evidence_dir("reports", evidence.commit))  # the same Evidence
    teeth = harness.teeth(["contracts/"], out="reports", jobs=2)   # mutants of every guard; teeth.survivors
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Loaded on first use (PEP 562): `harness.cli` imports this package before it can handle SIGTERM, so
# importing it must stay cheap, and the pipeline pulls in pytest.
_EXPORTS = {
    "verify": "harness.pipeline",
    "Observer": "harness.pipeline",
    "InvalidInput": "harness.pipeline",
    "EvidenceNotWritten": "harness.pipeline",
    "replay": "harness.replay_run",
    "Replay": "harness.replay_run",
    "ReplayError": "harness.replay_run",
    "read_evidence": "harness.record",
    "evidence_dir": "harness.record",
    "EvidenceError": "harness.record",
    "verdict": "harness.gate",
    "Policy": "harness.gate",
    "Verdict": "harness.gate",
    "Evidence": "harness.model",
    "ContractResult": "harness.model",
    "FalsifierResult": "harness.model",
    "Outcome": "harness.model",
    "merge": "harness.merge_run",
    "MergeError": "harness.merge_run",
    "shard": "harness.sharding",
    "teeth": "harness.teeth_run",
    "Teeth": "harness.teeth_run",
    "read_teeth": "harness.teeth_record",
    "TeethError": "harness.teeth_record",
    "diff_evidence": "harness.diff",
    "EvidenceDiff": "harness.diff",
    "load_waivers": "harness.waivers",
    "Waiver": "harness.model",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
