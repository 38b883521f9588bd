"""`pretrain export --format {hf,gguf}`: transformers loads the HF directory one to one with pretrain's logits;
gguf's reader reads back llama.cpp's names, metadata and the same values; outputs are atomic and refused
over an existing OUT unless --force."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from falsifiers.support import run_cli, train_tiny
from pretrain import export_hf as export_hf_module
from pretrain.checkpoint import write_checkpoint
from pretrain.export_gguf import export_gguf
from pretrain.export_hf import BYTE_LEVEL_NOTE, ExportError, export_hf
from pretrain.model import from_pretrained
from tests.pretrain.hf_tiny import hf_model, save_hf

FAMILIES = ("llama", "qwen2", "qwen3")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny trained checkpoint per family (qwen2 ties its embeddings), hidden 64 so q8_0 blocks fit."""
    root = tmp_path_factory.mktemp("runs")
    return {family: train_tiny(root / family, family=family, steps=2, eval_every=2, hidden=64,
                               license="Apache-2.0").checkpoint for family in FAMILIES}


def ids(vocab: int = 256) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 13), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_export_loads_into_transformers_one_to_one_with_the_same_logits(runs: dict[str, Path], family: str,
                                                                          tmp_path: Path) -> None:
    import transformers

    out = tmp_path / "hf"
    result = export_hf(runs[family], out)
    assert set(result.files) == {"config.json", "generation_config.json", "model.safetensors"}
    assert sorted(p.name for p in out.iterdir()) == sorted(result.files)
    assert result.notes == (BYTE_LEVEL_NOTE,)  # the byte-level tokenizer: no tokenizer files, and it says so
    theirs, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert {k: list(v) for k, v in info.items() if k != "error_msgs"} == {
        "missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert type(theirs).__name__ == json.loads((out / "config.json").read_text())["architectures"][0]
    ours = from_pretrained(runs[family])
    with torch.no_grad():
        assert (theirs.eval()(ids()).logits - ours(ids())).abs().max().item() <= 1e-4
    # Provenance travels with the weights: `pretrain inspect` on the export still shows the license.
    from pretrain.checkpoint import read_header

    meta = read_header(out).metadata
    assert meta["license"] == "Apache-2.0" and meta["format"] == "pt" and "config" not in meta


def test_hf_export_of_an_hf_directory_copies_its_tokenizer_and_generation_config(tmp_path: Path) -> None:
    src = save_hf(hf_model("qwen3"), tmp_path / "src")
    (src / "tokenizer_config.json").write_text('{"model_max_length": 64}\n')
    (src / "generation_config.json").write_text('{"do_sample": true, "temperature": 0.7}\n')
    result = export_hf(src, tmp_path / "out")
    assert "tokenizer_config.json" in result.files and result.notes == ()
    assert (tmp_path / "out/tokenizer_config.json").read_text() == '{"model_max_length": 64}\n'
    assert json.loads((tmp_path / "out/generation_config.json").read_text())["temperature"] == 0.7


def test_hf_export_refuses_an_existing_out_unless_force(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run_cli("export", str(runs["llama"]), "--format", "hf", "-o", str(out))
    assert r.rc == 2 and "already exists; pass --force" in r.err and len(r.err.strip().splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"
    r = run_cli("export", str(runs["llama"]), "--format", "hf", "-o", str(out), "--force")
    assert r.rc == 0, r.err
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert "note: no tokenizer files" in r.out
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no temp or old directory left beside it


def test_a_failed_hf_export_leaves_nothing_behind(runs: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_hf_module, "write_checkpoint", broken)
    r = run_cli("export", str(runs["qwen2"]), "--format", "hf", "-o", str(tmp_path / "hf"))
    assert r.rc == 2 and "No space left on device" in r.err
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_bad_input_in_one_line(runs: dict[str, Path], tmp_path: Path) -> None:
    r = run_cli("export", str(runs["llama"]), "--format", "hf", "--dtype", "q8_0", "-o", str(tmp_path / "x"))
    assert r.rc == 2 and "--dtype q8_0 applies to --format gguf only" in r.err
    r = run_cli("export", str(tmp_path / "missing.safetensors"), "--format", "gguf", "-o", str(tmp_path / "x.gguf"))
    assert r.rc == 2 and "no such file or directory" in r.err and len(r.err.strip().splitlines()) == 1
    gguf_file = tmp_path / "m.gguf"
    export_gguf(runs["llama"], gguf_file)
    r = run_cli("export", str(gguf_file), "--format", "hf", "-o", str(tmp_path / "y"))
    assert r.rc == 2 and "already a GGUF file" in r.err
    r = run_cli("export", str(runs["llama"]), "--format", "hf", "-o", str(tmp_path / "no/such/dir"))
    assert r.rc == 2 and "mkdir -p" in r.err
    # A checkpoint whose weights are not finite is refused by the load path, before anything is written.
    bad = tmp_path / "nan.safetensors"
    state = {k: v.clone() for k, v in from_pretrained(runs["llama"]).state_dict().items()}
    state["model.norm.weight"][0] = float("nan")
    write_checkpoint(bad, state, {"architecture": "llama", "config": from_pretrained(runs["llama"]).config.to_json()})
    with pytest.raises(ExportError, match="NaN or Inf"):
        export_hf(bad, tmp_path / "z")
    assert not (tmp_path / "z").exists()


# ---------------------------------------------------------------- gguf

def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, object]]:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    values = {t.name: dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(
        tuple(int(n) for n in reversed(t.shape))) for t in reader.tensors}
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return values, types, fields


def _expected(ckpt: Path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors under llama.cpp's names, Llama's q/k in llama.cpp's rope layout."""
    from falsifiers.model_release_export import _llama_cpp_layout, llama_cpp_name

    model = from_pretrained(ckpt)
    cfg = model.config
    return {llama_cpp_name(k): _llama_cpp_layout(k, v.float().numpy(), cfg.family, cfg.num_attention_heads,
                                                 cfg.num_key_value_heads) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_gguf_export_reads_back_with_llama_cpp_names_metadata_and_values(runs: dict[str, Path], family: str,
                                                                         tmp_path: Path) -> None:
    want = _expected(runs[family])
    cfg = from_pretrained(runs[family]).config
    for dtype in ("f32", "f16", "q8_0"):
        out = tmp_path / f"m-{dtype}.gguf"
        r = run_cli("export", str(runs[family]), "--format", "gguf", "--dtype", dtype, "-o", str(out))
        assert r.rc == 0, r.err
        assert "no tokenizer.ggml" in r.out
        values, types, fields = _read(out)
        assert set(values) == set(want)
        assert ("output.weight" in values) == (not cfg.tie_word_embeddings)
        if family == "qwen2":
            assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= set(values)
        if family == "qwen3":
            assert {"blk.1.attn_q_norm.weight", "blk.1.attn_k_norm.weight"} <= set(values)
        for name, expected in want.items():
            got = values[name]
            assert got.shape == expected.shape, name
            if dtype == "f32" or expected.ndim == 1:
                assert types[name] == "F32" and np.array_equal(got, expected), name
            elif dtype == "f16":
                assert types[name] == "F16" and np.array_equal(got, expected.astype(np.float16).astype(np.float32))
            elif expected.shape[-1] % 32:  # rows not whole Q8_0 blocks (ffn_down: 176 wide): f16, as llama.cpp does
                assert types[name] == "F16" and np.array_equal(got, expected.astype(np.float16).astype(np.float32))
            else:
                assert types[name] == "Q8_0", name
                assert np.abs(got - expected).max() <= np.abs(expected).max() / 127, name
        assert fields["general.architecture"] == family
        assert fields["general.license"] == "Apache-2.0"
        assert fields[f"{family}.block_count"] == cfg.num_hidden_layers
        assert fields[f"{family}.context_length"] == cfg.max_position_embeddings
        assert fields[f"{family}.embedding_length"] == cfg.hidden_size
        assert fields[f"{family}.feed_forward_length"] == cfg.intermediate_size
        assert fields[f"{family}.attention.head_count"] == cfg.num_attention_heads
        assert fields[f"{family}.attention.head_count_kv"] == cfg.num_key_value_heads
        assert fields[f"{family}.attention.layer_norm_rms_epsilon"] == pytest.approx(cfg.rms_norm_eps)
        assert fields[f"{family}.rope.freq_base"] == cfg.rope_theta
        assert fields["general.file_type"] == {"f32": 0, "f16": 1, "q8_0": 7}[dtype]


def _rope(x: np.ndarray, theta: float, neox: bool) -> np.ndarray:
    """llama.cpp's two rope kinds on (seq, heads, dim): NORM rotates pairs (2i, 2i+1), NEOX pairs (i, i + d/2)."""
    seq, _, dim = x.shape
    freqs = theta ** (-np.arange(0, dim, 2) / dim)
    angle = np.arange(seq)[:, None, None] * freqs[None, None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    if neox:
        a, b = x[..., : dim // 2], x[..., dim // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_gguf_q_and_k_give_transformers_attention_scores_under_llama_cpps_rope(runs: dict[str, Path], family: str,
                                                                               tmp_path: Path) -> None:
    """What llama.cpp computes: Llama with NORM rope on the permuted q/k, Qwen2/3 with NEOX rope as written.

    The attention scores q.k (per head, per position pair) from the GGUF's tensors must equal those from the
    HF weights with HF's rotate-half rope (NEOX), which is what transformers runs.
    """
    model = from_pretrained(runs[family])
    cfg = model.config
    out = tmp_path / "m.gguf"
    export_gguf(runs[family], out)
    values, _, _ = _read(out)
    x = np.random.default_rng(0).standard_normal((7, cfg.hidden_size)).astype(np.float64)
    rep = cfg.num_attention_heads // cfg.num_key_value_heads

    def norm(h: np.ndarray, w: np.ndarray | None) -> np.ndarray:  # Qwen3's per-head RMSNorm, before rope
        return h if w is None else h / np.sqrt((h ** 2).mean(-1, keepdims=True) + cfg.rms_norm_eps) * w

    def scores(wq: np.ndarray, wk: np.ndarray, bq: np.ndarray | None, bk: np.ndarray | None, neox: bool,
               nq: np.ndarray | None = None, nk: np.ndarray | None = None) -> np.ndarray:
        q = x @ wq.T.astype(np.float64) + (0 if bq is None else bq)
        k = x @ wk.T.astype(np.float64) + (0 if bk is None else bk)
        q = _rope(norm(q.reshape(7, cfg.num_attention_heads, cfg.head_dim), nq), cfg.rope_theta, neox)
        k = _rope(norm(k.reshape(7, cfg.num_key_value_heads, cfg.head_dim), nk), cfg.rope_theta, neox)
        return np.einsum("qhd,khd->hqk", q, np.repeat(k, rep, axis=1))

    attn = model.model.layers[0].self_attn
    bias = lambda m: None if m.bias is None else m.bias.detach().double().numpy()  # noqa: E731
    qk_norm = lambda m: m.weight.detach().double().numpy() if m is not None else None  # noqa: E731
    hf = scores(attn.q_proj.weight.detach().numpy(), attn.k_proj.weight.detach().numpy(),
                bias(attn.q_proj), bias(attn.k_proj), True,
                qk_norm(getattr(attn, "q_norm", None)), qk_norm(getattr(attn, "k_norm", None)))
    gg = scores(values["blk.0.attn_q.weight"], values["blk.0.attn_k.weight"], values.get("blk.0.attn_q.bias"),
                values.get("blk.0.attn_k.bias"), family != "llama",
                values.get("blk.0.attn_q_norm.weight"), values.get("blk.0.attn_k_norm.weight"))
    assert np.allclose(gg, hf, atol=1e-9)


def test_gguf_export_refuses_an_existing_file_unless_force(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.gguf"
    out.write_bytes(b"old")
    r = run_cli("export", str(runs["qwen3"]), "--format", "gguf", "-o", str(out))
    assert r.rc == 2 and f"-o {out} already exists; pass --force" in r.err and out.read_bytes() == b"old"
    r = run_cli("export", str(runs["qwen3"]), "--format", "gguf", "-o", str(out), "--force", "--json")
    assert r.rc == 0 and json.loads(r.out)["tensors"] == len(_expected(runs["qwen3"]))
    assert out.read_bytes()[:4] == b"GGUF"


def test_docs_export_commands_run_as_printed(runs: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `pretrain ...` line in docs/pretrain-export.md's bash blocks runs, from a directory holding run/."""
    import re
    import shutil

    doc = (Path(__file__).resolve().parents[2] / "docs/pretrain-export.md").read_text(encoding="utf-8")
    commands = [line for block in re.findall(r"```bash\n(.*?)```", doc, re.S) for line in block.splitlines()
                if line.startswith("pretrain ") and not line.startswith("pretrain train")]
    assert len(commands) >= 4
    (tmp_path / "run").mkdir()
    for name in ("model.safetensors", "metrics.jsonl"):
        shutil.copy(runs["llama"].parent / name, tmp_path / "run" / name)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        r = run_cli(*shlex.split(command)[1:])
        assert r.rc == 0, f"docs/pretrain-export.md: `{command}` exited {r.rc}: {r.err}"


def test_export_and_card_refuse_to_write_over_the_checkpoint(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    ckpt = tmp_path / "model.safetensors"
    shutil.copy(runs["qwen3"], ckpt)
    before = ckpt.read_bytes()
    r = run_cli("export", str(ckpt), "--format", "gguf", "-o", str(ckpt), "--force")
    assert r.rc == 2 and "is (or holds) the checkpoint" in r.err
    hf = export_hf(ckpt, tmp_path / "hf").output
    r = run_cli("export", hf, "--format", "hf", "-o", hf, "--force")
    assert r.rc == 2 and "is (or holds) the checkpoint" in r.err and (Path(hf) / "model.safetensors").is_file()
    r = run_cli("card", str(ckpt), "-o", str(ckpt), "--force")
    assert r.rc == 2 and "is the checkpoint itself" in r.err
    assert ckpt.read_bytes() == before
