"""Fuzzing the header reader: mutated valid files either read cleanly or raise CheckpointError, nothing else."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save

from pretrain.checkpoint import CheckpointError, read_header

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8, "BOOL": np.bool_}


@st.composite
def valid_files(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(min_value=0, max_value=4))
    tensors = {}
    for i in range(n):
        dtype = draw(st.sampled_from(sorted(DTYPES)))
        shape = tuple(draw(st.lists(st.integers(min_value=0, max_value=3), max_size=3)))
        tensors[f"model.layers.{i}.w"] = np.zeros(shape, dtype=DTYPES[dtype])
    metadata = draw(st.none() | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3))
    # safetensors 0.8 writes invalid JSON for no tensors plus an empty metadata dict, so avoid that input.
    return save(tensors, metadata=metadata or None)


def split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header: object, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = draw(valid_files())
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "field", "drop-field", "metadata", "length"]))
    if kind == "flip":
        buf = bytearray(data)
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            pos = draw(st.integers(min_value=0, max_value=len(buf) - 1))
            buf[pos] = draw(st.integers(min_value=0, max_value=255))
        return bytes(buf)
    if kind == "truncate":
        return data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if kind == "extend":
        return data + draw(st.binary(min_size=1, max_size=16))
    if kind == "length":
        return struct.pack("<Q", draw(st.integers(min_value=0, max_value=2**64 - 1))) + data[8:]
    header, body = split(data)
    names = [k for k in header if k != "__metadata__"]
    if kind == "metadata" or not names:
        header["__metadata__"] = draw(json_values)
        return join(header, body)
    name = draw(st.sampled_from(names))
    key = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
    if kind == "drop-field":
        del header[name][key]
    else:
        header[name][key] = draw(
            json_values
            | st.sampled_from(["F4", "BF16", "F64", "Q4_0", ""])
            | st.lists(st.integers(min_value=-(2**64), max_value=2**64), max_size=3)
        )
    return join(header, body)


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=mutated_files())
def test_mutated_files_are_read_or_refused_with_checkpoint_error_only(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.safetensors"
        path.write_bytes(data)
        try:
            header = read_header(path)
        except CheckpointError as exc:
            assert exc.path == str(path) and exc.fault
            return
        # Whatever this reader accepts, the safetensors library must accept too, with the same tensors.
        with safe_open(str(path), "numpy") as f:
            assert set(f.keys()) == set(header.tensor_names)
            assert (f.metadata() or {}) == header.metadata


def _tiny_gguf_bytes() -> bytes:
    import gguf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_block_count(1)
        writer.add_string("general.license", "mit")
        writer.add_array("tokenizer.ggml.tokens", ["a", "b"])
        writer.add_tensor("token_embd.weight", np.zeros((4, 2), np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


GGUF_BASE = _tiny_gguf_bytes()


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_gguf_files_are_read_or_refused_with_checkpoint_error_only(data: st.DataObject) -> None:
    buf = bytearray(GGUF_BASE)
    kind = data.draw(st.sampled_from(["flip", "truncate", "u64"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            buf[data.draw(st.integers(4, len(buf) - 1))] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        buf = buf[: data.draw(st.integers(4, len(buf) - 1))]
    else:  # counts and lengths in GGUF are u64: plant a huge one where a field is
        pos = data.draw(st.integers(4, min(len(buf) - 8, 200)))
        buf[pos : pos + 8] = data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.gguf"
        path.write_bytes(bytes(buf))
        try:
            header = read_header(path)
        except CheckpointError as exc:
            assert exc.path == str(path)
            return
        assert header.format == "gguf"


BIG_DIMS = st.sampled_from([0, 1, 2, 3, 2**31, 2**32, 2**61, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(shape=st.lists(BIG_DIMS, max_size=5), dtype=st.sampled_from(["U8", "F32", "F64", "F4"]))
def test_huge_shapes_are_refused_or_accepted_by_safetensors_too(shape: list[int], dtype: str) -> None:
    # Products of huge dims overflow 64 bits in every real reader, even when a later 0 makes the exact product 0.
    bits = {"U8": 8, "F32": 32, "F64": 64, "F4": 4}[dtype]
    exact = 1
    for dim in shape:
        exact *= dim
    nbytes = exact * bits // 8
    body = b"\0" * nbytes if nbytes <= 64 else b""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shape.safetensors"
        path.write_bytes(join({"t": {"dtype": dtype, "shape": shape, "data_offsets": [0, nbytes]}}, body))
        try:
            header = read_header(path)
        except CheckpointError as exc:
            assert exc.path == str(path) and exc.fault
            return
        with safe_open(str(path), "numpy") as f:
            assert list(f.keys()) == ["t"]
        assert header.tensors["t"].nbytes == nbytes


# --- GGUF metadata, structure-aware: any bytes give a Header or a CheckpointError, in bounded memory ---------

_SCALAR_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
U64 = st.one_of(st.integers(0, 8), st.sampled_from([2**31, 2**32 - 1, 2**40, 2**62, 2**63, 2**64 - 1]))


def _gguf_string(data: st.DataObject) -> bytes:
    raw = data.draw(st.binary(max_size=6))
    n = data.draw(st.one_of(st.just(len(raw)), U64))  # usually honest, sometimes a lie
    return struct.pack("<Q", n) + raw


def _gguf_value(data: st.DataObject, vtype: int, depth: int = 0) -> bytes:
    if vtype == 8:
        return _gguf_string(data)
    if vtype in _SCALAR_CODES:
        return data.draw(st.binary(min_size=struct.calcsize(_SCALAR_CODES[vtype]), max_size=struct.calcsize(_SCALAR_CODES[vtype])))
    if vtype == 9 and depth < 3:
        itype = data.draw(st.sampled_from([0, 4, 8, 9, 12]))
        n = data.draw(st.integers(0, 3))
        declared = data.draw(st.one_of(st.just(n), U64))
        return struct.pack("<IQ", itype, declared) + b"".join(_gguf_value(data, itype, depth + 1) for _ in range(n))
    return b""


@st.composite
def gguf_files(draw: st.DrawFn) -> bytes:
    data = draw(st.data())
    kvs = []
    for _ in range(draw(st.integers(0, 4))):
        vtype = draw(st.one_of(st.sampled_from([0, 4, 6, 7, 8, 9, 10, 12]), st.integers(0, 2**32 - 1)))
        kvs.append(_gguf_string(data) + struct.pack("<I", vtype) + _gguf_value(data, vtype))
    tensors = []
    for _ in range(draw(st.integers(0, 3))):
        dims = draw(st.lists(st.one_of(st.integers(0, 16), U64), max_size=5))
        n_dims = draw(st.one_of(st.just(len(dims)), U64.map(lambda v: v % 2**32)))
        ggml = draw(st.one_of(st.sampled_from([0, 1, 2, 8, 30]), st.integers(0, 2**32 - 1)))
        offset = draw(st.one_of(st.integers(0, 64), U64))
        tensors.append(_gguf_string(data) + struct.pack("<I", n_dims) + b"".join(struct.pack("<Q", d) for d in dims)
                       + struct.pack("<IQ", ggml, offset))
    n_kv = draw(st.one_of(st.just(len(kvs)), U64))
    n_tensors = draw(st.one_of(st.just(len(tensors)), U64))
    version = draw(st.sampled_from([1, 2, 3, 3, 3, 2**24]))
    body = b"".join(kvs) + b"".join(tensors) + draw(st.binary(max_size=64))
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + body


# The 87-byte file: one uint8 array declaring 2**40 elements (gguf.GGUFReader looped over them, unbounded).
_HUGE_ARRAY_87 = (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 12) + b"general.huge"
                  + struct.pack("<IIQ", 9, 0, 2**40)).ljust(87, b"\0")


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(raw=gguf_files() | st.binary(max_size=200).map(lambda b: b"GGUF" + b))
@example(raw=_HUGE_ARRAY_87)
def test_any_gguf_bytes_give_a_header_or_a_checkpoint_error_in_bounded_memory(raw: bytes) -> None:
    import tracemalloc

    import gguf.constants  # noqa: F401  (its import allocates; the parse is what is measured)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.gguf"
        path.write_bytes(raw)
        tracemalloc.start()
        try:
            header: object = None
            try:
                header = read_header(path)
            except CheckpointError as exc:
                assert exc.path == str(path) and exc.fault
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # Declared counts and lengths are bounded by the file: a few hundred bytes cannot cost megabytes.
        assert peak < 1 << 20, peak
        if header is None:
            return
        assert header.format == "gguf"
        for info in header.tensors.values():
            assert info.offsets[1] <= len(raw)
