"""`pretrain inspect`: what a checkpoint holds, what it claims to be, what its tensors say it is.

Reads headers only (safetensors, HF directory, GGUF), so it is instant on any size of checkpoint.
`--quality` adds the ship-readiness scorecard from pretrain.quality; `--min-score N` and
`--check-arch` turn it into a gate (exit 1).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from pretrain.checkpoint import CheckpointError, Header, read_header
from pretrain.families import UNKNOWN, family_from_tensor_names, stamp_recipe
from pretrain.quality import Scorecard, score_header
from pretrain.terminal import clip, error, say, unicode_safe


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def summarize(header: Header) -> dict[str, Any]:
    inferred = family_from_tensor_names(header.tensor_names)
    claim = header.claim
    claimed = claim.family
    agrees: bool | None = None if claimed is None or inferred == UNKNOWN else claimed == inferred
    return {
        "path": header.path,
        "format": header.format,
        "tensors": {
            "count": len(header.tensors),
            "dtypes": dict(sorted(Counter(t.dtype for t in header.tensors.values()).items())),
            "total_bytes": header.total_nbytes,
        },
        "shards": list(header.shards),
        "metadata": header.metadata,
        "claim": claim.text,
        "claim_source": claim.source,
        "claimed_family": claimed,
        "inferred_family": inferred,
        "agrees": agrees,
        "salvage": stamp_recipe(header.path, inferred, header.tensor_names) if agrees is False else None,
    }


def print_summary(summary: dict[str, Any]) -> None:
    t = summary["tensors"]
    say(f"{summary['path']} ({summary['format']})")
    dtypes = ", ".join(f"{d} x{n}" for d, n in t["dtypes"].items()) or "none"
    say(f"  tensors: {t['count']} ({dtypes}), {human_bytes(t['total_bytes'])}")
    if summary["shards"] and len(summary["shards"]) > 1:
        say(f"  shards: {len(summary['shards'])}")
    if summary["metadata"]:
        say("  metadata:")
        for key, value in sorted(summary["metadata"].items()):
            say(f"    {clip(key, 60)}: {clip(value)}")
    else:
        say("  metadata: none")
    claim = summary["claim"]
    claimed = summary["claimed_family"]
    where = f" in {summary['claim_source']}" if summary["claim_source"] else ""
    say(f"  claimed family: {claimed or 'none'}" + (f" (from {claim!r}{where})" if claim else " (no architecture claim)"))
    say(f"  inferred family: {summary['inferred_family']} (from tensor names)")
    if summary["agrees"] is True:
        say("  agreement: yes")
    elif summary["agrees"] is False:
        say(f"  agreement: NO - the claim ({claimed}) contradicts the tensors ({summary['inferred_family']}); "
            "loading it with --init is refused (INV-INIT-ARCH-MATCH-001). Fix with:")
        say(f"    {summary['salvage']}")
    else:
        say("  agreement: not checkable (" + ("no usable claim" if claimed is None else "tensor names do not identify a family") + ")")


def print_scorecard(card: Scorecard) -> None:
    verdict = "ship-ready" if card.ship_ready else "NOT ship-ready"
    extra = " (claim contradicts tensors)" if card.mismatch else ""
    if card.missing_provenance:
        capped = f", capped from {card.points}" if card.capped else ""
        extra += f" (missing provenance: {', '.join(card.missing_provenance)}{capped})"
    say(f"quality: {card.score}/{card.max_score} ({verdict}: threshold {card.threshold}{extra})")
    for category in card.categories:
        say(f"  {category.name:<12} {category.points:>3}/{category.max_points}")
        for check in category.checks:
            mark = "ok " if check.points == check.max_points else "-- "
            say(f"    {mark}{check.name:<20} {check.points:>2}/{check.max_points}  {clip(check.detail, 160)}")
    if card.fixes:
        placeholder = any("'<" in fix for fix in card.fixes)
        say("to fix:" + (" (replace each '<...>' with the real value first)" if placeholder else ""))
        for fix in card.fixes:
            say(f"  {fix}")


def run(args: argparse.Namespace) -> int:
    try:
        header = read_header(args.path)
    except CheckpointError as exc:
        return error(str(exc))
    summary = summarize(header)
    quality = args.quality or args.min_score is not None
    card = score_header(header) if quality else None
    if args.json:
        out = dict(summary)
        if card is not None:
            out["quality"] = card.to_dict()
        print(json.dumps(unicode_safe(out), indent=2))  # ASCII-only JSON: nothing to escape
    else:
        print_summary(summary)
        if card is not None:
            print_scorecard(card)
    status = 0
    if args.check_arch and summary["agrees"] is False:
        status = 1
    if card is not None and args.min_score is not None and card.score < args.min_score:
        if not args.json:
            say(f"pretrain: score {card.score} is below --min-score {args.min_score}; apply the fixes above")
        status = 1
    return status


def _score(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 0..100, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show a checkpoint's tensors, metadata and family check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("path", help=".safetensors file, HF model directory or .gguf file")
    parser.add_argument("--quality", action="store_true", help="add the 0-100 ship-readiness scorecard")
    parser.add_argument("--min-score", type=_score, metavar="N", help="exit 1 when the quality score is below N (implies --quality)")
    parser.add_argument("--check-arch", action="store_true", help="exit 1 when the claimed family contradicts the tensors")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)
