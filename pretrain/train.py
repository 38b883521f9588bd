"""`pretrain train`: train a small causal LM from scratch or from `--init`, on CPU or CUDA, 1 or N processes.

Under `torchrun --nproc_per_node N -m pretrain train ...` it runs DistributedDataParallel (nccl on CUDA,
gloo on CPU); only rank 0 writes files or prints. `--init` is checked before anything is built or written:
header only -> arch-match gate (INV-INIT-ARCH-MATCH-001) -> config vs flags -> strict names/shapes
(INV-INIT-STRICT-001) -> tensor data. A refused init exits 2 with no metrics written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import torch
import torch.nn.functional as F

from pretrain import data as data_mod
from pretrain.streams import print_line
from pretrain.model import (CausalLM, LoadError, ModelConfig, build_model, check_tensor_names_and_shapes,
                            config_from_header, load_state_strict)

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130

# Shape flags and the config field each one sets; with --init they must agree with the checkpoint.
SHAPE_FLAGS: dict[str, str] = {
    "family": "family",
    "layers": "num_hidden_layers",
    "hidden": "hidden_size",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "intermediate": "intermediate_size",
    "vocab": "vocab_size",
    "rope_theta": "rope_theta",
    "tie_embeddings": "tie_word_embeddings",
}
DEFAULTS: dict[str, Any] = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "vocab": 256,
                            "rope_theta": 10000.0}

# (lowest, highest) of each integer flag. The highs are far past any model this trainer is for (Llama-3
# 405B: hidden 16384, 126 layers, vocab 128256) but stop a typo (`--hidden 1000000000`) at the flag instead
# of in the allocator; what fits below them is then the memory estimate's call.
INT_LIMITS: dict[str, tuple[int, int]] = {
    "layers": (1, 1024), "hidden": (1, 65536), "heads": (1, 1024), "kv_heads": (1, 1024), "head_dim": (1, 4096),
    "intermediate": (1, 262144), "vocab": (1, 2**24), "seq_len": (1, 2**20), "batch": (1, 2**20),
    "steps": (0, 10**9), "warmup": (0, 10**9), "eval_every": (1, 10**9), "log_every": (1, 10**9),
    "val_windows": (1, 2**16),
    "seed": (0, 2**64 - 1),  # torch.manual_seed takes 64 bits
}
# Metadata text flags (recorded in the checkpoint, shown by `pretrain inspect`): at most this many characters.
MAX_TEXT_CHARS = 512


class TrainError(Exception):
    """Bad flags or a refused init; the message names the flag/file and the fix."""


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: X)` for every flag with a real default; flags whose default depends on others say so."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a small Llama/Qwen2/Qwen3 causal LM",
                              description=__doc__.splitlines()[0], formatter_class=DefaultsHelpFormatter,
                              epilog="Exit codes: 0 done, 2 bad input, a refused --init, a diverged run or a "
                                     "full disk, 130 interrupted (Ctrl-C; the checkpoint is saved). "
                                     "See docs/pretrain-training.md.")
    p.add_argument("--family", choices=["llama", "qwen2", "qwen3"], help="model family (default: llama)")
    p.add_argument("--layers", type=int, help="decoder layers (default: 2)")
    p.add_argument("--hidden", type=int, help="hidden size (default: 64)")
    p.add_argument("--heads", type=int, help="attention heads (default: 4)")
    p.add_argument("--kv-heads", type=int, help="key/value heads, divides --heads (default: 2)")
    p.add_argument("--head-dim", type=int, help="per-head dim (default: hidden/heads)")
    p.add_argument("--intermediate", type=int, help="MLP width (default: ~8/3 hidden, rounded up to 8)")
    p.add_argument("--vocab", type=int, help="vocabulary size (default: 256, byte-level)")
    p.add_argument("--rope-theta", type=float, help="RoPE base (default: 10000)")
    p.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="tie lm_head to the embedding (default: on for qwen2, off otherwise)")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per training window")
    p.add_argument("--batch", type=int, default=8, help="sequences per process per step")
    p.add_argument("--steps", type=int, default=50, help="optimizer steps (0: evaluate and save the start)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (at most 1)")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="cosine floor as a fraction of --lr")
    p.add_argument("--warmup", type=int, default=10, help="linear warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW decay on weight matrices")
    p.add_argument("--grad-clip", type=float, default=1.0, help="global gradient-norm clip (0: off)")
    p.add_argument("--eval-every", type=int, default=25, help="validate every N steps (and at the end)")
    p.add_argument("--val-windows", type=int, default=data_mod.DEFAULT_VAL_WINDOWS,
                   help="fixed validation windows")
    p.add_argument("--log-every", type=int, default=1, help="write a train-loss metrics line every N steps")
    p.add_argument("--seed", type=int, default=0, help="init and batch order, 0 to 2**64-1")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train (auto: cuda when available)")
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                   help="autocast dtype; weights stay fp32 (auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--data", help="directory of text files, a text file, .npy tokens or .bin uint16 tokens "
                                  "(default: embedded Python-stdlib byte corpus)")
    p.add_argument("--init", help="start from this checkpoint (ours, an HF directory, or a stamped file)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--license", metavar="SPDX", default="",
                   help="the model's license, recorded as `license` metadata (default: none recorded)")
    p.add_argument("--data-source", metavar="TEXT",
                   help="what it was trained on, recorded as `data_source` metadata (default: the --data "
                        "path, or the built-in corpus's CPython version)")
    p.add_argument("--data-license", metavar="SPDX",
                   help="the training data's license, recorded as `data_license` metadata (default: "
                        "PSF-2.0 for the built-in corpus, none for --data)")
    p.add_argument("--out", required=True, help="output directory (metrics.jsonl, model.safetensors)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the metrics.jsonl and model.safetensors of an earlier run in --out")
    p.set_defaults(func=run)


# ---------------------------------------------------------------- distributed helpers

@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                world_size=dist.get_world_size())


def global_mean(value: torch.Tensor, dist: Dist) -> float:
    """The mean of a scalar over all ranks, so the logged train loss is the global batch's, not rank 0's."""
    if dist.world_size > 1:
        import torch.distributed as tdist

        value = value.clone()
        tdist.all_reduce(value, op=tdist.ReduceOp.SUM)
        value /= dist.world_size
    return float(value.item())


# ---------------------------------------------------------------- config resolution

def config_from_flags(args: argparse.Namespace) -> ModelConfig:
    family = args.family or "llama"
    hidden = args.hidden or DEFAULTS["hidden"]
    heads = args.heads or DEFAULTS["heads"]
    if args.head_dim is None and hidden % heads:
        raise TrainError(f"--hidden {hidden} is not divisible by --heads {heads}; pass --head-dim explicitly "
                         "or pick --hidden as a multiple of --heads")
    intermediate = args.intermediate or 8 * ((8 * hidden // 3 + 7) // 8)
    tie = args.tie_embeddings if args.tie_embeddings is not None else family == "qwen2"
    try:
        return ModelConfig(
            family=family, vocab_size=args.vocab or DEFAULTS["vocab"], hidden_size=hidden,
            intermediate_size=intermediate, num_hidden_layers=args.layers or DEFAULTS["layers"],
            num_attention_heads=heads, num_key_value_heads=args.kv_heads or DEFAULTS["kv_heads"],
            head_dim=args.head_dim or hidden // heads, rope_theta=args.rope_theta or DEFAULTS["rope_theta"],
            tie_word_embeddings=tie, max_position_embeddings=max(2048, args.seq_len),
        )
    except LoadError as exc:
        raise TrainError(f"bad model flags: {exc}") from None


def check_flags_agree(args: argparse.Namespace, cfg: ModelConfig, init: str) -> None:
    for flag, field in SHAPE_FLAGS.items():
        given = getattr(args, flag)
        if given is not None and given != getattr(cfg, field):
            shown = f"--{flag.replace('_', '-')} {given}"
            if isinstance(given, bool):
                shown = f"--{'' if given else 'no-'}{flag.replace('_', '-')}"
            raise TrainError(
                f"{shown} contradicts --init {init}, whose config has "
                f"{field}={getattr(cfg, field)!r}; the model shape comes from the checkpoint: drop the flag"
            )


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


# ---------------------------------------------------------------- memory

@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one process needs: fp32 weights, gradients and AdamW's two moments, plus one step's activations."""

    parameters: int
    model_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.model_bytes + self.activation_bytes


def estimate_memory(cfg: ModelConfig, batch: int, seq_len: int, amp: torch.dtype | None,
                    world_size: int = 1) -> MemoryEstimate:
    """A lower-bound-ish estimate of the peak memory of a training step, from the shapes alone.

    The parameter count comes from the model built on the meta device (no memory), so it is exact for every
    family. Activations count what autograd keeps per token for the backward pass, assuming SDPA's
    memory-efficient attention (no seq_len x seq_len score matrix), plus the logits (autocast dtype, their
    fp32 copy and its gradient) that dominate for a large vocabulary.
    """
    with torch.device("meta"):
        n = CausalLM(cfg).num_parameters()
    act = 2 if amp in (torch.bfloat16, torch.float16) else 4
    # fp32 weights + gradients + AdamW exp_avg and exp_avg_sq; autocast keeps a low-precision weight copy;
    # DDP keeps its gradient buckets beside the gradients.
    model_bytes = n * (16 + (act if act < 4 else 0) + (4 if world_size > 1 else 0))
    h, i, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    # Per layer: two norms, residuals and projections' outputs (h), q/k/v before and after RoPE and the
    # repeated kv heads (q, kv), the attention output (q), gate/up/silu/product (i).
    per_layer = 7 * h + 5 * q + 4 * kv + 4 * i
    tokens = batch * seq_len
    activation_bytes = tokens * (cfg.num_hidden_layers * per_layer * act + h * act + v * (act + 8))
    return MemoryEstimate(parameters=n, model_bytes=model_bytes, activation_bytes=activation_bytes)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What a container's cgroup v2 memory limit leaves (/proc/meminfo shows the whole host's memory)."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def available_memory(device: torch.device) -> tuple[int, str] | None:
    """(bytes free for this run, what they are), or None when it cannot be told (then nothing is refused)."""
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
            return int(free), f"{device} ({torch.cuda.get_device_name(device)}) has"
        except RuntimeError:  # a driver that cannot say: let the allocator decide
            return None
    known = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return (max(0, min(known)), "this machine has") if known else None


def check_memory(cfg: ModelConfig, args: argparse.Namespace, device: torch.device, amp: torch.dtype | None,
                 dist: "Dist", available: tuple[int, str] | None) -> None:
    """Refuse a configuration whose estimated memory exceeds what the device has, before allocating any."""
    from pretrain.inspection import human_bytes

    if available is None:
        return
    est = estimate_memory(cfg, args.batch, args.seq_len, amp, dist.world_size)
    # CPU processes of one torchrun share the host's RAM; each GPU has its own memory.
    sharing = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size)) if device.type == "cpu" else 1
    need = est.total * sharing
    free, where = available
    if need <= free:
        return
    shape = "a smaller --init checkpoint" if args.init else "--hidden, --layers, --intermediate or --vocab"
    lower = [f"{shape} (model)", "--batch or --seq-len (activations)"]
    if est.activation_bytes > est.model_bytes:
        lower.reverse()
    dtype = "bf16" if amp is torch.bfloat16 else "fp32"
    per = f" per process, x{sharing} processes" if sharing > 1 else ""
    raise TrainError(
        f"this run needs about {human_bytes(need)} of memory{per} ({est.parameters:,} parameters: weights, "
        f"gradients and AdamW state {human_bytes(est.model_bytes)}; activations {human_bytes(est.activation_bytes)} "
        f"for --batch {args.batch} x --seq-len {args.seq_len} in {dtype}) but {where} {human_bytes(free)} "
        f"available; lower {' or '.join(lower)}")


# ---------------------------------------------------------------- training pieces

def lr_at(step: int, peak: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to `peak` over `warmup` steps, then cosine decay to `min_ratio * peak` at `total`."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))


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


class Metrics:
    """metrics.jsonl writer (rank 0 only); one flushed JSON object per line so a crash loses nothing.

    Every line is strict JSON: a NaN or inf is refused here rather than written as the non-JSON `NaN`.
    A write the disk refuses (ENOSPC, EDQUOT, EIO, ...) is a TrainError naming the file.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.fh: TextIO | None = path.open("w") if path is not None else None

    def write(self, record: dict[str, Any]) -> None:
        if self.fh is None:
            return
        try:
            line = json.dumps(record, allow_nan=False)
        except ValueError:
            bad = ", ".join(f"{k} {v}" for k, v in record.items() if isinstance(v, float) and not math.isfinite(v))
            raise TrainError(f"step {record.get('step')}: {bad} is not a finite number; not written to "
                             f"{self.path}") from None
        try:
            self.fh.write(line + "\n")
            self.fh.flush()
        except OSError as exc:
            self.abandon()
            raise TrainError(self.failed(exc)) from None

    def failed(self, exc: OSError, stopped: bool = True) -> str:
        assert self.path is not None
        what = "; the run stopped without saving a checkpoint" if stopped else ""
        return (f"--out {self.path.parent}: could not write {self.path} ({exc.strerror or exc}){what}; free "
                "space or fix the disk, then rerun with --overwrite")

    def abandon(self) -> None:
        """Close after a failed write; closing retries the flush, which fails the same way."""
        fh, self.fh = self.fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass

    def close(self) -> None:
        fh, self.fh = self.fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError as exc:  # at the end, after the checkpoint was saved
                raise TrainError(self.failed(exc, stopped=False)) from None


class Progress:
    """tqdm bar on a terminal, plain lines otherwise (CI logs, pipes)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled
        # False once stdout's reader has gone (`| head -1`): the run goes on, saves, and exits 0 silently.
        self.stdout_open = True
        self.bar = None
        self.every = max(1, total // 10)
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            # A pty that reports a 0x0 size (`script`, `docker exec -t`, editor shells) makes tqdm think
            # no row is visible and draw nothing at all; give it a fixed size there instead.
            try:
                size = os.get_terminal_size(sys.stderr.fileno())
                known = size.columns > 0 and size.lines > 0
            except (OSError, ValueError):
                known = False
            self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=known,
                            ncols=None if known else 100, nrows=None if known else 24)

    def step(self, step: int, loss: float, tok_s: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}")
        elif step % self.every == 0:
            self._print(f"step {step} loss {loss:.4f} tok/s {tok_s:,.0f}")

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            self._print(text)

    def _print(self, text: str) -> None:
        if self.stdout_open:
            self.stdout_open = print_line(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def resolve_device(kind: str, dist: Dist | None = None) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available here; use --device cpu or auto")
        return torch.device("cuda", dist.local_rank if dist else 0)
    return torch.device("cpu")


def provenance(args: argparse.Namespace, corpus: data_mod.Corpus) -> dict[str, str]:
    """The checkpoint's `license`, `data_source` and `data_license` metadata: the flags, else the corpus's own."""
    return {
        "license": args.license,
        "data_source": corpus.source if args.data_source is None else args.data_source,
        "data_license": corpus.license if args.data_license is None else args.data_license,
    }


def save_checkpoint(path: Path, model: CausalLM, cfg: ModelConfig, step: int, val_loss: float,
                    corpus: data_mod.Corpus, provenance: dict[str, str], init: str | None) -> None:
    from pretrain.checkpoint import write_checkpoint

    # The last line of defence: whatever got past the loss checks, a NaN model is never saved.
    if not math.isfinite(val_loss):
        raise TrainError(f"not saving {path}: its val_loss at step {step} is {val_loss}")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    broken = next((k for k, v in tensors.items() if not bool(torch.isfinite(v).all())), None)
    if broken is not None:
        raise TrainError(f"not saving {path}: tensor {broken} holds NaN or inf at step {step}")
    metadata = {
        "architecture": cfg.family,
        "hf_architecture": cfg.hf_architecture,
        "hf_model_type": cfg.family,
        "config": cfg.to_json(),
        "step": str(step),
        "val_loss": repr(val_loss),
        **provenance,
    }
    if corpus.tokenizer:
        metadata["tokenizer"] = corpus.tokenizer
    if init:
        metadata["init"] = str(init)
    write_checkpoint(path, tensors, metadata)


def save_or_refuse(path: Path, *args: Any) -> None:
    """save_checkpoint, with a full disk or a revoked permission reported as a TrainError naming the file."""
    try:
        save_checkpoint(path, *args)
    except OSError as exc:
        # write_checkpoint is atomic: an earlier model.safetensors at `path` is still there, whole.
        raise TrainError(f"--out {path.parent}: could not write {path} ({exc.strerror or exc}); nothing was "
                         "saved (metrics.jsonl has the losses so far); free space or fix permissions, then "
                         "rerun with --overwrite") from None


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


# ---------------------------------------------------------------- the command

def run(args: argparse.Namespace) -> int:
    try:
        return train(args)
    except (TrainError, data_mod.DataError) as exc:
        print(f"pretrain train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def validate_flags(args: argparse.Namespace) -> None:
    """Refuse out-of-range numbers up front, naming the flag, before anything is built or written.

    Shape flags are checked here too: `--layers 0` must not quietly fall back to the default.
    """
    for flag, (low, high) in INT_LIMITS.items():
        value = getattr(args, flag)
        if value is None and flag in SHAPE_FLAGS:
            continue  # left out: the default, or the --init checkpoint's value
        if value is None or value < low:
            if flag == "warmup":
                raise TrainError(f"--warmup must be >= 0 steps, got {value}; pass --warmup 0 for no warmup")
            fix = "; pass a value >= 1 or leave the flag out for the default" if flag in SHAPE_FLAGS else ""
            kind = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise TrainError(f"{_flag(flag)} must be {kind}, got {value}{fix}")
        if value > high:
            raise TrainError(f"{_flag(flag)} {value} is above this trainer's limit of {high:,}; "
                             f"pass {_flag(flag)} {high} or less")
    # (flag, value, lowest allowed, lowest is allowed itself, highest or None, what to pass instead)
    # --lr is capped at 1: AdamW moves each weight by about lr per step, so more than 1 only diverges, and
    # a huge one (1e308) overflows inside the optimizer's bias correction.
    reals = [("lr", args.lr, 0.0, False, 1.0, "e.g. --lr 3e-3"),
             ("rope_theta", args.rope_theta, 0.0, False, None, "e.g. --rope-theta 10000"),
             ("weight_decay", args.weight_decay, 0.0, True, None, "--weight-decay 0 turns it off"),
             ("grad_clip", args.grad_clip, 0.0, True, None, "--grad-clip 0 turns clipping off"),
             ("min_lr_ratio", args.min_lr_ratio, 0.0, True, 1.0, "e.g. --min-lr-ratio 0.1")]
    for flag, value, low, low_ok, high, fix in reals:
        if value is None:
            continue
        in_range = math.isfinite(value) and (value >= low if low_ok else value > low) and (high is None or value <= high)
        if not in_range:
            bound = f"{'>=' if low_ok else '>'} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise TrainError(f"{_flag(flag)} must be a finite number {bound}, got {value}; {fix}")
    for flag in ("license", "data_source", "data_license"):
        check_text(flag, getattr(args, flag))


def check_text(flag: str, value: str | None) -> None:
    """Metadata text must be printable Unicode of bounded length: it is shown by `pretrain inspect`.

    The message names the flag and the character's position and code point, never the text itself, so a
    terminal escape in it cannot act on the terminal that shows the error.
    """
    if value is None:
        return
    if len(value) > MAX_TEXT_CHARS:
        raise TrainError(f"{_flag(flag)} is {len(value):,} characters long; the limit is {MAX_TEXT_CHARS}")
    for pos, char in enumerate(value, start=1):
        category = unicodedata.category(char)
        if category == "Cs":  # an undecodable byte in argv (surrogateescape)
            raise TrainError(f"{_flag(flag)}: character {pos} is not valid UTF-8; pass UTF-8 text")
        if category in ("Cc", "Cf"):
            raise TrainError(f"{_flag(flag)}: character {pos} is the control character U+{ord(char):04X}; "
                             "pass printable text (no newlines, tabs or escapes)")


RUN_FILES = ("metrics.jsonl", "model.safetensors")


def check_out_dir(out: Path, overwrite: bool = False) -> None:
    """Refuse an --out that cannot become a writable directory, before anything is loaded or written."""
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out}: exists and is not a directory; pass a directory path "
                         "(it is created if missing)")
    # A rerun would truncate the earlier run's metrics at step 0 and replace its weights at the end.
    earlier = [name for name in RUN_FILES if (out / name).exists()]
    if earlier and not overwrite:
        raise TrainError(f"--out {out}: already holds an earlier run ({', '.join(earlier)}); pass a new --out, "
                         "or --overwrite to replace it")
    parent = out
    while not parent.exists():
        if parent.is_symlink():
            raise TrainError(f"--out {out}: {parent} is a dangling symlink; remove it or pass another --out")
        parent = parent.parent
    if not parent.is_dir():
        raise TrainError(f"--out {out}: {parent} is not a directory; pass a path under a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TrainError(f"--out {out}: {parent} is not writable by this user; pass a --out you can write "
                         "to, or fix the permissions (chmod u+w)")


def train(args: argparse.Namespace) -> int:
    validate_flags(args)
    check_out_dir(Path(args.out), overwrite=args.overwrite)
    kind = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    resolve_device(kind)  # refuses --device cuda without CUDA before any process group starts
    dist = init_distributed(kind)
    device = resolve_device(kind, dist)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp = {"fp32": None, "bf16": torch.bfloat16}.get(args.dtype, torch.bfloat16 if device.type == "cuda" else None)

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
        raise TrainError(f"the freshly initialised model gives val_loss {val_loss} at step 0; check the shape "
                         "flags (--hidden, --head-dim, --rope-theta)")

    out = Path(args.out)
    metrics_path = ckpt_path = None
    if dist.is_main:
        metrics_path, ckpt_path = out / "metrics.jsonl", out / "model.safetensors"
        try:
            out.mkdir(parents=True, exist_ok=True)
            metrics = Metrics(metrics_path)
        except OSError as exc:
            raise TrainError(f"--out {out}: cannot write there ({exc.strerror or exc}); pass a --out you "
                             "can write to") from None
    else:
        metrics = Metrics(None)
    try:
        return _train_loop(args, model, cfg, corpus, val_starts, recorded, init_meta, device, amp, dist,
                           metrics, ckpt_path, start, val_loss)
    finally:
        metrics.abandon()  # closed already on success; after an error, close without raising again


def _train_loop(args: argparse.Namespace, model: CausalLM, cfg: ModelConfig, corpus: data_mod.Corpus,
                val_starts: torch.Tensor, recorded: dict[str, str], init_meta: dict[str, str],
                device: torch.device, amp: torch.dtype | None, dist: Dist, metrics: Metrics,
                ckpt_path: Path | None, start: float, val_loss: float) -> int:
    progress = Progress(args.steps, dist.is_main)
    model.train()
    train_model: torch.nn.Module = torch.compile(model) if args.compile else model
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    # Wrapped so the largest --seed (2**64 - 1) still gives the sampler a 64-bit seed.
    sampler = data_mod.BatchSampler(corpus.train, args.seq_len, args.batch, (args.seed + 1) % 2**64,
                                    dist.rank, dist.world_size)
    tokens_per_step = args.batch * args.seq_len * dist.world_size
    progress.note(f"pretrain train: {cfg.family} {model.num_parameters():,} params on {device} "
                  f"x{dist.world_size}, data {corpus.source}, {len(corpus.train):,} train tokens"
                  + (f", init {args.init} (step {init_meta.get('step', '?')}, "
                     f"val_loss {init_meta.get('val_loss', '?')})" if args.init else ""))
    step = 0

    def write_val(at: int, loss: float) -> None:
        metrics.write({"step": at, "val_loss": loss, "lr": lr_at(at, args.lr, args.warmup, args.steps,
                                                                   args.min_lr_ratio),
                       "tokens": at * tokens_per_step, "elapsed_s": time.perf_counter() - start})
        progress.note(f"step {at} val_loss {loss:.4f}")

    def record_val(at: int) -> float:
        loss = evaluate(model, corpus.val, val_starts, args.seq_len, device, amp)
        if not math.isfinite(loss):
            raise TrainError(f"val_loss became {loss} at step {at}; nothing was saved; rerun with a lower "
                             "--lr (or --dtype fp32) and --overwrite")
        write_val(at, loss)
        return loss

    last_eval = -1
    guard = UpdateGuard().__enter__()
    try:
        write_val(0, val_loss)
        last_eval = 0
        while step < args.steps:
            lr = lr_at(step, args.lr, args.warmup, args.steps, args.min_lr_ratio)
            if not math.isfinite(lr):  # validate_flags bounds every input of lr_at; this keeps NaN out of AdamW
                raise TrainError(f"the learning rate for step {step + 1} came out {lr} from --lr {args.lr}, "
                                 f"--warmup {args.warmup}, --min-lr-ratio {args.min_lr_ratio}")
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = sampler.next()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, amp):
                logits = train_model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            with guard.update():
                optimizer.step()
                step += 1
            loss_value = global_mean(loss.detach(), dist)
            if not math.isfinite(loss_value):
                raise TrainError(f"train loss became {loss_value} at step {step}; nothing was saved; rerun "
                                 "with a lower --lr (or --dtype fp32) and --overwrite")
            elapsed = time.perf_counter() - start
            tok_s = step * tokens_per_step / max(elapsed, 1e-9)
            if step % args.log_every == 0 or step == args.steps:
                metrics.write({"step": step, "loss": loss_value, "lr": lr, "tokens": step * tokens_per_step,
                               "elapsed_s": elapsed, "tokens_per_s": tok_s})
            progress.step(step, loss_value, tok_s)
            if step % args.eval_every == 0 or step == args.steps:
                val_loss, last_eval = record_val(step), step
    except KeyboardInterrupt:
        progress.close()
        if dist.is_main and ckpt_path is not None:
            # Evaluate at exactly the weights being saved, so the recorded val_loss is theirs.
            val_loss = record_val(step) if last_eval != step else val_loss
            save_or_refuse(ckpt_path, model, cfg, step, val_loss, corpus, recorded, args.init)
            print(f"pretrain train: interrupted at step {step}; saved {ckpt_path} (val_loss {val_loss:.4f})",
                  file=sys.stderr)
        metrics.close()
        return EXIT_INTERRUPTED
    finally:
        guard.__exit__()
    progress.close()
    if dist.is_main and ckpt_path is not None:
        save_or_refuse(ckpt_path, model, cfg, step, val_loss, corpus, recorded, args.init)
        progress.note(f"saved {ckpt_path} at step {step}, val_loss {val_loss:.4f}")
    metrics.close()
    if dist.world_size > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    return EXIT_OK
