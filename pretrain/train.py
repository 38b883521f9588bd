"""`pretrain train`: train a small causal LM from scratch or from `--init`, on CPU or CUDA, 1 or N processes.

This module is the run itself: `train(TrainConfig) -> TrainResult`, the `--init` gate and the training
loop. The flags live in pretrain.train_cli (built from pretrain.train_config), the process group and the
device in pretrain.distributed, the memory check in pretrain.memory, and what a run writes in
pretrain.train_output.

Under `torchrun --nproc_per_node N -m pretrain train ...` it runs DistributedDataParallel (nccl on CUDA,
gloo on CPU); only rank 0 writes files or prints. `--init` is checked before anything is built or written:
header only -> arch-match gate (INV-INIT-ARCH-MATCH-001) -> config vs flags -> strict names/shapes
(INV-INIT-STRICT-001) -> tensor data. A refused init raises TrainError (the CLI: exit 2) with no metrics
written.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from pretrain import data as data_mod
from pretrain import flops
from pretrain.accel import adamw_kernel, check_compile, compile_errors, make_adamw, precision_name, resolve_precision
from pretrain.distributed import Dist, finish_distributed, global_mean, init_distributed, resolve_device
from pretrain.memory import available_memory, check_memory
from pretrain.model import (CausalLM, LoadError, ModelConfig, build_model, check_tensor_names_and_shapes,
                            config_from_header, load_state_strict)
from pretrain.train_config import (DivergedError, OutputError, TrainConfig, TrainConfigError, TrainDataError,
                                   TrainError, check_flags_agree, check_out_dir, config_from_flags)
from pretrain.train_output import Metrics, Progress, Throughput, provenance, save_or_refuse, val_split

# Names pretrain.train offered before the split, still importable from here.
from pretrain.memory import MemoryEstimate, estimate_memory  # noqa: F401
from pretrain.train_config import (DEFAULTS, INT_LIMITS, MAX_TEXT_CHARS, RUN_FILES,  # noqa: F401
                                   SHAPE_FLAGS, check_text)
from pretrain.train_output import save_checkpoint  # noqa: F401

__all__ = ["TrainConfig", "TrainResult", "TrainError", "TrainConfigError", "OutputError", "DivergedError",
           "TrainDataError", "train", "load_init", "lr_at"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or Ctrl-C-interrupted) run left behind.

    `checkpoint` and `metrics` are None on the ranks other than 0, which write nothing.
    """

    step: int
    val_loss: float
    checkpoint: Path | None
    metrics: Path | None
    interrupted: bool = False


# ---------------------------------------------------------------- the --init gate

def salvage_hint(path: str, inferred: str, tensor_names: tuple[str, ...] = ()) -> str:
    # The one recipe (pretrain.families.stamp_recipe), so the command printed here runs as printed.
    from pretrain.families import fixed_name, stamp_recipe

    return (f"If the tensors are right and only the stamp is wrong, re-stamp the checkpoint: "
            f"`{stamp_recipe(path, inferred, tensor_names)}`, then rerun with --init {shlex.quote(fixed_name(path))}.")


def load_init(args: argparse.Namespace, device: torch.device,
              check_fits: Callable[[ModelConfig], None] | None = None) -> tuple[CausalLM, ModelConfig, dict[str, str]]:
    """Everything that can refuse an init, in order, before the model exists and before any file is written.

    `check_fits(cfg)` runs once the shapes are known and before any tensor data is read (the memory check).
    """
    # The one load path (pretrain.loading), with the trainer's flag and memory checks in its hooks.
    from pretrain import checkpoint, loading
    from pretrain.families import InitArchMismatchError

    try:
        header = checkpoint.read_header(args.init)
    except checkpoint.CheckpointError as exc:
        raise TrainError(f"--init {args.init}: {exc}") from None
    try:
        loading.check_loadable(header)
    except InitArchMismatchError as exc:
        msg = str(exc)
        if "pretrain stamp" not in msg:
            msg += " " + salvage_hint(args.init, exc.inferred, header.tensor_names)
        raise TrainError(f"--init {args.init}: refused before step 1: {msg}") from None
    except loading.NotLoadableError:
        raise TrainError(f"--init {args.init}: refused before step 1: a GGUF file cannot be a training init "
                         f"({loading.GGUF_REASON}); {loading.GGUF_CONVERSION}, then pass --init OUT") from None
    try:
        loaded = loading.load_from_header(header, device, torch.float32, source=args.init,
                                          check_config=lambda cfg: check_flags_agree(args, cfg, args.init),
                                          before_data=check_fits)
    except (LoadError, checkpoint.CheckpointError) as exc:
        raise TrainError(f"--init {args.init}: refused before step 1: {exc}") from None
    return loaded.model, loaded.config, dict(header.metadata)



# ---------------------------------------------------------------- training pieces

def lr_at(step: int, peak: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to `peak` over `warmup` steps, then cosine decay to `min_ratio * peak` at `total`."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                   device: torch.device | None = None) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.95), decay on matrices only, with the fastest kernel `device` has (pretrain.accel)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer, _kernel = make_adamw([{"params": decay, "weight_decay": weight_decay},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95),
                                    device=device if device is not None else next(model.parameters()).device)
    return optimizer


def model_flops_per_token(model: CausalLM, seq_len: int) -> int:
    """Training FLOPs per token of `model` on windows of `seq_len` (pretrain.flops: 6N + 12 L H Q T)."""
    cfg = model.config
    n = flops.matmul_parameters(((name, p.numel()) for name, p in model.named_parameters()),
                                tied=cfg.tie_word_embeddings)
    return flops.flops_per_token(n, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.head_dim, seq_len)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a clock read after it times that work (CUDA runs ahead)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: torch.nn.Module, val: torch.Tensor, starts: torch.Tensor, seq_len: int,
             device: torch.device, amp: torch.dtype | None, batch: int = 8) -> float:
    """Mean token cross-entropy over the fixed validation windows (identical on every rank)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        x, y = data_mod.windows(val, starts[i:i + batch], seq_len)
        x, y = x.to(device), y.to(device)
        with autocast(device, amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        total += loss.item()
        count += y.numel()
    model.train(was_training)
    return total / count



class UpdateGuard:
    """Holds a Ctrl-C that lands inside the optimizer update until the update and the step count are done.

    A KeyboardInterrupt raised halfway through AdamW (weight decay applied, update not; one param group
    stepped, the other not) would save weights no step produced, under a step number one behind. Outside
    `update()` Ctrl-C interrupts at once, as usual; a second Ctrl-C inside it is not held back.
    """

    def __init__(self) -> None:
        self.inside = False
        self.pending = False
        self.previous: Any = None

    def __enter__(self) -> "UpdateGuard":
        # signal.signal only works on the main thread; and a SIGINT someone chose to ignore (SIG_IGN, or
        # their own handler) stays theirs.
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.inside and not self.pending:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def update(self) -> Any:
        self.inside = True
        try:
            yield
        finally:
            self.inside = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


# ---------------------------------------------------------------- the run

def train(config: TrainConfig) -> TrainResult:
    """Train as `config` says; the Python API behind `pretrain train`.

    Every input is checked before anything is built or written. Raises a TrainError (TrainConfigError,
    OutputError, DivergedError, TrainDataError; a refused --init is a plain TrainError) whose one-line
    message names the flag or file and the fix. Ctrl-C during the steps saves the checkpoint and returns with
    `interrupted=True`; Ctrl-C before the step-0 evaluation raises KeyboardInterrupt with nothing written.
    """
    if not isinstance(config, TrainConfig):
        raise TrainConfigError(f"train() takes a pretrain.train.TrainConfig, got {type(config).__name__}")
    try:
        return _train(config)
    except data_mod.DataError as exc:
        raise TrainDataError(str(exc)) from None


def _train(args: TrainConfig) -> TrainResult:
    check_out_dir(Path(args.out), overwrite=args.overwrite)
    kind = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    resolve_device(kind)  # refuses --device cuda without CUDA before any process group starts
    dist = init_distributed(kind)
    device = resolve_device(kind, dist)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp = resolve_precision(args.dtype, device)  # refuses --dtype bf16 on a GPU without it
    if args.compile:
        check_compile(device)  # refuses --compile where torch.compile cannot work

    available = available_memory(device)

    def fits(cfg: ModelConfig) -> None:
        check_memory(cfg, args, device, amp, dist, available)

    torch.manual_seed(args.seed)
    if args.init:
        model, cfg, init_meta = load_init(args, device, check_fits=fits)
    else:
        cfg = config_from_flags(args)
        fits(cfg)
        model, init_meta = build_model(cfg, device=device, seed=args.seed), {}
    corpus = data_mod.load_corpus(args.data, args.seq_len, cfg.vocab_size, init=args.init)
    val_starts = data_mod.val_windows(corpus.val, args.seq_len, args.val_windows)
    recorded = provenance(args, corpus)

    start = time.perf_counter()
    # The starting weights are measured before --out is touched: weights that give a non-finite loss
    # (a NaN --init) are refused with nothing written, and metrics.jsonl never holds a NaN.
    val_loss = evaluate(model, corpus.val, val_starts, args.seq_len, device, amp)
    if not math.isfinite(val_loss):
        if args.init:
            raise TrainError(f"--init {args.init}: refused before step 1: its weights give val_loss {val_loss} "
                             "on the validation data (NaN or inf weights); pass a checkpoint whose weights "
                             "are all finite")
        raise DivergedError(f"the freshly initialised model gives val_loss {val_loss} at step 0; check the shape "
                            "flags (--hidden, --head-dim, --rope-theta)")

    out = Path(args.out)
    metrics_path = ckpt_path = None
    if dist.is_main:
        metrics_path, ckpt_path = out / "metrics.jsonl", out / "model.safetensors"
        try:
            out.mkdir(parents=True, exist_ok=True)
            metrics = Metrics(metrics_path)
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot write there ({exc.strerror or exc}); pass a --out you "
                              "can write to") from None
    else:
        metrics = Metrics(None)
    try:
        return _train_loop(args, model, cfg, corpus, val_starts, recorded, init_meta, device, amp, dist,
                           metrics, ckpt_path, start, val_loss)
    finally:
        metrics.abandon()  # closed already on success; after an error, close without raising again


def _train_loop(args: TrainConfig, model: CausalLM, cfg: ModelConfig, corpus: data_mod.Corpus,
                val_starts: torch.Tensor, recorded: dict[str, str], init_meta: dict[str, str],
                device: torch.device, amp: torch.dtype | None, dist: Dist, metrics: Metrics,
                ckpt_path: Path | None, start: float, val_loss: float) -> TrainResult:
    progress = Progress(args.steps, dist.is_main)
    model.train()
    train_model: torch.nn.Module = model
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(train_model, device_ids=[device.index] if device.type == "cuda" else None)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            logits = train_model(x)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    if args.compile:
        # The loss is compiled with the model, so the fp32 copy of the logits and the softmax fuse into the
        # head's kernels instead of costing full passes over batch x seq x vocab values; compiled around
        # DDP, so torch's DDP optimizer splits the graph at the gradient buckets.
        loss_of = torch.compile(loss_of)
    optimizer = make_optimizer(model, args.lr, args.weight_decay, device)
    params = list(model.parameters())  # listed once: clip_grad_norm_ would walk the modules each step
    # Wrapped so the largest --seed (2**64 - 1) still gives the sampler a 64-bit seed.
    sampler = data_mod.BatchSampler(corpus.train, args.seq_len, args.batch, (args.seed + 1) % 2**64,
                                    dist.rank, dist.world_size)
    tokens_per_step = args.batch * args.seq_len * dist.world_size
    precision = precision_name(amp)
    flops_per_token = model_flops_per_token(model, args.seq_len)
    if args.peak_flops is not None:
        peak, no_peak = args.peak_flops, ""
    else:
        peak, no_peak = flops.peak_flops(device.type, torch.cuda.get_device_name(device) if device.type == "cuda"
                                         else "", precision)
    progress.note(f"pretrain train: {cfg.family} {model.num_parameters():,} params on {device} "
                  f"x{dist.world_size}, data {corpus.source}, {len(corpus.train):,} train tokens"
                  + (f", init {args.init} (step {init_meta.get('step', '?')}, "
                     f"val_loss {init_meta.get('val_loss', '?')})" if args.init else ""))
    progress.note(f"{precision}{' autocast' if amp is not None else ''}, AdamW {adamw_kernel(device)}, "
                  f"torch.compile {'on' if args.compile else 'off'}; {flops_per_token:,} model FLOPs per token; "
                  + (f"mfu against {peak:.4g} FLOP/s per device" if peak is not None else f"no mfu: {no_peak}"))
    step = 0

    def write_val(at: int, loss: float) -> None:
        metrics.write({"step": at, "val_loss": loss, "lr": lr_at(at, args.lr, args.warmup, args.steps,
                                                                   args.min_lr_ratio),
                       "tokens": at * tokens_per_step, "elapsed_s": time.perf_counter() - start})
        progress.note(f"step {at} val_loss {loss:.4f}")

    def record_val(at: int) -> float:
        loss = evaluate(model, corpus.val, val_starts, args.seq_len, device, amp)
        if not math.isfinite(loss):
            raise DivergedError(f"val_loss became {loss} at step {at}; nothing was saved; rerun with a lower "
                             "--lr (or --dtype fp32) and --overwrite")
        write_val(at, loss)
        return loss

    # The loss is read back (a device sync on CUDA, a collective under DDP) only on the steps that log or
    # print it; the same steps on every rank. On the others a non-finite loss is noted on the device.
    def reads(at: int) -> bool:
        return at % args.log_every == 0 or at == args.steps or at % progress.every == 0

    unread_bad = torch.zeros((), dtype=torch.long, device=device)  # the first unread step whose loss was not finite

    def check_unread() -> None:
        bad = int(unread_bad.item()) if args.log_every > 1 else 0
        if bad:
            raise DivergedError(f"train loss became nan or inf at step {bad}; nothing was saved; rerun with a "
                                "lower --lr (or --dtype fp32) and --overwrite")

    # A torch.compile that fails does so at its first call, inside the step: caught only with --compile.
    compile_failed = compile_errors() if args.compile else ()
    last_eval = -1
    guard = UpdateGuard().__enter__()
    try:
        write_val(0, val_loss)
        last_eval = 0
        speed = Throughput(tokens_per_step, flops_per_token, peak, no_peak, dist.world_size, lambda: sync(device))
        while step < args.steps:
            lr = lr_at(step, args.lr, args.warmup, args.steps, args.min_lr_ratio)
            if not math.isfinite(lr):  # validate_flags bounds every input of lr_at; this keeps NaN out of AdamW
                raise DivergedError(f"the learning rate for step {step + 1} came out {lr} from --lr {args.lr}, "
                                 f"--warmup {args.warmup}, --min-lr-ratio {args.min_lr_ratio}")
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = sampler.next()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            try:
                loss = loss_of(x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            except compile_failed as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise TrainError(f"--compile: torch.compile failed at step {step + 1} ({first}); nothing was "
                                 "saved; rerun without --compile, with --overwrite") from None
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, args.grad_clip, foreach=True)
            with guard.update():
                optimizer.step()
                step += 1
            speed.stepped()
            loss = loss.detach()
            if not reads(step):
                unread_bad = torch.where(torch.isfinite(loss) | (unread_bad > 0), unread_bad,
                                         torch.full_like(unread_bad, step))
                progress.step(step, None, None)
            else:
                loss_value = global_mean(loss, dist)  # a collective under DDP: every rank, before any raise
                check_unread()  # an earlier unread step may have been the first to go non-finite
                if not math.isfinite(loss_value):
                    raise DivergedError(f"train loss became {loss_value} at step {step}; nothing was saved; rerun "
                                        "with a lower --lr (or --dtype fp32) and --overwrite")
                # The loss read above waited for the step's device work, so the clock is right here.
                tok_s = speed.tokens_per_s()
                if step % args.log_every == 0 or step == args.steps:
                    metrics.write({"step": step, "loss": loss_value, "lr": lr, "tokens": step * tokens_per_step,
                                   "elapsed_s": time.perf_counter() - start, **speed.fields()})
                progress.step(step, loss_value, tok_s)
            if step % args.eval_every == 0 or step == args.steps:
                speed.pause()
                val_loss, last_eval = record_val(step), step
                speed.resume()
    except KeyboardInterrupt:
        progress.close()
        check_unread()  # weights a non-finite loss produced are not saved
        if dist.is_main and ckpt_path is not None:
            # Evaluate at exactly the weights being saved, so the recorded val_loss is theirs.
            val_loss = record_val(step) if last_eval != step else val_loss
            save_or_refuse(ckpt_path, model, cfg, step, val_loss, corpus, recorded, args.init,
                           val_split(args, corpus, precision))
        metrics.close()
        # The CLI reports the saved checkpoint and exits 130; rank > 0 saved nothing (checkpoint None).
        return TrainResult(step, val_loss, ckpt_path, metrics.path, interrupted=True)
    finally:
        guard.__exit__()
    progress.close()
    if dist.is_main and ckpt_path is not None:
        save_or_refuse(ckpt_path, model, cfg, step, val_loss, corpus, recorded, args.init,
                       val_split(args, corpus, precision))
        progress.note(f"saved {ckpt_path} at step {step}, val_loss {val_loss:.4f}")
    metrics.close()
    finish_distributed(dist)
    return TrainResult(step, val_loss, ckpt_path, metrics.path)
