"""`pretrain export --format hf`: a checkpoint as a Hugging Face `save_pretrained` directory.

The checkpoint goes through the one load path (pretrain.loading: header, arch-match gate, strict
name/shape check, finite tensors), so only a checkpoint that loads strictly is exported. Our parameter
names are HF's (pretrain.model), so the state dict is written as it is, with no name map. The directory:

- `config.json`: `ModelConfig.to_hf_dict()` for the family (what transformers 4.x and 5.x read);
- `model.safetensors`: every tensor in fp32 under its HF name, with the checkpoint's provenance metadata
  (license, data_source, data_license, step, val_loss...) and `format: pt`;
- `generation_config.json`: the source directory's, else one built from the config's token ids;
- tokenizer files where known: an HF directory's own (tokenizer.json, tokenizer_config.json, ...) are
  copied; the trainer's byte-level tokenizer (ids 0-255 are the UTF-8 bytes) has no HF tokenizer, so none
  is written and the result says so.

Written into a temp directory beside OUT and renamed into place (pretrain.atomic.atomic_directory); an
existing OUT is refused unless `force`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pretrain.atomic import atomic_directory, atomic_write
from pretrain.checkpoint import CheckpointError, read_header, write_checkpoint

# Files of an HF directory's tokenizer, copied as they are when the source has them.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja")
GENERATION_CONFIG = "generation_config.json"
# Metadata the exported file does not carry over: config.json holds the config; `format` is rewritten.
_DROPPED_METADATA = ("config", "format")
# Config keys copied into generation_config.json when the source has no generation_config.json.
_TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")
BYTE_LEVEL_NOTE = ("no tokenizer files: the checkpoint's tokenizer is byte-level (token id = UTF-8 byte "
                   "0-255, no special tokens), which has no Hugging Face tokenizer; encode text as "
                   "list(text.encode('utf-8'))")


class ExportError(ValueError):
    """The export is refused (bad input, existing output); nothing was written. The message names the fix."""


@dataclass(frozen=True)
class ExportResult:
    source: str
    output: str
    format: str  # "hf" or "gguf"
    files: tuple[str, ...]  # what was written, relative to `output` (the file itself for gguf)
    tensors: int
    dtype: str = "f32"
    notes: tuple[str, ...] = ()  # what was not written and why (tokenizer), printed by the CLI


def load_for_export(checkpoint: str | os.PathLike[str]) -> Any:
    """pretrain.loading.load_checkpoint in fp32 on CPU, its refusals as ExportError naming the checkpoint."""
    from pretrain.loading import NotLoadableError, load_checkpoint
    from pretrain.model import LoadError
    from pretrain.families import InitArchMismatchError

    try:
        return load_checkpoint(checkpoint)
    except NotLoadableError as exc:
        raise ExportError(f"{checkpoint}: is already a GGUF file, which cannot be re-exported: {exc}") from None
    except (CheckpointError, LoadError, InitArchMismatchError) as exc:
        raise ExportError(f"cannot export {checkpoint}: {exc}") from None


def check_output(out: Path, force: bool, *, directory: bool, source: str | os.PathLike[str] | None = None) -> None:
    """Refuse an OUT that is (or holds) the checkpoint, exists (without --force), or has no parent directory."""
    if source is not None and out.exists():
        src, dst = Path(source).resolve(), out.resolve()
        if src == dst or dst in src.parents:
            raise ExportError(f"-o {out} is (or holds) the checkpoint {source} being exported; choose another -o")
    if (out.exists() or out.is_symlink()) and not force:
        raise ExportError(f"-o {out} already exists; pass --force to replace it, or choose another -o")
    if out.exists() and directory != out.is_dir():
        kind = "a directory" if out.is_dir() else "a file"
        raise ExportError(f"-o {out} is {kind}; give a new {'directory' if directory else 'file'} path as -o")
    if not out.parent.is_dir():
        raise ExportError(f"-o {out}: directory {out.parent} does not exist; create it "
                          f"(mkdir -p {out.parent}) or choose another -o")


def exported_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """The checkpoint's metadata as the exported model.safetensors carries it (transformers needs `format: pt`)."""
    kept = {k: v for k, v in metadata.items() if k not in _DROPPED_METADATA}
    return {**kept, "format": "pt"}


def tokenizer_note(header: Any) -> str:
    """What an export says when it writes no tokenizer: byte-level, none in the source, or one it cannot write."""
    tokenizer = header.metadata.get("tokenizer", "")
    if tokenizer == "bytes":
        return BYTE_LEVEL_NOTE
    if header.format == "hf-dir":
        return "no tokenizer files: the source directory has none"
    return (f"no tokenizer files: the checkpoint records tokenizer {tokenizer or 'none'!r}, which pretrain cannot "
            "write as Hugging Face files; add that tokenizer's files to the output directory")


def generation_config(source: Path | None, config: dict[str, Any]) -> dict[str, Any]:
    """The source directory's generation_config.json, else greedy defaults with the config's token ids."""
    if source is not None and (source / GENERATION_CONFIG).is_file():
        try:
            loaded = json.loads((source / GENERATION_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExportError(f"{source / GENERATION_CONFIG}: unreadable ({exc}); fix or remove it") from None
        if isinstance(loaded, dict):
            return loaded
    built: dict[str, Any] = {"_from_model_config": True, "do_sample": False}
    built.update({k: config[k] for k in _TOKEN_IDS if isinstance(config.get(k), int)})
    return built


def hf_contents(loaded: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(config.json, model.safetensors' tensors, its metadata) for a strictly loaded checkpoint.

    What makes the directory load into transformers one to one: the family's HF config and the state dict
    under its own names (pretrain.model's names are HF's), nothing renamed.
    """
    config = loaded.config.to_hf_dict()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in loaded.model.state_dict().items()}
    return config, tensors, exported_metadata(dict(loaded.header.metadata))


def export_hf(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, force: bool = False) -> ExportResult:
    """Write `checkpoint` as an HF directory at `out` (see the module docstring); raises ExportError."""
    out = Path(out)
    check_output(out, force, directory=True, source=checkpoint)
    loaded = load_for_export(checkpoint)
    header = loaded.header
    source_dir = Path(header.path) if header.format == "hf-dir" else None
    config, tensors, metadata = hf_contents(loaded)
    if source_dir is not None and header.config:
        # Token ids an HF config carries (bos/eos/pad) are kept: generation and tokenizers rely on them.
        config.update({k: header.config[k] for k in _TOKEN_IDS if k in header.config})
    notes: list[str] = []
    tokenizer_files = [n for n in TOKENIZER_FILES if source_dir is not None and (source_dir / n).is_file()]
    if not tokenizer_files:
        notes.append(tokenizer_note(header))
    files = ["config.json", GENERATION_CONFIG, "model.safetensors", *tokenizer_files]
    try:
        with atomic_directory(out, replace=force) as tmp:
            write_checkpoint(tmp / "model.safetensors", tensors, metadata)
            for name, data in (("config.json", config), (GENERATION_CONFIG, generation_config(source_dir, config))):
                text = json.dumps(data, indent=2, sort_keys=True) + "\n"
                atomic_write(tmp / name, lambda p, t=text: Path(p).write_text(t, encoding="utf-8"))
            for name in tokenizer_files:
                shutil.copyfile(source_dir / name, tmp / name)  # type: ignore[operator]
    except FileExistsError:
        raise ExportError(f"-o {out} already exists; pass --force to replace it, or choose another -o") from None
    written = read_header(out)
    if {k: v.shape for k, v in written.tensors.items()} != {k: tuple(v.shape) for k, v in tensors.items()}:
        raise CheckpointError(out, "the exported directory's tensors did not read back as written", "report this as a bug")
    return ExportResult(source=str(checkpoint), output=str(out), format="hf", files=tuple(files),
                        tensors=len(tensors), notes=tuple(notes))
