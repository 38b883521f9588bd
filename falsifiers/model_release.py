"""Falsifiers 1-5 of model-release-v1: the release gate over one model artifact, the contract's `checkpoint`
parameter (a trainer .safetensors checkpoint or an HF directory).

Each receives the checkpoint as its keyword argument (the harness passes a contract parameter to a python
binding that takes it, and always sets HARNESS_PARAM_CHECKPOINT), runs `pretrain`'s own code on it, and
raises AssertionError naming the fix as a command that runs as printed. They read the artifact and never
write beside it.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falsifiers.support import run_cli

if TYPE_CHECKING:
    from pretrain.checkpoint import Header

CONTRACT = "contracts/model-release-v1.yaml"
QUALITY_THRESHOLD = 90
# Falsifier 4's fixed prompt, as byte-level token ids (the trainer's tokenizer; ids reduced modulo the vocab
# for a model with a smaller one), and how many tokens it generates greedily.
PROMPT = "def fibonacci(n):\n    "
NEW_TOKENS = 16
VAL_LOSS_TOLERANCE = 0.02  # relative: falsifier 5


def _checkpoint(checkpoint: str | None) -> str:
    path = checkpoint or os.environ.get("HARNESS_PARAM_CHECKPOINT")
    assert path, f"no checkpoint given; run: harness verify {CONTRACT} --param checkpoint=PATH"
    return path


def _q(path: str) -> str:
    return shlex.quote(path)


def _header(path: str) -> "Header":
    from pretrain.checkpoint import CheckpointError, read_header

    try:
        return read_header(path)
    except CheckpointError as exc:
        raise AssertionError(
            f"the checkpoint does not read: {exc}; `pretrain inspect {_q(path)}` shows the same, and the fix is a "
            "checkpoint that reads"
        ) from None


# ---------------------------------------------------------------------------------------- 1: reads, finite


def falsify_checkpoint_reads_and_is_finite(checkpoint: str | None = None) -> None:
    """The header and every tensor read (pretrain.checkpoint.load_tensors, which refuses NaN/Inf), and every
    tensor the header lists is there and finite, checked here again element by element."""
    import torch

    from pretrain.checkpoint import CheckpointError, load_tensors

    path = _checkpoint(checkpoint)
    header = _header(path)
    assert header.format != "gguf", (
        f"{path} is a GGUF file; the release gate verifies the safetensors checkpoint or HF directory it was "
        f"exported from: harness verify {CONTRACT} --param checkpoint=MODEL.safetensors"
    )
    assert header.tensors, f"{path} holds no tensors; `pretrain inspect {_q(path)}` lists what it holds"
    try:
        tensors = load_tensors(path)
    except CheckpointError as exc:
        raise AssertionError(
            f"the checkpoint's tensors do not load: {exc}; release the run's last good checkpoint instead: "
            f"harness verify {CONTRACT} --param checkpoint=GOOD.safetensors"
        ) from None
    missing = sorted(set(header.tensors) - set(tensors))
    assert not missing, f"{len(missing)} tensor(s) the header lists did not load: {missing[:5]}"
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    assert not bad, (
        f"{len(bad)} tensor(s) hold NaN or Inf: {bad[:5]}; release the run's last good checkpoint instead: "
        f"harness verify {CONTRACT} --param checkpoint=GOOD.safetensors"
    )


# ---------------------------------------------------------------------------------------- 2: quality >= 90


def falsify_quality_ship_ready(checkpoint: str | None = None) -> None:
    """`pretrain inspect CKPT --quality --min-score 90 --json` exits 0 with a score >= 90, ship-ready, and the
    hf_identity and provenance categories complete."""
    path = _checkpoint(checkpoint)
    result = run_cli("inspect", path, "--quality", "--min-score", str(QUALITY_THRESHOLD), "--json")
    assert result.out.strip(), f"`pretrain inspect {_q(path)} --quality --json` printed nothing: {result.err.strip()}"
    card = json.loads(result.out)["quality"]
    categories = {c["name"]: c for c in card["categories"]}
    short = [
        f"{name}.{check['name']}: {check['detail']}"
        for name in ("hf_identity", "provenance") for check in categories[name]["checks"]
        if check["points"] < check["max_points"]
    ]
    fixes = "; ".join(card["fixes"]) or f"`pretrain inspect {_q(path)} --quality` lists them"
    assert not short, f"identity or provenance incomplete ({'; '.join(short)}); fix: {fixes}"
    assert card["score"] >= QUALITY_THRESHOLD and card["ship_ready"], (
        f"quality score {card['score']} (ship_ready {card['ship_ready']}), below {QUALITY_THRESHOLD}; fix: {fixes}"
    )
    assert result.rc == 0, (
        f"`pretrain inspect {_q(path)} --quality --min-score {QUALITY_THRESHOLD}` exited {result.rc} for a score of "
        f"{card['score']}: {result.err.strip()}"
    )


# ---------------------------------------------------------------------------------------- 3: family agrees


def falsify_claimed_family_matches_tensors(checkpoint: str | None = None) -> None:
    """INV-INIT-ARCH-MATCH-001 applied to the artifact: it claims a known family, the one its tensor names are,
    and the gate (pretrain.checkpoint.check_init_arch) passes it."""
    from pretrain.checkpoint import check_init_arch
    from pretrain.families import UNKNOWN, InitArchMismatchError, family_from_tensor_names, stamp_recipe

    path = _checkpoint(checkpoint)
    header = _header(path)
    inferred = family_from_tensor_names(header.tensor_names)
    assert inferred != UNKNOWN, (
        f"its tensor names are no family pretrain knows (llama, qwen2, qwen3); `pretrain inspect {_q(path)}` lists them"
    )
    try:
        check_init_arch(header)
    except InitArchMismatchError as exc:
        raise AssertionError(f"the claimed family contradicts the tensors: {exc}") from None
    claim = header.claim
    assert claim.family == inferred, (
        f"it claims {claim.text!r} ({claim.source or 'no claim at all'}), not {inferred}, the family of its tensor "
        f"names; fix: {stamp_recipe(path, inferred, header.tensor_names)}"
    )


# ---------------------------------------------------------------------------------------- 4: loads, generates


def _greedy(model: Any, prompt: list[int], steps: int) -> tuple[list[int], bool]:
    """`steps` greedy tokens after `prompt` through pretrain.generate.generate (the KV-cache decoding `pretrain
    generate` runs), and whether the logits behind every step are finite: (tokens, finite).

    The logits are those of one full forward pass over the prompt and the generated tokens: position i's are
    what chose token i+1 (generate returns tokens, not logits)."""
    import torch

    from pretrain.generate import generate

    with torch.no_grad():
        ids = generate(model, torch.tensor([prompt], dtype=torch.long), max_new_tokens=steps)
        logits = model(ids)[0, len(prompt) - 1:]
    return ids[0, len(prompt):].tolist(), bool(torch.isfinite(logits).all())


def falsify_loads_strictly_and_generates_deterministically(checkpoint: str | None = None) -> None:
    """It loads strictly into pretrain.model through the one load path; greedy generation from a fixed prompt
    gives the same tokens twice and finite logits at every step."""
    import torch

    from pretrain.checkpoint import CheckpointError
    from pretrain.families import InitArchMismatchError
    from pretrain.loading import load_checkpoint
    from pretrain.model import LoadError

    path = _checkpoint(checkpoint)
    try:
        loaded = load_checkpoint(path, "cpu", torch.float32)
    except (CheckpointError, InitArchMismatchError, LoadError) as exc:
        raise AssertionError(
            f"it does not load strictly into pretrain.model: {exc}; `pretrain inspect {_q(path)} --quality` shows what "
            "is wrong with it"
        ) from None
    model = loaded.model.eval()
    vocab = loaded.config.vocab_size
    prompt = [b % vocab for b in PROMPT.encode("utf-8")]
    first, finite = _greedy(model, prompt, NEW_TOKENS)
    assert finite, (
        f"its logits are NaN or Inf during greedy generation from {PROMPT!r}; release the run's last good checkpoint: "
        f"harness verify {CONTRACT} --param checkpoint=GOOD.safetensors"
    )
    second, _ = _greedy(model, prompt, NEW_TOKENS)
    assert first == second, f"greedy generation from {PROMPT!r} is not deterministic: {first} then {second}"
    assert len(first) == NEW_TOKENS and all(0 <= t < vocab for t in first), f"generated {first} for a vocab of {vocab}"


# ---------------------------------------------------------------------------------------- 5: val_loss reproduces


def _retrain_command(path: str, metadata: dict[str, str], split: dict[str, Any], out: str) -> str:
    """`pretrain train --init CKPT --steps 0 ...`: evaluates the weights on the recorded split and saves them with
    the val_loss measured there (and the checkpoint's provenance), so the record and the weights agree again."""
    parts = ["pretrain", "train", "--init", _q(path), "--steps", "0", "--seq-len", str(split["seq_len"]),
             "--val-windows", str(split["windows"])]
    if split.get("data"):
        parts += ["--data", _q(str(split["data"]))]
    for key in ("license", "data_source", "data_license"):
        if metadata.get(key):
            parts += [f"--{key.replace('_', '-')}", _q(metadata[key])]
    return " ".join([*parts, "--out", _q(out)])


def falsify_recorded_val_loss_reproduces(checkpoint: str | None = None) -> None:
    """Evaluating the checkpoint on its recorded validation split (metadata `val_split`: the data, window length
    and count, and the split's digest) gives its recorded `val_loss` within 2%."""
    import hashlib

    import numpy as np
    import torch

    from pretrain import data as data_mod
    from pretrain.checkpoint import CheckpointError
    from pretrain.families import InitArchMismatchError
    from pretrain.loading import load_checkpoint
    from pretrain.model import LoadError
    from pretrain.train import evaluate

    path = _checkpoint(checkpoint)
    header = _header(path)
    md = header.metadata
    out = str(Path(path).with_suffix("")) + ".reevaluated" if path.endswith(".safetensors") else path.rstrip("/") + ".reevaluated"
    assert "val_loss" in md, (
        f"it records no val_loss; evaluate and record it: pretrain train --init {_q(path)} --steps 0 --out {_q(out)}"
    )
    recorded = float(md["val_loss"])
    assert "val_split" in md, (
        f"it records no val_split (what its val_loss {recorded} was measured on), so the value cannot be checked; "
        f"record it by evaluating again with the data it was trained on: pretrain train --init {_q(path)} --steps 0 "
        f"--data DATA --out {_q(out)}"
    )
    split = json.loads(md["val_split"])
    try:
        loaded = load_checkpoint(path, "cpu", torch.float32)
    except (CheckpointError, InitArchMismatchError, LoadError) as exc:
        raise AssertionError(f"it does not load, so its val_loss cannot be measured: {exc}") from None
    cfg = loaded.config
    fix = _retrain_command(path, md, split, out)
    try:
        corpus = data_mod.load_corpus(split["data"], int(split["seq_len"]), cfg.vocab_size)
    except data_mod.DataError as exc:
        raise AssertionError(f"its recorded validation data cannot be read: {exc}") from None
    tokens = np.ascontiguousarray(corpus.val)
    digest = hashlib.sha256()
    for start in range(0, len(tokens), 1 << 22):
        digest.update(np.ascontiguousarray(tokens[start:start + (1 << 22)]).tobytes())
    assert (len(tokens), str(tokens.dtype), digest.hexdigest()) == (split["tokens"], split["dtype"], split["sha256"]), (
        f"the validation split of {split['data'] or 'the default corpus'} is not the one its val_loss was measured on "
        f"({len(tokens)} {tokens.dtype} tokens, sha256 {digest.hexdigest()[:12]}; recorded {split['tokens']} "
        f"{split['dtype']}, {str(split['sha256'])[:12]}); give it the data it was trained on, or measure it on this "
        f"data: {fix}"
    )
    starts = data_mod.val_windows(corpus.val, int(split["seq_len"]), int(split["windows"]))
    measured = evaluate(loaded.model, corpus.val, starts, int(split["seq_len"]), torch.device("cpu"), None)
    assert math.isfinite(measured), f"its val_loss on the recorded split is {measured}"
    assert abs(measured - recorded) <= VAL_LOSS_TOLERANCE * abs(recorded), (
        f"val_loss {measured:.4f} on the recorded validation split, recorded {recorded:.4f} "
        f"({abs(measured - recorded) / abs(recorded):.1%} apart, more than {VAL_LOSS_TOLERANCE:.0%}); the record does "
        f"not describe these weights; measure and record it again: {fix}"
    )
