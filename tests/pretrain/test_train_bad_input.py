"""Hostile `pretrain train` input: every bad flag or --out exits 2 naming it, with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pretrain.cli import main

from tests.cli_env import cli_env

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2", "--seq-len", "32", "--batch", "4",
        "--steps", "1"]


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str, out: Path | None = None) -> str:
    out = out or tmp_path / "out"
    rc = main(["train", *TINY, *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("pretrain train: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--lr", "-1"], "--lr must be a finite number > 0"),
    (["--lr", "0"], "--lr must be"),
    (["--lr", "nan"], "--lr must be"),
    (["--warmup", "-3"], "--warmup must be >= 0"),
    (["--weight-decay", "-0.5"], "--weight-decay must be"),
    (["--grad-clip", "-1"], "--grad-clip must be"),
    (["--grad-clip", "inf"], "--grad-clip must be"),
    (["--min-lr-ratio", "1.5"], "--min-lr-ratio must be"),
    (["--rope-theta", "-5"], "--rope-theta must be"),
    (["--rope-theta", "0"], "--rope-theta must be"),
    (["--layers", "0"], "--layers must be a positive integer, got 0"),
    (["--hidden", "0"], "--hidden must be a positive integer"),
    (["--heads", "0"], "--heads must be a positive integer"),
    (["--kv-heads", "0"], "--kv-heads must be a positive integer"),
    (["--head-dim", "-8"], "--head-dim must be a positive integer"),
    (["--vocab", "0"], "--vocab must be a positive integer"),
    (["--intermediate", "0"], "--intermediate must be a positive integer"),
    (["--eval-every", "0"], "--eval-every must be a positive integer"),
    (["--steps", "-1"], "--steps must be"),
    (["--kv-heads", "3"], "num_key_value_heads (3)"),
    (["--hidden", "30"], "--hidden 30 is not divisible by --heads 4"),
    (["--head-dim", "7"], "head_dim must be even"),
])
def test_bad_flag_is_named_and_nothing_is_written(argv: list[str], needle: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(tmp_path, capsys, *argv)
    assert needle in err
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "afile"
    target.write_text("keep me")
    err = refused(tmp_path, capsys, out=target)
    assert f"--out {target}: exists and is not a directory" in err
    assert target.read_text() == "keep me"
    err = refused(tmp_path, capsys, out=target / "sub")
    assert "is not a directory" in err


def test_out_that_cannot_be_created_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):
        # Root ignores the mode bits; simulate the denial the kernel would give anyone else.
        def deny(self: Path, *args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "mkdir", deny)
    try:
        err = refused(tmp_path, capsys, out=locked / "run")
    finally:
        locked.chmod(0o755)
    assert f"--out {locked / 'run'}" in err and ("not writable" in err or "Permission denied" in err)
    assert not (locked / "run").exists()


def test_bad_flag_through_python_dash_m_prints_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pretrain", "train", "--lr", "-1", "--out", str(tmp_path / "o")],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "pretrain train: error: --lr must be a finite number > 0 and <= 1, got -1.0; e.g. --lr 3e-3"
    assert not (tmp_path / "o").exists()


def test_gguf_init_is_refused_with_the_conversion_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    err = refused(tmp_path, capsys, "--init", str(path))
    assert f"--init {path}: refused before step 1: a GGUF file cannot be a training init" in err
    assert "gguf_file=" in err and "save_pretrained" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("what", ["empty-dir", "garbage-file"])
def test_unreadable_init_is_refused_naming_it(what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init = tmp_path / "init"
    if what == "empty-dir":
        init.mkdir()
    else:
        init.write_bytes(b"\xff" * 64)
    err = refused(tmp_path, capsys, "--init", str(init))
    assert f"--init {init}:" in err
    assert not (tmp_path / "out").exists()


def test_hf_directory_with_tokenizer_files_inits_and_contradicting_flags_are_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from safetensors import safe_open

    from tests.pretrain.hf_tiny import hf_model

    hf = tmp_path / "hf"
    model = hf_model("qwen2", tie_word_embeddings=True)
    model.save_pretrained(hf)
    model.generation_config.save_pretrained(hf)
    (hf / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}))
    (hf / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 32768}))
    (hf / "special_tokens_map.json").write_text("{}")
    for flags, needle in ((["--family", "llama"], "--family llama contradicts"),
                          (["--no-tie-embeddings"], "--no-tie-embeddings contradicts"),
                          (["--kv-heads", "4"], "--kv-heads 4 contradicts")):
        rc = main(["train", "--init", str(hf), *flags, "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err and str(hf) in err, err
        assert not (tmp_path / "bad").exists()
    rc = main(["train", "--init", str(hf), "--seq-len", "32", "--batch", "4", "--steps", "1",
               "--out", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    with safe_open(str(tmp_path / "run" / "model.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["architecture"] == "qwen2" and meta["init"] == str(hf)
    assert json.loads(meta["config"])["tie_word_embeddings"] is True


@pytest.mark.parametrize(("what", "needle"), [
    ("empty-npy", "not a readable .npy array"),
    ("uint64-npy", "does not fit int64"),
    ("fifo", "not a regular file or directory"),
    ("unreadable", "cannot read it"),
])
def test_hostile_data_is_refused_naming_the_file(what: str, needle: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    data = tmp_path / "data.npy"
    if what == "empty-npy":
        data.write_bytes(b"")
    elif what == "uint64-npy":
        np.save(data, np.array([2**64 - 1] + list(range(200)) * 20, dtype=np.uint64))
    elif what == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        data = tmp_path / "pipe.txt"
        os.mkfifo(data)  # reading it would block forever
    else:
        data = tmp_path / "dir"
        data.mkdir()
        (data / "a.txt").write_text("x" * 10_000)
        real = Path.read_bytes

        def deny(self: Path) -> bytes:
            if self.name == "a.txt":  # root ignores mode bits, so simulate the denial
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", deny)
    err = refused(tmp_path, capsys, "--data", str(data))
    assert needle in err and "--data " in err
    assert not (tmp_path / "out").exists()


def test_init_vocab_too_small_for_the_data_blames_the_checkpoint_not_a_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.pretrain.hf_tiny import hf_model

    hf = tmp_path / "hf"
    hf_model("llama", vocab_size=128).save_pretrained(hf)
    capsys.readouterr()  # drop transformers' own save progress output
    err = refused(tmp_path, capsys, "--init", str(hf))
    assert f"does not fit vocab_size 128 of --init {hf}" in err and "--data" in err
    assert "pass --vocab" not in err  # --vocab would only contradict the checkpoint
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("num_attention_heads", "abc", "'num_attention_heads' must be an integer, got 'abc'"),
    ("num_attention_heads", 0, "num_attention_heads must be a positive integer"),
    ("vocab_size", None, "lacks required key 'vocab_size'"),
    ("hidden_size", 32.5, "'hidden_size' must be an integer"),
    ("hidden_size", True, "'hidden_size' must be an integer"),
    ("rope_theta", [1], "'rope_theta' must be a number"),
    ("rms_norm_eps", "abc", "'rms_norm_eps' must be a number"),
    ("rope_parameters", "x", "rope_parameters/rope_scaling must be a JSON object"),
])
def test_hostile_hf_config_values_are_config_errors_naming_the_key(key: str, value: object, needle: str) -> None:
    from pretrain.model import ConfigError, ModelConfig

    config = {**ModelConfig(family="llama", hidden_size=32, num_attention_heads=4, head_dim=8).to_hf_dict()}
    config.pop("head_dim")
    config[key] = value
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_hf_dict(config, source="cfg.json")
    assert needle in str(info.value) and str(info.value).startswith("cfg.json: ")


def test_init_with_a_mistyped_config_value_exits_2_naming_it(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from pretrain.model import ModelConfig, build_model

    hf = tmp_path / "hf"
    build_model(ModelConfig(family="qwen3", hidden_size=32, num_attention_heads=4, head_dim=8)).save_pretrained(hf)
    config = json.loads((hf / "config.json").read_text())
    config["num_hidden_layers"] = "2"
    (hf / "config.json").write_text(json.dumps(config))
    err = refused(tmp_path, capsys, "--init", str(hf))
    assert "'num_hidden_layers' must be an integer, got '2'" in err and f"--init {hf}" in err
    assert not (tmp_path / "out").exists()


def test_an_init_path_with_terminal_escapes_is_printed_escaped_on_one_line(tmp_path: Path) -> None:
    # A file name is untrusted text: its escape sequences must not retitle the terminal or add lines.
    hostile = tmp_path / "evil\x1b]0;PASSED\x07\nquality: 100.safetensors"
    hostile.write_bytes(b"\x00" * 4)
    proc = subprocess.run([sys.executable, "-m", "pretrain", "train", *TINY, "--init", str(hostile),
                           "--out", str(tmp_path / "out")], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("pretrain train: error: --init ")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr and "\\x1b]0;PASSED\\x07" in proc.stderr


def test_a_usage_error_quoting_hostile_argv_stays_one_escaped_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "pretrain", "train", "--family", "llama\x1b[2J\rbad"],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "\x1b" not in proc.stderr and "\r" not in proc.stderr
