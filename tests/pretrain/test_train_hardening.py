"""`pretrain train` and `pretrain` under hostile sizes, full disks, closed pipes, NaN weights and bad metadata text.

Each test feeds the input a user could give (a flag, a file, a pipe) and checks what they see: the exit
code, one error line naming the flag or file, and what is (not) left in --out.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pretrain.cli import main

from tests.cli_env import cli_env

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--layers", "1", "--hidden", "32", "--heads", "4", "--kv-heads", "2", "--seq-len", "32", "--batch", "4",
        "--steps", "2", "--eval-every", "1"]


def train(out: Path, *argv: str) -> int:
    return main(["train", *TINY, *argv, "--out", str(out)])


def refused(capsys: pytest.CaptureFixture[str], out: Path, *argv: str) -> str:
    """Run `pretrain train` in-process; it must exit 2 with one error line and no traceback."""
    rc = train(out, *argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("pretrain train: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def cli(*argv: str | bytes, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pretrain", *argv], cwd=ROOT, env=cli_env(OMP_NUM_THREADS="1"),
                          stdout=stdout, stderr=subprocess.PIPE, timeout=300)


def strict_json_lines(path: Path) -> list[dict]:
    """Every line of metrics.jsonl parsed as strict JSON (NaN/Infinity refused, as any JSON reader would)."""
    def no_constant(name: str) -> None:
        raise AssertionError(f"{path} holds the non-JSON constant {name}")

    return [json.loads(line, parse_constant=no_constant) for line in path.read_text().splitlines()]


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


# ---------------------------------------------------------------- sizes and numbers out of range


@pytest.mark.parametrize(("argv", "needle"), [
    (["--lr", "1e308"], "--lr must be a finite number > 0 and <= 1, got 1e+308"),
    (["--batch", "1000000000"], "--batch 1000000000 is above this trainer's limit of 1,048,576"),
    (["--hidden", "1000000000"], "--hidden 1000000000 is above this trainer's limit of 65,536"),
    (["--vocab", "1000000000000"], "--vocab 1000000000000 is above this trainer's limit of 16,777,216"),
    (["--seq-len", "99999999"], "--seq-len 99999999 is above this trainer's limit"),
    (["--layers", "5000"], "--layers 5000 is above this trainer's limit of 1,024"),
    (["--seed", str(2**64)], f"--seed {2**64} is above this trainer's limit of {2**64 - 1:,}"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
])
def test_out_of_range_flag_is_refused_naming_flag_and_limit(argv: list[str], needle: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, tmp_path / "out", *argv)
    assert needle in err
    assert not (tmp_path / "out").exists()


def test_largest_seed_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path / "out", "--seed", str(2**64 - 1), "--steps", "1") == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_a_model_too_big_for_memory_is_refused_naming_estimate_available_and_flags(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Within every flag's limit, but ~3e12 parameters: 44 TiB of weights and optimizer state.
    err = refused(capsys, tmp_path / "out", "--hidden", "65536", "--layers", "64")
    assert "this run needs about 44.0 TiB of memory" in err and "3,023,766,093,824 parameters" in err
    assert "available; lower --hidden, --layers, --intermediate or --vocab (model)" in err
    assert not (tmp_path / "out").exists()


def test_activations_too_big_for_memory_name_batch_and_seq_len_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, tmp_path / "out", "--batch", "1048576", "--seq-len", "4096")
    assert "activations" in err and "for --batch 1048576 x --seq-len 4096 in fp32" in err
    assert "lower --batch or --seq-len (activations) or --hidden" in err
    assert not (tmp_path / "out").exists()


def test_memory_check_uses_what_the_device_has(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.train as train_mod

    monkeypatch.setattr(train_mod, "available_memory", lambda device: (64 * 1024, "this machine has"))
    err = refused(capsys, tmp_path / "out")
    assert "but this machine has 64.0 KiB available" in err
    assert not (tmp_path / "out").exists()


def test_memory_estimate_counts_the_real_parameters() -> None:
    from pretrain.model import ModelConfig, build_model
    from pretrain.train import estimate_memory

    for family, tie in (("llama", False), ("qwen2", True), ("qwen3", False)):
        cfg = ModelConfig(family=family, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                          head_dim=8, intermediate_size=64, num_hidden_layers=2, tie_word_embeddings=tie)
        est = estimate_memory(cfg, batch=4, seq_len=32, amp=None)
        n = build_model(cfg).num_parameters()
        assert est.parameters == n and est.model_bytes == 16 * n  # fp32 weights, grads, two AdamW moments
        assert estimate_memory(cfg, 8, 32, None).activation_bytes == 2 * est.activation_bytes


def test_an_init_too_big_for_memory_is_refused_before_its_tensors_are_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.checkpoint as checkpoint
    import pretrain.train as train_mod

    assert train(tmp_path / "base") == 0
    capsys.readouterr()
    monkeypatch.setattr(train_mod, "available_memory", lambda device: (1024, "this machine has"))

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("tensor data was read before the memory check")

    monkeypatch.setattr(checkpoint, "load_tensors", no_read)
    rc = main(["train", "--init", str(tmp_path / "base" / "model.safetensors"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "a smaller --init checkpoint (model)" in err and "1.0 KiB available" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- a full disk


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_full_disk_while_writing_metrics_is_one_line_and_keeps_the_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert train(out) == 0
    capsys.readouterr()
    good = (out / "model.safetensors").read_bytes()
    (out / "metrics.jsonl").unlink()
    (out / "metrics.jsonl").symlink_to("/dev/full")  # every write to it fails with ENOSPC, as a full disk does
    err = refused(capsys, out, "--overwrite")
    assert f"could not write {out / 'metrics.jsonl'} (No space left on device)" in err
    assert "rerun with --overwrite" in err
    assert (out / "model.safetensors").read_bytes() == good
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "model.safetensors"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_full_disk_while_writing_the_checkpoint_keeps_the_last_good_one(
        code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    out = tmp_path / "out"
    assert train(out) == 0
    capsys.readouterr()
    good = (out / "model.safetensors").read_bytes()

    def disk_full(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"half a checkpoint")
        raise OSError(code, os.strerror(code), filename)

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    err = refused(capsys, out, "--overwrite", "--seed", "7")
    assert f"could not write {out / 'model.safetensors'} ({os.strerror(code)})" in err
    assert (out / "model.safetensors").read_bytes() == good  # atomic: the earlier run's weights, whole
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "model.safetensors"]  # no temp file
    assert strict_json_lines(out / "metrics.jsonl")[-1]["step"] == 2


# ---------------------------------------------------------------- NaN: never written, never saved


def nan_checkpoint(path: Path) -> Path:
    """A checkpoint in our own format whose embedding is all NaN, written without going through our writer."""
    from pretrain.model import ModelConfig, build_model

    cfg = ModelConfig(family="llama", hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                      intermediate_size=88, num_hidden_layers=1)
    tensors = {k: v.clone() for k, v in build_model(cfg, seed=0).state_dict().items()}
    tensors["model.embed_tokens.weight"].fill_(float("nan"))
    save_file(tensors, str(path), metadata={"architecture": "llama", "hf_architecture": "LlamaForCausalLM",
                                            "hf_model_type": "llama", "config": cfg.to_json()})
    return path


@pytest.mark.parametrize("steps", ["0", "2"])
def test_nan_init_is_refused_naming_the_init_with_nothing_written(
        steps: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init = nan_checkpoint(tmp_path / "nan.safetensors")
    rc = main(["train", "--init", str(init), "--seq-len", "32", "--batch", "4", "--steps", steps,
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"--init {init}" in err
    assert "lower --lr" not in err  # the checkpoint is the cause, not the learning rate
    assert not (tmp_path / "out").exists()


def test_a_loss_that_turns_nan_is_an_error_and_nothing_is_saved(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.train as train_mod

    real = train_mod.global_mean
    calls = iter(range(100))

    def diverge_at_step_2(value: torch.Tensor, dist: object) -> float:
        return float("nan") if next(calls) == 1 else real(value, dist)

    monkeypatch.setattr(train_mod, "global_mean", diverge_at_step_2)
    out = tmp_path / "out"
    err = refused(capsys, out)
    assert "train loss became nan at step 2; nothing was saved" in err
    assert not (out / "model.safetensors").exists()
    assert all(math.isfinite(r.get("loss", r.get("val_loss"))) for r in strict_json_lines(out / "metrics.jsonl"))


def test_a_non_finite_checkpoint_is_never_saved(tmp_path: Path) -> None:
    from pretrain import data
    from pretrain.model import ModelConfig, build_model
    from pretrain.train import TrainError, save_checkpoint

    cfg = ModelConfig(family="llama", hidden_size=32, num_attention_heads=4, head_dim=8, num_hidden_layers=1)
    model = build_model(cfg)
    corpus = data.load_corpus(None, 32, 256)
    with pytest.raises(TrainError, match="val_loss at step 3 is nan"):
        save_checkpoint(tmp_path / "a.safetensors", model, cfg, 3, float("nan"), corpus, {}, None)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("inf")
    with pytest.raises(TrainError, match="tensor lm_head.weight holds NaN or inf at step 3"):
        save_checkpoint(tmp_path / "a.safetensors", model, cfg, 3, 1.0, corpus, {}, None)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a closed stdout (`| head -1`)


def closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone, as `| head -1` leaves it after one line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


def test_train_into_a_closed_pipe_finishes_the_run_and_exits_quietly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_end = closed_pipe()
    try:
        proc = cli("train", *TINY, "--out", str(out), stdout=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
    rows = strict_json_lines(out / "metrics.jsonl")
    assert rows[-1]["step"] == 2 and "val_loss" in rows[-1]
    assert metadata(out / "model.safetensors")["step"] == "2"


def test_train_piped_to_head_leaves_a_complete_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = (f"set -o pipefail; {sys.executable} -m pretrain train {' '.join(TINY)} --steps 20 --out {out} "
              "| head -1")
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env=cli_env(OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("pretrain train: llama") and proc.stdout.count("\n") == 1
    assert strict_json_lines(out / "metrics.jsonl")[-1]["step"] == 20
    assert metadata(out / "model.safetensors")["step"] == "20"


def test_every_subcommand_into_a_closed_pipe_exits_141_without_a_traceback(tmp_path: Path) -> None:
    assert train(tmp_path / "run", "--steps", "0") == 0
    ckpt = str(tmp_path / "run" / "model.safetensors")
    for argv in (["inspect", ckpt], ["inspect", ckpt, "--quality", "--json"],
                 ["stamp", ckpt, "--license", "MIT", "-o", str(tmp_path / "stamped.safetensors"), "--json"]):
        write_end = closed_pipe()
        try:
            proc = cli(*argv, stdout=write_end)
        finally:
            os.close(write_end)
        assert proc.returncode == 141 and proc.stderr == b"", (argv, proc.stderr.decode())
    assert metadata(tmp_path / "stamped.safetensors")["license"] == "MIT"  # written before the output


# ---------------------------------------------------------------- help and version


def test_top_level_help_describes_the_tool_not_its_wiring(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    text = capsys.readouterr().out
    assert info.value.code == 0
    assert "Train small Llama/Qwen2/Qwen3 causal LMs" in text and "Exit codes:" in text
    assert "wired here" not in text and "one subcommand per module" not in text


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version as dist_version

    proc = cli("--version")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode() == f"pretrain {dist_version('contract-harness')}\n"


def test_train_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    options = capsys.readouterr().out.split("options:", 1)[1].split("\n\n", 1)[0]
    # One entry per flag, keyed by the flag; argparse wraps an entry over several lines.
    entries = {e.split()[0].rstrip(","): " ".join(e.split()) for e in re.split(r"\n  (?=-)", options) if e.strip()}
    for flag, default in (("--seq-len", "64"), ("--batch", "8"), ("--steps", "50"), ("--lr", "0.003"),
                          ("--warmup", "10"), ("--eval-every", "25"), ("--seed", "0"), ("--device", "auto"),
                          ("--weight-decay", "0.1"), ("--grad-clip", "1.0"), ("--layers", "2"), ("--hidden", "64")):
        assert f"(default: {default})" in entries[flag], entries[flag]
    assert "(default: None)" not in options and "(default: False)" not in options


def test_a_usage_error_is_one_line_whose_suggestion_runs() -> None:
    proc = cli("train", "--batch", "abc", "--out", "x")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert err == "pretrain train: error: argument --batch: invalid int value: 'abc'; see `pretrain train --help`\n"
    suggested = err.rsplit("`", 2)[1].split()
    assert suggested[0] == "pretrain" and cli(*suggested[1:]).returncode == 0


# ---------------------------------------------------------------- provenance metadata


def test_provenance_flags_are_recorded_and_the_default_corpus_records_its_own(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path / "default", "--steps", "0") == 0
    md = metadata(tmp_path / "default" / "model.safetensors")
    assert md["license"] == "" and md["data_license"] == "PSF-2.0"
    assert md["data_source"].endswith("standard library sources (bytes)")

    assert train(tmp_path / "given", "--steps", "0", "--license", "Apache-2.0", "--data-source", "FineWeb-Edü 10BT",
                 "--data-license", "ODC-By-1.0") == 0
    md = metadata(tmp_path / "given" / "model.safetensors")
    assert (md["license"], md["data_source"], md["data_license"]) == ("Apache-2.0", "FineWeb-Edü 10BT", "ODC-By-1.0")

    text = tmp_path / "corpus.txt"
    text.write_text("hello world. " * 2000)
    assert train(tmp_path / "own", "--steps", "0", "--data", str(text)) == 0
    md = metadata(tmp_path / "own" / "model.safetensors")
    assert md["data_license"] == "" and md["data_source"] == f"text:{text} (bytes)"
    capsys.readouterr()


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--license", "MIT\x1b[2J", "--license: character 4 is the control character U+001B"),
    ("--data-source", "two\nlines", "--data-source: character 4 is the control character U+000A"),
    ("--data-license", "CC\u202eBY", "--data-license: character 3 is the control character U+202E"),
    ("--data-source", "x" * 513, "--data-source is 513 characters long; the limit is 512"),
])
def test_bad_provenance_text_is_refused_naming_the_flag(flag: str, value: str, needle: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, tmp_path / "out", flag, value)
    assert needle in err and "\x1b" not in err and "\u202e" not in err
    assert not (tmp_path / "out").exists()


def test_provenance_text_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    proc = cli("train", *TINY, "--license", b"MIT\xff", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr == b"pretrain train: error: --license: character 4 is not valid UTF-8; pass UTF-8 text\n"
    assert not (tmp_path / "out").exists()


def test_the_restamp_hint_runs_as_printed(tmp_path: Path) -> None:
    import shlex

    from pretrain.train import salvage_hint

    assert train(tmp_path / "run", "--steps", "0") == 0
    hint = salvage_hint(str(tmp_path / "run" / "model.safetensors"), "llama")
    command = shlex.split(hint.split("`")[1])
    assert command[:2] == ["pretrain", "stamp"]
    proc = cli(*command[1:])
    assert proc.returncode == 0, proc.stderr.decode()
    fixed = hint.rsplit("--init ", 1)[1].rstrip(".")
    assert metadata(Path(fixed))["architecture"] == "llama"
