"""read_header / load_tensors / write_checkpoint / check_init_arch on real files, and hostile inputs."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch

from falsifiers.tiny_hf import build_model
from pretrain.checkpoint import (
    CheckpointError,
    check_init_arch,
    load_tensors,
    read_header,
    write_checkpoint,
)
from pretrain.families import InitArchMismatchError

FULL_META = {
    "architecture": "qwen2",
    "hf_architecture": "Qwen2ForCausalLM",
    "hf_model_type": "qwen2",
    "license": "Apache-2.0",
    "data_source": "tiny synthetic corpus",
    "data_license": "CC0-1.0",
}


def tiny_qwen2_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("Qwen2ForCausalLM", layers=1, device="cpu")
    return {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def test_write_then_read_header_round_trips(tmp_path: Path) -> None:
    tensors = tiny_qwen2_tensors()
    path = tmp_path / "ckpt.safetensors"
    write_checkpoint(path, tensors, {**FULL_META, "step": 12, "val_loss": 4.62, "config": {"hidden_size": 32}})
    header = read_header(path)
    assert header.format == "safetensors"
    assert set(header.tensor_names) == set(tensors)
    info = header.tensors["model.layers.0.self_attn.q_proj.bias"]
    assert (info.dtype, info.shape, info.nbytes) == ("F32", (32,), 128)
    assert header.metadata["step"] == "12" and header.metadata["val_loss"] == "4.62"
    assert header.config == {"hidden_size": 32}
    assert header.arch_claim == "qwen2"
    assert header.total_nbytes == sum(t.numel() * t.element_size() for t in tensors.values())
    loaded = load_tensors(path)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_write_is_atomic_and_leaves_no_temp_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    write_checkpoint(path, tiny_qwen2_tensors(), FULL_META)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="metadata\\['license'\\]"):
        write_checkpoint(path, tiny_qwen2_tensors(), {**FULL_META, "license": None})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]


def test_write_failing_mid_file_keeps_the_old_checkpoint_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    path = tmp_path / "ckpt.safetensors"
    write_checkpoint(path, tiny_qwen2_tensors(), FULL_META)
    before = path.read_bytes()

    def dies_half_way(tensors: object, filename: str, metadata: object = None) -> None:
        with open(filename, "wb") as f:
            f.write(before[: len(before) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(path, tiny_qwen2_tensors(), {**FULL_META, "step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]


def test_write_refuses_a_claim_the_tensors_contradict(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    with pytest.raises(InitArchMismatchError, match="qwen2"):
        write_checkpoint(path, tiny_qwen2_tensors(), {**FULL_META, "architecture": "llama"})
    assert not path.exists()


def test_write_handles_tied_tensors(tmp_path: Path) -> None:
    shared = torch.ones(4, 4)
    write_checkpoint(tmp_path / "t.safetensors", {"a.weight": shared, "b.weight": shared}, {}, verify_arch=False)
    loaded = load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(loaded["a.weight"], loaded["b.weight"])


def test_check_init_arch_refuses_the_incident_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "incident.safetensors"
    write_checkpoint(path, tiny_qwen2_tensors(), {**FULL_META, "architecture": "LlamaForCausalLM"}, verify_arch=False)
    with pytest.raises(InitArchMismatchError) as info:
        check_init_arch(path)
    assert f"pretrain stamp {path} --architecture qwen2" in str(info.value)
    # A header already read is gated without reading the file again.
    header = read_header(path)
    path.unlink()
    with pytest.raises(InitArchMismatchError):
        check_init_arch(header)


def test_check_init_arch_passes_a_matching_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ok.safetensors"
    write_checkpoint(path, tiny_qwen2_tensors(), FULL_META)
    assert check_init_arch(path).arch_claim == "qwen2"


# --- HF directories -----------------------------------------------------------------------------------


def test_hf_directory_single_file(tmp_path: Path) -> None:
    model = build_model("Qwen2ForCausalLM", layers=1, device="cpu")
    model.save_pretrained(tmp_path / "hf")
    header = read_header(tmp_path / "hf")
    assert header.format == "hf-dir"
    assert header.arch_claim == "Qwen2ForCausalLM"
    assert header.config is not None and header.config["model_type"] == "qwen2"
    assert "model.layers.0.self_attn.q_proj.bias" in header.tensor_names
    loaded = load_tensors(tmp_path / "hf")
    assert set(loaded) == set(header.tensor_names)
    check_init_arch(tmp_path / "hf")


def test_hf_directory_sharded(tmp_path: Path) -> None:
    model = build_model("LlamaForCausalLM", layers=2, device="cpu")
    model.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists()
    header = read_header(tmp_path / "hf")
    assert len(header.shards) > 1
    state = {k for k in model.state_dict() if k != "lm_head.weight"}
    assert state <= set(header.tensor_names)
    loaded = load_tensors(tmp_path / "hf")
    assert set(loaded) == set(header.tensor_names)


def test_hf_directory_mis_stamped_config_is_refused(tmp_path: Path) -> None:
    build_model("Qwen2ForCausalLM", layers=1, device="cpu").save_pretrained(tmp_path / "hf")
    config_path = tmp_path / "hf" / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["LlamaForCausalLM"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(InitArchMismatchError) as info:
        check_init_arch(tmp_path / "hf")
    assert (info.value.claimed, info.value.inferred) == ("llama", "qwen2")


def test_hf_directory_index_naming_a_missing_or_escaping_shard(tmp_path: Path) -> None:
    d = tmp_path / "hf"
    d.mkdir()
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "../evil.safetensors"}}))
    with pytest.raises(CheckpointError, match="not a file name"):
        read_header(d)
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "missing.safetensors"}}))
    with pytest.raises(CheckpointError, match="missing.safetensors: no such file"):
        read_header(d)


def test_hf_directory_with_only_pickles_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="pytorch_model"):
        read_header(tmp_path)


# --- GGUF ----------------------------------------------------------------------------------------------


def write_tiny_gguf(path: Path, arch: str = "llama") -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_string("general.license", "apache-2.0")
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_header_gives_claim_and_names(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_tiny_gguf(path, "qwen2")
    header = read_header(path)
    assert header.format == "gguf"
    assert header.arch_claim == "qwen2"
    assert header.tensors["token_embd.weight"].shape == (16, 8)
    assert header.tensors["token_embd.weight"].dtype == "F32"
    assert header.metadata["general.license"] == "apache-2.0"
    check_init_arch(path)  # GGUF names say nothing, so the claim is trusted
    with pytest.raises(CheckpointError, match="GGUF"):
        load_tensors(path)


def test_truncated_gguf_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_tiny_gguf(path)
    data = path.read_bytes()
    for cut in (4, 12, 30, len(data) // 2):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="m.gguf: unreadable GGUF \\(truncated or corrupt header\\)"):
            read_header(path)


# --- hostile safetensors --------------------------------------------------------------------------------


def blob(header: object, data: bytes = b"", declared: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared is None else declared) + raw + data


GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}

HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty file": (b"", "too short"),
    "truncated length": (b"\x10\x00\x00", "too short"),
    "length past end": (blob(GOOD, b"\0" * 8, declared=10_000), "past the end"),
    "absurd length": (struct.pack("<Q", 2**63) + b"{}", "exceeds"),
    "tiny length": (blob(b"{", declared=1), "too small"),
    "not json": (blob(b"{not json}"), "not valid JSON"),
    "not utf8": (blob(b'{"\xff":1}'), "not UTF-8"),
    "json list": (blob([1, 2]), "expected an object"),
    "json string": (blob("hello"), "expected an object"),
    "NaN constant": (blob(b'{"__metadata__":{"a":NaN}}'), "not valid JSON"),
    "duplicate tensor": (
        blob(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
        "duplicate key",
    ),
    "deep nesting": (blob(b"[" * 100_000 + b"]" * 100_000), "too deeply"),
    "deep nesting in entry": (blob(b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"), "too deeply"),
    "unknown dtype": (blob({"a": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "unknown dtype 'F33'"),
    "dtype not string": (blob({"a": {"dtype": 5, "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "unknown dtype 5"),
    "offsets past data": (blob({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4), "holds 4"),
    "overlap": (
        blob({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
        "overlaps",
    ),
    "gap": (
        blob({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, b"\0" * 12),
        "gap of 4",
    ),
    "trailing bytes": (blob(GOOD, b"\0" * 12), "4 trailing bytes"),
    "shape size mismatch": (blob({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "needs 12 bytes"),
    "huge shape": (blob({"a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 8]}}, b"\0" * 8), "overflows a 64-bit element count"),
    # The safetensors library refuses these too; a later zero dim must not launder the overflow into 0 bytes.
    "overflow then zero dim": (blob({"a": {"dtype": "F32", "shape": [2**62, 2**62, 0], "data_offsets": [0, 0]}}), "overflows a 64-bit element count"),
    "thousands of huge dims": (blob({"a": {"dtype": "F32", "shape": [10**18] * 2000, "data_offsets": [0, 8]}}, b"\0" * 8), "2000 dims overflows"),
    "dim past 64 bits after a zero": (blob({"a": {"dtype": "U8", "shape": [0, 2**64], "data_offsets": [0, 0]}}), "overflows a 64-bit element count"),
    "bit count overflow": (blob({"a": {"dtype": "F64", "shape": [2**61], "data_offsets": [0, 0]}}), "overflows a 64-bit bit count"),
    "negative dim": (blob({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8), "negative dimension"),
    "bool dim": (blob({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4), "not a list of integers"),
    "reversed offsets": (blob({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, b"\0" * 8), "reversed"),
    "negative offset": (blob({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, b""), "negative"),
    "offsets not pair": (blob({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, b"\0" * 8), "not a pair"),
    "missing dtype": (blob({"a": {"shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "no 'dtype' field"),
    "missing shape": (blob({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, b"\0" * 8), "no 'shape' field"),
    "missing offsets": (blob({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "no 'data_offsets' field"),
    "entry not object": (blob({"a": [1, 2]}), "expected an object"),
    "metadata not object": (blob({"__metadata__": ["x"]}), "__metadata__ is a JSON list"),
    "metadata value int": (blob({"__metadata__": {"step": 3}}), "__metadata__['step'] is int"),
    "metadata value null": (blob({"__metadata__": {"license": None}}), "__metadata__['license'] is NoneType"),
    "config metadata not json": (blob({"__metadata__": {"config": "{oops"}}), "__metadata__['config'] is not valid JSON"),
    "config metadata list": (blob({"__metadata__": {"config": "[1]"}}), "expected an object"),
    "sub-byte odd": (blob({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2), "whole bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_safetensors_raise_checkpoint_error_naming_file_and_fault(tmp_path: Path, case: str) -> None:
    data, fault = HOSTILE[case]
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        read_header(path)
    assert info.value.path == str(path)
    assert fault in info.value.fault
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointError):
        load_tensors(path)


def test_missing_path_and_plain_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        read_header(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        read_header(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.checkpoint as checkpoint

    path = tmp_path / "locked.safetensors"
    path.write_bytes(blob(GOOD, b"\0" * 8))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Root reads any file whatever its mode, so the refusal is simulated where the readers open files:
    # read_header (its format sniff) and the safetensors reader.
    import pretrain.formats.safetensors

    monkeypatch.setattr(checkpoint, "open", denied, raising=False)
    monkeypatch.setattr(pretrain.formats.safetensors, "open", denied, raising=False)
    with pytest.raises(CheckpointError, match="cannot read: Permission denied; check the path and permissions"):
        read_header(path)
    with pytest.raises(CheckpointError, match="cannot read: Permission denied"):
        checkpoint.read_safetensors_header(path)


def test_valid_edge_cases_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "edge.safetensors"
    path.write_bytes(blob({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, "z": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [4, 4]}}, b"\0" * 4))
    header = read_header(path)
    assert header.tensors["s"].shape == () and header.tensors["z"].nbytes == 0
    path.write_bytes(blob({}, b""))
    assert read_header(path).tensors == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
@pytest.mark.cuda
def test_load_tensors_onto_cuda(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    write_checkpoint(path, tiny_qwen2_tensors(), FULL_META)
    loaded = load_tensors(path, device="cuda")
    assert all(t.is_cuda for t in loaded.values())


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_header(fifo)
    d = tmp_path / "hf"
    d.mkdir()
    os.mkfifo(d / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_header(d)


def test_lone_surrogate_escape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.safetensors"
    path.write_bytes(blob(b'{"__metadata__":{"a":"\\ud800"}}'))
    with pytest.raises(CheckpointError, match="surrogate"):
        read_header(path)
    path.write_bytes(blob(b'{"__metadata__":{"a":"\\u00e9\\ud83d\\ude00"}}'))  # a valid pair is fine
    assert read_header(path).metadata == {"a": "\u00e9\U0001f600"}


@pytest.mark.parametrize(
    ("files", "fault"),
    [
        ({"config.json": b"{oops", "model.safetensors": None}, "config.json is not valid JSON"),
        ({"config.json": b"[1]", "model.safetensors": None}, "config.json is a JSON list"),
        ({"model.safetensors.index.json": b"[]"}, "has no 'weight_map'"),
        ({"model.safetensors.index.json": b'{"weight_map": {}}'}, "has no 'weight_map'"),
        ({"model.safetensors.index.json": b'{"weight_map": {"a": 3}}'}, "not a file name"),
        ({"model.safetensors.index.json": b'{"weight_map": {"a": "s\\u0000.safetensors"}}'}, "not a file name"),
        ({"model.safetensors.index.json": b'{"weight_map": {"a": "s.safetensors", "b": "s.safetensors"}}', "s.safetensors": None}, "in no shard"),
        ({"model.safetensors.index.json": b'{"weight_map": {"b": "s.safetensors"}}', "s.safetensors": None}, "weight_map says None"),
        ({"model.safetensors": b"\x00\x00"}, "too short"),
    ],
)
def test_hostile_hf_directories(tmp_path: Path, files: dict[str, bytes | None], fault: str) -> None:
    good = blob({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    for name, content in files.items():
        (tmp_path / name).write_bytes(good if content is None else content)
    with pytest.raises(CheckpointError) as info:
        read_header(tmp_path)
    assert fault in str(info.value)


def test_gate_salvage_for_an_hf_directory_is_a_stamp_of_the_directory(tmp_path: Path) -> None:
    # Was an "edit config.json" instruction; now the one recipe, which `pretrain stamp DIR` runs
    # (tests/pretrain/test_hardening.py runs it as printed and checks the gate then accepts the result).
    d = tmp_path / "hf"
    build_model("Qwen2ForCausalLM", layers=1, device="cpu").save_pretrained(d)
    config = json.loads((d / "config.json").read_text())
    config["architectures"] = ["LlamaForCausalLM"]
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(InitArchMismatchError) as info:
        check_init_arch(d)
    assert (
        f"`pretrain stamp {d} --architecture qwen2 --hf-architecture Qwen2ForCausalLM --hf-model-type qwen2 -o {d}.fixed`"
        in str(info.value)
    )
    assert "\n" not in str(info.value)  # one line, recipe included


def test_an_unknown_architecture_defers_to_the_hf_class(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    write_checkpoint(path, tiny_qwen2_tensors(), {"architecture": "unknown", "hf_architecture": "LlamaForCausalLM"}, verify_arch=False)
    assert read_header(path).arch_claim == "LlamaForCausalLM"
    with pytest.raises(InitArchMismatchError):
        check_init_arch(path)


@pytest.mark.parametrize(
    ("directory", "files", "fault"),
    [
        ("config.json", {"model.safetensors": None}, "config.json is a directory, not a file"),
        ("model.safetensors.index.json", {}, "model.safetensors.index.json is a directory, not a file"),
        ("model.safetensors", {}, "model.safetensors: is a directory, not a .safetensors file"),
        ("s.safetensors", {"model.safetensors.index.json": b'{"weight_map": {"a": "s.safetensors"}}'}, "s.safetensors: is a directory"),
    ],
)
def test_a_directory_where_an_hf_file_belongs_is_named(tmp_path: Path, directory: str, files: dict[str, bytes | None], fault: str) -> None:
    good = blob(GOOD, b"\0" * 8)
    (tmp_path / directory).mkdir()
    for name, content in files.items():
        (tmp_path / name).write_bytes(good if content is None else content)
    with pytest.raises(CheckpointError) as info:
        read_header(tmp_path)
    assert fault in str(info.value)


def test_a_path_with_a_nul_byte_is_a_checkpoint_error(tmp_path: Path) -> None:
    from pretrain.checkpoint import read_safetensors_header

    for read in (read_header, read_safetensors_header):
        with pytest.raises(CheckpointError, match="no such file|NUL byte"):
            read(str(tmp_path / "a\0b.safetensors"))


def test_writer_judges_the_claim_the_file_will_read_back_with(tmp_path: Path) -> None:
    # No architecture key, but a `config` whose model_type is llama: read back, the gate resolves that
    # claim, so the writer must refuse it too instead of writing a file --init then refuses.
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(InitArchMismatchError, match="the tensor names are qwen2's"):
        write_checkpoint(path, tiny_qwen2_tensors(), {"config": {"model_type": "llama"}})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match=r"__metadata__\['config'\] is not valid JSON"):
        write_checkpoint(path, tiny_qwen2_tensors(), {"config": "{not json"})
    assert list(tmp_path.iterdir()) == []


# --- finiteness of the low-precision float dtypes (torch has no isfinite kernel for most of them) ---------


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_a_float8_checkpoint_loads_and_its_nan_is_refused_naming_the_tensor(tmp_path: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import save_file

    from pretrain.checkpoint import CheckpointError, load_tensors

    good = tmp_path / "good.safetensors"
    save_file({"w": torch.ones(8, 8).to(dtype)}, str(good))
    assert load_tensors(good)["w"].dtype == dtype
    bad = tmp_path / "bad.safetensors"
    weights = torch.ones(8, 8)
    weights[3, 5] = float("nan")
    save_file({"w": torch.ones(8, 8).to(dtype), "x": weights.to(dtype)}, str(bad))
    with pytest.raises(CheckpointError, match=r"1 tensor\(s\) hold NaN or Inf weights: 'x'"):
        load_tensors(bad)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz])
def test_finiteness_of_float8_dtypes_without_an_isfinite_kernel(dtype: torch.dtype) -> None:
    from pretrain.checkpoint import _all_finite

    values = torch.ones(3, 4)
    assert _all_finite(values.to(dtype))
    values[2, 1] = float("nan")
    assert not _all_finite(values.to(dtype))


def test_float4_is_always_finite() -> None:
    from pretrain.checkpoint import _all_finite

    # E2M1 cannot encode NaN or Inf; torch can neither test nor widen it, which must not be an error.
    assert _all_finite(torch.full((4, 4), 0xFF, dtype=torch.uint8).view(torch.float4_e2m1fn_x2))
