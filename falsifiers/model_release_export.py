"""Falsifiers 6 and 7 of model-release-v1: the export round trips, and the model card agrees with the checkpoint.

Both run against the artifact the contract is verified for: the `checkpoint` (and `card`) parameters,
passed as arguments or, as the harness passes every parameter, as HARNESS_PARAM_CHECKPOINT /
HARNESS_PARAM_CARD. Each failure is an AssertionError naming the fix as a command that runs as printed.

The expectations are this module's own, not the exporter's: llama.cpp's tensor names (the table below)
and its Llama q/k permutation are written out here from llama.cpp's convert_hf_to_gguf.py, so an exporter
that writes a wrong name or layout is caught, not agreed with.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tempfile
from pathlib import Path
from typing import Any

TOL = 1e-4  # fp32 logits, transformers vs pretrain
# A Q8_0 block stores 32 int8 values and one f16 scale (max |x| / 127): the error per value is at most
# half a step, plus the scale's own f16 rounding.
Q8_0_REL = 1.0 / 127 / 2 + 1e-3

# HF name -> llama.cpp GGUF name (llama.cpp's convert_hf_to_gguf.py / gguf-py tensor_mapping for
# LLAMA, QWEN2, QWEN3).
LLAMA_CPP_NAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^model\.embed_tokens\.weight$", "token_embd.weight"),
    (r"^model\.norm\.weight$", "output_norm.weight"),
    (r"^lm_head\.weight$", "output.weight"),
    (r"^model\.layers\.(\d+)\.input_layernorm\.weight$", r"blk.\1.attn_norm.weight"),
    (r"^model\.layers\.(\d+)\.post_attention_layernorm\.weight$", r"blk.\1.ffn_norm.weight"),
    (r"^model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", r"blk.\1.attn_\2.\3"),
    (r"^model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)$", r"blk.\1.attn_output.\2"),
    (r"^model\.layers\.(\d+)\.self_attn\.([qk])_norm\.weight$", r"blk.\1.attn_\2_norm.weight"),
    (r"^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.(weight|bias)$", r"blk.\1.ffn_\2.\3"),
))


def _param(value: str | None, name: str) -> str:
    value = value if value is not None else os.environ.get(f"HARNESS_PARAM_{name.upper()}")
    if not value:
        raise ValueError(f"needs parameter {name} (harness verify contracts/model-release-v1.yaml "
                         f"--param {name}=PATH)")
    return value


def llama_cpp_name(hf_name: str) -> str | None:
    for pattern, replacement in LLAMA_CPP_NAMES:
        if pattern.match(hf_name):
            return pattern.sub(replacement, hf_name)
    return None


def _llama_cpp_layout(name: str, tensor: Any, family: str, heads: int, kv_heads: int) -> Any:
    """llama.cpp's LlamaModel.permute for Llama's q/k (weights and biases); every other tensor as it is."""
    if family != "llama" or not re.search(r"\.[qk]_proj\.(weight|bias)$", name):
        return tensor
    n = heads if ".q_proj." in name else kv_heads
    return tensor.reshape(n, 2, tensor.shape[0] // n // 2, *tensor.shape[1:]).swapaxes(1, 2).reshape(tensor.shape)


# ---------------------------------------------------------------- falsifier 6

def _llama_cpp_type(dtype: str, shape: tuple[int, ...]) -> str:
    """The tensor type llama.cpp's converter writes: 1-D tensors (norms, biases) F32; matrices at --dtype, Q8_0
    only for rows of whole 32-value blocks (F16 otherwise)."""
    if dtype == "f32" or len(shape) < 2:
        return "F32"
    if dtype == "q8_0" and shape[-1] % 32 == 0:
        return "Q8_0"
    return "F16"


def _export(call: Any, ckpt: str, fmt: str, fix: str) -> None:
    """Run one export; a checkpoint that the release's own exporter refuses or breaks on is a failed round trip."""
    from pretrain.checkpoint import CheckpointError
    from pretrain.export_hf import ExportError

    try:
        call()
    except (ExportError, CheckpointError) as exc:
        raise AssertionError(f"{ckpt}: `pretrain export --format {fmt}` failed: {exc}; once fixed: `{fix}`") from None


def _check_hf(ckpt: str, out: Path, ours: Any, ids: Any, fix: str) -> None:
    import torch
    import transformers

    from pretrain.export_hf import export_hf

    from pretrain.checkpoint import read_header

    _export(lambda: export_hf(ckpt, out), ckpt, "hf", fix)
    # transformers 4.x refuses a safetensors file whose metadata lacks `format: pt` (5.x no longer asks); and the
    # release's provenance must travel with its weights.
    source, exported = read_header(ckpt).metadata, read_header(out).metadata
    lost = [k for k in ("license", "data_source", "data_license", "val_loss") if source.get(k) != exported.get(k)]
    assert exported.get("format") == "pt" and not lost, (
        f"{ckpt}: the HF export's model.safetensors metadata has format {exported.get('format')!r} (want 'pt') and "
        f"loses {lost or 'nothing'}; re-export: `{fix}`")
    try:
        theirs, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    except Exception as exc:  # transformers raises RuntimeError/ValueError/OSError for a directory it cannot load
        raise AssertionError(f"{ckpt}: transformers cannot load the HF export ({type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); fix the exporter, "
                             f"then re-export: `{fix}`") from None
    problems = {k: sorted(info.get(k) or ()) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, (f"{ckpt}: the HF export does not load into transformers one to one: {problems}; "
                          f"fix the exporter, then re-export: `{fix}`")
    want_class = ours.config.hf_architecture
    assert type(theirs).__name__ == want_class, (
        f"{ckpt}: transformers built {type(theirs).__name__} from the HF export, expected {want_class}; "
        f"re-export: `{fix}`")
    with torch.no_grad():
        diff = (theirs.eval()(ids).logits - ours(ids)).abs().max().item()
    assert diff <= TOL, (f"{ckpt}: the HF export's logits in transformers differ from pretrain's by {diff:.3g} "
                         f"> {TOL} (fp32); re-export: `{fix}`")


def _check_gguf(ckpt: str, out: Path, ours: Any, dtype: str, fix: str, license_: str = "") -> None:
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from pretrain.export_gguf import export_gguf

    _export(lambda: export_gguf(ckpt, out, dtype=dtype), ckpt, "gguf", fix)
    cfg = ours.config
    state = {k: v.detach().float().numpy() for k, v in ours.state_dict().items()}
    want: dict[str, Any] = {}
    for name, array in state.items():
        new = llama_cpp_name(name)
        assert new is not None, f"{ckpt}: tensor {name!r} has no llama.cpp name (this falsifier's table)"
        want[new] = _llama_cpp_layout(name, array, cfg.family, cfg.num_attention_heads, cfg.num_key_value_heads)
    reader = GGUFReader(out)
    got = {t.name: t for t in reader.tensors}
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, (f"{ckpt}: the GGUF export's tensors are not llama.cpp's: missing {missing}, "
                                       f"unexpected {extra}; re-export: `{fix}`")
    arch = reader.fields["general.architecture"].contents()
    assert arch == cfg.family, f"{ckpt}: the GGUF says general.architecture {arch!r}, expected {cfg.family!r}; `{fix}`"
    # llama.cpp's keys for these families, each what the checkpoint's config says (f32 values as written).
    expected_keys: dict[str, Any] = {
        f"{arch}.block_count": cfg.num_hidden_layers, f"{arch}.embedding_length": cfg.hidden_size,
        f"{arch}.context_length": cfg.max_position_embeddings, f"{arch}.feed_forward_length": cfg.intermediate_size,
        f"{arch}.attention.head_count": cfg.num_attention_heads,
        f"{arch}.attention.head_count_kv": cfg.num_key_value_heads,
        f"{arch}.attention.layer_norm_rms_epsilon": float(np.float32(cfg.rms_norm_eps)),
        f"{arch}.rope.freq_base": float(np.float32(cfg.rope_theta)),
        f"{arch}.rope.dimension_count": cfg.head_dim, f"{arch}.attention.key_length": cfg.head_dim,
        f"{arch}.attention.value_length": cfg.head_dim, f"{arch}.vocab_size": cfg.vocab_size,
        "general.file_type": {"f32": 0, "f16": 1, "q8_0": 7}[dtype],
    }
    if dtype == "q8_0":
        expected_keys["general.quantization_version"] = 2  # llama.cpp refuses a quantized file without it
    if license_:
        expected_keys["general.license"] = license_  # the artifact's licence travels with it
    for key, value in expected_keys.items():
        field = reader.fields.get(key)
        stated = field.contents() if field is not None else "missing"
        assert stated == value, f"{ckpt}: the GGUF's {key} is {stated}, expected {value}; re-export: `{fix}`"
    for name, tensor in got.items():
        want_type = _llama_cpp_type(dtype, want[name].shape)
        assert tensor.tensor_type.name == want_type, (
            f"{ckpt}: GGUF tensor {name} is {tensor.tensor_type.name} under --dtype {dtype}; llama.cpp writes "
            f"{want_type} there; re-export: `{fix}`")
        # gguf's dequantize reads every type (F32 and F16 too); the reader gives the data in our row-major shape.
        values = dequantize(np.asarray(tensor.data), tensor.tensor_type).astype(np.float32).reshape(want[name].shape)
        expected = want[name]
        if tensor.tensor_type.name == "F32":
            ok, what = bool(np.array_equal(values, expected)), "exactly"
        elif tensor.tensor_type.name == "F16":
            ok, what = bool(np.array_equal(values, expected.astype(np.float16).astype(np.float32))), "to f16 rounding"
        else:
            scale = np.abs(expected).max() or 1.0
            ok, what = bool(np.abs(values - expected).max() <= Q8_0_REL * scale), f"within {tensor.tensor_type.name}'s step"
        assert ok, (f"{ckpt}: GGUF tensor {name} ({tensor.tensor_type.name}, --dtype {dtype}) does not read back "
                    f"{what} as the checkpoint's; re-export: `{fix}`")


def falsify_export_round_trip(checkpoint: str | None = None) -> None:
    """export hf -> transformers loads every weight and gives pretrain's logits (1e-4, fp32); export gguf ->
    gguf's reader gives llama.cpp's tensor names, types, layout and metadata and the same values (f32 exact,
    f16 to its rounding, q8_0 dequantized within a step)."""
    import torch

    from pretrain.model import from_pretrained

    ckpt = _param(checkpoint, "checkpoint")
    ours = from_pretrained(ckpt)
    ids = torch.randint(0, ours.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    from pretrain.checkpoint import read_header

    license_ = read_header(ckpt).metadata.get("license", "")
    q = shlex.quote(ckpt)
    with tempfile.TemporaryDirectory() as d:
        _check_hf(ckpt, Path(d) / "hf", ours, ids, f"pretrain export {q} --format hf -o model-hf")
        for dtype in ("f32", "f16", "q8_0"):
            _check_gguf(ckpt, Path(d) / f"model-{dtype}.gguf", ours, dtype,
                        f"pretrain export {q} --format gguf --dtype {dtype} -o model-{dtype}.gguf", license_)
    _export_controls(ours.config)


def _export_controls(cfg: Any) -> None:
    """Negative controls a good checkpoint never exercises: a tensor llama.cpp has no name for must be refused
    (never written under a made-up name), and the q/k permutation with no separate KV head count is the one
    with it equal to the head count."""
    import numpy as np

    from pretrain.export_gguf import gguf_tensors, llama_permute
    from pretrain.export_hf import ExportError

    try:
        gguf_tensors(cfg.family, {"model.unknown.weight": np.zeros((2, 2), dtype=np.float32)},
                     cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_hidden_layers)
    except ExportError:
        pass
    else:
        raise AssertionError("negative control: gguf_tensors wrote a tensor llama.cpp has no name for "
                             "(a defect in pretrain.export_gguf, not in the checkpoint)")
    heads = cfg.num_attention_heads
    weights = np.arange(heads * 4 * 3, dtype=np.float32).reshape(heads * 4, 3)
    assert np.array_equal(llama_permute(weights, heads, None), llama_permute(weights, heads, heads)), (
        "negative control: llama_permute without a KV head count is not the permutation for the head count")


# ---------------------------------------------------------------- falsifier 7

def _card_val_loss(frontmatter: dict[str, Any]) -> float | None:
    for entry in frontmatter.get("model-index") or ():
        for result in entry.get("results") or ():
            for metric in result.get("metrics") or ():
                if metric.get("type") == "loss":
                    return float(metric["value"])
    return None


def _disagreements(front: dict[str, Any], metadata: dict[str, str]) -> list[str]:
    """How a card's frontmatter contradicts the checkpoint's license, data_source, init and val_loss metadata."""
    from pretrain.card import HUB_LICENSES, card_license

    wrong: list[str] = []
    recorded_license = metadata.get("license", "").strip()
    stated = card_license(front)
    if stated.lower() != (recorded_license.lower() or "unknown"):
        wrong.append(f"license {stated!r} but the checkpoint's is {recorded_license or 'unrecorded'!r}")
    elif recorded_license.lower() in HUB_LICENSES and front.get("license") != recorded_license.lower():
        # The Hub filters and shows licences by its own id; `other` hides a licence it knows.
        wrong.append(f"license {front.get('license')!r} but the Hub's id for {recorded_license!r} is "
                     f"{recorded_license.lower()!r}")
    source = metadata.get("data_source", "").strip()
    datasets = front.get("datasets") or []
    if source and datasets != [source]:
        wrong.append(f"datasets {datasets!r} but the checkpoint was trained on {source!r}")
    evaluated_on = {r.get("dataset", {}).get("name") for e in front.get("model-index") or ()
                    for r in e.get("results") or ()}
    if source and evaluated_on and evaluated_on != {source}:
        wrong.append(f"model-index evaluates on {sorted(map(str, evaluated_on))} but the validation split is "
                     f"{source!r}'s")
    init = metadata.get("init", "").strip()
    if (front.get("base_model") or "") != init:
        wrong.append(f"base_model {front.get('base_model')!r} but the checkpoint was initialised from "
                     f"{init or 'scratch'!r}")
    recorded_loss = metadata.get("val_loss")
    card_loss = _card_val_loss(front)
    if recorded_loss is not None:
        loss = float(recorded_loss)
        if card_loss is None or not math.isclose(card_loss, loss, rel_tol=1e-6, abs_tol=1e-9):
            wrong.append(f"validation loss {card_loss} but the checkpoint records {loss}")
    return wrong


def falsify_card_agrees_with_checkpoint(checkpoint: str | None = None, card: str | None = None) -> None:
    """The card's frontmatter (read by huggingface_hub) states the checkpoint's license, datasets and val loss;
    and so does the card `pretrain card` writes for it now (the fix this falsifier prints must fix it)."""
    from pretrain.card import build_card, parse_card
    from pretrain.checkpoint import read_header

    ckpt, card_path = _param(checkpoint, "checkpoint"), _param(card, "card")
    fix = f"pretrain card {shlex.quote(ckpt)} -o {shlex.quote(card_path)} --force"
    metadata = read_header(ckpt).metadata
    # The writer first: a card it writes wrong would make the printed fix a lie.
    written, _, _, _ = build_card(ckpt)
    wrong = _disagreements(parse_card(written, "the card `pretrain card` writes"), metadata)
    assert not wrong, (f"`pretrain card {shlex.quote(ckpt)}` writes a card that disagrees with the checkpoint: "
                       + "; ".join(wrong) + " (a defect in pretrain.card, not in the artifact)")
    # Negative control: a checkpoint trained from scratch never exercises base_model; one with an init must
    # get it, as the Hub links a fine-tune to its base.
    from pretrain.card import frontmatter_for

    based = frontmatter_for({**metadata, "init": "org/base-model"}, "control", None).get("base_model")
    assert based == "org/base-model", (f"negative control: the card for a checkpoint initialised from org/base-model "
                                       f"states base_model {based!r} (a defect in pretrain.card, not in the artifact)")
    assert Path(card_path).is_file(), f"{card_path}: no model card there; write it: `{fix}`"
    front = parse_card(Path(card_path).read_text(encoding="utf-8"), card_path)
    wrong = _disagreements(front, metadata)
    assert not wrong, f"{card_path} disagrees with {ckpt}: " + "; ".join(wrong) + f"; rewrite the card: `{fix}`"
