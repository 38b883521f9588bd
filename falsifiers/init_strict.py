"""Falsifiers for INV-INIT-STRICT-001 and the --init path: no parameter is ever left at random init.

They attack the real loader (`pretrain.model.from_pretrained` / `load_state_strict`) with damaged
checkpoints, the real trainer (`pretrain.train.train(TrainConfig(init=...))`) and, where the claim is
the CLI's exit code, `pretrain.cli.main(["train", "--init", ...])`, in temp dirs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from falsifiers.support import run_cli, temp_dir, tiny_config, tiny_state, train_tiny, val_losses

RUN = ["--seq-len", "32", "--batch", "4"]


def _refused(cfg, tensors: dict[str, torch.Tensor], what: str) -> Exception:
    from pretrain.model import LoadError, load_state_strict

    try:
        model = load_state_strict(cfg, tensors, "falsifier")
    except LoadError as exc:
        return exc
    leftovers = [n for n, p in model.named_parameters() if p.is_meta]
    raise AssertionError(f"{what} was loaded without error (parameters never assigned: {leftovers[:3]})")


def falsify_every_missing_tensor_is_refused() -> None:
    """Drop each tensor of a qwen2 and a qwen3 state in turn (plus via a real HF directory): always refused."""
    for family in ("qwen2", "qwen3"):
        full = tiny_state(family)
        for name in full:
            exc = _refused(tiny_config(family), {k: v for k, v in full.items() if k != name}, f"{family} without {name}")
            assert name in str(exc), f"refusal for missing {name} does not name it: {exc}"
    from pretrain.model import StrictLoadError, build_model, from_pretrained

    with temp_dir() as d:
        build_model(tiny_config("llama"), seed=0).save_pretrained(d)
        weights = Path(d) / "model.safetensors"
        tensors = load_file(weights)
        del tensors["model.layers.1.post_attention_layernorm.weight"]
        save_file(tensors, weights, metadata={"format": "pt"})
        try:
            from_pretrained(d)
        except StrictLoadError as exc:
            assert exc.missing == ["model.layers.1.post_attention_layernorm.weight"], exc.missing
        else:
            raise AssertionError("from_pretrained loaded an HF directory with a missing layer norm")


def falsify_unexpected_tensor_is_refused() -> None:
    full = tiny_state("llama")
    for extra in ("model.layers.0.self_attn.q_proj.bias", "model.layers.2.mlp.up_proj.weight", "lm_head.bias"):
        exc = _refused(tiny_config("llama"), {**full, extra: torch.zeros(3)}, f"llama plus {extra}")
        assert extra in str(exc) and "unexpected" in str(exc), f"refusal does not name {extra}: {exc}"


def falsify_every_misshaped_tensor_is_refused() -> None:
    full = tiny_state("qwen3")
    for name, value in full.items():
        bad = torch.zeros(*value.shape[:-1], value.shape[-1] + 1)
        exc = _refused(tiny_config("qwen3"), {**full, name: bad}, f"qwen3 with {name} reshaped to {tuple(bad.shape)}")
        assert name in str(exc) and str(tuple(bad.shape)) in str(exc), f"refusal lacks name/shape: {exc}"
    # A tied model (qwen2) whose file still carries lm_head.weight, mis-shaped: refused naming it and its shape.
    tied = tiny_state("qwen2")
    embed = tied["model.embed_tokens.weight"]
    bad = torch.zeros(embed.shape[0], embed.shape[1] + 1)
    exc = _refused(tiny_config("qwen2"), {**tied, "lm_head.weight": bad}, "tied qwen2 with a mis-shaped lm_head.weight")
    assert "lm_head.weight" in str(exc) and str(tuple(bad.shape)) in str(exc), f"refusal lacks name/shape: {exc}"


def _restamp(src: Path, dst: Path, family: str) -> None:
    """`pretrain stamp SRC --architecture FAMILY --force -o DST`: rewrites the claim, keeps every tensor byte."""
    result = run_cli("stamp", str(src), "--architecture", family, "--force", "-o", str(dst))
    assert result.rc == 0, f"pretrain stamp exited {result.rc}: {result.err[-500:]}"


def _train_base(out: Path, steps: int) -> Path:
    """A tiny qwen2 run from scratch (validated at step 0 and at the end); its checkpoint."""
    result = train_tiny(out, family="qwen2", batch=4, steps=steps, eval_every=steps)
    assert result.checkpoint is not None and not result.interrupted, result
    return result.checkpoint


def falsify_refused_init_writes_no_step_metrics() -> None:
    """A mis-stamped, an incomplete, a missing and a GGUF --init each exit 2 through the CLI with nothing written."""
    with temp_dir() as d:
        ckpt = _train_base(d / "base", steps=2)
        _init_refusals(d, ckpt)


def _init_refusals(d: Path, ckpt: Path) -> None:
    """Every way load_init refuses an --init: exit 2 before step 1, the reason (one salvage recipe for a mis-stamp), nothing written."""
    import struct

    _restamp(ckpt, d / "stamped.safetensors", "llama")
    tensors = load_file(ckpt)
    del tensors["model.layers.0.mlp.down_proj.weight"]
    with safe_open(str(ckpt), "pt") as f:
        save_file(tensors, d / "partial.safetensors", metadata=f.metadata())
    (d / "model.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    for bad, needles in (("stamped.safetensors", ("llama", "qwen2", "pretrain stamp")),
                         ("partial.safetensors", ("model.layers.0.mlp.down_proj.weight", "missing")),
                         ("absent.safetensors", ("absent.safetensors", "no such file")),
                         ("model.gguf", ("refused before step 1: a GGUF file cannot be a training init",))):
        out = d / f"run-{bad}"
        result = run_cli("train", "--init", str(d / bad), *RUN, "--steps", "2", "--out", str(out))
        rc, err = result.rc, result.err
        assert rc == 2, f"--init {bad} exited {rc}, not 2: {err[-500:]}"
        for needle in needles:
            assert needle in err, f"--init {bad}: error lacks {needle!r}: {err[-500:]}"
        assert err.count("pretrain stamp") <= 1, f"--init {bad}: the salvage recipe is repeated: {err[-800:]}"
        assert "Traceback" not in err, f"--init {bad}: a traceback: {err[-500:]}"
        assert not (out / "metrics.jsonl").exists(), f"--init {bad}: metrics written despite refusal"
        assert not (out / "model.safetensors").exists(), f"--init {bad}: checkpoint written despite refusal"


def falsify_resume_step0_val_loss_within_2_percent() -> None:
    """Train qwen2, mis-stamp as llama (refused), re-stamp as qwen2: step-0 val loss within 2% of recorded."""
    from pretrain.train import TrainError

    with temp_dir() as d:
        ckpt = _train_base(d / "base", steps=30)
        with safe_open(str(ckpt), "pt") as f:
            recorded = float(f.metadata()["val_loss"])
        scratch0 = val_losses(d / "base")[0]
        _restamp(ckpt, d / "stamped.safetensors", "llama")
        try:
            train_tiny(d / "refused", init=d / "stamped.safetensors", batch=4, steps=1)
        except TrainError:
            pass
        else:
            raise AssertionError("the llama-stamped qwen2 checkpoint was not refused")
        _restamp(d / "stamped.safetensors", d / "fixed.safetensors", "qwen2")
        try:
            train_tiny(d / "resumed", init=d / "fixed.safetensors", batch=4, steps=1, eval_every=1)
        except TrainError as exc:
            raise AssertionError(f"the re-stamped checkpoint was refused: {exc}") from None
        step0 = val_losses(d / "resumed")[0]
        # What is not accepted is refused before step 1, so an accepted init is the only way to a step 0.
        _init_refusals(d, ckpt)
    assert abs(step0 - recorded) <= 0.02 * recorded, f"resumed step-0 val {step0:.4f} vs recorded {recorded:.4f}"
    assert step0 < scratch0 - 1.0, f"resumed step-0 val {step0:.4f} is not far below scratch {scratch0:.4f}"
