"""Our model against `transformers`' on the same config and batch (CPU, fp32): training tokens/s, load time;
and the whole trainer (`pretrain.train.train(TrainConfig)`: data, evaluation, metrics, checkpoint) end to end.

Each benchmark times ours and the peer in the same run and records the ratio in `extra_info`
(ours / theirs for tokens/s: > 1 is faster; theirs / ours for load time: > 1 is faster). Under
`--benchmark-disable` (the pytest default here) each runs once as a test, on tiny shapes.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from pretrain.model import ModelConfig, build_model, from_pretrained

transformers = pytest.importorskip("transformers")

CFG = ModelConfig(family="qwen2", hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, tie_word_embeddings=True)
BATCH, SEQ = 4, 64


def hf_peer(cfg: ModelConfig) -> Any:
    hf_cfg = transformers.AutoConfig.for_model(**cfg.to_hf_dict())
    hf_cfg._attn_implementation = "sdpa"
    return transformers.AutoModelForCausalLM.from_config(hf_cfg)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, ids: torch.Tensor,
               logits_of: Callable[[Any], torch.Tensor]) -> None:
    logits = logits_of(model(ids))
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def interleaved_medians(ours: Callable[[], None], theirs: Callable[[], None], rounds: int) -> tuple[float, float]:
    """Median seconds per call of each, alternating calls so machine load hits both alike."""
    ours(), theirs()  # warm-up
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("theirs", theirs)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def test_training_tokens_per_second_vs_transformers(benchmark: Any) -> None:
    ids = torch.randint(0, CFG.vocab_size, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    ours = build_model(CFG, seed=0).train()
    theirs = hf_peer(CFG).train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-3)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-3)

    def step_ours() -> None:
        train_step(ours, opt_ours, ids, lambda out: out)

    def step_theirs() -> None:
        train_step(theirs, opt_theirs, ids, lambda out: out.logits)

    benchmark(step_ours)
    ours_s, theirs_s = interleaved_medians(step_ours, step_theirs, 3 if benchmark.disabled else 30)
    tokens = BATCH * SEQ
    benchmark.extra_info.update(
        ours_tokens_per_s=tokens / ours_s, transformers_tokens_per_s=tokens / theirs_s,
        ratio_ours_over_transformers=theirs_s / ours_s,
    )
    assert ours_s > 0 and theirs_s > 0


def test_trainer_tokens_per_second_vs_transformers(benchmark: Any, tmp_path: Path) -> None:
    """The whole trainer's steady speed (`train(TrainConfig)`'s own `tokens_per_s` in metrics.jsonl: batch
    sampling, the schedule, the step, clipping, AdamW, logging) against `transformers`' model on the same
    config and batches, stepped the way its Trainer does by default (fused AdamW, gradient clipping at 1.0),
    runs alternating so machine load hits both alike."""
    from pretrain import data as data_mod
    from pretrain.train import TrainConfig, train

    steps, rounds = (10, 1) if benchmark.disabled else (60, 5)
    config = TrainConfig(family=CFG.family, layers=CFG.num_hidden_layers, hidden=CFG.hidden_size,
                         heads=CFG.num_attention_heads, kv_heads=CFG.num_key_value_heads,
                         intermediate=CFG.intermediate_size, seq_len=SEQ, batch=BATCH, steps=steps,
                         log_every=steps // 2, eval_every=steps, val_windows=1, device="cpu", dtype="fp32",
                         out=tmp_path / "run", overwrite=True)
    corpus = data_mod.load_corpus(None, SEQ, CFG.vocab_size)

    def ours() -> float:
        with contextlib.redirect_stdout(io.StringIO()):
            train(config)
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        return [r for r in rows if "tokens_per_s" in r][-1]["tokens_per_s"]  # the second half: warmed up

    def theirs() -> float:
        model = hf_peer(CFG).train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
        sampler = data_mod.BatchSampler(corpus.train, SEQ, BATCH, seed=1)
        start = 0.0
        for step in range(steps):
            if step == steps // 2:
                start = time.perf_counter()
            x, y = sampler.next()
            logits = model(x).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        loss.item()
        return (steps - steps // 2) * BATCH * SEQ / (time.perf_counter() - start)

    speeds: dict[str, list[float]] = {"ours": [], "theirs": []}
    benchmark.pedantic(lambda: speeds["ours"].append(ours()), rounds=1, iterations=1)
    for _ in range(rounds):
        speeds["theirs"].append(theirs())
        speeds["ours"].append(ours())
    ours_tps, theirs_tps = statistics.median(speeds["ours"]), statistics.median(speeds["theirs"])
    benchmark.extra_info.update(trainer_tokens_per_s=ours_tps, transformers_tokens_per_s=theirs_tps,
                                ratio_ours_over_transformers=ours_tps / theirs_tps, rounds=rounds)
    assert ours_tps > 0 and theirs_tps > 0


def test_from_pretrained_load_time_vs_transformers(benchmark: Any, tmp_path: Path) -> None:
    hf_peer(CFG).save_pretrained(tmp_path)

    def load_ours() -> None:
        from_pretrained(tmp_path)

    def load_theirs() -> None:
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path)

    benchmark(load_ours)
    ours_s, theirs_s = interleaved_medians(load_ours, load_theirs, 2 if benchmark.disabled else 15)
    benchmark.extra_info.update(ours_load_s=ours_s, transformers_load_s=theirs_s,
                                ratio_transformers_over_ours=theirs_s / ours_s)
    assert ours_s > 0 and theirs_s > 0


def test_whole_training_run_through_the_python_api(benchmark: Any, tmp_path: Path) -> None:
    """`train(TrainConfig)` on CFG's shape: what the loop, evaluation and writes cost on top of the steps."""
    from pretrain.train import TrainConfig, train

    steps = 3 if benchmark.disabled else 20
    config = TrainConfig(family=CFG.family, layers=CFG.num_hidden_layers, hidden=CFG.hidden_size,
                         heads=CFG.num_attention_heads, kv_heads=CFG.num_key_value_heads,
                         intermediate=CFG.intermediate_size, seq_len=SEQ, batch=BATCH, steps=steps,
                         eval_every=steps, device="cpu", dtype="fp32", out=tmp_path / "run", overwrite=True)

    def run() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            train(config)

    benchmark.pedantic(run, rounds=1 if benchmark.disabled else 3, iterations=1)
    last = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
            if "tokens_per_s" in line][-1]
    benchmark.extra_info.update(train_api_tokens_per_s=last["tokens_per_s"], steps=steps)
    assert last["step"] == steps and last["tokens_per_s"] > 0
