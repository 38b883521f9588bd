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
    _reads_controls(header)


def _float_dtype(header: "Header") -> Any:
    """The torch dtype of the artifact's floating tensors (its first one), so the controls take the same path."""
    import torch

    names = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
    return next((names[t.dtype] for t in header.tensors.values() if t.dtype in names), torch.float32)


def _reads_controls(header: "Header") -> None:
    """Negative controls: on a good artifact the refusals are never exercised, so a read gate that let NaN
    through, or a reader that did not refuse what it cannot read, would pass unseen. Here they must refuse:
    small files in the artifact's floating dtype holding NaN/Inf (5, then 6 bad tensors: the message names
    at most five), a GGUF file (never loaded as weights), a missing path and a name too long to open."""
    import errno
    import tempfile

    import torch
    from safetensors.torch import save_file

    from pretrain.checkpoint import CheckpointError, load_tensors, read_header

    dtype = _float_dtype(header)
    with tempfile.TemporaryDirectory(prefix="release-controls-") as d:
        for count in (5, 6):
            bad = {f"bad{i}": torch.ones(1 if i == 0 else 8, dtype=dtype) for i in range(count)}
            for i, (name, t) in enumerate(bad.items()):
                t.view(-1)[i % t.numel()] = float("nan") if i % 2 == 0 else float("inf") * (1 if i % 4 == 1 else -1)
            good = {"ok": torch.ones(4, dtype=dtype), "ids": torch.arange(3), "empty": torch.ones(0, dtype=dtype)}
            path = f"{d}/bad{count}.safetensors"
            save_file({**good, **bad}, path)
            try:
                load_tensors(path)
            except CheckpointError as exc:
                shown = ", ".join(repr(n) for n in sorted(bad)[:5])
                more = f", ... (+{count - 5} more)" if count > 5 else ""
                assert f"{count} tensor(s) hold NaN or Inf weights: {shown}{more}; " in str(exc), (
                    f"negative control: load_tensors refused {count} NaN/Inf tensors with {exc}, not naming them "
                    f"({shown}{more}); a defect in pretrain.checkpoint, not in the artifact"
                )
            else:
                raise AssertionError(f"negative control: load_tensors loaded a file with {count} NaN/Inf tensors in "
                                     f"{dtype}; the read gate lets non-finite weights through (a defect in pretrain.checkpoint)")
        # float8 e4m3fn: torch has no isfinite (nor aminmax) kernel for it, so the check widens it to find a
        # NaN; a gate that skipped such dtypes would pass a float8 artifact holding NaN.
        weights = torch.ones(8)
        weights[3] = float("nan")
        f8_path = f"{d}/f8.safetensors"
        save_file({"ok": torch.ones(4).to(torch.float8_e4m3fn), "bad0": weights.to(torch.float8_e4m3fn)}, f8_path)
        try:
            load_tensors(f8_path)
        except CheckpointError as exc:
            assert "1 tensor(s) hold NaN or Inf weights: 'bad0'; " in str(exc), (
                f"negative control: load_tensors refused a float8 NaN tensor with {exc}, not naming it; a defect in pretrain.checkpoint"
            )
        else:
            raise AssertionError("negative control: load_tensors loaded a float8_e4m3fn tensor holding NaN; the read gate "
                                 "lets non-finite float8 weights through (a defect in pretrain.checkpoint)")
        gguf_path, f6_path = f"{d}/control.gguf", f"{d}/f6.safetensors"
        _write_tiny_gguf(gguf_path)
        # A header pretrain's parser accepts (F6_E2M3 is a safetensors dtype) with data the safetensors library
        # cannot load: its error must become a CheckpointError, not escape or be swallowed.
        header_json = json.dumps({"a": {"dtype": "F6_E2M3", "shape": [8], "data_offsets": [0, 6]}}).encode()
        Path(f6_path).write_bytes(len(header_json).to_bytes(8, "little") + header_json + bytes(6))
        refusals = [(gguf_path, load_tensors, "GGUF tensors are quantised"),
                    (f6_path, load_tensors, "safetensors could not load it"),
                    (f"{d}/missing.safetensors", read_header, "no such file or directory"),
                    (f"{d}/{'x' * 300}.safetensors", read_header, f"cannot read: {os.strerror(errno.ENAMETOOLONG)}")]
        for path, call, expected in refusals:
            try:
                call(path)
            except CheckpointError as exc:
                assert expected in str(exc), f"negative control: {call.__name__} refused {path[:80]} with {exc!r}, not {expected!r}"
            else:
                raise AssertionError(f"negative control: {call.__name__} did not refuse {path[:80]} ({expected}); a defect "
                                     "in pretrain.checkpoint, not in the artifact")


def _write_tiny_gguf(path: str) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("token_embd.weight", np.ones((2, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ---------------------------------------------------------------------------------------- 2: quality >= 90


def falsify_quality_ship_ready(checkpoint: str | None = None) -> None:
    """`pretrain inspect CKPT --quality --min-score 90 --json` exits 0 with a score >= 90, ship-ready, and the
    hf_identity and provenance categories complete."""
    path = _checkpoint(checkpoint)
    result = run_cli("inspect", path, "--quality", "--min-score", str(QUALITY_THRESHOLD), "--check-arch", "--json")
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
        f"`pretrain inspect {_q(path)} --quality --min-score {QUALITY_THRESHOLD} --check-arch` exited {result.rc} for a "
        f"score of {card['score']}: {result.err.strip()}"
    )
    structure = [c for c in categories["structure"]["checks"] if c["points"] < c["max_points"]]
    assert not structure, f"structure incomplete: {[c['name'] + ': ' + c['detail'] for c in structure]}; `pretrain inspect {_q(path)} --quality`"
    _quality_controls(_header(path))


def _checks(card: Any) -> dict[str, Any]:
    return {check.name: check for category in card.categories for check in category.checks}


def _without_identity(header: "Header") -> "Header":
    import dataclasses

    from pretrain.formats.hf_dir import STAMP_KEY

    drop = {"architecture", "hf_architecture", "hf_model_type", "general.architecture"}
    config = None if header.config is None else {k: v for k, v in header.config.items()
                                                  if k not in {"architectures", "model_type", STAMP_KEY}}
    metadata = {k: v for k, v in header.metadata.items() if k not in drop}
    return dataclasses.replace(header, metadata=metadata, config=config)


def _claiming(header: "Header", family: str) -> "Header":
    """The artifact's header claiming `family` everywhere a claim is read (metadata and config.json)."""
    import dataclasses

    from pretrain.families import FAMILY_TABLE

    spec = FAMILY_TABLE[family]
    bare = _without_identity(header)
    metadata = {**bare.metadata, "architecture": spec.slug, "hf_architecture": spec.hf_class, "hf_model_type": spec.model_type}
    config = None if bare.config is None else {**bare.config, "architectures": [spec.hf_class], "model_type": spec.model_type}
    return dataclasses.replace(bare, metadata=metadata, config=config)


def _other_family(inferred: str) -> str:
    return "qwen2" if inferred != "qwen2" else "llama"


def _quality_controls(header: "Header") -> None:
    """Negative controls for the scorecard and `pretrain inspect`'s exit status, which a good artifact never
    exercises: the artifact's own header mis-claimed, without its identity, with uniform and with mixed
    floating dtypes, each scored by pretrain.quality.score_header; and a file below 90 must make `pretrain
    inspect --min-score 90` (no --quality: implied) exit 1 with its scorecard."""
    import dataclasses
    import tempfile

    import torch
    from safetensors.torch import save_file

    from pretrain.families import family_from_tensor_names
    from pretrain.quality import score_header

    inferred = family_from_tensor_names(header.tensor_names)
    other = _other_family(inferred)
    checks = _checks(score_header(_claiming(header, other)))
    wrong = [name for name in ("family", "architecture", "hf_architecture", "hf_model_type") if checks[name].points]
    assert not wrong, f"negative control: a copy of the header claiming {other} (its tensors are {inferred}) scores {wrong} as right"
    assert checks["family"].detail == "claimed and inferred families disagree", checks["family"].detail
    assert checks["architecture"].detail.endswith("contradicts the tensors"), checks["architecture"].detail
    assert checks["hf_architecture"].detail.endswith(f"is not {inferred}'s"), checks["hf_architecture"].detail
    checks = _checks(score_header(_without_identity(header)))
    for name in ("architecture", "hf_architecture", "hf_model_type"):
        assert not checks[name].points and checks[name].detail == f"{name} missing", (
            f"negative control: a copy of the header without {name} scores it {checks[name].points} ({checks[name].detail})")
    floats = [n for n, t in header.tensors.items() if t.dtype in {"F16", "BF16", "F32", "F64"}]
    if floats:
        first = header.tensors[floats[0]].dtype
        uniform = {n: dataclasses.replace(t, dtype=first) if n in floats else t for n, t in header.tensors.items()}
        mixed = {**uniform, floats[0]: dataclasses.replace(uniform[floats[0]], dtype="F64" if first != "F64" else "F32")}
        for tensors, want in ((uniform, True), (mixed, False)):
            check = _checks(score_header(dataclasses.replace(header, tensors=tensors)))["uniform_float_dtype"]
            assert bool(check.points) == want, (
                f"negative control: uniform_float_dtype scores {check.points} for {'one' if want else 'two'} floating dtype(s)")
    with tempfile.TemporaryDirectory(prefix="release-controls-") as d:
        low = f"{d}/low.safetensors"
        save_file({"model.embed_tokens.weight": torch.zeros(2, 2)}, low)
        result = run_cli("inspect", low, "--min-score", str(QUALITY_THRESHOLD), "--json")
        out = json.loads(result.out) if result.out.strip() else {}
        assert result.rc == 1 and "quality" in out and out["quality"]["score"] < QUALITY_THRESHOLD, (
            f"negative control: `pretrain inspect LOW --min-score {QUALITY_THRESHOLD} --json` on a file without identity "
            f"or provenance exited {result.rc} with {sorted(out)}; it must exit 1 with its scorecard")
        text = run_cli("inspect", low, "--quality", "--min-score", str(QUALITY_THRESHOLD))
        assert text.rc == 1 and f"/100 (NOT ship-ready: threshold {QUALITY_THRESHOLD}" in text.out + text.err, (
            f"negative control: `pretrain inspect LOW --quality --min-score {QUALITY_THRESHOLD}` exited {text.rc} "
            f"without printing the scorecard: {(text.out + text.err).strip()[:300]}")


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
    # Negative control: the gate passes every artifact that claims the right family, so one that refused
    # nothing would pass here too. The artifact's header claiming another family must be refused.
    other = _other_family(inferred)
    try:
        check_init_arch(_claiming(header, other))
    except InitArchMismatchError as exc:
        assert exc.claimed == other and exc.inferred == inferred, (exc.claimed, exc.inferred)
    else:
        raise AssertionError(f"negative control: check_init_arch passed a copy of {path}'s header claiming {other}; "
                             f"its tensors are {inferred}'s (a defect in pretrain.families, not in the artifact)")


# ---------------------------------------------------------------------------------------- 4: loads, generates


def _greedy(model: Any, prompt: list[int], steps: int) -> tuple[list[int], bool, list[int]]:
    """`steps` greedy tokens after `prompt` through pretrain.generate.generate (the KV-cache decoding `pretrain
    generate` runs): (tokens, whether the logits behind every step are finite, the steps whose token is not
    the argmax of a full forward pass).

    The logits are those of one full forward pass (CausalLM.forward, no cache) over the prompt and the
    generated tokens: position i's chose token i+1, so the cached decoding must agree with them (to 1e-4 of
    the row's largest logit: fp32 sums in another order)."""
    import torch

    from pretrain.generate import generate

    with torch.no_grad():
        ids = generate(model, torch.tensor([prompt], dtype=torch.long), max_new_tokens=steps)
        logits = model(ids)[0, len(prompt) - 1:-1].float()
    tokens = ids[0, len(prompt):]
    top = logits.max(dim=-1).values
    chosen = logits.gather(-1, tokens.view(-1, 1)).squeeze(-1)
    disagree = [i for i, ok in enumerate((top - chosen <= 1e-4 * top.abs().clamp(min=1)).tolist()) if not ok]
    return tokens.tolist(), bool(torch.isfinite(logits).all()), disagree


def _load_controls(loaded: Any) -> None:
    """Negative controls for the strict load, which a good artifact never exercises: the artifact's weights under
    a config that ties the embeddings, with an lm_head that differs from them, must be refused (LoadError),
    and so must its weights with one tensor too many."""
    import dataclasses

    import torch

    from pretrain.model import LoadError, load_state_strict  # StrictLoadError (an extra tensor) is a LoadError

    state = {k: v.detach() for k, v in loaded.model.state_dict().items()}
    tied = dataclasses.replace(loaded.config, tie_word_embeddings=True)
    embed = state["model.embed_tokens.weight"]
    tied_state = {k: v for k, v in state.items() if k != "lm_head.weight"} | {"lm_head.weight": embed + 1}
    extra = state | {"model.extra.weight": embed[:1].clone()}
    # Built from the state alone (no skeleton passed in), the same weights must give the same logits.
    rebuilt = load_state_strict(loaded.config, state, "control")
    ids = torch.arange(min(8, loaded.config.vocab_size)).view(1, -1)
    with torch.no_grad():
        assert torch.equal(rebuilt(ids), loaded.model(ids)), "negative control: load_state_strict rebuilt other logits"
    for cfg, tensors, expected, what in ((tied, tied_state, "differs from model.embed_tokens.weight", "a tied head that differs"),
                                         (loaded.config, extra, "model.extra.weight", "an unexpected tensor")):
        try:
            load_state_strict(cfg, tensors, "control")
        except LoadError as exc:
            assert expected in str(exc), f"negative control: load_state_strict refused {what} with {exc}, not naming {expected!r}"
        else:
            raise AssertionError(f"negative control: load_state_strict loaded the artifact's weights with {what}; "
                                 "a defect in pretrain.model, not in the artifact")


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
    first, finite, disagree = _greedy(model, prompt, NEW_TOKENS)
    assert finite, (
        f"its logits are NaN or Inf during greedy generation from {PROMPT!r}; release the run's last good checkpoint: "
        f"harness verify {CONTRACT} --param checkpoint=GOOD.safetensors"
    )
    assert not disagree, (
        f"greedy generation from {PROMPT!r} with the KV cache chose tokens at steps {disagree} that the full forward "
        f"pass does not rank first; `pretrain generate {_q(path)} --prompt TEXT` decodes with that cache (a defect in "
        "pretrain.model or pretrain.generate, not in the artifact)"
    )
    second, _, _ = _greedy(model, prompt, NEW_TOKENS)
    assert first == second, f"greedy generation from {PROMPT!r} is not deterministic: {first} then {second}"
    assert len(first) == NEW_TOKENS and all(0 <= t < vocab for t in first), f"generated {first} for a vocab of {vocab}"
    _load_controls(loaded)


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
    seq_len = int(split["seq_len"])
    starts = data_mod.val_windows(corpus.val, seq_len, int(split["windows"]))
    _check_windows(starts, len(corpus.val), seq_len, int(split["windows"]))
    measured = evaluate(loaded.model, corpus.val, starts, seq_len, torch.device("cpu"), None)
    assert math.isfinite(measured), f"its val_loss on the recorded split is {measured}"
    assert abs(measured - recorded) <= VAL_LOSS_TOLERANCE * abs(recorded), (
        f"val_loss {measured:.4f} on the recorded validation split, recorded {recorded:.4f} "
        f"({abs(measured - recorded) / abs(recorded):.1%} apart, more than {VAL_LOSS_TOLERANCE:.0%}); the record does "
        f"not describe these weights; measure and record it again: {fix}"
    )
    _corpus_controls(data_mod)


def _check_windows(starts: Any, tokens: int, seq_len: int, windows: int) -> None:
    """The windows the val_loss is measured on are the recorded split's: `windows` of them (fewer only where the
    split has fewer start offsets), evenly spaced from the first offset to the last that fills one. A tiny,
    barely trained model scores about the same on any windows, so the loss alone cannot tell (a val_windows that
    returned the tokens themselves as offsets passed against the loss; harness teeth found it)."""
    last = tokens - seq_len - 1
    got = [int(s) for s in starts]
    expected = min(windows, last + 1)
    assert len(got) == expected and got[0] == 0 and (expected == 1 or got[-1] == last) and all(b > a for a, b in zip(got, got[1:])), (
        f"pretrain.data.val_windows gave {len(got)} windows ({got[:3]}...{got[-2:]}) for a split of {tokens} tokens, "
        f"--seq-len {seq_len}, {windows} windows recorded: expected {expected} evenly spaced from 0 to {last} (just 0 for one); a "
        "defect in pretrain.data, not in the artifact"
    )
    if expected > 1:
        step = last / (expected - 1)
        assert all(abs(s - i * step) <= 0.5 for i, s in enumerate(got)), (
            f"pretrain.data.val_windows gave windows that are not evenly spaced over the split ({got[:5]}...); a "
            "defect in pretrain.data, not in the artifact"
        )


def _corpus_controls(data_mod: Any) -> None:
    """Negative controls for the data the recorded split is read with: load_corpus must refuse data that
    cannot fill a train and a validation window, and token ids the vocabulary cannot hold (blamed on --init
    when the vocabulary came from one), never evaluate them."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="release-controls-") as d:
        short, wide = Path(d) / "short.txt", Path(d) / "wide.txt"
        short.write_bytes(b"abc")
        wide.write_bytes(b"z" * 400)
        cases = ((short, 8, 256, None, "3 tokens cannot fill a train and a validation window of --seq-len 8"),
                 (wide, 8, 100, None, "token id 122 does not fit --vocab 100"),
                 (wide, 8, 100, "base.safetensors", "token id 122 does not fit vocab_size 100 of --init base.safetensors"))
        for data, seq_len, vocab, init, expected in cases:
            try:
                data_mod.load_corpus(str(data), seq_len, vocab, init)
            except data_mod.DataError as exc:
                assert expected in str(exc), f"negative control: load_corpus refused {data.name} with {exc}, not {expected!r}"
            else:
                raise AssertionError(f"negative control: load_corpus accepted {data.name} ({expected}); a defect in "
                                     "pretrain.data, not in the artifact")
