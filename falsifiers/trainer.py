"""Falsifiers for apr-trainer-v1: `pretrain train` is deterministic, learns, agrees across devices and DDP.

All train through the real entry point, `pretrain.train.train(TrainConfig)` in-process (the CLI is a thin
layer over it), or `torchrun -m pretrain train` in subprocesses for DDP, on tiny models over the
embedded stdlib corpus, in temp dirs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from falsifiers.support import TINY_SEQ_LEN, TINY_SHAPE, metrics_rows, temp_dir, train_tiny

ROOT = Path(__file__).resolve().parents[1]


def _train(out: Path, **options: object) -> list[dict]:
    from pretrain.train import TrainError

    try:
        result = train_tiny(out, **options)
    except TrainError as exc:  # a run the trainer refuses or that diverges breaks the invariant too
        raise AssertionError(f"pretrain train {options} failed: {exc}") from None
    assert not result.interrupted and result.checkpoint is not None, f"the run {options} did not finish: {result}"
    return metrics_rows(out)


def _losses(rows: list[dict]) -> list[tuple[int, str, float]]:
    return [(r["step"], k, r[k]) for r in rows for k in ("loss", "val_loss") if k in r]


def _seed_pins_the_initial_weights() -> None:
    """build_model(seed=S) gives the same weights whatever the global RNG did before, and another seed others:
    the seed alone pins the init, not the order in which a run happened to draw random numbers."""
    from falsifiers.support import tiny_config
    from pretrain.model import build_model

    cfg = tiny_config("qwen3")
    a = build_model(cfg, seed=5).state_dict()
    torch.rand(1000)  # the global generator moves on, as other code in a run makes it
    b = build_model(cfg, seed=5).state_dict()
    c = build_model(cfg, seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "build_model(seed=5) twice gave different weights"
    assert any(not torch.equal(a[k], c[k]) for k in a), "build_model(seed=5) and (seed=6) gave the same weights"


def falsify_same_seed_gives_identical_losses_on_cpu() -> None:
    _seed_pins_the_initial_weights()
    with temp_dir() as d:
        options = dict(family="qwen3", steps=8, eval_every=4, batch=4, seed=11, device="cpu")
        a = _losses(_train(d / "a", **options))
        b = _losses(_train(d / "b", **options))
    diffs = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b) and not diffs, f"two CPU runs with --seed 11 differ: first differences {diffs[:3]}"


def _train_refuses_what_it_cannot_train_on() -> None:
    """train() itself checks its input before anything runs: a config that is not a TrainConfig, and data it
    cannot read, are typed errors (never a run that "learns" from nothing or crashes half-way)."""
    from pretrain.train import TrainConfig, TrainConfigError, TrainDataError, train

    try:
        train({"steps": 1})  # type: ignore[arg-type]
    except TrainConfigError as exc:
        assert "takes a pretrain.train.TrainConfig, got dict" in str(exc), exc
    else:
        raise AssertionError("train() accepted a dict instead of a TrainConfig")
    with temp_dir() as d:
        (d / "empty").mkdir()
        try:
            train(TrainConfig(out=str(d / "out"), data=str(d / "empty"), steps=1, device="cpu"))
        except TrainDataError as exc:
            assert "directory has no files" in str(exc), exc
        else:
            raise AssertionError("train() trained on an empty data directory")
        assert not (d / "out" / "metrics.jsonl").exists(), "a refused run wrote metrics"


def falsify_loss_decreases_over_steps() -> None:
    _train_refuses_what_it_cannot_train_on()
    with temp_dir() as d:
        rows = _train(d, family="llama", steps=40, eval_every=20, batch=8, device="cpu")
    val = {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}
    assert val[40] < val[20] < val[0] and val[40] < val[0] - 1.0, f"val loss did not fall enough: {val}"


def falsify_cuda_logits_and_training_agree_with_cpu() -> None:
    if not torch.cuda.is_available():
        raise RuntimeError("requires CUDA: this falsifier must run on a machine with a CUDA device")
    from pretrain.model import ModelConfig, build_model

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ids = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    for family in ("llama", "qwen2", "qwen3"):
        cfg = ModelConfig(family=family, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=24 if family == "qwen3" else 16)
        cpu, gpu = build_model(cfg, seed=0), build_model(cfg, seed=0, device="cuda")
        with torch.no_grad():
            diff = (cpu(ids) - gpu(ids.cuda()).cpu()).abs().max().item()
        assert diff < 1e-4, f"{family}: CUDA vs CPU fp32 logits differ by {diff:.3g}"
    with temp_dir() as d:
        common = dict(family="qwen2", steps=5, eval_every=5, batch=4, dtype="fp32")
        cpu_val = {r["step"]: r["val_loss"] for r in _train(d / "cpu", **common, device="cpu") if "val_loss" in r}
        gpu_val = {r["step"]: r["val_loss"] for r in _train(d / "gpu", **common, device="cuda") if "val_loss" in r}
    assert abs(cpu_val[0] - gpu_val[0]) < 1e-3, f"step-0 val loss CPU {cpu_val[0]} vs CUDA {gpu_val[0]}"
    assert abs(cpu_val[5] - gpu_val[5]) < 2e-2, f"step-5 val loss CPU {cpu_val[5]} vs CUDA {gpu_val[5]}"


def _flags(options: dict[str, object]) -> list[str]:
    """TrainConfig options as `pretrain train` flags, for the torchrun child."""
    return [arg for name, value in options.items() for arg in ("--" + name.replace("_", "-"), str(value))]


def falsify_ddp_gloo_two_processes_rank0_writes_once() -> None:
    _train_refuses_what_it_cannot_train_on()
    with temp_dir() as d:
        out = d / "ddp"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), "OMP_NUM_THREADS": "1"}
        common = dict(TINY_SHAPE, seq_len=TINY_SEQ_LEN, family="llama", steps=4, eval_every=2, device="cpu")
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "pretrain", "train", *_flags({**common, "batch": 4}), "--out", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, f"torchrun exited {proc.returncode}: {proc.stderr[-2000:]}"
        files = sorted(p.name for p in out.iterdir())
        assert files == ["metrics.jsonl", "model.safetensors"], f"unexpected files written: {files}"
        ddp = metrics_rows(out)
        keys = [(r["step"], "val_loss" in r) for r in ddp]
        assert len(keys) == len(set(keys)), f"metrics lines duplicated (more than one rank wrote): {keys}"
        # 2 ranks x 4 sequences are one seeded global batch of 8: same losses as one process with --batch 8.
        single = _train(d / "single", **{**common, "batch": 8})
    for a, b in zip(_losses(ddp), _losses(single), strict=True):
        assert a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-4, f"DDP {a} vs single process {b}"
