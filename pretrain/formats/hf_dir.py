"""HF model directories: config.json plus model.safetensors or a sharded model.safetensors.index.json."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pretrain.formats.header import (
    DEFAULT_HINT,
    MAX_HEADER_BYTES,
    CheckpointError,
    Header,
    TensorInfo,
    _require_regular_file,
    parse_json_bounded,
)
from pretrain.formats.safetensors import _config_from_metadata, read_safetensors_header

HF_CONFIG = "config.json"
HF_SINGLE = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
# `pretrain stamp`'s record in config.json: the claim and provenance it stamped, as flat strings. It outranks
# the shards' own metadata, so a directory is restamped by rewriting config.json alone and every weight file
# stays byte for byte what it was. transformers keeps an unknown config key as an attribute and writes it back.
STAMP_KEY = "pretrain_stamp"
STAMPED_FIELDS = ("architecture", "hf_architecture", "hf_model_type", "license", "data_source", "data_license")


def _read_json_file(path: Path, what: str) -> Any:
    try:
        _require_regular_file(path)
        size = path.stat().st_size
        if size > MAX_HEADER_BYTES:
            raise CheckpointError(path, f"{what} is {size} bytes, over the {MAX_HEADER_BYTES}-byte limit")
        raw = path.read_bytes()
    except CheckpointError:
        raise
    except IsADirectoryError:
        raise CheckpointError(path, f"{what} is a directory, not a file", "replace it with the JSON file the model was saved with") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read {what}: {exc.strerror or exc}", "check the path and permissions") from None
    return parse_json_bounded(path, raw, what)


def _shard_path(directory: Path, index_path: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        raise CheckpointError(index_path, f"weight_map names shard {name!r}, which is not a file name in {directory}")
    return directory / name


def _stamp_of(config_path: Path, stamp: Any) -> dict[str, str]:
    """config.json's STAMP_KEY object, checked: stamp fields only, each a string."""
    if not isinstance(stamp, dict):
        raise CheckpointError(config_path, f"{STAMP_KEY!r} is a JSON {type(stamp).__name__}, expected an object "
                              "of strings", f"remove {STAMP_KEY!r} from config.json, then stamp the directory again")
    for key, value in stamp.items():
        if key not in STAMPED_FIELDS:
            raise CheckpointError(config_path, f"{STAMP_KEY!r} has key {key!r}, which is not a stamp field "
                                  f"({', '.join(STAMPED_FIELDS)})", "remove it from config.json")
        if not isinstance(value, str):
            raise CheckpointError(config_path, f"{STAMP_KEY!r}[{key!r}] is {value!r}, not a string",
                                  f"remove {STAMP_KEY!r} from config.json, then stamp the directory again")
    return dict(stamp)


def read_hf_dir_header(path: str | os.PathLike[str]) -> Header:
    """Read an HF model directory: config.json plus model.safetensors or a sharded index."""
    directory = Path(path)
    config: dict[str, Any] | None = None
    config_path = directory / HF_CONFIG
    if config_path.exists():
        loaded = _read_json_file(config_path, "config.json")
        if not isinstance(loaded, dict):
            raise CheckpointError(config_path, f"config.json is a JSON {type(loaded).__name__}, expected an object")
        config = loaded

    index_path = directory / HF_INDEX
    single_path = directory / HF_SINGLE
    tensors: dict[str, TensorInfo] = {}
    metadata: dict[str, str] = {}
    shards: list[str] = []
    if index_path.exists():
        index = _read_json_file(index_path, "model.safetensors.index.json")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(index_path, "has no 'weight_map' object mapping tensor names to shard files")
        shard_names = sorted({_shard_path(directory, index_path, v).name for v in weight_map.values()})
        for shard_name in shard_names:
            shard_header = read_safetensors_header(directory / shard_name)
            shards.append(shard_name)
            for key, value in shard_header.metadata.items():
                metadata.setdefault(key, value)
            for name, info in shard_header.tensors.items():
                if weight_map.get(name) != shard_name:
                    raise CheckpointError(
                        index_path, f"tensor {name!r} is in {shard_name} but the weight_map says {weight_map.get(name)!r}"
                    )
                tensors[name] = TensorInfo(info.dtype, info.shape, info.nbytes, info.offsets, shard_name)
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise CheckpointError(
                index_path, f"{len(missing)} tensors in the weight_map are in no shard (first: {missing[0]!r})"
            )
    elif single_path.exists():
        single = read_safetensors_header(single_path)
        metadata = dict(single.metadata)
        shards.append(HF_SINGLE)
        tensors = {name: TensorInfo(i.dtype, i.shape, i.nbytes, i.offsets, HF_SINGLE) for name, i in single.tensors.items()}
    else:
        has_bin = any(directory.glob("pytorch_model*.bin"))
        raise CheckpointError(
            directory,
            "directory has no model.safetensors or model.safetensors.index.json"
            + (" (only pytorch_model*.bin, which is not read: pickles can run code)" if has_bin else ""),
            "save it with `model.save_pretrained(dir, safe_serialization=True)`" if has_bin else DEFAULT_HINT,
        )
    if config is None and "config" in metadata:
        config = _config_from_metadata(str(directory), metadata)
    elif config is not None and STAMP_KEY in config:
        metadata.update(_stamp_of(config_path, config[STAMP_KEY]))
    return Header(
        path=str(directory),
        format="hf-dir",
        tensors=tensors,
        metadata=metadata,
        config=config,
        shards=tuple(shards),
    )
