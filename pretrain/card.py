"""`pretrain card CKPT [--metrics DIR/metrics.jsonl] -o README.md`: a Hugging Face model card from a checkpoint.

Everything comes from the checkpoint's header (its metadata and config; no tensor is read, and neither
torch nor numpy is imported) and its run's metrics.jsonl (by default the one beside a trainer's
model.safetensors):

- YAML frontmatter: `license` (the Hub's identifier for the recorded SPDX id, else `other` with
  `license_name`), `library_name`, `tags`, `datasets` (the recorded data_source), `base_model` (the
  recorded --init, when there is one), `model-index` with the validation loss and perplexity. The
  frontmatter is built through huggingface_hub's ModelCardData/EvalResult (the Hub's own model-index
  shape), dumped with yaml.safe_dump (user text is quoted by the YAML library, never pasted), and read back
  through huggingface_hub's ModelCard, which must give the same values; nothing touches the network
  (ModelCard.validate, which asks the Hub, is never called);
- the body: architecture and training tables, the loss trajectory (a table and an inline SVG plot), intended
  and not-recommended uses, limitations, how to load it with `pretrain` and with `transformers`, and how to
  reproduce the run (the recorded `pretrain train` command, when the checkpoint has one).

Untrusted text (data_source, paths, license strings) is escaped for Markdown and HTML where it lands in the
body. The card is written atomically (pretrain.atomic).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pretrain.terminal import error, say, unicode_safe

# Licence identifiers the Hub accepts in `license:` (huggingface.co/docs/hub/repositories-licenses), the
# common ones; a recorded licence outside this list is written as `license: other` + `license_name:`.
HUB_LICENSES = frozenset((
    "apache-2.0", "mit", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "wtfpl", "ecl-2.0", "epl-1.0",
    "epl-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1",
    "lgpl-3.0", "isc", "mpl-2.0", "odc-by", "odbl", "openrail", "osl-3.0", "postgresql", "ofl-1.1", "ncsa",
    "unlicense", "zlib", "pddl", "llama2", "llama3", "gemma", "unknown", "other",
))
TASK = ("text-generation", "Causal language modeling")
DEFAULT_METRICS = "metrics.jsonl"
MAX_TRAJECTORY_ROWS = 20  # the loss table shows at most this many rows (evenly spaced, the last always)


class CardError(ValueError):
    """The card cannot be written (unreadable checkpoint or metrics, bad -o); the message names the fix."""


@dataclass(frozen=True)
class CardResult:
    source: str
    output: str
    metrics: str | None
    frontmatter: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)  # what the card could not say, and why


# ---------------------------------------------------------------- facts

def hub_license(recorded: str) -> dict[str, str]:
    """The frontmatter licence keys for a recorded licence: the Hub id, else `other` with the name as recorded."""
    text = recorded.strip()
    if not text:
        return {"license": "unknown"}
    if text.lower() in HUB_LICENSES:
        return {"license": text.lower()}
    return {"license": "other", "license_name": text}


def card_license(frontmatter: dict[str, Any]) -> str:
    """The licence a card's frontmatter states: `license_name` under `license: other`, else `license`."""
    value = frontmatter.get("license")
    if value == "other" and frontmatter.get("license_name"):
        value = frontmatter["license_name"]
    return str(value) if value is not None else ""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of a metrics.jsonl; CardError naming the line for anything else."""
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"--metrics {path}: cannot read it ({getattr(exc, 'strerror', None) or exc}); pass the "
                        "run's metrics.jsonl") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise CardError(f"{path}:{number}: not a JSON line; pass the metrics.jsonl `pretrain train` wrote") from None
        if not isinstance(row, dict):
            raise CardError(f"{path}:{number}: a JSON {type(row).__name__}, expected an object; pass the "
                            "metrics.jsonl `pretrain train` wrote")
        rows.append(row)
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _series(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    out = []
    for row in rows:
        step, value = row.get("step"), _number(row.get(key))
        if isinstance(step, int) and not isinstance(step, bool) and value is not None:
            out.append((step, value))
    return out


def _sample(points: list[tuple[int, float]], n: int) -> list[tuple[int, float]]:
    if len(points) <= n:
        return points
    picked = [points[round(i * (len(points) - 1) / (n - 1))] for i in range(n)]
    return list(dict.fromkeys(picked))


# ---------------------------------------------------------------- text out

# What can start Markdown syntax inside a line or a table cell (`.`, `-`, `#` only matter at a line's start,
# and a cell never starts a line).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: object) -> str:
    """Untrusted text as inert Markdown inline text: HTML characters as entities, Markdown syntax escaped,
    one line (control characters and newlines shown as escapes)."""
    from pretrain.terminal import escape

    s = escape(str(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def code_block(text: str, lang: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside, so the text cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def loss_svg(train: list[tuple[int, float]], val: list[tuple[int, float]], width: int = 480, height: int = 200) -> str:
    """An inline SVG line plot of train (blue) and validation (orange) loss against step; numbers only."""
    points = train + val
    if not points:
        return ""
    pad = 30
    steps = [s for s, _ in points]
    losses = [v for _, v in points]
    s0, s1 = min(steps), max(steps) or 1
    l0, l1 = min(losses), max(losses)
    if s1 == s0:
        s1 = s0 + 1
    if l1 == l0:
        l1 = l0 + 1

    def xy(step: int, loss: float) -> str:
        x = pad + (step - s0) / (s1 - s0) * (width - 2 * pad)
        y = height - pad - (loss - l0) / (l1 - l0) * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="loss by step">',
             f'<rect width="{width}" height="{height}" fill="white" stroke="#ccc"/>']
    for series, colour in ((train, "#1f77b4"), (val, "#ff7f0e")):
        if series:
            lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{" ".join(xy(s, v) for s, v in series)}"/>')
    lines.append(f'<text x="{pad}" y="{pad - 10}" font-size="11">loss {l1:.3f}</text>')
    lines.append(f'<text x="{pad}" y="{height - 8}" font-size="11">loss {l0:.3f}; step {s0}..{s1}; '
                 f'blue train, orange validation</text>')
    lines.append("</svg>")
    return "\n".join(lines)


# ---------------------------------------------------------------- the card

def frontmatter_for(metadata: dict[str, str], name: str, family: str | None) -> dict[str, Any]:
    """The frontmatter dict, shaped by huggingface_hub's ModelCardData (model-index from EvalResult)."""
    from huggingface_hub import EvalResult, ModelCardData

    data_source = metadata.get("data_source", "").strip()
    val_loss = _number(metadata.get("val_loss"))
    results = []
    if val_loss is not None:
        common = dict(task_type=TASK[0], task_name=TASK[1], dataset_type="text",
                      dataset_name=data_source or "validation split", dataset_split="validation")
        results = [EvalResult(metric_type="loss", metric_value=val_loss, metric_name="Validation loss", **common),
                   EvalResult(metric_type="perplexity", metric_value=_perplexity(val_loss),
                              metric_name="Validation perplexity", **common)]
    licence = hub_license(metadata.get("license", ""))
    data = ModelCardData(
        license=licence["license"], library_name="transformers",
        tags=["pretrain", "causal-lm", "text-generation", *([family] if family else [])],
        datasets=[data_source] if data_source else None,
        base_model=metadata.get("init") or None, pipeline_tag="text-generation",
        model_name=name, eval_results=results or None,
        **({"license_name": licence["license_name"]} if "license_name" in licence else {}),
    )
    return data.to_dict()


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def frontmatter_text(frontmatter: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(frontmatter, sort_keys=False, allow_unicode=True, width=1000)


def parse_card(text: str, where: str = "card") -> dict[str, Any]:
    """A card's frontmatter as huggingface_hub's ModelCard reads it (offline); CardError when it does not parse."""
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as exc:  # huggingface_hub raises ValueError, yaml errors, KeyError for a bad model-index
        raise CardError(f"{where}: huggingface_hub cannot read its frontmatter ({type(exc).__name__}: {exc}); "
                        "rewrite it with `pretrain card`") from None
    return card.data.to_dict()


def build_card(checkpoint: str | os.PathLike[str], metrics: str | os.PathLike[str] | None = None) -> tuple[str, dict[str, Any], str | None, tuple[str, ...]]:
    """(card text, frontmatter, metrics path used, notes) for `checkpoint`; raises CardError."""
    from pretrain.checkpoint import CheckpointError, read_header

    try:
        header = read_header(checkpoint)
    except CheckpointError as exc:
        raise CardError(str(exc)) from None
    source = Path(checkpoint)
    metadata = dict(header.metadata)
    config = dict(header.config or {})
    family = header.claim.family
    name = source.resolve().parent.name if source.is_file() and source.name == "model.safetensors" else (
        source.stem if source.is_file() else source.name)
    notes: list[str] = []
    metrics_path: Path | None = Path(metrics) if metrics is not None else None
    if metrics_path is None and source.is_file() and (source.parent / DEFAULT_METRICS).is_file():
        metrics_path = source.parent / DEFAULT_METRICS
    rows = read_metrics(metrics_path) if metrics_path is not None else []
    if metrics_path is None:
        notes.append(f"no metrics.jsonl beside {source} and no --metrics: the card has no loss trajectory")
    if not metadata.get("license"):
        notes.append("no license recorded: the card says `license: unknown`; stamp one with "
                     f"`pretrain stamp {shlex.quote(str(source))} --license SPDX -o OUT`")
    front = frontmatter_for(metadata, name, family)
    parsed = parse_card(f"---\n{frontmatter_text(front)}---\n", "the generated card")
    if parsed != front:
        raise CardError("huggingface_hub reads the generated frontmatter back differently; report this as a bug")

    val_loss = _number(metadata.get("val_loss"))
    train_points, val_points = _series(rows, "loss"), _series(rows, "val_loss")
    params = sum(math.prod(t.shape) for t in header.tensors.values())
    q = shlex.quote(str(source))
    out: list[str] = [f"---\n{frontmatter_text(front)}---", "", f"# {md(name)}", ""]
    out.append(f"A {md(family or 'unknown-family')} causal language model trained with `pretrain train` "
               f"(this repository's trainer); {params:,} parameters.")
    out += ["", "## Architecture", "", "| field | value |", "|---|---|"]
    rows_arch = [("family", family or "unknown"), ("HF class", (config.get("architectures") or ["?"])[0]),
                 ("layers", config.get("num_hidden_layers")), ("hidden size", config.get("hidden_size")),
                 ("attention heads", config.get("num_attention_heads")),
                 ("key/value heads", config.get("num_key_value_heads")), ("head dim", config.get("head_dim")),
                 ("MLP width", config.get("intermediate_size")), ("vocabulary", config.get("vocab_size")),
                 ("RoPE base", config.get("rope_theta")), ("tied embeddings", config.get("tie_word_embeddings")),
                 ("max positions", config.get("max_position_embeddings")), ("parameters", f"{params:,}")]
    out += [f"| {k} | {md(v)} |" for k, v in rows_arch]
    out += ["", "## Training", "", "| field | value |", "|---|---|"]
    last = rows[-1] if rows else {}
    rows_train = [("steps", metadata.get("step", "not recorded")),
                  ("validation loss", f"{val_loss:.4f}" if val_loss is not None else "not recorded"),
                  ("validation perplexity", f"{_perplexity(val_loss):.3f}" if val_loss is not None else "not recorded"),
                  ("data", metadata.get("data_source") or "not recorded"),
                  ("data license", metadata.get("data_license") or "not recorded"),
                  ("license", metadata.get("license") or "not recorded"),
                  ("tokenizer", metadata.get("tokenizer") or "not recorded"),
                  ("initialised from", metadata.get("init") or "scratch"),
                  ("tokens seen", last.get("tokens", "not recorded")),
                  ("wall time (s)", f"{_number(last.get('elapsed_s')):.1f}" if _number(last.get("elapsed_s")) is not None
                   else "not recorded")]
    out += [f"| {k} | {md(v)} |" for k, v in rows_train]
    out += ["", "## Loss trajectory", ""]
    if rows:
        val_by_step = dict(val_points)
        train_by_step = dict(train_points)
        all_steps = sorted(set(val_by_step) | set(train_by_step))
        steps = _sample([(s, 0.0) for s in all_steps], MAX_TRAJECTORY_ROWS)
        out += ["| step | train loss | validation loss |", "|---|---|---|"]
        for s, _ in steps:
            t, v = train_by_step.get(s), val_by_step.get(s)
            out.append(f"| {s} | {f'{t:.4f}' if t is not None else ''} | {f'{v:.4f}' if v is not None else ''} |")
        out += ["", loss_svg(train_points, val_points)]
    else:
        out.append("No metrics.jsonl was given, so no trajectory is shown (`pretrain card CKPT --metrics "
                   "RUN/metrics.jsonl -o README.md`).")
    out += ["", "## Intended uses", "",
            "- Research on small language models: training dynamics, evaluation, tooling and release pipelines.",
            "- A tiny reference model for testing loaders, exporters and inference engines.",
            "", "## Not recommended", "",
            "- Any product or decision that relies on its text: it is a small model trained on little data.",
            "- Generating text about people, or anything whose errors could harm someone.",
            "", "## Limitations", "",
            "- Its knowledge is limited to the training data named above, and it will produce fluent-looking "
            "nonsense outside it.",
            "- The validation loss is measured on a held-out split of the same data, not on a benchmark.",
            ]
    if metadata.get("tokenizer") == "bytes":
        out.append("- The tokenizer is byte-level: token ids 0-255 are the UTF-8 bytes of the text; there are "
                   "no special tokens and no Hugging Face tokenizer files.")
    out += ["", "## How to load", "", "With `pretrain`:", "",
            code_block("from pretrain.model import from_pretrained\n\n"
                       f"model = from_pretrained({str(source)!r})  # strict: every weight, or an error", "python"),
            "", "With `transformers`, after `pretrain export` writes an HF directory:", "",
            code_block(f"pretrain export {q} --format hf -o model-hf", "bash"), "",
            code_block("from transformers import AutoModelForCausalLM\n\n"
                       "model = AutoModelForCausalLM.from_pretrained(\"model-hf\")", "python"),
            "", "## How to reproduce", ""]
    command = metadata.get("train_command")
    if command:
        out += ["The run's recorded command:", "", code_block(command, "bash")]
    else:
        notes.append("no train_command recorded in the checkpoint: the card names the recorded shape, not the run")
        shape = [f"--family {family}" if family else "",
                 *(f"--{flag} {config[key]}" for flag, key in (
                     ("layers", "num_hidden_layers"), ("hidden", "hidden_size"), ("heads", "num_attention_heads"),
                     ("kv-heads", "num_key_value_heads"), ("head-dim", "head_dim"),
                     ("intermediate", "intermediate_size"), ("vocab", "vocab_size")) if key in config)]
        out += ["The checkpoint does not record the command that trained it; this trains a model of the same "
                "shape (the learning rate, batch and seed it used are not recorded):", "",
                code_block(" ".join(["pretrain train", *[s for s in shape if s],
                                     f"--steps {metadata.get('step', 50)}", "--out run"]), "bash")]
    out.append("")
    text = "\n".join(out)
    return text, front, str(metrics_path) if metrics_path is not None else None, tuple(notes)


def write_card(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str],
               metrics: str | os.PathLike[str] | None = None, *, force: bool = False) -> CardResult:
    """Build the card and write it to `out` atomically; an existing `out` is refused unless `force`."""
    from pretrain.atomic import atomic_write

    target = Path(out)
    if target.exists() and target.resolve() == Path(checkpoint).resolve():
        raise CardError(f"-o {target} is the checkpoint itself; give the card's path, e.g. -o README.md")
    if target.exists() and not force:
        raise CardError(f"-o {target} already exists; pass --force to replace it, or choose another -o")
    if not target.parent.is_dir():
        raise CardError(f"-o {target}: directory {target.parent} does not exist; create it "
                        f"(mkdir -p {target.parent}) or choose another -o")
    text, front, used, notes = build_card(checkpoint, metrics)
    atomic_write(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return CardResult(source=str(checkpoint), output=str(target), metrics=used, frontmatter=front, notes=notes)


# ---------------------------------------------------------------- the CLI

def run(args: argparse.Namespace) -> int:
    from pretrain.checkpoint import CheckpointError, WriteInterrupted

    try:
        result = write_card(args.checkpoint, args.output, args.metrics, force=args.force)
    except (CardError, CheckpointError) as exc:
        return error(str(exc))
    except WriteInterrupted as exc:
        say(f"pretrain: card interrupted by {exc}; {args.output} is as it was", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        return error(f"-o {args.output}: cannot write the card: {exc.strerror or exc}; check free space and "
                     "permissions, then retry")
    if args.json:
        print(json.dumps(unicode_safe(asdict(result)), indent=2))
        return 0
    say(f"wrote {result.output} (model card for {result.source}"
        + (f", metrics {result.metrics})" if result.metrics else ")"))
    for note in result.notes:
        say(f"  note: {note}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("card", help="write a Hugging Face model card (README.md) for a checkpoint",
                              description=__doc__.splitlines()[0],
                              epilog="Exit codes: 0 written, 2 bad input. See docs/pretrain-export.md.")
    p.add_argument("checkpoint", metavar="CKPT", help="a .safetensors checkpoint or HF directory")
    p.add_argument("--metrics", metavar="PATH", help="the run's metrics.jsonl (default: the one beside CKPT)")
    p.add_argument("-o", "--output", required=True, metavar="README.md", help="where to write the card")
    p.add_argument("--force", action="store_true", help="replace an existing card")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
