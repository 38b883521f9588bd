"""`pretrain generate CKPT --prompt TEXT`: load a checkpoint strictly, tokenize, generate, print the completion.

The work is pretrain.generate.decode (KV cache, greedy or seeded sampling) and pretrain.tokenizer (the
checkpoint's byte-level tokenizer or its directory's own); this module parses flags, loads, prints and
maps errors to exit codes: 0 done, 2 bad input (a flag, an unloadable checkpoint, no usable tokenizer),
130 interrupted. The completion goes to stdout and tokens/s to stderr, so `> out.txt` keeps only the text;
`--json` prints one object with both.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from typing import Any

from pretrain.terminal import error, escape, say, unicode_safe

# pretrain.generate's purpose, kept here: importing that module for it would import torch into `--help`.
DESCRIPTION = ("`pretrain generate`: greedy or sampled text from a checkpoint, with a KV cache, on CPU or "
               "CUDA; the completion on stdout, tokens/s on stderr.")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is not allowed; give 1 or more")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help="generate text from a checkpoint (greedy or sampled, KV cache, tokens/s)",
        description=DESCRIPTION,
        epilog="Exit codes: 0 done, 2 bad input (a flag, an unloadable checkpoint, no usable tokenizer), "
               "130 interrupted. See docs/pretrain-generate.md.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="a .safetensors checkpoint of `pretrain train`, or an HF model directory")
    p.add_argument("--prompt", metavar="TEXT", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", metavar="N", type=_non_negative_int, default=64,
                   help="generate at most N tokens (fewer at the tokenizer's EOS; default: 64)")
    p.add_argument("--temperature", metavar="T", type=_finite_float, default=0.0,
                   help="0: greedy (the default); above 0: sample from softmax(logits / T)")
    p.add_argument("--top-k", metavar="K", type=_positive_int, default=None,
                   help="sample only among the K most likely tokens (with --temperature > 0)")
    p.add_argument("--top-p", metavar="P", type=_finite_float, default=None,
                   help="sample only from the smallest set of tokens whose probability reaches P, 0 < P <= 1")
    p.add_argument("--seed", metavar="S", type=_non_negative_int, default=None,
                   help="seed for sampling: the same seed gives the same text on the same device")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run (auto: cuda when available; default: auto)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: prompt, completion, token ids, tokens/s for prefill and decode")
    p.set_defaults(func=run)


def printable(text: str) -> str:
    """The completion as it may reach a terminal: lines and tabs kept, any other control character escaped.

    A model's output is untrusted text: a byte-level model can emit ESC, which would drive the terminal.
    """
    return "".join(c if c in "\n\t" else escape(c) for c in text)


def _refusal(ckpt: str, exc: Exception, header: Any) -> str:
    """The one-line message for a checkpoint the load path refused; a contradicted claim gets its stamp command."""
    from pretrain.families import InitArchMismatchError, fixed_name, stamp_recipe

    if isinstance(exc, InitArchMismatchError):
        return (f"{ckpt}: the claim ({exc.claimed}) contradicts the tensor names ({exc.inferred}'s), so it is not "
                f"loaded (INV-INIT-ARCH-MATCH-001); if the tensors are right, fix the claim with "
                f"`{stamp_recipe(ckpt, exc.inferred, header.tensor_names)}`, then generate from "
                f"{shlex.quote(fixed_name(ckpt))}")
    return str(exc)


def run(args: argparse.Namespace) -> int:
    import torch

    from pretrain import checkpoint, loading
    from pretrain.families import InitArchMismatchError
    from pretrain.generate import GenerateError, check_request, decode
    from pretrain.model import LoadError
    from pretrain.tokenizer import TokenizerError, tokenizer_for

    try:
        check_request(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    except GenerateError as exc:
        return error(_flag_message(exc))
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        return error(f"--prompt is not valid UTF-8 text (character {exc.start + 1} is an undecodable byte); "
                     "give the prompt as UTF-8")
    if args.device == "cuda" and not torch.cuda.is_available():
        return error("--device cuda: no CUDA device is available here; use --device cpu or auto")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    header = None
    try:
        header = checkpoint.read_header(args.checkpoint)
        loading.check_loadable(header)
        tokenizer = tokenizer_for(header)  # before the weights are read: a missing tokenizer costs a header read
        model = loading.load_from_header(header, device, torch.float32, source=args.checkpoint).model.eval()
    except (checkpoint.CheckpointError, InitArchMismatchError, LoadError, TokenizerError) as exc:
        return error(_refusal(args.checkpoint, exc, header))
    prompt_ids = tokenizer.encode(args.prompt)
    if not prompt_ids:
        return error(f"--prompt {args.prompt!r} gives no tokens with the tokenizer {tokenizer.name}; give some text")
    limit = model.config.max_position_embeddings
    if len(prompt_ids) + args.max_new_tokens > limit:
        room = max(limit - len(prompt_ids), 0)
        return error(f"--max-new-tokens {args.max_new_tokens}: the prompt's {len(prompt_ids)} tokens plus "
                     f"{args.max_new_tokens} new ones exceed the model's max_position_embeddings {limit}; "
                     f"pass --max-new-tokens {room} or less" + ("" if room else ", with a shorter --prompt"))
    try:
        result = decode(model, torch.tensor([prompt_ids]), max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature, seed=args.seed, eos_token_id=tokenizer.eos_token_ids,
                        top_k=args.top_k, top_p=args.top_p)
    except GenerateError as exc:  # an id the tokenizer gave is outside the model's vocabulary
        return error(f"{args.checkpoint}: {exc}: the tokenizer {tokenizer.name} does not belong to this model; "
                     "put the model's own tokenizer beside it")
    new_ids = result.ids[0, result.prompt_tokens:].tolist()
    stopped = "eos" if new_ids and new_ids[-1] in tokenizer.eos_token_ids else "max_new_tokens"
    shown_ids = new_ids[:-1] if stopped == "eos" else new_ids  # the EOS token is no text
    completion = tokenizer.decode(shown_ids)
    speed = {
        "prompt_tokens": result.prompt_tokens,
        "new_tokens": result.new_tokens,
        "prefill_s": result.prefill_s,
        "decode_s": result.decode_s,
        "prefill_tokens_per_s": result.prefill_tokens_per_s if result.new_tokens else None,
        "decode_tokens_per_s": result.decode_tokens_per_s,
    }
    if args.json:
        print(json.dumps(unicode_safe({
            "checkpoint": args.checkpoint, "prompt": args.prompt, "completion": completion,
            "prompt_ids": prompt_ids, "completion_ids": new_ids, "stopped": stopped,
            "tokenizer": tokenizer.name, "device": str(device), "temperature": args.temperature,
            "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed, **speed,
        }), indent=2))
        return 0
    sys.stdout.write(printable(completion) + "\n")
    decode_rate = "n/a" if speed["decode_tokens_per_s"] is None else f"{speed['decode_tokens_per_s']:.1f}"
    prefill_rate = "n/a" if speed["prefill_tokens_per_s"] is None else f"{speed['prefill_tokens_per_s']:.1f}"
    say(f"pretrain generate: {result.new_tokens} new tokens (stopped at {stopped.replace('_', '-')}) on {device}: "
        f"prefill {result.prompt_tokens} tokens at {prefill_rate} tokens/s, decode at {decode_rate} tokens/s",
        file=sys.stderr)
    return 0


def _flag_message(exc: Exception) -> str:
    """A library GenerateError ("max_new_tokens must ...") as the flag's message ("--max-new-tokens must ...")."""
    name, _, rest = str(exc).partition(" ")
    return f"--{name.replace('_', '-')} {rest}"
