"""Multi-process (torchrun, gloo on CPU) and CUDA paths of `pretrain train`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.cli import main
from pretrain.model import ModelConfig, build_model

from tests.cli_env import cli_env

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--family", "llama", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
        "--seq-len", "32", "--steps", "4", "--eval-every", "2"]


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_process_gloo_ddp_matches_one_process_with_the_global_batch(tmp_path: Path) -> None:
    env = cli_env(OMP_NUM_THREADS="1")
    ddp_out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "pretrain", "train", *TINY, "--batch", "4", "--device", "cpu", "--out", str(ddp_out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in ddp_out.iterdir()) == ["metrics.jsonl", "model.safetensors"]
    ddp = rows(ddp_out)
    keys = [(r["step"], "val_loss" in r) for r in ddp]
    assert len(keys) == len(set(keys)), "a metrics line was written twice: more than one rank wrote"
    assert [r["step"] for r in ddp if "loss" in r] == [1, 2, 3, 4]
    assert ddp[-1]["tokens"] == 4 * 2 * 4 * 32

    # Each rank takes its slice of one seeded global batch: 2 x 4 sequences == 1 process x 8 sequences.
    single_out = tmp_path / "single"
    assert main(["train", *TINY, "--batch", "8", "--device", "cpu", "--out", str(single_out)]) == 0
    single = rows(single_out)
    assert len(single) == len(ddp)
    for a, b in zip(ddp, single):
        assert a["step"] == b["step"]
        key = "loss" if "loss" in a else "val_loss"
        assert a[key] == pytest.approx(b[key], abs=1e-4), (a, b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_cuda_logits_match_cpu_and_backward_runs(family: str) -> None:
    cfg = ModelConfig(family=family, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=24 if family == "qwen3" else 16,
                      tie_word_embeddings=family == "qwen2")
    cpu = build_model(cfg, seed=0)
    gpu = build_model(cfg, seed=0, device="cuda")
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        diff = (cpu(ids) - gpu(ids.cuda()).cpu()).abs().max().item()
    assert diff < 1e-4, diff
    loss = torch.nn.functional.cross_entropy(gpu(ids.cuda()).flatten(0, 1), ids.cuda().flatten())
    loss.backward()
    grads = [p.grad for p in gpu.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
def test_short_cuda_training_run_learns_and_writes_a_checkpoint(tmp_path: Path) -> None:
    assert main(["train", *TINY, "--steps", "30", "--eval-every", "15", "--batch", "8", "--device", "cuda",
                 "--out", str(tmp_path)]) == 0
    vals = {r["step"]: r["val_loss"] for r in rows(tmp_path) if "val_loss" in r}
    assert vals[30] < vals[0] - 0.5
    assert (tmp_path / "model.safetensors").exists()
