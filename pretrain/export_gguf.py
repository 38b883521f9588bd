"""`pretrain export --format gguf`: a checkpoint as a llama.cpp GGUF file, written with the `gguf` package.

What llama.cpp's convert_hf_to_gguf.py does for these three families, through the `gguf` package's own
pieces so that no name or key is spelled here:

- tensor names: `gguf.get_tensor_name_map(arch, blocks)` maps our HF names (`model.layers.N.self_attn.q_proj`
  -> `blk.N.attn_q`, `model.norm` -> `output_norm`, `lm_head` -> `output`, Qwen3's q_norm/k_norm ->
  `attn_q_norm`/`attn_k_norm`, Qwen2's q/k/v biases -> `blk.N.attn_q.bias`...); a tied head writes no
  `output` tensor (llama.cpp then uses `token_embd`);
- Llama's q and k projections (weights and biases) are permuted as llama.cpp's LlamaModel.permute does:
  HF's rotary pairs dimension i with i + d/2, llama.cpp's (non-NeoX) rope pairs 2i with 2i+1. Qwen2 and
  Qwen3 use NeoX rope in llama.cpp and are written unpermuted;
- metadata through GGUFWriter's `add_*` methods: general.architecture, {arch}.context_length,
  embedding_length, block_count, feed_forward_length, attention.head_count, head_count_kv,
  layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, attention.key_length/value_length,
  vocab_size, general.file_type, general.license;
- `dtype`: f32; f16 (matrices in f16, 1-D norms and biases in f32, as llama.cpp keeps them); q8_0 through
  `gguf.quants.quantize` (matrices whose rows are a multiple of the 32-value block; others f16, as
  llama.cpp falls back).

tokenizer.ggml.*: not written. The trainer's byte-level tokenizer has no llama.cpp tokenizer model, and
the result says so; an HF directory's own tokenizer is not converted either (use llama.cpp's converter
on the exported HF directory for a GGUF with its vocabulary).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pretrain.atomic import atomic_write
from pretrain.export_hf import ExportError, ExportResult, check_output, load_for_export

DTYPES = ("f32", "f16", "q8_0")
GGUF_TOKENIZER_NOTE = ("no tokenizer.ggml.* metadata: the byte-level tokenizer (token id = UTF-8 byte 0-255) "
                       "has no llama.cpp tokenizer model; pass token ids")
GGUF_NO_VOCAB_NOTE = ("no tokenizer.ggml.* metadata: the tokenizer is not converted; for a GGUF with its vocabulary "
                      "run llama.cpp's convert_hf_to_gguf.py on the `--format hf` export")


def llama_permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    """llama.cpp's LlamaModel.permute: HF's rotary halves -> interleaved pairs, per head (works on biases too)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def gguf_arch(family: str) -> Any:
    import gguf

    return gguf.MODEL_ARCH[family.upper()]


def gguf_tensors(family: str, state: dict[str, Any], n_head: int, n_head_kv: int, blocks: int) -> dict[str, Any]:
    """Our (HF-named) fp32 numpy tensors -> llama.cpp's names and layout, in the state dict's order."""
    import gguf

    names = gguf.get_tensor_name_map(gguf_arch(family), blocks)
    out: dict[str, Any] = {}
    for name, array in state.items():
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ExportError(f"tensor {name!r} has no llama.cpp name for {family} in gguf's tensor map; "
                              "this checkpoint cannot be written as GGUF")
        if family == "llama" and name.endswith(("q_proj.weight", "q_proj.bias")):
            array = llama_permute(array, n_head, n_head)
        elif family == "llama" and name.endswith(("k_proj.weight", "k_proj.bias")):
            array = llama_permute(array, n_head, n_head_kv)
        out[new] = array
    return out


def encode(array: Any, dtype: str) -> tuple[Any, Any]:
    """(data, GGMLQuantizationType) for one tensor at `dtype`, with llama.cpp's choices for 1-D tensors."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    if dtype == "f32" or array.ndim < 2:
        return array.astype(np.float32), Q.F32
    if dtype == "q8_0" and array.shape[-1] % quants.GGML_QUANT_SIZES[Q.Q8_0][0] == 0:
        return quants.quantize(array.astype(np.float32), Q.Q8_0), Q.Q8_0
    return array.astype(np.float16), Q.F16


def write_gguf(path: str, cfg: Any, meta: dict[str, str], tensors: dict[str, Any], dtype: str, name: str) -> None:
    """The GGUF file itself: llama.cpp's metadata keys for `cfg`'s family, then `tensors` encoded at `dtype`."""
    import gguf

    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf_arch(cfg.family)])
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(cfg.rope_theta)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(file_type)
    if dtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if meta.get("license"):
        writer.add_license(meta["license"])
    for tensor_name, array in tensors.items():
        data, qtype = encode(array, dtype)
        writer.add_tensor(tensor_name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def model_name(checkpoint: Path) -> str:
    """general.name: the run directory's name for a trainer's model.safetensors, else the file or directory's."""
    if checkpoint.is_file() and checkpoint.name == "model.safetensors":
        return checkpoint.resolve().parent.name
    return checkpoint.stem if checkpoint.is_file() else checkpoint.name


def export_gguf(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, dtype: str = "f32",
                force: bool = False) -> ExportResult:
    """Write `checkpoint` as a GGUF file at `out` (see the module docstring); raises ExportError."""
    if dtype not in DTYPES:
        raise ExportError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    out = Path(out)
    check_output(out, force, directory=False, source=checkpoint)
    loaded = load_for_export(checkpoint)
    cfg, meta = loaded.config, loaded.header.metadata
    state = {k: v.detach().to("cpu").float().numpy() for k, v in loaded.model.state_dict().items()}
    tensors = gguf_tensors(cfg.family, state, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_hidden_layers)
    atomic_write(out, lambda tmp: write_gguf(tmp, cfg, meta, tensors, dtype, model_name(Path(checkpoint))))
    return ExportResult(source=str(checkpoint), output=str(out), format="gguf", files=(out.name,),
                        tensors=len(tensors), dtype=dtype,
                        notes=(GGUF_TOKENIZER_NOTE if meta.get("tokenizer") == "bytes" else GGUF_NO_VOCAB_NOTE,))
