"""`pretrain export CKPT --format {hf,gguf} -o OUT`: a checkpoint as an HF directory or a llama.cpp GGUF file.

The work is pretrain.export_hf.export_hf and pretrain.export_gguf.export_gguf; this module parses the
flags, calls one of them, prints what was written (and what was not: tokenizer files) and maps a refusal
to exit 2. It imports neither torch nor numpy until the command runs (`pretrain --help` stays light).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from pretrain.terminal import error, say, unicode_safe

FORMATS = ("hf", "gguf")
DTYPES = ("f32", "f16", "q8_0")  # pretrain.export_gguf.DTYPES (kept here: that module imports torch's loader)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a checkpoint as an HF directory (transformers) or a GGUF file (llama.cpp)",
        description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 written, 2 bad input (an unloadable checkpoint, an existing -o without --force, a "
               "bad flag), 130 interrupted (nothing left behind). See docs/pretrain-export.md.")
    p.add_argument("checkpoint", metavar="CKPT", help="a .safetensors checkpoint or HF directory that loads strictly")
    p.add_argument("--format", required=True, choices=FORMATS, help="hf: a save_pretrained directory; gguf: one file")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the directory (hf) or file (gguf) to write")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="GGUF tensor type: f32, f16, or q8_0 through gguf's quantizer (default: f32); "
                        "hf is always written in f32")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pretrain.checkpoint import CheckpointError, WriteInterrupted
    from pretrain.export_hf import ExportError

    if args.format == "hf" and args.dtype not in (None, "f32"):
        return error(f"--dtype {args.dtype} applies to --format gguf only; the hf export is f32 "
                     f"(drop --dtype, or pass --format gguf)")
    try:
        if args.format == "hf":
            from pretrain.export_hf import export_hf

            result = export_hf(args.checkpoint, args.output, force=args.force)
        else:
            from pretrain.export_gguf import export_gguf

            result = export_gguf(args.checkpoint, args.output, dtype=args.dtype or "f32", force=args.force)
    except (ExportError, CheckpointError) as exc:
        return error(str(exc))
    except WriteInterrupted as exc:
        say(f"pretrain: export interrupted by {exc}; nothing was left at {args.output}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        return error(f"-o {args.output}: cannot write the export: {exc.strerror or exc}; check free space and "
                     "permissions, then retry")
    if args.json:
        print(json.dumps(unicode_safe(asdict(result)), indent=2))
        return 0
    say(f"exported {result.output} ({result.format}, {result.dtype}, {result.tensors} tensors) from {result.source}")
    say(f"  files: {', '.join(result.files)}")
    for note in result.notes:
        say(f"  note: {note}")
    return 0
