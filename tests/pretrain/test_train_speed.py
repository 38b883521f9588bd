"""`pretrain train`'s speed options and figures: MFU in metrics.jsonl, --peak-flops, --dtype, --compile, AdamW.

What a user sees: the fields of every training line of metrics.jsonl, the one-line refusals (exit 2, the
flag named, nothing written), and that the run the faster paths make is the run the plain path makes.
"""

from __future__ import annotations

import functools
import json
import math
import types
from pathlib import Path

import pytest
import torch

from pretrain import accel, flops
from pretrain.cli import main
from pretrain.model import ModelConfig, build_model
from pretrain.train import TrainConfig, TrainConfigError, model_flops_per_token

TINY = ["--family", "llama", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
        "--seq-len", "32", "--batch", "4", "--device", "cpu"]


def train(out: Path, *argv: str, steps: int = 4) -> int:
    return main(["train", *TINY, "--steps", str(steps), "--eval-every", "2", *argv, "--out", str(out)])


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def refused(capsys: pytest.CaptureFixture[str], out: Path, *argv: str) -> str:
    rc = train(out, *argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("pretrain train: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists(), "a refused run wrote to --out"
    return err


# ---------------------------------------------------------------- FLOPs per token, by hand

def test_flops_per_token_is_6n_plus_12_l_h_q_t_counted_by_hand() -> None:
    # llama, hidden 8, 2 heads of 4, 1 kv head, MLP 16, 2 layers, vocab 10, untied, windows of 16 tokens.
    cfg = ModelConfig(family="llama", vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=4)
    attention = 8 * 8 + 8 * 4 + 8 * 4 + 8 * 8  # q, k, v (one kv head of 4), o
    mlp = 3 * 8 * 16  # gate, up, down
    norms = 8 + 8  # input and post-attention RMSNorm
    n = 2 * (attention + mlp + norms) + 8 + 10 * 8  # layers, final norm, lm_head; the embedding is a lookup
    assert n == 1272
    assert model_flops_per_token(build_model(cfg), 16) == 6 * 1272 + 12 * 2 * (2 * 4) * 16 == 10704


def test_a_tied_head_is_counted_once_and_qwen3_attention_uses_heads_times_head_dim() -> None:
    # qwen3: q_norm/k_norm (head_dim each), head_dim 6 != hidden/heads, tied: the embedding is the head.
    cfg = ModelConfig(family="qwen3", vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, head_dim=6, tie_word_embeddings=True)
    layer = 8 * 12 * 3 + 12 * 8 + 6 + 6 + 3 * 8 * 16 + 8 + 8
    n = layer + 8 + 10 * 8
    assert model_flops_per_token(build_model(cfg), 32) == 6 * n + 12 * 1 * (2 * 6) * 32


@pytest.mark.parametrize(("name", "precision", "peak"), [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.5e12),
    ("NVIDIA H100 80GB HBM3", "fp32", 66.9e12),
    ("NVIDIA H100 PCIe", "bf16", 756.5e12),
    ("NVIDIA H100 NVL", "bf16", 835.5e12),
    ("NVIDIA H200", "bf16", 989.5e12),
    ("NVIDIA H200 NVL", "bf16", 835.5e12),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312e12),
    ("NVIDIA A100 80GB PCIe", "fp32", 19.5e12),
])
def test_the_peak_of_a_known_gpu_comes_from_its_device_name(name: str, precision: str, peak: float) -> None:
    assert flops.peak_flops("cuda", name, precision) == (peak, "")


def test_an_unknown_device_has_no_peak_and_says_how_to_get_mfu() -> None:
    assert flops.peak_flops("cuda", "NVIDIA GeForce RTX 4090", "bf16") == (
        None, "the peak bf16 FLOP/s of NVIDIA GeForce RTX 4090 is not in pretrain.flops.PEAK_FLOPS; "
              "pass --peak-flops to get mfu")
    peak, why = flops.peak_flops("cpu", "", "fp32")
    assert peak is None and "cpu" in why and "--peak-flops" in why


# ---------------------------------------------------------------- metrics.jsonl

def test_every_training_line_has_tokens_per_s_flops_per_token_and_mfu_null_with_its_reason_on_cpu(
        tmp_path: Path) -> None:
    assert train(tmp_path / "run") == 0
    train_rows = [r for r in rows(tmp_path / "run") if "loss" in r]
    cfg = ModelConfig(family="llama", hidden_size=32, intermediate_size=88, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    expected = model_flops_per_token(build_model(cfg), 32)
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    for r in train_rows:
        assert r["tokens_per_s"] > 0 and r["flops_per_token"] == expected
        assert r["mfu"] is None
        assert r["mfu_reason"] == ("the peak FLOP/s of a cpu device is not known; pass --peak-flops to get mfu")
    assert all("mfu" not in r for r in rows(tmp_path / "run") if "val_loss" in r)


def test_peak_flops_gives_mfu_from_tokens_per_s_and_flops_per_token(tmp_path: Path) -> None:
    assert train(tmp_path / "run", "--peak-flops", "2e9") == 0
    for r in (r for r in rows(tmp_path / "run") if "loss" in r):
        assert "mfu_reason" not in r
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * r["flops_per_token"] / 2e9, rel=1e-12)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_peak_flops_that_is_not_a_positive_finite_number_is_refused(
        value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, tmp_path / "out", "--peak-flops", value)
    assert f"--peak-flops must be a finite number > 0, got {float(value)}" in err
    with pytest.raises(TrainConfigError) as exc:
        TrainConfig(out="x", peak_flops=float(value))
    assert exc.value.field == "peak_flops"


def test_tokens_per_s_times_the_training_steps_only_not_the_evaluations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that moves 1 s per read and 10^6 s per evaluation: no training line may carry the latter."""
    import pretrain.train as train_mod
    import pretrain.train_output as output

    now = [0.0]

    def perf_counter() -> float:
        now[0] += 1.0
        return now[0]

    real_evaluate = train_mod.evaluate

    def slow_evaluate(*args: object, **kwargs: object) -> float:
        now[0] += 1e6
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(output, "time", types.SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(train_mod, "evaluate", slow_evaluate)
    assert train(tmp_path / "run", "--log-every", "3", "--eval-every", "2", steps=9) == 0
    tokens_per_step = 4 * 32
    train_rows = [r for r in rows(tmp_path / "run") if "loss" in r]
    assert [r["step"] for r in train_rows] == [3, 6, 9]
    # Each window is 3 steps; with an evaluation's 10^6 s in it, tokens/s would be below 1.
    assert all(r["tokens_per_s"] > 3 * tokens_per_step / 100 for r in train_rows), train_rows


# ---------------------------------------------------------------- the loss is read back only when needed

def test_the_loss_is_read_back_only_on_logged_and_printed_steps(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA each read is a device sync (and under DDP a collective): not one per step."""
    import pretrain.train as train_mod

    real, read_at = train_mod.global_mean, []

    def counting(value: torch.Tensor, dist: object) -> float:
        read_at.append(value)
        return real(value, dist)

    monkeypatch.setattr(train_mod, "global_mean", counting)
    # 40 steps: progress lines every 4th step, metrics lines every 5th.
    assert train(tmp_path / "run", "--log-every", "5", "--eval-every", "100", steps=40) == 0
    expected = sorted({s for s in range(1, 41) if s % 4 == 0 or s % 5 == 0})
    assert len(read_at) == len(expected)
    assert [r["step"] for r in rows(tmp_path / "run") if "loss" in r] == list(range(5, 41, 5))


def test_a_loss_that_turns_nan_on_an_unread_step_is_caught_naming_that_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrain.train as train_mod

    calls = iter(range(1, 1000))

    def cross_entropy(*args: object, **kwargs: object) -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(*args, **kwargs)
        if "reduction" not in kwargs and next(calls) == 2:  # the training loss of step 2 (evaluation sums)
            return loss * float("nan")
        return loss

    shim = types.SimpleNamespace(**{name: getattr(torch.nn.functional, name) for name in dir(torch.nn.functional)
                                    if not name.startswith("__")})
    shim.cross_entropy = cross_entropy
    monkeypatch.setattr(train_mod, "F", shim)
    out = tmp_path / "out"
    rc = train(out, "--log-every", "5", "--eval-every", "100", steps=40)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "train loss became nan or inf at step 2; nothing was saved" in err
    assert not (out / "model.safetensors").exists()
    assert all(math.isfinite(r.get("loss", r.get("val_loss"))) for r in rows(out))


# ---------------------------------------------------------------- --dtype

def test_bf16_is_refused_on_a_gpu_without_it_and_auto_falls_back_to_fp32() -> None:
    gpu = torch.device("cuda", 0)
    old = lambda device: False  # noqa: E731 - a GPU before compute capability 8.0
    with pytest.raises(TrainConfigError) as exc:
        accel.resolve_precision("bf16", gpu, native_bf16=old)
    assert exc.value.field == "dtype"
    assert str(exc.value).startswith("--dtype bf16: cuda:0")
    assert "has no native bfloat16" in str(exc.value) and str(exc.value).endswith("pass --dtype fp32")
    assert accel.resolve_precision("auto", gpu, native_bf16=old) is None
    assert accel.resolve_precision("auto", gpu, native_bf16=lambda device: True) is torch.bfloat16
    assert accel.resolve_precision("fp32", gpu, native_bf16=lambda device: True) is None


def test_bf16_autocast_on_cpu_is_honoured_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert accel.resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    assert accel.resolve_precision("auto", torch.device("cpu")) is None
    assert train(tmp_path / "run", "--dtype", "bf16", "--peak-flops", "1e12") == 0
    assert "bf16 autocast, AdamW " in capsys.readouterr().out
    assert all(r["mfu"] > 0 for r in rows(tmp_path / "run") if "loss" in r)


# ---------------------------------------------------------------- AdamW

def test_adamw_is_fused_on_cuda_and_on_cpu_since_torch_2_4_and_foreach_elsewhere() -> None:
    assert accel.adamw_kernel(torch.device("cuda", 0)) == "fused"
    assert accel.adamw_kernel(torch.device("cpu")) == ("fused" if torch.__version__ >= (2, 4) else "foreach")
    assert accel.adamw_kernel(torch.device("meta")) == "foreach"
    from pretrain.train import make_optimizer

    opt = make_optimizer(build_model(ModelConfig(family="llama"), seed=0), 1e-3, 0.1)
    assert all(group[accel.adamw_kernel(torch.device("cpu"))] for group in opt.param_groups)


def test_the_fused_update_trains_the_same_as_the_per_tensor_loop(tmp_path: Path) -> None:
    """Same seed, same data: fused AdamW's losses are the single-tensor loop's (within float rounding)."""
    from pretrain.train import make_optimizer

    cfg = ModelConfig(family="qwen2", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8, tie_word_embeddings=True)
    ids = torch.randint(0, 256, (4, 33), generator=torch.Generator().manual_seed(0))
    losses = {}
    for kind in ("fast", "loop"):
        model = build_model(cfg, seed=1)
        if kind == "fast":
            opt = make_optimizer(model, 3e-3, 0.1)
        else:
            decay = [p for p in model.parameters() if p.ndim >= 2]
            rest = [p for p in model.parameters() if p.ndim < 2]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                    lr=3e-3, betas=(0.9, 0.95), foreach=False)
        got = []
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            got.append(loss.item())
        losses[kind] = got
    assert losses["fast"] == pytest.approx(losses["loop"], abs=1e-5)


# ---------------------------------------------------------------- --compile

def test_compile_is_refused_where_torch_compile_is_not_supported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    err = refused(capsys, tmp_path / "out", "--compile")
    assert f"--compile: torch.compile is not supported by torch {torch.__version__} on Python" in err
    assert "drop --compile" in err


def test_compile_on_cpu_without_a_cxx_compiler_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel.shutil, "which", lambda name: None)
    err = refused(capsys, tmp_path / "out", "--compile")
    assert "--compile on CPU needs a C++ compiler" in err and "drop --compile" in err


def test_a_torch_compile_that_fails_at_the_first_step_is_one_line_and_nothing_saved(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._dynamo.exc

    def failing_compile(module: torch.nn.Module, **kwargs: object) -> object:
        def call(*args: object) -> object:
            raise torch._dynamo.exc.TorchDynamoException("backend 'inductor' raised: no cl.exe\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", failing_compile)
    out = tmp_path / "out"
    rc = train(out, "--compile")
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert ("--compile: torch.compile failed at step 1 (backend 'inductor' raised: no cl.exe); nothing was "
            "saved; rerun without --compile, with --overwrite") in err
    assert not (out / "model.safetensors").exists()


def test_a_compiled_run_trains_like_the_eager_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer's --compile path (graph capture through dynamo and AOT autograd) with the aot_eager backend,
    which skips inductor's C++ build: the same losses as without --compile."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    assert train(tmp_path / "eager") == 0
    assert train(tmp_path / "compiled", "--compile") == 0
    eager, compiled = rows(tmp_path / "eager"), rows(tmp_path / "compiled")
    assert [r["step"] for r in compiled] == [r["step"] for r in eager]
    for a, b in zip(eager, compiled):
        key = "loss" if "loss" in a else "val_loss"
        assert b[key] == pytest.approx(a[key], abs=1e-4), (a, b)


@pytest.mark.slow
def test_compile_with_inductor_on_cpu_trains_like_the_eager_run(tmp_path: Path) -> None:
    """The real thing: inductor builds C++ kernels for the model (a minute or two on a small machine)."""
    assert train(tmp_path / "eager", steps=2) == 0
    assert train(tmp_path / "compiled", "--compile", steps=2) == 0
    for a, b in zip(rows(tmp_path / "eager"), rows(tmp_path / "compiled"), strict=True):
        key = "loss" if "loss" in a else "val_loss"
        assert b[key] == pytest.approx(a[key], abs=1e-3), (a, b)
