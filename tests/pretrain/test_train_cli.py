"""`pretrain train` end to end: metrics, checkpoint, determinism, data sources, --init refusal and resume."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pretrain.cli import main
from pretrain.train import lr_at

from tests.cli_env import cli_env

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2", "--seq-len", "32", "--batch", "4"]


def train(out: Path, *extra: str, steps: int = 6, eval_every: int = 3, family: str | None = "qwen2") -> int:
    argv = ["train", *(["--family", family] if family else []), *([] if "--init" in extra else TINY),
            "--steps", str(steps), "--eval-every", str(eval_every), "--out", str(out), *extra]
    return main(argv)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    return subprocess.run([sys.executable, "-m", "pretrain", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def val_losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in metrics(out) if "val_loss" in r}


def meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


@pytest.fixture(scope="module")
def trained_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qwen2")
    assert train(out, steps=40, eval_every=20, family="qwen2") == 0
    return out


def test_metrics_and_checkpoint_are_written(tmp_path: Path) -> None:
    assert train(tmp_path, "--license", "Apache-2.0") == 0
    rows = metrics(tmp_path)
    assert rows[0]["step"] == 0 and "val_loss" in rows[0] and rows[0]["tokens"] == 0
    assert sorted(val_losses(tmp_path)) == [0, 3, 6]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert {"step", "lr", "tokens", "elapsed_s"} <= set(r)
    assert train_rows[-1]["tokens"] == 6 * 4 * 32
    m = meta(tmp_path / "model.safetensors")
    assert m["architecture"] == "qwen2" and m["hf_architecture"] == "Qwen2ForCausalLM"
    assert m["step"] == "6" and float(m["val_loss"]) == pytest.approx(val_losses(tmp_path)[6])
    assert m["license"] == "Apache-2.0" and m["data_license"] == "PSF-2.0"
    assert m["data_source"] == f"{platform.python_implementation()} {platform.python_version()} standard library sources (bytes)"
    assert json.loads(m["config"])["model_type"] == "qwen2"
    assert m["tokenizer"] == "bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "model.safetensors"]
    # A run with a license on the default corpus is ship-ready as written: nothing for a user to stamp.
    proc = cli("inspect", str(tmp_path / "model.safetensors"), "--quality", "--min-score", "90", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_loss_decreases(trained_qwen2: Path) -> None:
    v = val_losses(trained_qwen2)
    assert v[0] == pytest.approx(math.log(256), abs=0.3)
    assert v[40] < v[0] - 1.0


def test_same_seed_gives_identical_losses_and_another_seed_does_not(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert train(tmp_path / name, "--seed", str(seed), "--family", "llama", family=None) == 0
        runs[name] = [r.get("loss", r.get("val_loss")) for r in metrics(tmp_path / name)]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_lr_schedule_warms_up_then_decays_to_floor() -> None:
    lrs = [lr_at(s, 1.0, 4, 20, 0.1) for s in range(21)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lrs[20] == pytest.approx(0.1)


def test_seed_scenario_misstamped_init_refused_then_salvaged(trained_qwen2: Path, tmp_path: Path) -> None:
    ckpt = trained_qwen2 / "model.safetensors"
    recorded = float(meta(ckpt)["val_loss"])
    stamped = tmp_path / "stamped.safetensors"
    # The incident: someone forces a Llama stamp onto Qwen2 tensors.
    proc = cli("stamp", str(ckpt), "--architecture", "llama", "--force", "-o", str(stamped))
    assert proc.returncode == 0, proc.stderr
    assert meta(stamped)["architecture"] == "llama"

    refused = tmp_path / "refused"
    proc = cli("train", "--init", str(stamped), "--steps", "3", "--seq-len", "32", "--batch", "4",
               "--out", str(refused))
    assert proc.returncode == 2, proc.stderr
    assert "llama" in proc.stderr and "qwen2" in proc.stderr
    assert not (refused / "metrics.jsonl").exists()

    # The salvage is the exact `pretrain stamp` command the refusal printed.
    assert len(proc.stderr.splitlines()) == 1, proc.stderr  # one line, recipe included
    salvage = re.search(r"`(pretrain stamp [^`]+)`", proc.stderr).group(1)
    argv = shlex.split(salvage)
    proc = cli(*argv[1:])
    assert proc.returncode == 0, proc.stderr
    fixed = Path(argv[argv.index("-o") + 1])
    assert meta(fixed)["architecture"] == "qwen2"

    resumed = tmp_path / "resumed"
    proc = cli("train", "--init", str(fixed), "--steps", "2", "--eval-every", "2", "--seq-len", "32",
               "--batch", "4", "--out", str(resumed))
    assert proc.returncode == 0, proc.stderr
    step0 = val_losses(resumed)[0]
    assert abs(step0 - recorded) <= 0.02 * recorded
    assert step0 < val_losses(trained_qwen2)[0] - 1.0  # far below a from-scratch start


def test_init_from_hf_directory_resumes_its_weights(tmp_path: Path) -> None:
    from tests.pretrain.hf_tiny import hf_model

    hf_model("qwen3", head_dim=16).save_pretrained(tmp_path / "hf")
    assert train(tmp_path / "run", "--init", str(tmp_path / "hf"), "--seq-len", "32", "--batch", "4",
                 steps=1, family=None) == 0
    m = meta(tmp_path / "run" / "model.safetensors")
    assert m["architecture"] == "qwen3" and json.loads(m["config"])["head_dim"] == 16


def test_init_with_missing_tensor_is_refused_before_step_1(trained_qwen2: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = trained_qwen2 / "model.safetensors"
    tensors = load_file(src)
    del tensors["model.layers.1.self_attn.k_proj.bias"]
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, broken, metadata=meta(src))
    assert train(tmp_path / "out", "--init", str(broken), family=None) == 2
    err = capsys.readouterr().err
    assert "model.layers.1.self_attn.k_proj.bias" in err and "missing" in err
    assert not (tmp_path / "out").exists()


def test_init_flag_contradicting_checkpoint_is_named(trained_qwen2: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc = train(tmp_path / "out", "--init", str(trained_qwen2 / "model.safetensors"), "--hidden", "48", family=None)
    assert rc == 2
    err = capsys.readouterr().err
    assert "--hidden 48" in err and "hidden_size=32" in err
    assert not (tmp_path / "out").exists()


def test_data_sources_text_dir_npy_and_bin(tmp_path: Path) -> None:
    text = ("the quick brown fox jumps over the lazy dog. " * 200).encode()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(text)
    ids = np.frombuffer(text, dtype=np.uint8)
    np.save(tmp_path / "t.npy", ids.astype(np.int32))
    ids.astype("<u2").tofile(tmp_path / "t.bin")
    results = {}
    for name, source in (("dir", tmp_path / "d"), ("npy", tmp_path / "t.npy"), ("bin", tmp_path / "t.bin")):
        assert train(tmp_path / name, "--data", str(source), steps=2, eval_every=2) == 0
        results[name] = val_losses(tmp_path / name)
    # The same token stream, however it is stored, gives the same run (modulo the dir's joiner: none here).
    assert results["npy"] == results["bin"]
    assert meta(tmp_path / "npy" / "model.safetensors")["data_source"].startswith("npy:")
    # Text is tokenized here, so the tokenizer is known; pre-tokenized ids carry no tokenizer claim.
    assert meta(tmp_path / "dir" / "model.safetensors")["tokenizer"] == "bytes"
    assert "tokenizer" not in meta(tmp_path / "npy" / "model.safetensors")


@pytest.mark.parametrize(("setup", "needle"), [
    ("missing", "no such file"),
    ("vocab", "--vocab 301"),
])
def test_bad_data_is_refused_with_a_fix(setup: str, needle: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "nope"
    if setup == "vocab":
        data = tmp_path / "big.npy"
        np.save(data, np.arange(301, dtype=np.int64).repeat(10))
    assert train(tmp_path / "out", "--data", str(data)) == 2
    assert needle in capsys.readouterr().err


def test_cuda_device_without_cuda_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present; this checks the CPU-only refusal")
    assert train(tmp_path / "out", "--device", "cuda") == 2
    assert "--device cuda" in capsys.readouterr().err


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = cli_env()
    proc = subprocess.Popen([sys.executable, "-m", "pretrain", "train", *TINY, "--steps", "100000",
                             "--eval-every", "100000", "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 4:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    m = meta(out / "model.safetensors")
    step = int(m["step"])
    assert step >= 3
    assert val_losses(out)[step] == pytest.approx(float(m["val_loss"]))
    assert "interrupted" in err


def test_train_is_reachable_as_python_dash_m() -> None:
    proc = cli("train", "--help", timeout=60)
    assert proc.returncode == 0 and "--init" in proc.stdout and "--eval-every" in proc.stdout


def test_our_checkpoint_loads_with_from_pretrained_bit_for_bit(trained_qwen2: Path) -> None:
    from pretrain.model import from_pretrained

    ckpt = trained_qwen2 / "model.safetensors"
    model = from_pretrained(ckpt)
    on_file = load_file(ckpt)
    assert model.config.family == "qwen2" and model.config.tie_word_embeddings
    state = model.state_dict()
    assert set(state) == set(on_file)
    assert all(torch.equal(state[k], on_file[k]) for k in on_file)


def test_ctrl_c_inside_the_optimizer_update_saves_the_finished_step(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C that lands mid-AdamW must not save half-updated weights under the previous step number.

    With --warmup beyond the run, the lr of the first steps does not depend on --steps, so an interrupted
    100-step run that stopped after step 3 must hold exactly the weights of a finished 3-step run.
    """
    import pretrain.train as train_mod

    real = train_mod.make_optimizer

    def interrupting(*args: object, **kwargs: object) -> torch.optim.Optimizer:
        opt = real(*args, **kwargs)
        step_fn, calls = opt.step, []

        def step() -> None:
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGINT)  # arrives while the update is in progress
            step_fn()

        opt.step = step  # type: ignore[method-assign]
        return opt

    common = ["--family", "llama", *TINY, "--warmup", "50", "--eval-every", "1000", "--seed", "3"]
    with monkeypatch.context() as m:
        m.setattr(train_mod, "make_optimizer", interrupting)
        assert main(["train", *common, "--steps", "100", "--out", str(tmp_path / "cut")]) == 130
    assert main(["train", *common, "--steps", "3", "--out", str(tmp_path / "full")]) == 0
    cut, full = tmp_path / "cut" / "model.safetensors", tmp_path / "full" / "model.safetensors"
    assert meta(cut)["step"] == meta(full)["step"] == "3"
    a, b = load_file(cut), load_file(full)
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert float(meta(cut)["val_loss"]) == pytest.approx(float(meta(full)["val_loss"]))


def test_steps_0_evaluates_and_saves_the_starting_weights(trained_qwen2: Path, tmp_path: Path) -> None:
    ckpt = trained_qwen2 / "model.safetensors"
    assert main(["train", "--init", str(ckpt), "--steps", "0", "--seq-len", "32", "--batch", "4",
                 "--out", str(tmp_path)]) == 0
    rows = metrics(tmp_path)
    assert [r["step"] for r in rows] == [0] and "val_loss" in rows[0]
    assert meta(tmp_path / "model.safetensors")["step"] == "0"
    a, b = load_file(tmp_path / "model.safetensors"), load_file(ckpt)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in b)


def test_bf16_on_cpu_trains_under_autocast_and_saves_fp32(tmp_path: Path) -> None:
    assert train(tmp_path, "--dtype", "bf16", "--device", "cpu", steps=2, eval_every=2) == 0
    assert all(math.isfinite(r.get("loss", r.get("val_loss"))) for r in metrics(tmp_path))
    assert {t.dtype for t in load_file(tmp_path / "model.safetensors").values()} == {torch.float32}


def test_a_rerun_into_an_earlier_runs_out_is_refused_unless_overwrite(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path, steps=2, eval_every=2) == 0
    before = (tmp_path / "metrics.jsonl").read_bytes(), (tmp_path / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert train(tmp_path, steps=2, eval_every=2, family="llama") == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path}: already holds an earlier run" in err and "--overwrite" in err
    # Nothing of the earlier run was touched by the refused one.
    assert ((tmp_path / "metrics.jsonl").read_bytes(), (tmp_path / "model.safetensors").read_bytes()) == before
    assert train(tmp_path, "--overwrite", steps=2, eval_every=2, family="llama") == 0
    assert meta(tmp_path / "model.safetensors")["architecture"] == "llama"
