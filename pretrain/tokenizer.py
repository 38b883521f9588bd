"""Text <-> token ids for a checkpoint: the byte-level tokenizer this trainer records, or the directory's own.

- A checkpoint whose metadata says `tokenizer: bytes` (what `pretrain train` records for text data, see
  pretrain.data.BYTE_TOKENIZER) was trained on UTF-8 bytes as ids 0-255, no special tokens, no EOS.
- Otherwise the tokenizer files in the checkpoint's directory (the HF directory itself, or the directory
  a .safetensors file sits in): `tokenizer.json` through the `tokenizers` library; `tokenizer.model` or
  `vocab.json` + `merges.txt` through `transformers.AutoTokenizer`, local files only, no remote code.
  The end-of-sequence ids come from generation_config.json, config.json or tokenizer_config.json.

Nothing here imports torch, and `tokenizers`/`transformers` are imported only when a directory's tokenizer
is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from pretrain.checkpoint import Header
from pretrain.data import BYTE_TOKENIZER

# What counts as a directory's tokenizer, in the order it is looked for (pretrain.quality scores the same files).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model")


class TokenizerError(ValueError):
    """The checkpoint has no tokenizer this module can use; the message names what is missing and the fix."""


@dataclass(frozen=True)
class Tokenizer:
    """encode(text) -> ids and decode(ids) -> text for one checkpoint, and its end-of-sequence ids."""

    name: str  # what it is, for reports: "bytes" or the file it was read from
    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    eos_token_ids: tuple[int, ...] = field(default=())


def byte_tokenizer() -> Tokenizer:
    """UTF-8 bytes as ids 0-255 (pretrain.data's byte-level text); an id past 255 decodes as U+FFFD."""

    def decode(ids: Sequence[int]) -> str:
        # A model whose vocabulary is wider than 256 can still emit an id that is no byte.
        out, run = [], bytearray()
        for i in ids:
            if 0 <= i < 256:
                run.append(i)
            else:
                out.append(run.decode("utf-8", errors="replace") + "\ufffd")
                run = bytearray()
        return "".join(out) + run.decode("utf-8", errors="replace")

    return Tokenizer(BYTE_TOKENIZER, lambda text: list(text.encode("utf-8")), decode)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _ids(value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def eos_token_ids(directory: Path, token_to_id: Callable[[str], int | None] | None = None,
                  config: dict[str, Any] | None = None) -> tuple[int, ...]:
    """The ids that end generation, as transformers' generate finds them: generation_config.json first."""
    for source in (_json_object(directory / "generation_config.json"), config or {}):
        found = _ids(source.get("eos_token_id"))
        if found:
            return found
    token = _json_object(directory / "tokenizer_config.json").get("eos_token")
    token = token.get("content") if isinstance(token, dict) else token
    if isinstance(token, str) and token_to_id is not None:
        found = token_to_id(token)
        return () if found is None else (found,)
    return ()


def _from_tokenizer_json(path: Path, config: dict[str, Any] | None) -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    try:
        tok = HFTokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses for a malformed file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TokenizerError(f"{path}: cannot be read as a tokenizer ({first}); replace it with the model's "
                             "own tokenizer.json") from None
    return Tokenizer(
        str(path),
        lambda text: tok.encode(text).ids,
        lambda ids: tok.decode(list(ids), skip_special_tokens=True),
        eos_token_ids(path.parent, tok.token_to_id, config),
    )


def _from_auto_tokenizer(directory: Path, config: dict[str, Any] | None) -> Tokenizer:
    try:
        from transformers import AutoTokenizer

        # Local files only and no repository code: a checkpoint directory must not reach the network or run code.
        tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # ImportError (sentencepiece missing), OSError, ValueError: all "cannot load"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TokenizerError(f"{directory}: its tokenizer files cannot be loaded by transformers.AutoTokenizer "
                             f"({first}); add the model's tokenizer.json to {directory}") from None

    def to_id(token: str) -> int | None:
        found = tok.convert_tokens_to_ids(token)
        return found if isinstance(found, int) and found != tok.unk_token_id else None

    eos = eos_token_ids(directory, to_id, config) or _ids(tok.eos_token_id)
    return Tokenizer(
        f"{directory} (transformers.AutoTokenizer)",
        lambda text: list(tok.encode(text)),
        lambda ids: tok.decode(list(ids), skip_special_tokens=True),
        eos,
    )


def tokenizer_for(header: Header) -> Tokenizer:
    """The checkpoint's tokenizer (see the module docstring), or TokenizerError naming what is missing."""
    recorded = header.metadata.get("tokenizer")
    if recorded == BYTE_TOKENIZER:
        return byte_tokenizer()
    path = Path(header.path)
    directory = path if header.format == "hf-dir" else path.parent
    config = dict(header.config) if header.config else None
    if (directory / "tokenizer.json").is_file():
        return _from_tokenizer_json(directory / "tokenizer.json", config)
    if any((directory / name).is_file() for name in TOKENIZER_FILES) or (
        (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file()
    ):
        return _from_auto_tokenizer(directory, config)
    said = (f"its metadata names tokenizer {recorded!r}, which pretrain cannot build" if recorded
            else f"its metadata records no tokenizer (`pretrain train` records tokenizer={BYTE_TOKENIZER!r} for text data)")
    raise TokenizerError(
        f"{header.path}: no usable tokenizer: {said}, and {directory} has no tokenizer.json, tokenizer.model "
        f"or vocab.json + merges.txt; copy the tokenizer the model was trained with into {directory}"
    )
