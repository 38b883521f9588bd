"""Every contract's falsifiers can really fail: sabotage the code an invariant guards, and the falsifier
bound to it must raise AssertionError (the harness's `falsified`), not pass and not crash.

A falsifier that still passes against a broken pretrain is vacuous: its green in the evidence would
prove nothing. Each case here monkeypatches one guarded function of `pretrain` into a plausible bug
(the kind a regression would introduce) and calls the repository's falsifier in-process, exactly as
`harness.child` would. The cases span all five contracts in contracts/; the unpatched falsifiers
are run green by tests/test_repository_contracts.py.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _no_arch_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.checkpoint
    import pretrain.families
    import pretrain.stamp

    def no_op(*args: Any, **kwargs: Any) -> None:
        return None

    # Patched where it is defined and everywhere it was imported by name.
    for module in (pretrain.families, pretrain.checkpoint, pretrain.stamp):
        monkeypatch.setattr(module, "validate_init_arch_matches_tensor_evidence", no_op)


def _non_strict_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import pretrain.model
    from pretrain.model import CausalLM

    def lenient(cfg: Any, tensors: Any, source: str, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> Any:
        # The pre-incident loader: random init, then whatever names happen to match.
        model = CausalLM(cfg)
        model.reset_parameters()
        model.load_state_dict({k: v for k, v in tensors.items()}, strict=False)
        return model.to(device=device, dtype=dtype)

    monkeypatch.setattr(pretrain.model, "load_state_strict", lenient)


def _header_reader_skips_entry_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.formats.safetensors
    from pretrain.checkpoint import CheckpointError, TensorInfo

    original = pretrain.formats.safetensors._parse_tensor_entry

    def lax(path: str, name: str, entry: Any) -> Any:
        try:
            return original(path, name, entry)
        except CheckpointError:
            # A reader that trusts the header: no dtype, shape or offset validation.
            entry = entry if isinstance(entry, dict) else {}
            offsets = entry.get("data_offsets") or [0, 0]
            return TensorInfo(dtype=str(entry.get("dtype")), shape=tuple(entry.get("shape") or ()), nbytes=0,
                              offsets=(offsets[0], offsets[-1]))

    monkeypatch.setattr(pretrain.formats.safetensors, "_parse_tensor_entry", lax)


def _stamp_rewrites_tensor_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.stamp

    original = pretrain.stamp._copy_range

    def corrupting(src: Any, dst: Any, start: int, length: int) -> str:
        if dst is None or length == 0:
            return original(src, dst, start, length)
        src.seek(start)
        data = bytearray(src.read(length))
        data[0] ^= 0xFF
        dst.write(data)
        # Consistent with what it wrote, so stamp's own read-back check cannot catch it: only the falsifier can.
        return hashlib.sha256(data).hexdigest()

    monkeypatch.setattr(pretrain.stamp, "_copy_range", corrupting)


def _quality_score_always_100(monkeypatch: pytest.MonkeyPatch) -> None:
    from pretrain.quality import Scorecard

    monkeypatch.setattr(Scorecard, "score", property(lambda self: 100))
    monkeypatch.setattr(Scorecard, "ship_ready", property(lambda self: True))


def _rotary_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.model

    monkeypatch.setattr(pretrain.model, "apply_rotary", lambda x, cos, sin: x)


def _init_ignores_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.train

    original = pretrain.train.build_model
    seeds = itertools.count(1000)

    def unseeded(cfg: Any, device: Any = "cpu", dtype: Any = None, seed: int | None = None) -> Any:
        kwargs = {"dtype": dtype} if dtype is not None else {}
        return original(cfg, device=device, seed=next(seeds), **kwargs)

    monkeypatch.setattr(pretrain.train, "build_model", unseeded)


def _learning_rate_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.train

    monkeypatch.setattr(pretrain.train, "lr_at", lambda *args, **kwargs: 0.0)


# (contract id, falsifier id, sabotage, regex the counterexample must match)
CASES: list[tuple[str, str, Callable[[pytest.MonkeyPatch], None], str]] = [
    ("apr-pretrain-from-init-v1", "FALSIFY-INIT-ARCH-MATCH-001", _no_arch_gate, r"claims llama but holds qwen2"),
    ("apr-pretrain-from-init-v1", "FALSIFY-INIT-STRICT-002", _non_strict_loader, r"loaded without error"),
    ("apr-checkpoint-format-v1", "FALSIFY-CKPT-HOSTILE-001", _header_reader_skips_entry_checks, r"unknown dtype: read without error"),
    ("apr-checkpoint-format-v1", "FALSIFY-CKPT-STAMP-BYTES-001", _stamp_rewrites_tensor_bytes, r"tensor bytes differ"),
    ("apr-inspect-quality-v1", "FALSIFY-QUALITY-MISSTAMP-001", _quality_score_always_100, r"scored 100"),
    ("apr-hf-parity-v1", "FALSIFY-HF-PARITY-001", _rotary_dropped, r"logit diff"),
    ("apr-trainer-v1", "FALSIFY-TRAIN-DETERMINISM-001", _init_ignores_seed, r"differ"),
    ("apr-trainer-v1", "FALSIFY-TRAIN-LEARNS-001", _learning_rate_zero, r"did not fall"),
]


def _python_target(contract_id: str, falsifier_id: str) -> str:
    """The falsifier's `python:` binding as the contract declares it, so a renamed id or target fails here."""
    doc = yaml.safe_load((ROOT / "contracts" / f"{contract_id}.yaml").read_text())
    for falsifier in doc["falsifiers"]:
        if falsifier["id"] == falsifier_id:
            return falsifier["binding"]["python"]
    raise AssertionError(f"{falsifier_id} is not declared in contracts/{contract_id}.yaml")


def test_cases_span_every_contract() -> None:
    declared = {p.stem for p in (ROOT / "contracts").glob("*.yaml")}
    assert {case[0] for case in CASES} == declared


@pytest.mark.parametrize(("contract_id", "falsifier_id", "sabotage", "expected"), CASES, ids=[c[1] for c in CASES])
def test_falsifier_fails_against_sabotaged_code(
    monkeypatch: pytest.MonkeyPatch, contract_id: str, falsifier_id: str,
    sabotage: Callable[[pytest.MonkeyPatch], None], expected: str,
) -> None:
    import importlib

    module_name, _, func_name = _python_target(contract_id, falsifier_id).partition(":")
    falsify = getattr(importlib.import_module(module_name), func_name)
    sabotage(monkeypatch)
    with pytest.raises(AssertionError) as excinfo:
        falsify()
    assert re.search(expected, str(excinfo.value)), f"{falsifier_id} failed for another reason: {excinfo.value}"
