"""`pretrain stamp`: rewrite a .safetensors checkpoint's metadata, leaving every tensor byte as it was.

The salvage for INV-INIT-ARCH-MATCH-001: a checkpoint whose claim contradicts its tensors is fixed by
restamping the claim, not by re-exporting the weights. The data section is streamed across unchanged,
hashed on the way, and the written file is re-read and re-hashed before it replaces anything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pretrain.checkpoint import CheckpointError, Header, atomic_write, read_header, read_safetensors_header
from pretrain.families import (
    FAMILIES,
    InitArchMismatchError,
    canonical_hf_identity,
    family_from_tensor_names,
    normalize_metadata_arch_family,
    validate_init_arch_matches_tensor_evidence,
)

# metadata key -> CLI flag, in the order they are reported
STAMP_FIELDS: dict[str, str] = {
    "architecture": "--architecture",
    "hf_architecture": "--hf-architecture",
    "hf_model_type": "--hf-model-type",
    "license": "--license",
    "data_source": "--data-source",
    "data_license": "--data-license",
}

COPY_CHUNK = 8 << 20


class StampError(ValueError):
    """The requested stamp is refused (bad flag value, contradiction, unsafe output); nothing was written."""


@dataclass(frozen=True)
class StampResult:
    source: str
    output: str
    before: dict[str, str]
    after: dict[str, str]
    changed: tuple[str, ...]
    filled: dict[str, str] = field(default_factory=dict)  # keys filled from the family's canonical HF identity
    tensors: int = 0
    data_bytes: int = 0
    data_sha256: str = ""


def hf_identity_for(family: str, tensor_names: tuple[str, ...] = ()) -> tuple[str, str]:
    """The HF class and model_type to stamp for `family`; a BERT body without an MLM head is a BertModel."""
    ident = canonical_hf_identity(family)
    if family == "bert" and tensor_names and not any(n.startswith("cls.") for n in tensor_names):
        return "BertModel", ident.model_type
    return ident.architecture, ident.model_type


def build_patch(
    header: Header,
    *,
    architecture: str | None = None,
    hf_architecture: str | None = None,
    hf_model_type: str | None = None,
    license: str | None = None,
    data_source: str | None = None,
    data_license: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Validate the requested values; return (patch, filled) where `filled` are canonical HF defaults."""
    given = {
        "architecture": architecture,
        "hf_architecture": hf_architecture,
        "hf_model_type": hf_model_type,
        "license": license,
        "data_source": data_source,
        "data_license": data_license,
    }
    patch = {k: v for k, v in given.items() if v is not None}
    if not patch:
        raise StampError(
            "nothing to stamp: give at least one of " + ", ".join(STAMP_FIELDS.values())
            + f" (e.g. `pretrain stamp {header.path} --architecture {_suggest(header)} -o OUT`)"
        )
    for key, value in patch.items():
        if not value.strip():
            raise StampError(f"{STAMP_FIELDS[key]} is empty; give a value or leave the flag out")
    if architecture is not None and architecture not in FAMILIES:
        near = normalize_metadata_arch_family(architecture)
        hint = f"; did you mean --architecture {near}?" if near else ""
        raise StampError(f"--architecture {architecture!r} is not a family slug; valid slugs: {', '.join(FAMILIES)}{hint}")
    family = architecture
    filled: dict[str, str] = {}
    if family is not None:
        default_arch, default_type = hf_identity_for(family, header.tensor_names)
        if hf_architecture is None:
            filled["hf_architecture"] = default_arch
        if hf_model_type is None:
            filled["hf_model_type"] = default_type
        patch.update(filled)
    # With no --architecture, the HF fields must agree with whatever family the file already claims.
    family = family or normalize_metadata_arch_family(header.metadata.get("architecture"))
    for key in ("hf_architecture", "hf_model_type"):
        value = patch.get(key)
        if value is None or key in filled:
            continue
        mapped = normalize_metadata_arch_family(value)
        if family is not None and mapped is not None and mapped != family:
            canonical_class, canonical_type = hf_identity_for(family, header.tensor_names)
            canonical = canonical_class if key == "hf_architecture" else canonical_type
            raise StampError(
                f"{STAMP_FIELDS[key]} {value!r} is family {mapped}, but the architecture is {family}; "
                f"drop {STAMP_FIELDS[key]} to use the canonical {canonical!r}"
            )
    return patch, filled


def _suggest(header: Header) -> str:
    inferred = family_from_tensor_names(header.tensor_names)
    return inferred if inferred != "unknown" else "SLUG"


def _header_bytes(header: Header, metadata: dict[str, str]) -> bytes:
    entries: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    for name, info in sorted(header.tensors.items(), key=lambda item: item[1].offsets):
        entries[name] = {"dtype": info.dtype, "shape": list(info.shape), "data_offsets": list(info.offsets)}
    raw = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # safetensors pads the header with spaces so the data section starts 8-byte aligned.
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _copy_range(src: BinaryIO, dst: BinaryIO | None, start: int, length: int) -> str:
    digest = hashlib.sha256()
    src.seek(start)
    remaining = length
    while remaining:
        chunk = src.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise OSError(f"file ended {remaining} bytes before the end of its data section")
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()


def data_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a .safetensors file's data section (everything after the header)."""
    header = read_safetensors_header(path)
    with open(path, "rb") as f:
        return _copy_range(f, None, header.data_start, header.file_size - header.data_start)


def stamp_checkpoint(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    patch: dict[str, str],
    *,
    in_place: bool = False,
    force: bool = False,
    filled: dict[str, str] | None = None,
) -> StampResult:
    """Write `source` with `patch` merged into its metadata to `output` (or over `source` with in_place)."""
    src = Path(source)
    header = read_header(src)
    if header.format != "safetensors":
        raise StampError(
            f"{src}: stamp rewrites .safetensors files, and this is {header.format}; "
            + ("stamp its model.safetensors, or edit config.json's architectures/model_type" if header.format == "hf-dir"
               else "re-export it with the right general.architecture")
        )
    if output is None and not in_place:
        raise StampError("give -o OUT for the stamped copy, or --in-place to rewrite the input")
    # In place through a symlink rewrites the file it points to, not the link.
    dst = src.resolve() if output is None else Path(output)
    if dst.exists() and dst.resolve() == src.resolve():
        dst = src.resolve()
    if dst == src.resolve() and not in_place:
        raise StampError(f"-o {dst} is the input file; pass --in-place to rewrite it, or choose another -o")
    if dst.is_dir():
        raise StampError(f"-o {dst} is a directory; give a file name such as {dst / src.name}")
    if not dst.parent.is_dir():
        raise StampError(f"-o {dst}: directory {dst.parent} does not exist; create it (mkdir -p {dst.parent}) or choose another -o")
    after = {**header.metadata, **patch}
    if not force:
        claim = after.get("architecture") or after.get("hf_architecture")
        try:
            validate_init_arch_matches_tensor_evidence(claim, header.tensor_names, path=str(src))
        except InitArchMismatchError as exc:
            raise StampError(
                f"stamping would make the claim ({exc.claimed}) contradict the tensors ({exc.inferred}); "
                f"stamp --architecture {exc.inferred} instead, or pass --force if the tensors are known to be {exc.claimed}"
            ) from None
    header_bytes = _header_bytes(header, after)
    data_len = header.file_size - header.data_start
    hashes: dict[str, str] = {}

    def write(tmp: str) -> None:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            fout.write(header_bytes)
            hashes["source"] = _copy_range(fin, fout, header.data_start, data_len)
        # Re-read what was written before it replaces anything: same tensors, new metadata, same bytes.
        written = read_safetensors_header(tmp)
        if written.tensors != header.tensors or written.metadata != after:
            raise CheckpointError(tmp, "stamped header did not read back as written", "report this as a bug")
        with open(tmp, "rb") as f:
            if _copy_range(f, None, written.data_start, data_len) != hashes["source"]:
                raise CheckpointError(tmp, "tensor data changed while copying", "check the disk, then retry")

    atomic_write(dst, write)
    final = read_header(dst)
    if final.metadata != after:
        raise CheckpointError(dst, "stamped file was changed by something else after writing", "retry the stamp")
    return StampResult(
        source=str(src),
        output=str(dst),
        before=dict(header.metadata),
        after=after,
        changed=tuple(k for k in after if header.metadata.get(k) != after[k]),
        filled=dict(filled or {}),
        tensors=len(header.tensors),
        data_bytes=data_len,
        data_sha256=hashes["source"],
    )


def error(message: str) -> int:
    """Print a one-line error and return exit code 2.

    Paths and header text in the message come from the user's files, so newlines and terminal escapes
    are shown escaped: the error stays one line and cannot repaint the terminal.
    """
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    print(f"pretrain: error: {safe}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        header = read_header(args.input)
        patch, filled = build_patch(
            header,
            architecture=args.architecture,
            hf_architecture=args.hf_architecture,
            hf_model_type=args.hf_model_type,
            license=args.license,
            data_source=args.data_source,
            data_license=args.data_license,
        )
        result = stamp_checkpoint(args.input, args.output, patch, in_place=args.in_place, force=args.force, filled=filled)
    except CheckpointError as exc:
        return error(str(exc))
    except StampError as exc:
        return error(str(exc))
    except OSError as exc:  # the output side: permissions, disk full; the input side raised CheckpointError
        target = args.output or args.input
        return error(f"{target}: cannot write the stamped checkpoint: {exc.strerror or exc}; check free space and permissions, then retry")
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    print(f"stamped {result.output} (from {result.source})")
    for key in result.changed:
        note = f"  (filled in: canonical for --architecture {result.after.get('architecture')})" if key in result.filled else ""
        print(f"  {key}: {result.before.get(key, '<unset>')!s} -> {result.after[key]}{note}")
    if not result.changed:
        print("  metadata already had these values; nothing changed")
    print(f"tensor data unchanged: {result.tensors} tensors, {result.data_bytes} bytes, sha256 {result.data_sha256}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stamp",
        help="rewrite a .safetensors checkpoint's metadata (tensor bytes untouched)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("input", help="the .safetensors checkpoint to stamp")
    parser.add_argument("--architecture", metavar="SLUG", help=f"family slug: {', '.join(FAMILIES)}")
    parser.add_argument("--hf-architecture", metavar="CLASS", help="HF class, e.g. Qwen2ForCausalLM (default: the family's)")
    parser.add_argument("--hf-model-type", metavar="TYPE", help="HF model_type, e.g. qwen2 (default: the family's)")
    parser.add_argument("--license", metavar="SPDX", help="the weights' license, e.g. Apache-2.0")
    parser.add_argument("--data-source", metavar="TEXT", help="what the model was trained on")
    parser.add_argument("--data-license", metavar="TEXT", help="the training data's license")
    parser.add_argument("-o", "--output", metavar="OUT", help="where to write the stamped checkpoint")
    parser.add_argument("--in-place", action="store_true", help="allow rewriting the input (atomically); -o may then be omitted")
    parser.add_argument("--force", action="store_true", help="stamp a family the tensor names contradict")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)
