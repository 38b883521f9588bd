"""What a run writes and shows: metrics.jsonl, the progress bar or lines, and the checkpoint.

Only rank 0 writes. Every write the disk refuses is an OutputError naming the file, and nothing is
left half-written: metrics lines are flushed one by one, the checkpoint is written atomically.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

import torch

from pretrain import data as data_mod
from pretrain.flops import mfu
from pretrain.model import CausalLM, ModelConfig
from pretrain.streams import print_line
from pretrain.train_config import DivergedError, OutputError

if TYPE_CHECKING:
    from pretrain.train_config import TrainConfig


class Metrics:
    """metrics.jsonl writer (rank 0 only); one flushed JSON object per line so a crash loses nothing.

    Every line is strict JSON: a NaN or inf is refused here rather than written as the non-JSON `NaN`.
    A write the disk refuses (ENOSPC, EDQUOT, EIO, ...) is an OutputError naming the file.
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
            raise DivergedError(f"step {record.get('step')}: {bad} is not a finite number; not written to "
                             f"{self.path}") from None
        try:
            self.fh.write(line + "\n")
            self.fh.flush()
        except OSError as exc:
            self.abandon()
            raise OutputError(self.failed(exc)) from None

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
                raise OutputError(self.failed(exc, stopped=False)) from None


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

    def step(self, step: int, loss: float | None, tok_s: float | None) -> None:
        """One step done; `loss` is None on the steps whose loss the loop did not read back (every step but
        each `every`-th and each logged one), and the bar then only moves."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s or 0:,.0f}")
        elif step % self.every == 0 and loss is not None:
            self._print(f"step {step} loss {loss:.4f} tok/s {tok_s or 0:,.0f}")

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


class Throughput:
    """tokens/s of the training steps since the last training record, with model FLOPs per token and MFU.

    Evaluation time is left out (`pause()` before, `resume()` after), so the figure is the training speed
    alone. `fields()` must be called right after something waited for the step's device work (the loss read
    does): on CUDA the clock would otherwise stop while kernels are still queued. `sync()` is that wait,
    used before an evaluation starts.
    """

    def __init__(self, tokens_per_step: int, flops_per_token: int, peak: float | None, no_peak: str,
                 devices: int, sync: Callable[[], None]) -> None:
        self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
        self.peak, self.no_peak, self.devices, self.sync = peak, no_peak, devices, sync
        self.steps, self.spent, self.mark = 0, 0.0, time.perf_counter()

    def pause(self) -> None:
        self.sync()
        self.spent += time.perf_counter() - self.mark

    def resume(self) -> None:
        self.mark = time.perf_counter()

    def tokens_per_s(self) -> float:
        """The speed so far in this window (for the progress display; the window goes on)."""
        return self.steps * self.tokens_per_step / max(self.spent + time.perf_counter() - self.mark, 1e-9)

    def fields(self) -> dict[str, Any]:
        """`tokens_per_s`, `flops_per_token`, `mfu` (and `mfu_reason` when it is null) for a metrics line;
        a new window starts."""
        tokens_per_s = self.tokens_per_s()
        self.steps, self.spent, self.mark = 0, 0.0, time.perf_counter()
        out: dict[str, Any] = {"tokens_per_s": tokens_per_s, "flops_per_token": self.flops_per_token}
        if self.peak is None:
            out.update(mfu=None, mfu_reason=self.no_peak)
        else:
            out["mfu"] = mfu(tokens_per_s, self.flops_per_token, self.peak, self.devices)
        return out

    def stepped(self) -> None:
        self.steps += 1


def provenance(args: "TrainConfig", corpus: data_mod.Corpus) -> dict[str, str]:
    """The checkpoint's `license`, `data_source` and `data_license` metadata: the flags, else the corpus's own;
    and `train_command`, the `pretrain train` command of this run (what `pretrain card` shows to reproduce it)."""
    from pretrain.train_config import command_line

    return {
        "license": args.license,
        "data_source": corpus.source if args.data_source is None else args.data_source,
        "data_license": corpus.license if args.data_license is None else args.data_license,
        "train_command": command_line(args),
    }


def val_split(args: "TrainConfig", corpus: data_mod.Corpus, precision: str) -> dict[str, Any]:
    """The checkpoint's `val_split` metadata: what its `val_loss` was measured on, so it can be measured again
    (the model release gate's re-evaluation): the data (absolute path; null for the default corpus), the window
    length and count, the split's size and dtype and the sha256 of its token bytes, and the precision."""
    import hashlib

    import numpy as np

    tokens = np.ascontiguousarray(corpus.val)
    digest = hashlib.sha256()
    for start in range(0, len(tokens), 1 << 22):  # in chunks: a memory-mapped split is never read whole
        digest.update(np.ascontiguousarray(tokens[start:start + (1 << 22)]).tobytes())
    return {
        "data": None if args.data is None else str(Path(args.data).resolve()),
        "seq_len": args.seq_len,
        "windows": args.val_windows,
        "val_fraction": data_mod.VAL_FRACTION,
        "tokens": int(len(tokens)),
        "dtype": str(tokens.dtype),
        "sha256": digest.hexdigest(),
        "precision": precision,
    }


def save_checkpoint(path: Path, model: CausalLM, cfg: ModelConfig, step: int, val_loss: float,
                    corpus: data_mod.Corpus, provenance: dict[str, str], init: str | None,
                    split: dict[str, Any] | None = None) -> None:
    from pretrain.checkpoint import write_checkpoint

    # The last line of defence: whatever got past the loss checks, a NaN model is never saved.
    if not math.isfinite(val_loss):
        raise DivergedError(f"not saving {path}: its val_loss at step {step} is {val_loss}")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    broken = next((k for k, v in tensors.items() if not bool(torch.isfinite(v).all())), None)
    if broken is not None:
        raise DivergedError(f"not saving {path}: tensor {broken} holds NaN or inf at step {step}")
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
    if split is not None:
        metadata["val_split"] = json.dumps(split, sort_keys=True)
    write_checkpoint(path, tensors, metadata)


def save_or_refuse(path: Path, *args: Any) -> None:
    """save_checkpoint, with a full disk or a revoked permission reported as an OutputError naming the file."""
    try:
        save_checkpoint(path, *args)
    except OSError as exc:
        # write_checkpoint is atomic: an earlier model.safetensors at `path` is still there, whole.
        raise OutputError(f"--out {path.parent}: could not write {path} ({exc.strerror or exc}); nothing was "
                         "saved (metrics.jsonl has the losses so far); free space or fix permissions, then "
                         "rerun with --overwrite") from None


