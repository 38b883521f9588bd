"""Autoregressive generation with a KV cache: greedy (temperature 0) or sampled, seeded, on CPU or CUDA.

`generate(model, input_ids, max_new_tokens=...)` is the library call (what falsifiers use); greedy output
is token for token what `transformers`' `generate(do_sample=False)` gives on the same HF directory
(tests/pretrain/test_generate.py). The prompt is run once through the model (prefill, filling one
pretrain.model.KVCache per layer); each step after runs only the newest token. `decode` times the two
phases separately for tokens/s. `pretrain generate` (pretrain/generate_cli.py) adds tokenizers and output.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pretrain.model import CausalLM, forward_cached, new_cache


class GenerateError(ValueError):
    """A generation request that cannot be honoured (bad sizes or sampling values); the message names the value."""


@dataclass(frozen=True)
class Generation:
    """What `decode` produced: the ids (prompt then completion) and how long each phase took."""

    ids: torch.Tensor  # (batch, prompt_len + new), int64, on the model's device
    prompt_tokens: int  # per sequence
    new_tokens: int  # per sequence (fewer than asked when every sequence reached EOS)
    prefill_s: float
    decode_s: float

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.ids.shape[0] * self.prompt_tokens / max(self.prefill_s, 1e-9)

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens per second after the first (the first comes out of prefill); None when there was no step."""
        steps = self.new_tokens - 1
        return self.ids.shape[0] * steps / max(self.decode_s, 1e-9) if steps > 0 else None


def _eos_set(eos_token_id: int | Sequence[int] | None) -> tuple[int, ...]:
    if eos_token_id is None:
        return ()
    return (int(eos_token_id),) if isinstance(eos_token_id, int) else tuple(int(i) for i in eos_token_id)


def check_request(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise GenerateError for a value generation cannot use (the CLI checks flags with it before loading)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise GenerateError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if not (temperature >= 0 and temperature != float("inf")):  # also refuses NaN
        raise GenerateError(f"temperature must be a finite number >= 0 (0: greedy), got {temperature!r}")
    if top_k is not None and top_k < 1:
        raise GenerateError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise GenerateError(f"top_p must be in (0, 1], got {top_p!r}")


def next_token(logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
               top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """logits (batch, vocab) -> the next ids (batch,): argmax at temperature 0, else a seeded sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        # Nucleus: keep the most likely tokens until their probability reaches top_p (the top one always).
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_logits.softmax(dim=-1) >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def decode(model: CausalLM, input_ids: torch.Tensor, *, max_new_tokens: int, temperature: float = 0.0,
           seed: int | None = None, eos_token_id: int | Sequence[int] | None = None, top_k: int | None = None,
           top_p: float | None = None, use_cache: bool = True) -> Generation:
    """generate(), with the prefill and decode times (see `generate`)."""
    check_request(max_new_tokens, temperature, top_k, top_p)
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise GenerateError(f"input_ids must be (batch, seq) with seq >= 1, got shape {tuple(input_ids.shape)}")
    device = model.model.embed_tokens.weight.device
    ids = input_ids.to(device=device, dtype=torch.long)
    vocab = model.config.vocab_size
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        bad = int(ids.max()) if int(ids.max()) >= vocab else int(ids.min())
        raise GenerateError(f"input id {bad} is outside the model's vocabulary (0..{vocab - 1})")
    eos = torch.tensor(_eos_set(eos_token_id), device=device, dtype=torch.long)
    generator = None
    if temperature > 0:
        generator = torch.Generator(device=device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    batch, prompt_len = ids.shape
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    cache = new_cache(model, batch, prompt_len + max_new_tokens) if use_cache and max_new_tokens else None
    new: list[torch.Tensor] = []
    prefill_s = decode_s = 0.0
    start = time.perf_counter()
    for step in range(max_new_tokens):
        if cache is not None:
            # Prefill: the whole prompt once; after it, only the token chosen last step.
            logits = forward_cached(model, ids if step == 0 else new[-1].unsqueeze(1), cache)[:, -1]
        else:
            logits = model(torch.cat([ids, *[t.unsqueeze(1) for t in new]], dim=1))[:, -1]
        token = next_token(logits, temperature, generator, top_k, top_p)
        if eos.numel():
            # A sequence that has ended repeats its EOS (transformers pads with pad_token_id, = EOS by default).
            token = torch.where(done, eos[0], token)
            done = done | torch.isin(token, eos)
        new.append(token)
        if step == 0:
            _sync(device)
            prefill_s, start = time.perf_counter() - start, time.perf_counter()
        if eos.numel() and bool(done.all()):
            break
    _sync(device)
    if new:
        decode_s = time.perf_counter() - start
    out = torch.cat([ids, torch.stack(new, dim=1)], dim=1) if new else ids
    return Generation(out, prompt_len, len(new), prefill_s, decode_s)


def generate(model: CausalLM, input_ids: torch.Tensor, *, max_new_tokens: int, temperature: float = 0.0,
             seed: int | None = None, eos_token_id: int | Sequence[int] | None = None, top_k: int | None = None,
             top_p: float | None = None, use_cache: bool = True) -> torch.Tensor:
    """The prompt followed by up to `max_new_tokens` generated ids: (batch, prompt_len + new), like transformers.

    `input_ids`: (batch, seq) or (seq,) token ids. `temperature` 0 (the default) is greedy decoding;
    above 0 it samples from softmax(logits / temperature), optionally restricted to the `top_k` most likely
    tokens and the `top_p` nucleus, from a torch.Generator seeded with `seed` (None: a fresh random seed),
    so a seed gives the same tokens on every run on the same device. Generation stops after
    `max_new_tokens` or once every sequence has produced one of `eos_token_id` (an id or several); an
    ended sequence is padded with its EOS. `use_cache=False` recomputes the whole sequence each step (the
    reference the KV cache is tested against). Raises GenerateError for unusable values.
    """
    return decode(model, input_ids, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                  eos_token_id=eos_token_id, top_k=top_k, top_p=top_p, use_cache=use_cache).ids
