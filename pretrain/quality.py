"""The ship-readiness scorecard behind `pretrain inspect --quality`.

100 points in five categories: integrity 20, structure 20, provenance 25, hf_identity 20, tokenizer 15.
A checkpoint is ship-ready at 90 or more *and* when its claimed family does not contradict its tensors:
the INV-INIT-ARCH-MATCH-001 incident file must never be ship-ready, whatever else it carries.
Every shortfall comes with the command or edit that fixes it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.checkpoint import Header, parse_int
from pretrain.families import UNKNOWN, family_from_tensor_names, normalize_metadata_arch_family, stamp_command, stated_identity

SHIP_READY_THRESHOLD = 90
MAX_SCORE = 100

# Values people write when they do not know; they are not provenance.
_PLACEHOLDERS = {"", "unknown", "none", "n/a", "na", "todo", "tbd", "?", "null", "other"}

_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|layer|blocks|blk)\.([0-9]+)\.")
_EMBEDDING = re.compile(
    r"(?:^|\.)(?:embed_tokens|wte|embed_in|word_embeddings|token_embd)\.weight$|(?:^|\.)(?:backbone|rwkv)\.embeddings\.weight$"
)
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


@dataclass(frozen=True)
class Check:
    name: str
    points: int
    max_points: int
    detail: str


@dataclass(frozen=True)
class Category:
    name: str
    checks: tuple[Check, ...]

    @property
    def points(self) -> int:
        return sum(c.points for c in self.checks)

    @property
    def max_points(self) -> int:
        return sum(c.max_points for c in self.checks)


@dataclass(frozen=True)
class Scorecard:
    path: str
    categories: tuple[Category, ...]
    claimed_family: str | None
    inferred_family: str
    threshold: int = SHIP_READY_THRESHOLD
    fixes: tuple[str, ...] = field(default_factory=tuple)
    missing_provenance: tuple[str, ...] = ()  # provenance checks that failed: license, data_source, data_license

    @property
    def points(self) -> int:
        """The categories' points added up, before the provenance cap."""
        return sum(c.points for c in self.categories)

    @property
    def score(self) -> int:
        # Without its license or data provenance a checkpoint cannot ship, whatever else it has: it is
        # capped below the threshold so the score, the verdict and `--min-score 90` all say so.
        if self.missing_provenance:
            return min(self.points, self.threshold - 1)
        return self.points

    @property
    def capped(self) -> bool:
        return self.score < self.points

    @property
    def max_score(self) -> int:
        return sum(c.max_points for c in self.categories)

    @property
    def mismatch(self) -> bool:
        return self.claimed_family is not None and self.inferred_family != UNKNOWN and self.claimed_family != self.inferred_family

    @property
    def ship_ready(self) -> bool:
        return self.score >= self.threshold and not self.mismatch

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score": self.score,
            "points": self.points,
            "missing_provenance": list(self.missing_provenance),
            "max_score": self.max_score,
            "threshold": self.threshold,
            "ship_ready": self.ship_ready,
            "claimed_family": self.claimed_family,
            "inferred_family": self.inferred_family,
            "mismatch": self.mismatch,
            "categories": [
                {
                    "name": c.name,
                    "points": c.points,
                    "max_points": c.max_points,
                    "checks": [vars(check) for check in c.checks],
                }
                for c in self.categories
            ],
            "fixes": list(self.fixes),
        }


def _meaningful(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() not in _PLACEHOLDERS


def _check(name: str, ok: bool, max_points: int, good: str, bad: str) -> Check:
    return Check(name, max_points if ok else 0, max_points, good if ok else bad)


@dataclass(frozen=True)
class Identity:
    """The checkpoint's self-description, gathered from whichever format it is in."""

    architecture: str | None  # the family claim (metadata slug, else config/gguf architecture)
    hf_architecture: str | None
    hf_model_type: str | None


def identity_of(header: Header) -> Identity:
    return Identity(*stated_identity(header.metadata, header.config))


def _first_int(sources: list[dict[str, Any]], keys: tuple[str, ...]) -> int | None:
    for source in sources:
        for key in keys:
            value = parse_int(source.get(key))
            if value:
                return value
    return None


def derive_structure(header: Header) -> dict[str, int | None]:
    """hidden size, layer count and head count from config, GGUF metadata or tensor shapes."""
    config = header.config or {}
    gguf_arch = header.metadata.get("general.architecture", "")
    gguf = {k[len(gguf_arch) + 1 :]: v for k, v in header.metadata.items() if gguf_arch and k.startswith(gguf_arch + ".")}
    sources = [config, gguf]
    hidden = _first_int(sources, ("hidden_size", "n_embd", "d_model", "embedding_length"))
    layers = _first_int(sources, ("num_hidden_layers", "n_layer", "num_layers", "block_count"))
    heads = _first_int(sources, ("num_attention_heads", "n_head", "attention.head_count"))
    tensors = header.tensors
    if hidden is None:
        for name, info in tensors.items():
            if _EMBEDDING.search(name) and len(info.shape) == 2:
                hidden = info.shape[1]
                break
    if layers is None:
        # A hostile name's index can have thousands of digits; parse_int refuses it instead of int() raising.
        indices = {parse_int(m.group(1)) for name in tensors for m in [_LAYER_INDEX.search(name)] if m} - {None}
        layers = max(indices) + 1 if indices else None
    if heads is None:
        # Qwen3's per-head q_norm has head_dim elements, which with q_proj's rows gives the head count.
        for name, info in tensors.items():
            if name.endswith("self_attn.q_norm.weight") and len(info.shape) == 1 and info.shape[0]:
                q_proj = tensors.get(name.replace("q_norm.weight", "q_proj.weight"))
                if q_proj is not None and q_proj.shape and q_proj.shape[0] % info.shape[0] == 0:
                    heads = q_proj.shape[0] // info.shape[0]
                    break
    return {"hidden_size": hidden, "num_layers": layers, "num_heads": heads}


_TOKENIZER_FULL = ("tokenizer.json", "tokenizer.model", "spiece.model")


def tokenizer_evidence(header: Header) -> tuple[int, str]:
    """(points out of 15, what was found)."""
    path = Path(header.path)
    directory = path if header.format == "hf-dir" else path.parent
    for name in _TOKENIZER_FULL:
        if (directory / name).is_file():
            return 15, f"{directory / name}"
    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        return 15, f"{directory}/vocab.json + merges.txt"
    keys = [k for k in header.metadata if k == "tokenizer" or k.startswith("tokenizer.")]
    if keys:
        return 15, f"tokenizer metadata ({', '.join(sorted(keys)[:3])})"
    if (directory / "tokenizer_config.json").is_file():
        return 5, "only tokenizer_config.json (no vocabulary)"
    return 0, f"no tokenizer.json/tokenizer.model in {directory} and no tokenizer metadata"


def score_header(header: Header) -> Scorecard:
    """Score a checkpoint that read cleanly (an unreadable one never gets here: CheckpointError)."""
    names = header.tensor_names
    inferred = family_from_tensor_names(names)
    ident = identity_of(header)
    # The same claim the INV-INIT-ARCH-MATCH-001 gate judges, so the scorecard and the loader never disagree.
    claimed = header.claim.family
    mismatch = claimed is not None and inferred != UNKNOWN and claimed != inferred
    family = inferred if inferred != UNKNOWN else claimed

    float_dtypes = Counter(t.dtype for t in header.tensors.values() if t.dtype in _FLOAT_DTYPES)
    integrity = Category(
        "integrity",
        (
            Check("header_and_offsets", 10, 10, f"{header.format} header parsed; offsets contiguous and in bounds"),
            _check("tensors_present", bool(names), 5, f"{len(names)} tensors", "the checkpoint holds no tensors"),
            _check(
                "uniform_float_dtype",
                len(float_dtypes) <= 1,
                5,
                f"floating tensors all {next(iter(float_dtypes), 'absent')}",
                f"mixed floating dtypes {dict(float_dtypes)} (a partial cast?)",
            ),
        ),
    )

    structure_facts = derive_structure(header)
    structure = Category(
        "structure",
        (
            _check(
                "family",
                family is not None and not mismatch,
                5,
                f"family {family}",
                "claimed and inferred families disagree" if mismatch else "family neither inferable nor claimed",
            ),
            *(
                _check(key, structure_facts[key] is not None, 5, f"{key} = {structure_facts[key]}", f"{key} not derivable (no config metadata)")
                for key in ("hidden_size", "num_layers", "num_heads")
            ),
        ),
    )

    md = header.metadata
    license_value = md.get("license") or md.get("general.license")
    provenance = Category(
        "provenance",
        (
            _check("license", _meaningful(license_value), 10, f"license {license_value}", "no license"),
            _check("data_source", _meaningful(md.get("data_source")), 8, f"data_source {md.get('data_source')}", "no data_source"),
            _check("data_license", _meaningful(md.get("data_license")), 7, f"data_license {md.get('data_license')}", "no data_license"),
        ),
    )

    def consistent(value: str | None) -> bool:
        mapped = normalize_metadata_arch_family(value)
        return mapped is not None and family is not None and mapped == family and not mismatch

    hf_identity = Category(
        "hf_identity",
        (
            _check(
                "architecture",
                consistent(ident.architecture),
                8,
                f"architecture {ident.architecture} matches the tensors",
                "architecture missing" if ident.architecture is None else f"architecture {ident.architecture!r} " + ("contradicts the tensors" if mismatch else "is not a known family"),
            ),
            _check(
                "hf_architecture",
                consistent(ident.hf_architecture),
                6,
                f"hf_architecture {ident.hf_architecture}",
                "hf_architecture missing" if ident.hf_architecture is None else f"hf_architecture {ident.hf_architecture!r} is not {family}'s",
            ),
            _check(
                "hf_model_type",
                consistent(ident.hf_model_type),
                6,
                f"hf_model_type {ident.hf_model_type}",
                "hf_model_type missing" if ident.hf_model_type is None else f"hf_model_type {ident.hf_model_type!r} is not {family}'s",
            ),
        ),
    )

    tok_points, tok_detail = tokenizer_evidence(header)
    tokenizer = Category("tokenizer", (Check("tokenizer", tok_points, 15, tok_detail),))

    categories = (integrity, structure, provenance, hf_identity, tokenizer)
    fixes = _fixes(header, categories, family, structure_facts)
    return Scorecard(
        path=header.path,
        categories=categories,
        claimed_family=claimed,
        inferred_family=inferred,
        fixes=tuple(fixes),
        missing_provenance=tuple(_short(categories, "provenance")),
    )


def _short(categories: tuple[Category, ...], name: str) -> list[str]:
    category = next(c for c in categories if c.name == name)
    return [c.name for c in category.checks if c.points < c.max_points]


# Only a person knows these; quoted so the shell passes them, and stamp refuses a '<...>' left unfilled.
_PROVENANCE_PLACEHOLDERS = {"license": "'<SPDX-ID>'", "data_source": "'<what it was trained on>'", "data_license": "'<SPDX-ID>'"}


def stamp_fix_command(header: Header, family: str | None, fields: set[str]) -> str:
    """A `pretrain stamp` command supplying `fields` (a .safetensors file or an HF directory).

    Placeholders in '<...>' stand where only a person knows the value (the license); stamp refuses one left unfilled.
    """
    flags = [(f"--{key.replace('_', '-')}", placeholder) for key, placeholder in _PROVENANCE_PLACEHOLDERS.items() if key in fields]
    identity = bool(fields & {"architecture", "hf_architecture", "hf_model_type"})
    return stamp_command(header.path, family, header.tensor_names, identity=identity, flags=flags)


def _fixes(
    header: Header, categories: tuple[Category, ...], family: str | None, structure: dict[str, int | None]
) -> list[str]:
    fixes: list[str] = []
    missing = set(_short(categories, "hf_identity")) | set(_short(categories, "provenance"))
    if missing:
        if header.format in ("safetensors", "hf-dir"):
            fixes.append(stamp_fix_command(header, family, missing))
        else:
            fixes.append("re-export the GGUF with the right general.architecture and general.license")
    if any(structure[k] is None for k in structure):
        fixes.append("record the model config as JSON in the checkpoint's metadata['config'] when writing it (write_checkpoint(..., {'config': {...}}))")
    if _short(categories, "tokenizer"):
        directory = Path(header.path) if header.format == "hf-dir" else Path(header.path).parent
        fixes.append(f"copy the training tokenizer's tokenizer.json into {directory}")
    return fixes
