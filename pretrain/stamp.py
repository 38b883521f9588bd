"""`pretrain stamp`: rewrite a checkpoint's claim and provenance, leaving every tensor byte as it was.

The salvage for INV-INIT-ARCH-MATCH-001: a checkpoint whose claim contradicts its tensors is fixed by
restamping the claim, not by re-exporting the weights. For a .safetensors file the data section is
streamed across unchanged, hashed on the way, and the written file is re-read and re-hashed before it
replaces anything. For an HF directory only config.json is rewritten: its `architectures`/`model_type`
and, under `pretrain_stamp`, every stamped field (which outranks the shards' own metadata); a new
directory gets the weight files hard-linked (or copied and compared byte for byte) and the other files
copied; `--in-place` rewrites config.json atomically. Either way every weight file stays byte-identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import filecmp
import hashlib
import json
import os
import shlex
import shutil
import struct
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pretrain.checkpoint import (
    HF_CONFIG,
    CheckpointError,
    Header,
    WriteInterrupted,
    atomic_write,
    read_header,
    read_safetensors_header,
    remove_stale_temps,
)
from pretrain.atomic import atomic_directory
from pretrain.formats.hf_dir import STAMP_KEY
from pretrain.families import (
    FAMILIES,
    InitArchMismatchError,
    family_from_tensor_names,
    free_fixed_name,
    hf_identity_for,
    normalize_metadata_arch_family,
    stamp_recipe,
    validate_init_arch_matches_tensor_evidence,
)
from pretrain.terminal import error, say, unicode_safe

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
    warnings: tuple[str, ...] = ()  # printed on stderr (a --force contradiction)
    # An HF directory's weight files by name: "hard-linked", "copied" (compared byte for byte) or "in place".
    weight_files: dict[str, str] = field(default_factory=dict)


PROVENANCE_FIELDS = ("license", "data_source", "data_license")
IDENTITY_FIELDS = ("architecture", "hf_architecture", "hf_model_type")


def _check_text(key: str, value: str) -> None:
    """A stamped value is one line of UTF-8 text: it is shown in terminals and written as JSON."""
    flag = STAMP_FIELDS[key]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # argv bytes that are not UTF-8 arrive as surrogate escapes
        raise StampError(f"{flag} is not valid UTF-8 text (character {exc.start + 1} is an undecodable byte); "
                         "give the value as UTF-8") from None
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        raise StampError(f"{flag} contains the control character {bad!r}; give one line of printable text")
    if value.strip().startswith("<") and value.strip().endswith(">"):
        raise StampError(f"{flag} {value!r} is a placeholder; replace it with the real value")


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
        inferred = family_from_tensor_names(header.tensor_names)
        example = f" (e.g. `{stamp_recipe(header.path, inferred, header.tensor_names)}`)" if inferred in FAMILIES else ""
        raise StampError("nothing to stamp: give at least one of " + ", ".join(STAMP_FIELDS.values()) + example)
    for key, value in patch.items():
        if not value.strip():
            raise StampError(f"{STAMP_FIELDS[key]} is empty; give a value or leave the flag out")
        _check_text(key, value)
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


def _forced_warning(prospective: Header, force: bool) -> tuple[str, ...]:
    """Refuse a stamp whose result the gate would refuse; with --force, the warning to print instead.

    `prospective` is the checkpoint as it will read once stamped, so its claim is resolved exactly as the
    INV-INIT-ARCH-MATCH-001 gate will resolve it (an `architecture: unknown` defers to hf_architecture).
    """
    claim, names, path = prospective.claim, prospective.tensor_names, prospective.path
    try:
        validate_init_arch_matches_tensor_evidence(claim.text, names, path=path)
    except InitArchMismatchError as exc:
        stated = f"{exc.claimed}, from {claim.source} {claim.text!r}"
        if force:
            return (f"--force: stamping family {exc.claimed} ({claim.source} {claim.text!r}), which the tensor names "
                    f"contradict (they are {exc.inferred}'s); loading it with --init will be refused",)
        raise StampError(
            f"stamping would make the claim ({stated}) contradict the tensors ({exc.inferred}); stamp what the "
            f"tensors are: {stamp_recipe(path, exc.inferred, names)}; or pass --force if the tensors are known to be {exc.claimed}"
        ) from None
    return ()


def _output_for(src: Path, output: str | os.PathLike[str] | None, in_place: bool, what: str) -> Path:
    if output is None and not in_place:
        raise StampError(f"give -o OUT for the stamped copy, or --in-place to rewrite the input "
                         f"(e.g. -o {shlex.quote(free_fixed_name(str(src)))})")
    # In place through a symlink rewrites the file it points to, not the link.
    dst = src.resolve() if output is None else Path(output)
    if dst.exists() and dst.resolve() == src.resolve():
        dst = src.resolve()
    if dst == src.resolve() and not in_place:
        raise StampError(f"-o {dst} is the input {what}; pass --in-place to rewrite it, or choose another -o")
    if not dst.parent.is_dir():
        raise StampError(f"-o {dst}: directory {dst.parent} does not exist; create it (mkdir -p {dst.parent}) or choose another -o")
    return dst


def _write_stamped(src: Path, header: Header, after: dict[str, str], tmp: str) -> str:
    """Write `src` with metadata `after` to `tmp`, re-read and re-hash it; return the data's sha256."""
    data_len = header.file_size - header.data_start
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        fout.write(_header_bytes(header, after))
        digest = _copy_range(fin, fout, header.data_start, data_len)
    # Re-read what was written before it replaces anything: same tensors, new metadata, same bytes.
    written = read_safetensors_header(tmp)
    if written.tensors != header.tensors or written.metadata != after:
        raise CheckpointError(tmp, "stamped header did not read back as written", "report this as a bug")
    with open(tmp, "rb") as f:
        if _copy_range(f, None, written.data_start, data_len) != digest:
            raise CheckpointError(tmp, "tensor data changed while copying", "check the disk, then retry")
    return digest


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
    if header.format == "hf-dir":
        return stamp_hf_dir(header, output, patch, in_place=in_place, force=force, filled=filled)
    if header.format != "safetensors":
        raise StampError(
            f"{src}: stamp rewrites .safetensors files and HF directories, and this is {header.format}; "
            "re-export it with the right general.architecture"
        )
    dst = _output_for(src, output, in_place, "file")
    if dst.is_dir():
        raise StampError(f"-o {dst} is a directory; give a file name such as {dst / src.name}")
    after = {**header.metadata, **patch}
    warnings = _forced_warning(dataclasses.replace(header, path=str(src), metadata=after), force)
    hashes: dict[str, str] = {}

    def write(tmp: str) -> None:
        hashes["source"] = _write_stamped(src, header, after, tmp)

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
        data_bytes=header.file_size - header.data_start,
        data_sha256=hashes["source"],
        warnings=warnings,
    )


# config.json keys an HF directory's claim lives in, as they are reported
_CONFIG_CLAIM = {"hf_architecture": "config.json architectures", "hf_model_type": "config.json model_type"}


def _claim_view(header: Header) -> dict[str, str]:
    """An HF directory's claim and provenance as flat strings: its shards' metadata plus config.json's claim."""
    view = dict(header.metadata)
    config = header.config or {}
    if "architectures" in config:
        view[_CONFIG_CLAIM["hf_architecture"]] = json.dumps(config["architectures"])
    if "model_type" in config:
        view[_CONFIG_CLAIM["hf_model_type"]] = json.dumps(config["model_type"])
    return view


def _link_or_copy(src: Path, dst: Path) -> str:
    """Put weight file `src` at `dst` unchanged: "hard-linked", or "copied" and compared byte for byte."""
    # A hard link shares the bytes (free, and provably identical); across filesystems, copy and compare.
    try:
        os.link(src, dst)
        return "hard-linked"
    except OSError:
        shutil.copyfile(src, dst)
    if not filecmp.cmp(src, dst, shallow=False):
        raise CheckpointError(dst, f"the copy differs from {src}", "check the disk, then retry the stamp")
    return "copied"


def stamp_hf_dir(
    header: Header,
    output: str | os.PathLike[str] | None,
    patch: dict[str, str],
    *,
    in_place: bool = False,
    force: bool = False,
    filled: dict[str, str] | None = None,
) -> StampResult:
    """Stamp an HF directory by rewriting its config.json alone; every weight file stays byte-identical.

    config.json gets the HF class and model_type (`architectures`, `model_type`) and, under STAMP_KEY,
    every stamped field (identity and provenance), which the reader lays over the shards' own metadata;
    so a shard stating an old claim needs no rewrite. A directory without config.json (a `pretrain train`
    run directory) gets one from its weights' `config` metadata. A new directory is built as a hidden temp
    directory beside `output` (weight files hard-linked, or copied and compared, everything else copied)
    and renamed into place; with in_place only config.json is replaced, atomically.
    """
    src = Path(header.path)
    if header.config is None:
        raise StampError(f"{src}: has no config.json and its weights carry no `config` metadata, so nothing says "
                         "what model it is; save the model with save_pretrained, which writes config.json")
    dst = _output_for(src, output, in_place, "directory")
    beside = free_fixed_name(str(src.resolve()))
    if dst != src.resolve() and (dst.exists() or dst.is_symlink()):
        raise StampError(f"-o {dst} already exists; give a new directory name such as {shlex.quote(str(beside))}")
    if dst != src.resolve() and src.resolve() in dst.resolve().parents:
        raise StampError(f"-o {dst.resolve()} is inside the input directory {src.resolve()}; give a directory beside it, "
                         f"such as {shlex.quote(str(beside))}")
    config = dict(header.config)
    if "hf_architecture" in patch:
        config["architectures"] = [patch["hf_architecture"]]
    if "hf_model_type" in patch:
        config["model_type"] = patch["hf_model_type"]
    config[STAMP_KEY] = {**(config.get(STAMP_KEY) or {}), **patch}
    prospective = dataclasses.replace(header, path=str(src), metadata={**header.metadata, **patch}, config=config)
    warnings = _forced_warning(prospective, force)
    config_text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"

    def write_config(tmp: str) -> None:
        Path(tmp).write_text(config_text, encoding="utf-8")

    weights: dict[str, str] = {}
    if dst == src.resolve():
        atomic_write(dst / HF_CONFIG, write_config)
        weights = {name: "in place" for name in header.shards}
    else:
        remove_stale_temps(dst)
        # pretrain.atomic's one directory write: built beside `dst`, renamed in whole, removed on error or signal.
        with atomic_directory(dst) as tmp_dir:
            for entry in sorted(src.iterdir()):
                target = tmp_dir / entry.name
                if entry.name == HF_CONFIG:
                    continue
                if entry.name in header.shards:
                    weights[entry.name] = _link_or_copy(entry, target)
                elif entry.is_dir():
                    shutil.copytree(entry, target, symlinks=True)
                else:
                    shutil.copy2(entry, target)
            atomic_write(tmp_dir / HF_CONFIG, write_config)
    final = read_header(dst)
    if final.tensors != header.tensors:
        raise CheckpointError(dst, "stamped directory's tensors did not read back as the input's", "report this as a bug")
    before, after_view = _claim_view(header), _claim_view(final)
    return StampResult(
        source=str(src),
        output=str(dst),
        before=before,
        after=after_view,
        changed=tuple(k for k in after_view if before.get(k) != after_view[k]),
        filled=dict(filled or {}),
        tensors=len(header.tensors),
        data_bytes=header.total_nbytes,
        warnings=warnings,
        weight_files=weights,
    )


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
    except WriteInterrupted as exc:
        say(f"pretrain: stamp interrupted by {exc}; {args.output or args.input} is as it was and no temp file is left",
            file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the output side: permissions, disk full; the input side raised CheckpointError
        target = args.output or args.input
        return error(f"{target}: cannot write the stamped checkpoint: {exc.strerror or exc}; check free space and permissions, then retry")
    for warning in result.warnings:
        say(f"pretrain: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(unicode_safe(asdict(result)), indent=2))  # ASCII-only JSON: nothing to escape
        return 0
    say(f"stamped {result.output} (from {result.source})")
    for key in result.changed:
        note = f"  (filled in: canonical for --architecture {result.after.get('architecture', patch.get('architecture'))})" if key in result.filled else ""
        say(f"  {key}: {result.before.get(key, '<unset>')!s} -> {result.after[key]}{note}")
    if not result.changed:
        say("  metadata already had these values; nothing changed")
    if result.data_sha256:
        say(f"tensor data unchanged: {result.tensors} tensors, {result.data_bytes} bytes, sha256 {result.data_sha256}")
    else:
        kinds = sorted(set(result.weight_files.values()))
        counts = ", ".join(f"{sum(1 for v in result.weight_files.values() if v == kind)} {kind}" for kind in kinds)
        say(f"tensor data unchanged: {result.tensors} tensors, {result.data_bytes} bytes; weight files byte-identical "
            f"({counts})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stamp",
        help="rewrite a .safetensors file's or HF directory's claim and provenance (tensor bytes untouched)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("input", help="the .safetensors checkpoint or HF model directory to stamp")
    parser.add_argument("--architecture", metavar="SLUG", help=f"family slug: {', '.join(FAMILIES)}")
    parser.add_argument("--hf-architecture", metavar="CLASS", help="HF class, e.g. Qwen2ForCausalLM (default: the family's)")
    parser.add_argument("--hf-model-type", metavar="TYPE", help="HF model_type, e.g. qwen2 (default: the family's)")
    parser.add_argument("--license", metavar="SPDX", help="the weights' license, e.g. Apache-2.0")
    parser.add_argument("--data-source", metavar="TEXT", help="what the model was trained on")
    parser.add_argument("--data-license", metavar="TEXT", help="the training data's license")
    parser.add_argument("-o", "--output", metavar="OUT", help="where to write the stamped checkpoint (a new directory for an HF directory)")
    parser.add_argument("--in-place", action="store_true", help="allow rewriting the input (atomically); -o may then be omitted")
    parser.add_argument("--force", action="store_true", help="stamp a family the tensor names contradict")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)
