"""Issue #8, the checkpoint side: every hostile checkpoint, flag or fault gets one clear line, and nothing is lost.

Each test feeds one hostile input (a file, an argv, a signal) through the command a user runs and checks what
they see: the exit code, a single escaped line naming the fault, and the files left behind.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from falsifiers.tiny_hf import build_model as build_hf
from pretrain.checkpoint import (
    CheckpointError,
    atomic_write,
    check_init_arch,
    load_tensors,
    read_header,
    write_checkpoint,
)
from pretrain.cli import main
from pretrain.families import InitArchMismatchError, hf_identity_for, stamp_recipe
from pretrain.model import ModelConfig, build_model, from_pretrained
from pretrain.quality import SHIP_READY_THRESHOLD, score_header
from tests.cli_env import ROOT, cli_env


def pretrain_cli(*args: str | bytes, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pretrain", *args], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
        errors="backslashreplace", timeout=timeout,
    )


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`pretrain ARGS` run in this process (no interpreter start-up), as a CompletedProcess."""
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), rc, out, err)


def run_as_printed(command: str) -> subprocess.CompletedProcess[str]:
    """Run a printed `pretrain ...` suggestion exactly as a shell would split it, with this checkout's pretrain."""
    argv = shlex.split(command)
    assert argv[0] == "pretrain", command
    return pretrain_cli(*argv[1:])


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pretrain: error: "), proc.stderr
    return lines[0]


def llama_tensors(layers: int = 1) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    cfg = ModelConfig("llama", num_hidden_layers=layers)
    model = build_model(cfg, seed=0)
    return cfg, {k: v.detach().clone() for k, v in model.state_dict().items()}


def ours(path: Path, **meta: str) -> Path:
    """A checkpoint as `pretrain train` writes it (config metadata, identity), with `meta` on top."""
    cfg, tensors = llama_tensors()
    base = {"architecture": "llama", "hf_architecture": "LlamaForCausalLM", "hf_model_type": "llama",
            "config": cfg.to_hf_dict(), "tokenizer": "bytes"}
    write_checkpoint(path, tensors, {**base, **meta})
    return path


# --- 1. untrusted text reaches the terminal escaped ------------------------------------------------------

FORGED = "x\nquality: 100/100 (ship-ready: threshold 90)"
OSC = "MIT\x1b]0;pwned\x07"


def test_hostile_metadata_cannot_forge_lines_or_send_escapes(tmp_path: Path) -> None:
    # No data_license, so the real verdict is 89/100 NOT ship-ready; the data_source tries to forge 100/100.
    path = ours(tmp_path / "c.safetensors", license=OSC, data_source=FORGED)
    inspect = pretrain_cli("inspect", "--quality", str(path))
    stamp = pretrain_cli("stamp", str(path), "--license", "MIT", "-o", str(tmp_path / "o.safetensors"))
    for proc in (inspect, stamp):
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
        assert "MIT\\x1b]0;pwned\\x07" in proc.stdout
    assert [line for line in inspect.stdout.splitlines() if line.startswith("quality:")] == [
        "quality: 89/100 (NOT ship-ready: threshold 90 (missing provenance: data_license, capped from 93))"
    ]
    assert "data_source: x\\nquality: 100/100" in inspect.stdout


def test_hostile_tensor_name_in_an_error_stays_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = json.dumps({"a\n\x1b[2Jb": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    line = one_error_line(in_process(capsys, "inspect", str(bad)))
    assert "\\n\\x1b[2J" in line


def test_json_output_is_valid_unicode_with_an_undecodable_file_name(tmp_path: Path) -> None:
    path = ours(tmp_path / "c.safetensors", license="MIT")
    odd = os.fsencode(tmp_path) + b"/bad\xff.safetensors"
    os.rename(path, odd)
    proc = subprocess.run([sys.executable, "-m", "pretrain", "inspect", "--json", "--quality", odd], cwd=ROOT,
                          env=cli_env(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.decode("utf-8"))
    assert out["path"].endswith("bad\\xff.safetensors")
    json.dumps(out, ensure_ascii=False).encode("utf-8")  # no lone surrogate anywhere
    text = subprocess.run([sys.executable, "-m", "pretrain", "inspect", odd], cwd=ROOT, env=cli_env(),
                          capture_output=True, timeout=120)
    assert text.returncode == 0 and b"bad\\xff.safetensors" in text.stdout


# --- 2. GGUF counts and lengths are bounded by the file --------------------------------------------------


def gguf_bytes(kvs: bytes = b"", n_kv: int = 0, tensors: bytes = b"", n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kvs + tensors


def gguf_str(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


PAD = b"\0" * 64  # so the declared counts fit and the field under test is the one refused
HUGE_ARRAY = gguf_bytes(gguf_str(b"general.huge") + struct.pack("<IIQ", 9, 0, 2**40), n_kv=1)


@pytest.mark.parametrize(
    "data, fault",
    [
        (HUGE_ARRAY, "declares 1099511627776 items"),
        (gguf_bytes(n_kv=2**62), "metadata count declares"),
        (gguf_bytes(n_tensors=2**50), "tensor count declares"),
        (gguf_bytes(struct.pack("<Q", 2**63) + b"k" + PAD, n_kv=1), "metadata key length declares"),
        (gguf_bytes(gguf_str(b"k") + struct.pack("<IQ", 8, 2**40) + PAD, n_kv=1), "length declares"),
        (gguf_bytes(gguf_str(b"k") + struct.pack("<I", 77) + PAD, n_kv=1), "unknown value type 77"),
        (gguf_bytes(gguf_str(b"k") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 9 + PAD, n_kv=1), "nests arrays more than 8 deep"),
        (gguf_bytes(tensors=gguf_str(b"t") + struct.pack("<I", 2**31) + PAD, n_tensors=1), "dimensions"),
        (gguf_bytes(tensors=gguf_str(b"t") + struct.pack("<IQQIQ", 2, 2**20, 2**20, 0, 0) + PAD, n_tensors=1), "runs past the end"),
        (gguf_bytes(tensors=gguf_str(b"t") + struct.pack("<IQQIQ", 2, 2**62, 2**62, 0, 0) + PAD, n_tensors=1), "overflows"),
        (gguf_bytes(tensors=gguf_str(b"t") + struct.pack("<IQIQ", 1, 4, 999, 0) + PAD, n_tensors=1), "unknown GGML type 999"),
        (b"GGUF" + struct.pack("<I", 1) + PAD, "version 1 is not one of 2, 3"),
    ],
    ids=["array-2^40", "kv-count", "tensor-count", "key-length", "string-length", "value-type", "nesting", "n-dims",
         "tensor-past-eof", "dims-overflow", "ggml-type", "version"],
)
def test_gguf_counts_beyond_the_file_are_refused_without_allocating(tmp_path: Path, data: bytes, fault: str) -> None:
    import gguf.constants  # noqa: F401  (imported before measuring: its import allocates, the parse must not)

    path = tmp_path / "h.gguf"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            read_header(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fault in str(info.value) and str(info.value).startswith(f"{path}: unreadable GGUF")
    assert peak < 1 << 20


def test_the_87_byte_gguf_is_refused_by_inspect_and_train(tmp_path: Path) -> None:
    path = tmp_path / "h.gguf"
    path.write_bytes(HUGE_ARRAY + b"\0" * (87 - len(HUGE_ARRAY)))
    assert path.stat().st_size == 87
    assert "declares 1099511627776 items" in one_error_line(pretrain_cli("inspect", str(path)))
    proc = pretrain_cli("train", "--init", str(path), "--steps", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "declares 1099511627776 items" in proc.stderr and "Traceback" not in proc.stderr


def test_gguf_reader_agrees_with_the_gguf_package_on_real_files(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(2)
    writer.add_float32("qwen2.rope.freq_base", 1e6)
    writer.add_bool("general.flag", True)
    writer.add_string("general.license", "apache-2.0")
    writer.add_array("tokenizer.ggml.tokens", ["a", "bc", ""])
    writer.add_array("tokenizer.ggml.scores", [0.5, 1.5])
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float16))
    writer.add_tensor("blk.0.ffn.weight", np.zeros((2, 3, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    header = read_header(path)
    reader = gguf.GGUFReader(str(path))
    for t in reader.tensors:
        info = header.tensors[t.name]
        assert info.shape == tuple(reversed(t.shape.tolist())) and info.dtype == t.tensor_type.name
        assert info.nbytes == t.n_bytes and info.offsets[0] == t.data_offset
    assert len(header.tensors) == len(reader.tensors)
    assert header.metadata["general.license"] == "apache-2.0"
    assert header.metadata["qwen2.block_count"] == "2" and header.metadata["general.flag"] == "True"
    assert float(header.metadata["qwen2.rope.freq_base"]) == 1e6
    assert header.metadata["tokenizer.ggml.tokens"] == "<array of 3>"


# --- 3. hostile integers in configs and tensor names ----------------------------------------------------

HOSTILE_INTS = ["²", "9" * 5000, "٣", "-1", "1e9", " 4"]


@pytest.mark.parametrize("value", HOSTILE_INTS, ids=["superscript", "5000-digits", "arabic-digit", "negative", "float", "space"])
def test_hostile_config_integers_do_not_crash_inspect(tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, tensors = llama_tensors()
    config = {**cfg.to_hf_dict(), "hidden_size": value, "num_hidden_layers": value, "num_attention_heads": value}
    path = tmp_path / "c.safetensors"
    write_checkpoint(path, tensors, {"architecture": "llama", "config": config})
    assert main(["inspect", "--quality", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hidden_size = 64" in out and "num_layers = 1" in out  # from the tensor shapes and names instead
    # The same values in an HF directory's config.json
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    os.link(path, d / "model.safetensors")
    assert main(["inspect", "--quality", str(d)]) == 0
    assert main(["inspect", "--json", "--quality", str(d)]) == 0


def test_a_5000_digit_layer_index_does_not_crash_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, tensors = llama_tensors()
    tensors[f"model.layers.{'9' * 5000}.mlp.gate_proj.weight"] = torch.zeros(1)
    path = tmp_path / "c.safetensors"
    write_checkpoint(path, tensors, {})
    assert main(["inspect", "--quality", str(path)]) == 0
    assert "num_layers = 1" in capsys.readouterr().out


def test_hostile_config_integers_are_a_clear_init_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, tensors = llama_tensors()
    path = tmp_path / "c.safetensors"
    write_checkpoint(path, tensors, {"architecture": "llama", "config": {**cfg.to_hf_dict(), "hidden_size": 1e300}})
    proc = in_process(capsys, "train", "--init", str(path), "--steps", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert "'hidden_size' = 1e+300 is out of range" in proc.stderr


# --- 4. argv that is not UTF-8 ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--license", "--data-source"])
def test_non_utf8_argv_is_refused_naming_the_flag(tmp_path: Path, flag: str) -> None:
    path = ours(tmp_path / "c.safetensors")
    out = tmp_path / "x.safetensors"
    proc = subprocess.run([sys.executable, "-m", "pretrain", "stamp", str(path), flag.encode(), b"\xff", "-o", str(out)],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True, errors="backslashreplace", timeout=120)
    line = one_error_line(proc)
    assert f"{flag} is not valid UTF-8 text" in line
    assert not out.exists()


def test_control_characters_in_a_stamped_value_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ours(tmp_path / "c.safetensors")
    assert "--license contains the control character" in one_error_line(
        in_process(capsys, "stamp", str(path), "--license", "MIT\x1b[2J", "-o", str(tmp_path / "x.safetensors")))


# --- 5. -o that is not a regular file ---------------------------------------------------------------------


def _char_device(tmp_path: Path) -> Path:
    # A private /dev/null (same device numbers), never the real one: a regression would replace it for
    # every process on the machine.
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("creating a character device needs CAP_MKNOD")
    return tmp_path / "null"


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


def _socket(tmp_path: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    return tmp_path / "sock"


@pytest.mark.parametrize("make, kind, test", [
    (_char_device, "a character device", stat.S_ISCHR),
    (_fifo, "a FIFO", stat.S_ISFIFO),
    (_socket, "a socket", stat.S_ISSOCK),
], ids=["dev-null", "fifo", "socket"])
def test_output_that_is_not_a_regular_file_is_refused_and_kept(tmp_path: Path, make, kind: str, test,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = ours(tmp_path / "c.safetensors")
    out = make(tmp_path)
    line = one_error_line(in_process(capsys, "stamp", str(src), "--license", "MIT", "-o", str(out)))
    assert line.startswith(f"pretrain: error: {out}: output is {kind}, not a regular file")
    assert test(os.stat(out).st_mode)
    assert not list(tmp_path.glob(f".{out.name}.*.tmp"))


def test_atomic_write_refuses_a_device_for_every_writer(tmp_path: Path) -> None:
    device = _char_device(tmp_path)
    cfg, tensors = llama_tensors()
    with pytest.raises(CheckpointError, match="output is a character device"):
        write_checkpoint(device, tensors, {"architecture": "llama"})
    assert stat.S_ISCHR(os.stat(device).st_mode)


# --- 6. signals and SIGKILL leave no temp file ------------------------------------------------------------


def _stamp_big_and_signal(tmp_path: Path, sig: signal.Signals) -> tuple[subprocess.Popen[str], Path, Path]:
    from falsifiers.checkpoint_format import make_sparse_checkpoint

    src, out = tmp_path / "big.safetensors", tmp_path / "out.safetensors"
    make_sparse_checkpoint(src, 1 << 30)
    # Default dispositions in the child whatever this process inherited: under `nohup` SIGHUP is ignored, and an
    # ignored signal rightly stays ignored by the stamp (pretrain.atomic), which then finishes with exit 0.
    proc = subprocess.Popen([sys.executable, "-m", "pretrain", "stamp", str(src), "--license", "MIT", "-o", str(out)],
                            cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        temps: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in tmp_path.glob(".out.safetensors.*.tmp") if p.stat().st_size > 0]
            if temps:
                break
            time.sleep(0.005)
        assert temps, "stamp finished before it could be signalled mid-write"
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, src, out


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_mid_stamp_removes_the_temp_file(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    proc, src, out = _stamp_big_and_signal(tmp_path, sig)
    assert proc.returncode == code
    err = proc.stderr.read().splitlines() if proc.stderr else []
    assert len(err) == 1 and err[0].startswith(f"pretrain: stamp interrupted by {sig.name}; {out} is as it was")
    assert not out.exists()
    assert not list(tmp_path.glob(".out.safetensors.*"))
    read_header(src)


def test_a_sigkilled_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out.safetensors"
    stale = tmp_path / f".out.safetensors.{dead.pid}.abcd_123.tmp"
    live = tmp_path / f".out.safetensors.{os.getppid()}.abcd_123.tmp"  # a live process's: maybe still writing
    other = tmp_path / ".out.safetensors.notapid.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert out.read_bytes() == b"new"
    assert not stale.exists() and live.exists() and other.exists()


# --- 7. NaN / Inf weights ---------------------------------------------------------------------------------


@pytest.fixture
def nan_ckpt(tmp_path: Path) -> Path:
    cfg, tensors = llama_tensors()
    tensors["model.layers.0.mlp.up_proj.weight"][0, 0] = float("nan")
    tensors["model.norm.weight"][1] = float("inf")
    path = tmp_path / "nan.safetensors"
    write_checkpoint(path, tensors, {"architecture": "llama", "config": cfg.to_hf_dict()})
    return path


def test_non_finite_weights_are_refused_at_load_naming_the_tensors(nan_ckpt: Path) -> None:
    for load in (load_tensors, from_pretrained):
        with pytest.raises(CheckpointError) as info:
            load(nan_ckpt)
        assert "2 tensor(s) hold NaN or Inf weights: 'model.layers.0.mlp.up_proj.weight', 'model.norm.weight'" in str(info.value)


def test_train_init_from_nan_weights_exits_2_naming_the_tensor(nan_ckpt: Path, tmp_path: Path) -> None:
    proc = pretrain_cli("train", "--init", str(nan_ckpt), "--steps", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "hold NaN or Inf weights: 'model.layers.0.mlp.up_proj.weight'" in proc.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()


# --- 8. the salvage recipe for an HF directory runs as printed --------------------------------------------


@pytest.fixture
def lying_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hf"
    build_hf("Qwen2ForCausalLM", layers=1, device="cpu").save_pretrained(d)
    (d / "tokenizer.json").write_text("{}")
    (d / "sub").mkdir()
    (d / "sub" / "extra.txt").write_text("kept")
    config = json.loads((d / "config.json").read_text())
    config.update(architectures=["LlamaForCausalLM"], model_type="llama")
    (d / "config.json").write_text(json.dumps(config))
    return d


def _recipe_from(text: str) -> str:
    start = text.index("pretrain stamp ")
    return text[start:].split("`")[0].splitlines()[0].strip()


def test_the_gates_recipe_for_a_directory_runs_as_printed_and_the_gate_accepts_it(lying_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in lying_dir.iterdir() if p.is_file()}
    with pytest.raises(InitArchMismatchError) as info:
        check_init_arch(lying_dir)
    recipe = _recipe_from(str(info.value))
    proc = run_as_printed(recipe)
    assert proc.returncode == 0, proc.stderr
    fixed = Path(shlex.split(recipe)[-1])
    header = check_init_arch(fixed)
    config = json.loads((fixed / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["model_type"] == "qwen2"
    assert (fixed / "model.safetensors").read_bytes() == before["model.safetensors"]
    assert (fixed / "tokenizer.json").read_text() == "{}" and (fixed / "sub" / "extra.txt").read_text() == "kept"
    assert header.tensors == read_header(lying_dir).tensors
    assert {p.name: p.read_bytes() for p in lying_dir.iterdir() if p.is_file()} == before  # the input is untouched
    from_pretrained(fixed)


def test_trains_hint_for_a_directory_runs_as_printed(lying_dir: Path, tmp_path: Path) -> None:
    proc = pretrain_cli("train", "--init", str(lying_dir), "--steps", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert "--arch " not in proc.stderr
    recipe = _recipe_from(proc.stderr)
    assert run_as_printed(recipe).returncode == 0
    check_init_arch(shlex.split(recipe)[-1])


def test_stamp_in_place_on_a_directory_rewrites_only_config_json(lying_dir: Path) -> None:
    weights = (lying_dir / "model.safetensors").stat().st_ino
    assert main(["stamp", str(lying_dir), "--architecture", "qwen2", "--in-place"]) == 0
    check_init_arch(lying_dir)
    assert (lying_dir / "model.safetensors").stat().st_ino == weights
    assert not list(lying_dir.glob(".*.tmp"))


def test_stamp_on_a_directory_refuses_an_existing_output(lying_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (lying_dir.parent / "taken").mkdir()
    assert "already exists" in one_error_line(
        in_process(capsys, "stamp", str(lying_dir), "--architecture", "qwen2", "-o", str(lying_dir.parent / "taken")))


def test_directory_provenance_is_stamped_into_the_first_shard(lying_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prov"
    assert main(["stamp", str(lying_dir), "--architecture", "qwen2", "--license", "Apache-2.0", "-o", str(out)]) == 0
    header = read_header(out)
    assert header.metadata["license"] == "Apache-2.0"
    assert next(c for c in score_header(header).categories if c.name == "provenance").points == 10


# --- 9. the HF class follows the head on file -------------------------------------------------------------


@pytest.mark.parametrize("cls", ["BertModel", "BertForMaskedLM", "LlamaModel", "LlamaForCausalLM", "Qwen2Model",
                                 "GPT2Model", "GPT2LMHeadModel", "OPTForCausalLM", "GPTNeoXForCausalLM"])
def test_the_suggested_hf_class_is_the_one_the_tensors_are(tmp_path: Path, cls: str) -> None:
    build_hf(cls, layers=1, device="cpu").save_pretrained(tmp_path)
    header = read_header(tmp_path)
    from pretrain.families import family_from_tensor_names

    assert hf_identity_for(family_from_tensor_names(header.tensor_names), header.tensor_names)[0] == cls


def test_sentence_transformers_bert_gets_bert_model_in_the_recipe(tmp_path: Path) -> None:
    d = tmp_path / "st"
    build_hf("BertModel", layers=1, device="cpu").save_pretrained(d)  # embeddings.*, encoder.*, pooler.*; no head
    config = json.loads((d / "config.json").read_text())
    config.update(architectures=["LlamaForCausalLM"], model_type="llama")
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(InitArchMismatchError) as info:
        check_init_arch(d)
    assert "--hf-architecture BertModel " in str(info.value)
    names = ["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight"]
    assert hf_identity_for("bert", names + ["classifier.weight"])[0] == "BertForSequenceClassification"
    assert hf_identity_for("bert", names + ["cls.predictions.bias"])[0] == "BertForMaskedLM"
    assert "--hf-architecture BertModel" in stamp_recipe("x.safetensors", "bert", names)


# --- 11. empty provenance is missing provenance ------------------------------------------------------------


@pytest.mark.parametrize("license", ["", "   "], ids=["empty", "whitespace"])
def test_a_fresh_checkpoint_without_a_license_is_not_ship_ready(tmp_path: Path, license: str) -> None:
    path = ours(tmp_path / "c.safetensors", license=license, data_source="python-stdlib (bytes)", data_license="PSF-2.0")
    card = score_header(read_header(path))
    assert card.points == 90 and card.score == SHIP_READY_THRESHOLD - 1 and not card.ship_ready
    assert card.missing_provenance == ("license",)
    proc = pretrain_cli("inspect", "--quality", "--min-score", "90", str(path))
    assert proc.returncode == 1
    assert "quality: 89/100 (NOT ship-ready: threshold 90 (missing provenance: license, capped from 90))" in proc.stdout
    fix = next(line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("pretrain stamp"))
    assert fix == f"pretrain stamp {path} --license '<SPDX-ID>' -o {tmp_path / 'c.fixed.safetensors'}"
    # As printed, the placeholder is refused (it would otherwise count as a license) ...
    assert "is a placeholder; replace it with the real value" in one_error_line(run_as_printed(fix))
    # ... and filled in, the same command makes the checkpoint ship-ready.
    assert run_as_printed(fix.replace("'<SPDX-ID>'", "MIT")).returncode == 0
    assert score_header(read_header(tmp_path / "c.fixed.safetensors")).ship_ready
