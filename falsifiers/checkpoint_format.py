"""Falsifiers for apr-checkpoint-format-v1: the checkpoint reader refuses hostile files, reads headers
at a cost independent of file size, round-trips what it writes, writes atomically, and `pretrain stamp`
leaves tensor bytes identical.

Each function returns None when the invariant held and raises AssertionError with the counterexample
when it did not. They drive the real pretrain code on real files in a temporary directory.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

from falsifiers.support import run_cli, temp_dir

SPARSE_SIZE = 4 << 30  # 4 GiB, sparse: costs no disk


def _blob(header: Any, data: bytes = b"", declared: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared is None else declared) + raw + data


def hostile_cases() -> dict[str, bytes]:
    """One file per class of malformed or hostile safetensors input."""
    return {case: data for case, (data, _) in hostile_cases_with_faults().items()}


def hostile_cases_with_faults() -> dict[str, tuple[bytes, str]]:
    """Each hostile class, with the fault its CheckpointError must name (a substring of `exc.fault`).

    The fault is checked, not only the exception type: a reader that refuses a file for the wrong reason
    (an off-by-one that calls an 8-byte file "too short", a check that never fires and a later one that
    does) names the wrong fault to the user. The boundary cases sit one byte either side of each limit.
    """
    from pretrain.formats.header import MAX_HEADER_BYTES

    t = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    return {
        "empty file": (b"", "file is 0 bytes, too short for the 8-byte"),
        "truncated length": (b"\x08\x00\x00", "file is 3 bytes, too short"),
        "7-byte file": (b"\x02" + b"\x00" * 6, "file is 7 bytes, too short"),
        "header length 0": (struct.pack("<Q", 0), "declared header length 0 is too small for a JSON object"),
        "header length 1": (struct.pack("<Q", 1) + b"{", "declared header length 1 is too small for a JSON object"),
        "header length past end of file": (_blob({"a": t}, b"\0" * 8, declared=1 << 20), "runs past the end of the"),
        "header length one byte past end of file": (_blob({"a": t}, declared=len(json.dumps({"a": t})) + 1), "runs past the end of the"),
        "header length at the limit, past end of file": (_blob(b"{}", declared=MAX_HEADER_BYTES), "runs past the end of the"),
        "header length one over the limit": (_blob(b"{}", declared=MAX_HEADER_BYTES + 1), f"exceeds the {MAX_HEADER_BYTES}-byte limit"),
        "absurd header length": (struct.pack("<Q", 2**64 - 1) + b"{}", "exceeds the"),
        "header not JSON": (_blob(b"\x00garbage\xff"), "not UTF-8"),
        "header a JSON array": (_blob([1, 2, 3]), "safetensors header is a JSON list, expected an object"),
        "unknown dtype": (_blob({"a": {**t, "dtype": "F33"}}, b"\0" * 8), "unknown dtype 'F33'"),
        "offsets past the data": (_blob({"a": t}, b"\0" * 4), "tensor data needs 8 bytes but the file holds 4"),
        "overlapping offsets": (_blob({"a": t, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "overlaps the previous tensor"),
        "gapped offsets": (_blob({"a": {**t, "shape": [1], "data_offsets": [0, 4]}, "b": {**t, "shape": [1], "data_offsets": [8, 12]}}, b"\0" * 12), "leaves a gap of 4 bytes"),
        "first tensor not at offset 0": (_blob({"a": {**t, "data_offsets": [4, 12]}}, b"\0" * 12), "leaves a gap of 4 bytes"),
        "trailing bytes": (_blob({"a": t}, b"\0" * 9), "1 trailing bytes after the last tensor"),
        "shape/byte-size mismatch": (_blob({"a": {**t, "shape": [3]}}, b"\0" * 8), "needs 12 bytes but data_offsets"),
        "negative dimension": (_blob({"a": {**t, "shape": [-2]}}, b"\0" * 8), "has a negative dimension"),
        "dimension -1": (_blob({"a": {**t, "shape": [-1]}}, b"\0" * 8), "has a negative dimension"),
        "missing field": (_blob({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "has no 'data_offsets' field"),
        "metadata not an object": (_blob({"__metadata__": ["x"], "a": t}, b"\0" * 8), "__metadata__ is a JSON list, expected an object"),
        "metadata value not a string": (_blob({"__metadata__": {"step": 3}, "a": t}, b"\0" * 8), "__metadata__['step'] is int"),
        "pathologically nested JSON": (_blob(b"[" * 200_000 + b"]" * 200_000), "nests JSON too deeply"),
        "astronomical shape": (_blob({"a": {**t, "shape": [2**62, 2**62, 2**62]}}, b"\0" * 8), "overflows a 64-bit"),
    }


def edge_cases_accepted() -> dict[str, tuple[bytes, dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]]:
    """Valid files at the edges the hostile cases sit next to: (bytes, {name: (dtype, shape)}, metadata)."""
    two = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    return {
        "empty header {}": (_blob(b"{}"), {}, {}),
        "one tensor ending exactly at the end of the file": (_blob({"a": two}, b"\0" * 8), {"a": ("F32", (2,))}, {}),
        "zero-size tensor": (_blob({"z": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}), {"z": ("F32", (0,))}, {}),
        "two tensors tiling the data, and metadata": (
            _blob({"__metadata__": {"architecture": "llama"}, "b": {**two, "data_offsets": [8, 16]}, "a": two}, b"\0" * 16),
            {"a": ("F32", (2,)), "b": ("F32", (2,))}, {"architecture": "llama"},
        ),
    }


def _fault_of(call: Any, *args: Any) -> str:
    """The CheckpointError fault `call(*args)` raises, or a description of what it did instead."""
    from pretrain.checkpoint import CheckpointError

    try:
        call(*args)
    except CheckpointError as exc:
        return exc.fault if str(args[0]) in str(exc) else f"<error does not name the file: {exc}>"
    except Exception as exc:  # anything but CheckpointError is the invariant broken
        return f"<raised {type(exc).__name__}: {exc}>"
    return "<read without error>"


def path_cases(tmp: Path) -> list[tuple[str, Any, Any, str]]:
    """(what, reader, path, fault expected) for paths that are no checkpoint, through read_header and the
    safetensors reader called directly."""
    from pretrain.checkpoint import read_header, read_safetensors_header

    absent, too_long = tmp / "absent.safetensors", tmp / ("x" * 300 + ".safetensors")
    return [
        ("missing path", read_header, absent, "no such file or directory"),
        ("plain directory", read_header, tmp, "directory has no model.safetensors"),
        ("a name too long for the OS", read_header, too_long, "cannot read: File name too long"),
        ("missing path, safetensors reader", read_safetensors_header, absent, "no such file"),
        ("directory, safetensors reader", read_safetensors_header, tmp, "is a directory, not a .safetensors file"),
        ("a name too long, safetensors reader", read_safetensors_header, too_long, "cannot read: File name too long"),
        ("a NUL byte in the path, safetensors reader", read_safetensors_header, f"{tmp}/a\0b", "path contains a NUL byte"),
    ]


def falsify_hostile_headers_refused() -> None:
    """Every hostile class raises CheckpointError naming the file and the right fault; valid edge cases read."""
    from pretrain.checkpoint import read_header, read_safetensors_header

    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hostile.safetensors"
        for case, (data, expected) in hostile_cases_with_faults().items():
            path.write_bytes(data)
            fault = _fault_of(read_header, path)
            if expected not in fault:
                failures.append(f"{case}: expected a CheckpointError naming {expected!r}, got {fault!r}")
        for case, (data, tensors, metadata) in edge_cases_accepted().items():
            path.write_bytes(data)
            try:
                header = read_header(path)
            except Exception as exc:
                failures.append(f"{case}: a valid file was refused: {type(exc).__name__}: {exc}")
                continue
            got = {n: (i.dtype, i.shape) for n, i in header.tensors.items()}
            if got != tensors or header.metadata != metadata:
                failures.append(f"{case}: read as {got} with metadata {header.metadata}, expected {tensors} and {metadata}")
        paths = path_cases(Path(tmp))
        for what, reader, target, expected in paths:
            fault = _fault_of(reader, target)
            if expected not in fault or "[Errno" in fault:
                failures.append(f"{what}: expected a CheckpointError naming {expected!r}, got {fault!r}")
        # The file shrinks between the size check and the read (a concurrent writer): still a CheckpointError.
        import pretrain.formats.safetensors as st_format

        path.write_bytes(_blob({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8))
        real_fstat = st_format.os.fstat
        shrunk = lambda fd: os.stat_result((*real_fstat(fd)[:6], 1 << 20, *real_fstat(fd)[7:]))  # noqa: E731
        with mock.patch.object(st_format.os, "fstat", shrunk):
            path.write_bytes(struct.pack("<Q", 4096) + b"{}")
            fault = _fault_of(read_header, path)
        if "file ended inside the 4096-byte header" not in fault:
            failures.append(f"file truncated while being read: expected 'file ended inside the 4096-byte header', got {fault!r}")
        failures += _load_tensors_refusals(Path(tmp))
    assert not failures, "hostile inputs not refused with the right CheckpointError:\n" + "\n".join(failures)


def _load_tensors_refusals(tmp: Path) -> list[str]:
    """load_tensors refuses what read_header refuses, loads the valid edge files, and refuses what only
    loading can find: NaN/Inf weights (named, at most five), GGUF tensors, a file that changed after its header was read."""
    import safetensors.torch
    import torch

    import pretrain.checkpoint as checkpoint

    failures = []
    path = tmp / "load.safetensors"
    for case, (data, expected) in hostile_cases_with_faults().items():
        path.write_bytes(data)
        fault = _fault_of(checkpoint.load_tensors, path)
        if expected not in fault:
            failures.append(f"load_tensors, {case}: expected a CheckpointError naming {expected!r}, got {fault!r}")
    for case, (data, tensors, _) in edge_cases_accepted().items():
        path.write_bytes(data)
        try:
            loaded = checkpoint.load_tensors(path)
        except Exception as exc:
            failures.append(f"load_tensors, {case}: a valid file was refused: {type(exc).__name__}: {exc}")
            continue
        if {n: tuple(t.shape) for n, t in loaded.items()} != {n: shape for n, (_, shape) in tensors.items()}:
            failures.append(f"load_tensors, {case}: loaded {sorted(loaded)}, expected {sorted(tensors)}")
    for count, listed in ((5, "'w0', 'w1', 'w2', 'w3', 'w4'; "), (6, "'w0', 'w1', 'w2', 'w3', 'w4', ... (+1 more); ")):
        weights = {f"w{i}": torch.tensor([1.0, float("nan") if i % 2 else float("inf")]) for i in range(count)}
        safetensors.torch.save_file({**weights, "ok": torch.ones(2)}, str(path))
        fault = _fault_of(checkpoint.load_tensors, path)
        expected = f"{count} tensor(s) hold NaN or Inf weights: {listed.rstrip('; ')}"
        if fault != expected:
            failures.append(f"load_tensors, {count} non-finite tensors: expected the fault {expected!r}, got {fault!r}")
    gguf = tmp / "model.gguf"
    gguf.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    fault = _fault_of(checkpoint.load_tensors, gguf)
    if "GGUF tensors are quantised llama.cpp blocks" not in fault:
        failures.append(f"load_tensors, a GGUF file: expected a refusal naming GGUF tensors, got {fault!r}")
    # The file changes between reading its header and loading it: the loader must still refuse it cleanly.
    good = tmp / "good.safetensors"
    safetensors.torch.save_file({"a": torch.ones(2)}, str(good))
    real_header = checkpoint.read_header(good)
    path.write_bytes(b"\xff" * 64)
    with mock.patch.object(checkpoint, "read_header", lambda _: dataclasses.replace(real_header, path=str(path))):
        fault = _fault_of(checkpoint.load_tensors, path)
    if "safetensors could not load it" not in fault:
        failures.append(f"load_tensors, a file changed after its header was read: expected 'safetensors could not load it', got {fault!r}")
    return failures


def falsify_header_fuzz_only_checkpoint_error() -> None:
    """Mutated valid files (byte flips, truncation, bad lengths, mutated fields) read cleanly or raise CheckpointError."""
    import numpy as np
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from safetensors import safe_open
    from safetensors.numpy import save

    from pretrain.checkpoint import CheckpointError, read_header

    base = save(
        {"model.embed_tokens.weight": np.zeros((4, 2), np.float32), "model.norm.weight": np.ones(2, np.float16)},
        metadata={"architecture": "llama"},
    )
    (n,) = struct.unpack("<Q", base[:8])
    header = json.loads(base[8 : 8 + n])
    body = base[8 + n :]
    json_value = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.text(max_size=6),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
        max_leaves=8,
    )

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["flip", "truncate", "length", "field", "metadata"]))
        if kind == "flip":
            buf = bytearray(base)
            for _ in range(draw(st.integers(1, 4))):
                buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
            return bytes(buf)
        if kind == "truncate":
            return base[: draw(st.integers(0, len(base) - 1))]
        if kind == "length":
            return struct.pack("<Q", draw(st.integers(0, 2**64 - 1))) + base[8:]
        h = json.loads(json.dumps(header))
        if kind == "metadata":
            h["__metadata__"] = draw(json_value)
        else:
            name = draw(st.sampled_from(["model.embed_tokens.weight", "model.norm.weight"]))
            h[name][draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(json_value)
        return _blob(h, body)

    @settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated())
    def prop(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "fuzz.safetensors"
            path.write_bytes(data)
            try:
                parsed = read_header(path)
            except CheckpointError:
                return
            except Exception as exc:
                raise AssertionError(f"read_header raised {type(exc).__name__}: {exc}") from exc
            with safe_open(str(path), "numpy") as f:  # what we accept, the safetensors library must accept
                assert set(f.keys()) == set(parsed.tensor_names)

    prop()


class _CountingFile(io.RawIOBase):
    """An unbuffered file whose reads are tallied, so 'bytes read' means bytes the OS delivered."""

    def __init__(self, raw: Any, tally: list[int]):
        self._raw = raw
        self._tally = tally

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)
        self._tally[0] += n or 0
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._tally[0] += len(data)
        return data

    def fileno(self) -> int:
        return self._raw.fileno()

    def seek(self, *args: Any) -> int:
        return self._raw.seek(*args)

    def close(self) -> None:
        self._raw.close()
        super().close()


@contextlib.contextmanager
def count_bytes_read() -> Iterator[list[int]]:
    """Tally every byte read through `open` inside pretrain.checkpoint and its format readers while active."""
    import pretrain.checkpoint as checkpoint
    import pretrain.formats.gguf
    import pretrain.formats.safetensors

    tally = [0]

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "b" in mode and "r" in mode and "+" not in mode:
            return _CountingFile(builtins.open(file, mode, buffering=0), tally)
        return builtins.open(file, mode, *args, **kwargs)

    readers = (checkpoint, pretrain.formats.safetensors, pretrain.formats.gguf)
    with contextlib.ExitStack() as stack:
        for module in readers:
            stack.enter_context(mock.patch.object(module, "open", counting_open, create=True))
        yield tally


def make_sparse_checkpoint(path: Path, data_bytes: int = SPARSE_SIZE) -> int:
    """A valid .safetensors file declaring one U8 tensor of `data_bytes`, sparse on disk. Returns header length."""
    raw = json.dumps({"__metadata__": {"architecture": "llama"}, "big": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data_bytes)
    return len(raw)


def falsify_header_read_independent_of_file_size() -> None:
    """Reading the header of a sparse 4 GiB file reads no more bytes than 8 + header (+4 magic) — same as a tiny file."""
    from pretrain.checkpoint import read_header

    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.safetensors", Path(tmp) / "small.safetensors"
        big_len = make_sparse_checkpoint(big, SPARSE_SIZE)
        small_len = make_sparse_checkpoint(small, 1024)
        with count_bytes_read() as tally:
            header = read_header(big)
        big_read = tally[0]
        with count_bytes_read() as tally:
            read_header(small)
        small_read = tally[0]
        assert header.tensors["big"].nbytes == SPARSE_SIZE
        assert big_read > 0, "the byte counter saw no reads; the falsifier is not measuring read_header"
        assert big_read <= 4 + 8 + big_len, f"read {big_read} bytes of a {SPARSE_SIZE}-byte file; header is {8 + big_len}"
        assert big_read - small_read <= big_len - small_len, (
            f"4 GiB file cost {big_read} bytes, 1 KiB file {small_read}: cost grows with file size"
        )
        # Hostile and missing files cost no more: at most 4 + 8 + the header bytes the file holds, each refused
        # for its own fault (so the cost measured is that of the path that handles it).
        failures = []
        path = Path(tmp) / "hostile.safetensors"
        for case, (data, expected) in hostile_cases_with_faults().items():
            path.write_bytes(data)
            declared = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else 0
            bound = 4 + 8 + min(declared, max(len(data) - 8, 0))
            with count_bytes_read() as tally:
                fault = _fault_of(read_header, path)
            if tally[0] > bound or expected not in fault:
                failures.append(f"{case}: read {tally[0]} bytes (at most {bound}) and got {fault!r} (expected {expected!r})")
        for what, reader, target, expected in path_cases(Path(tmp)):
            with count_bytes_read() as tally:
                fault = _fault_of(reader, target)
            if tally[0] or expected not in fault or "[Errno" in fault:
                failures.append(f"{what}: read {tally[0]} bytes (expected 0) and got {fault!r} (expected {expected!r})")
        assert not failures, "refusing a hostile or missing file costs more than its header:\n" + "\n".join(failures)


def falsify_write_read_round_trip() -> None:
    """write_checkpoint then read_header/load_tensors returns the same names, dtypes, shapes, values and metadata."""
    import torch

    from pretrain.checkpoint import load_tensors, read_header, write_checkpoint

    torch.manual_seed(0)
    tensors = {
        "model.embed_tokens.weight": torch.randn(16, 8),
        "model.layers.0.mlp.gate_proj.weight": torch.randn(8, 8).to(torch.bfloat16),
        "model.layers.0.self_attn.o_proj.weight": torch.randn(8, 8).half(),
        "model.norm.weight": torch.ones(8),
        "step_counter": torch.tensor([7], dtype=torch.int64),
        "empty": torch.zeros(0, 3),
    }
    metadata = {
        "architecture": "llama", "hf_architecture": "LlamaForCausalLM", "hf_model_type": "llama", "license": "Apache-2.0",
        "data_source": "synthetic", "data_license": "CC0-1.0", "config": json.dumps({"hidden_size": 8}), "step": "3", "val_loss": "4.62",
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rt.safetensors"
        write_checkpoint(path, tensors, metadata)
        header = read_header(path)
        assert header.metadata == metadata, f"metadata changed: {header.metadata}"
        assert header.config == {"hidden_size": 8}
        expected_dtypes = {"model.embed_tokens.weight": "F32", "model.layers.0.mlp.gate_proj.weight": "BF16",
                           "model.layers.0.self_attn.o_proj.weight": "F16", "model.norm.weight": "F32", "step_counter": "I64", "empty": "F32"}
        for name, t in tensors.items():
            info = header.tensors[name]
            assert (info.dtype, info.shape) == (expected_dtypes[name], tuple(t.shape)), f"{name}: {info}"
            assert info.nbytes == t.numel() * t.element_size()
        loaded = load_tensors(path)
        assert set(loaded) == set(tensors)
        for name, t in tensors.items():
            assert loaded[name].dtype == t.dtype and torch.equal(loaded[name], t), f"{name} changed in the round trip"
        # Tied weights (one storage under two names, as tied embeddings are) round-trip as two equal tensors.
        tied = {"model.embed_tokens.weight": tensors["model.embed_tokens.weight"]}
        tied["lm_head.weight"] = tied["model.embed_tokens.weight"]
        write_checkpoint(path, tied, {"step": "4"}, verify_arch=False)
        loaded = load_tensors(path)
        assert all(torch.equal(loaded[n], tensors["model.embed_tokens.weight"]) for n in tied), "tied weights changed"
        # What load_tensors cannot give back exactly it refuses, naming the fault: never other values, silently.
        failures = _load_tensors_refusals(Path(tmp))
        assert not failures, "load_tensors returned something other than what was written:\n" + "\n".join(failures)


def falsify_write_is_atomic() -> None:
    """A write that fails half-way leaves the previous checkpoint intact and no temp file behind."""
    import safetensors.torch
    import torch

    from pretrain.checkpoint import read_header, write_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.safetensors"
        write_checkpoint(path, {"model.norm.weight": torch.ones(4)}, {"step": "1"})
        before = path.read_bytes()
        real_save = safetensors.torch.save_file

        def dies_half_way(tensors: Any, filename: str, metadata: Any = None) -> None:
            real_save(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as f:
                f.truncate(len(Path(filename).read_bytes()) // 2)
            raise OSError("disk full")

        with mock.patch.object(safetensors.torch, "save_file", dies_half_way):
            try:
                write_checkpoint(path, {"model.norm.weight": torch.zeros(1024)}, {"step": "2"})
            except OSError:
                pass
            else:
                raise AssertionError("the simulated failure was swallowed; write_checkpoint reported success")
        assert path.read_bytes() == before, "the old checkpoint was damaged by a failed write"
        assert read_header(path).metadata == {"step": "1"}
        leftovers = sorted(p.name for p in Path(tmp).iterdir() if p.name != "ckpt.safetensors")
        assert not leftovers, f"temp files left behind: {leftovers}"


def _data_sha256(path: Path) -> str:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return hashlib.sha256(raw[8 + n :]).hexdigest()


def falsify_stamp_leaves_tensor_bytes_identical() -> None:
    """`pretrain stamp` changes metadata only: the data section's SHA-256 is the same before and after."""
    import torch

    from pretrain.checkpoint import read_header, write_checkpoint

    torch.manual_seed(1)
    tensors = {
        "model.embed_tokens.weight": torch.randn(32, 16),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(16, 16),
        "model.layers.0.self_attn.q_proj.bias": torch.randn(16),
        "model.layers.0.self_attn.o_proj.weight": torch.randn(16, 16),
        "model.layers.0.mlp.gate_proj.weight": torch.randn(32, 16).half(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.safetensors", Path(tmp) / "out.safetensors"
        write_checkpoint(src, tensors, {"architecture": "llama", "step": "9"}, verify_arch=False)
        result = run_cli("stamp", str(src), "--architecture", "qwen2", "--license", "Apache-2.0", "-o", str(out))
        assert result.rc == 0, f"stamp failed ({result.rc}): {result.err}"
        assert _data_sha256(out) == _data_sha256(src), "tensor bytes differ after stamping"
        before, after = read_header(src), read_header(out)
        assert after.tensors == before.tensors
        assert after.metadata["architecture"] == "qwen2" and after.metadata["step"] == "9"
        _stamp_reports_and_refusals(Path(tmp), src, tensors)


def _stamp_reports_and_refusals(tmp: Path, src: Path, tensors: dict[str, Any]) -> None:
    """What stamp reports is what it changed, and what it cannot restamp safely it refuses, writing nothing."""
    from unittest import mock

    import pretrain.stamp as stamp
    from pretrain.checkpoint import CheckpointError, read_header

    out = tmp / "json.safetensors"
    result = run_cli("stamp", str(src), "--architecture", "qwen2", "--license", "Apache-2.0", "-o", str(out), "--json")
    assert result.rc == 0, f"stamp --json failed ({result.rc}): {result.err}"
    report = json.loads(result.out)
    assert set(report["changed"]) == {"architecture", "hf_architecture", "hf_model_type", "license"}, f"reported changed: {report['changed']}"
    assert report["filled"] == {"hf_architecture": "Qwen2ForCausalLM", "hf_model_type": "qwen2"}, f"reported filled: {report['filled']}"
    assert report["data_sha256"] == _data_sha256(src) and report["tensors"] == len(tensors), report
    # Refused, with nothing written: a GGUF file (stamp cannot rewrite it byte-exactly) and an output that is a directory.
    gguf = tmp / "model.gguf"
    gguf.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    for argv, fault in (
        (("stamp", str(gguf), "--license", "MIT", "-o", str(tmp / "g.gguf")), "stamp rewrites .safetensors files and HF directories"),
        (("stamp", str(src), "--license", "MIT", "-o", str(tmp)), "is a directory; give a file name"),
    ):
        result = run_cli(*argv)
        assert result.rc == 2 and fault in result.err, f"pretrain {' '.join(argv)}: exit {result.rc}, stderr {result.err!r}"
    assert not (tmp / "g.gguf").exists(), "stamp wrote a GGUF output"
    # The stamped file changes under stamp's feet before its read-back check: an error, not a silent success.
    real_read = stamp.read_header
    calls = []

    def read_changed(path: Any) -> Any:
        header = real_read(path)
        calls.append(path)
        return dataclasses.replace(header, metadata={**header.metadata, "license": "tampered"}) if len(calls) > 1 else header

    with mock.patch.object(stamp, "read_header", read_changed):
        try:
            stamp.stamp_checkpoint(src, tmp / "raced.safetensors", {"architecture": "qwen2", "license": "MIT"})
        except CheckpointError as exc:
            assert "changed by something else after writing" in exc.fault, exc
        else:
            raise AssertionError("stamp did not notice that the stamped file changed after it was written")
    assert read_header(src).metadata.get("license") is None, "stamp changed its input"


def falsify_cli_reports_hostile_file_with_exit_2() -> None:
    """`pretrain inspect` (plain, --quality, --json) and `pretrain stamp` on a hostile or missing file exit 2 with one
    line `pretrain: error: <path>: <fault>` on stderr, nothing on stdout and no traceback."""
    with temp_dir() as tmp:
        path = tmp / "bad.safetensors"
        path.write_bytes(hostile_cases()["header length past end of file"])
        missing = tmp / "absent.safetensors"
        commands = [
            (path, ("inspect", str(path), "--quality")),
            (path, ("inspect", str(path))),
            (path, ("inspect", str(path), "--json", "--min-score", "90")),
            (missing, ("inspect", str(missing))),
            (path, ("stamp", str(path), "--architecture", "qwen2", "-o", str(tmp / "out.safetensors"))),
            (missing, ("stamp", str(missing), "--license", "MIT", "--in-place")),
        ]
        for target, argv in commands:
            result = run_cli(*argv)
            shown = " ".join(argv)
            assert result.rc == 2, f"pretrain {shown}: exit {result.rc}, expected 2"
            assert result.err.startswith(f"pretrain: error: {target}: "), f"pretrain {shown}: stderr was {result.err!r}"
            assert result.err.count("\n") == 1 and result.err.endswith("\n"), f"pretrain {shown}: not one line: {result.err!r}"
            assert "Traceback" not in result.err and result.out == "", f"pretrain {shown}: stdout {result.out!r}"
        assert not (tmp / "out.safetensors").exists(), "stamp wrote an output for an unreadable input"
