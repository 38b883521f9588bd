"""`pretrain stamp`: metadata-only rewrites whose tensor bytes are provably untouched."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from falsifiers.tiny_hf import build_model
from pretrain import stamp as stamp_module
from pretrain.checkpoint import check_init_arch, load_tensors, read_header, write_checkpoint
from pretrain.cli import main
from pretrain.families import InitArchMismatchError

ROOT = Path(__file__).resolve().parents[2]


def data_hash(path: Path) -> str:
    """SHA-256 of everything after the header, computed independently of pretrain's own helpers."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return hashlib.sha256(raw[8 + n :]).hexdigest()


def tensors_of(cls_name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(cls_name, layers=1, device="cpu")
    return {k: v.clone() for k, v in model.state_dict().items() if k not in ("lm_head.weight", "cls.predictions.decoder.weight")}


@pytest.fixture
def incident(tmp_path: Path) -> Path:
    """The incident's file: Qwen2 tensors claiming LlamaForCausalLM, plus training facts to preserve."""
    path = tmp_path / "ckpt.safetensors"
    write_checkpoint(
        path,
        tensors_of("Qwen2ForCausalLM"),
        {"architecture": "LlamaForCausalLM", "step": 400, "val_loss": 4.62, "config": {"hidden_size": 32}},
        verify_arch=False,
    )
    return path


def test_stamp_rewrites_metadata_and_leaves_tensor_bytes_identical(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = incident.with_name("fixed.safetensors")
    before = read_header(incident)
    rc = main(["stamp", str(incident), "--architecture", "qwen2", "--license", "Apache-2.0", "-o", str(out)])
    assert rc == 0
    assert data_hash(out) == data_hash(incident)
    after = read_header(out)
    assert after.tensors == before.tensors
    assert after.metadata == {
        **before.metadata,
        "architecture": "qwen2",
        "hf_architecture": "Qwen2ForCausalLM",
        "hf_model_type": "qwen2",
        "license": "Apache-2.0",
    }
    assert after.metadata["step"] == "400" and after.metadata["val_loss"] == "4.62"
    text = capsys.readouterr().out
    assert "hf_architecture: <unset> -> Qwen2ForCausalLM  (filled in: canonical for --architecture qwen2)" in text
    assert f"sha256 {data_hash(incident)}" in text
    loaded, original = load_tensors(out), load_tensors(incident)
    assert all(torch.equal(loaded[k], original[k]) for k in original)


def test_the_gates_salvage_recipe_runs_and_fixes_the_file(incident: Path) -> None:
    with pytest.raises(InitArchMismatchError) as info:
        check_init_arch(incident)
    recipe = re.search(r"`(pretrain stamp [^`]+)`", str(info.value)).group(1)
    argv = shlex.split(recipe)
    assert main(argv[1:]) == 0
    fixed = Path(argv[argv.index("-o") + 1])
    header = check_init_arch(fixed)
    assert header.metadata["architecture"] == "qwen2"
    assert data_hash(fixed) == data_hash(incident)


def test_in_place_requires_the_flag(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = incident.read_bytes()
    assert main(["stamp", str(incident), "--architecture", "qwen2", "-o", str(incident)]) == 2
    assert "is the input file; pass --in-place" in capsys.readouterr().err
    assert incident.read_bytes() == original
    assert main(["stamp", str(incident), "--architecture", "qwen2"]) == 2
    assert "give -o OUT" in capsys.readouterr().err
    old_hash = data_hash(incident)
    assert main(["stamp", str(incident), "--architecture", "qwen2", "--in-place"]) == 0
    assert read_header(incident).metadata["architecture"] == "qwen2"
    assert data_hash(incident) == old_hash
    assert sorted(p.name for p in incident.parent.iterdir()) == ["ckpt.safetensors"]


def test_empty_patch_is_refused(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = incident.with_name("out.safetensors")
    assert main(["stamp", str(incident), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing to stamp" in err and "--architecture qwen2" in err
    assert not out.exists()


def test_empty_value_is_refused(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stamp", str(incident), "--license", " ", "-o", str(incident.with_name("o.safetensors"))]) == 2
    assert "--license is empty" in capsys.readouterr().err


def test_unknown_slug_names_the_flag_and_the_valid_slugs(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = incident.with_name("out.safetensors")
    assert main(["stamp", str(incident), "--architecture", "falcon", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pretrain: error: --architecture 'falcon' is not a family slug")
    assert "qwen3, qwen2, llama, mamba, rwkv, gpt-neox, opt, bert, gpt2" in err
    assert main(["stamp", str(incident), "--architecture", "Qwen2ForCausalLM", "-o", str(out)]) == 2
    assert "did you mean --architecture qwen2?" in capsys.readouterr().err
    assert not out.exists()


def test_hf_fields_contradicting_the_architecture_are_refused(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = incident.with_name("out.safetensors")
    rc = main(["stamp", str(incident), "--architecture", "qwen2", "--hf-architecture", "LlamaForCausalLM", "-o", str(out)])
    assert rc == 2
    assert "--hf-architecture 'LlamaForCausalLM' is family llama, but the architecture is qwen2" in capsys.readouterr().err
    assert not out.exists()


def test_stamping_a_contradicting_family_needs_force(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = incident.with_name("out.safetensors")
    assert main(["stamp", str(incident), "--architecture", "gpt2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists()
    # The refusal's suggestion is the full command, and it runs as printed.
    suggestion = err.split("stamp what the tensors are: ", 1)[1].split("; or pass --force", 1)[0]
    assert suggestion.startswith(f"pretrain stamp {incident} --architecture qwen2 ")
    assert main(shlex.split(suggestion)[1:]) == 0
    check_init_arch(shlex.split(suggestion)[-1])
    assert main(["stamp", str(incident), "--architecture", "gpt2", "--force", "-o", str(out)]) == 0
    assert read_header(out).metadata["hf_architecture"] == "GPT2LMHeadModel"
    # --force is not silent: one warning line naming both families.
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("pretrain: warning: --force: ")
    assert "gpt2" in warning and "qwen2" in warning


def test_json_output(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = incident.with_name("out.safetensors")
    assert main(["stamp", str(incident), "--architecture", "qwen2", "--data-source", "synthetic", "--json", "-o", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["output"] == str(out)
    assert result["filled"] == {"hf_architecture": "Qwen2ForCausalLM", "hf_model_type": "qwen2"}
    assert set(result["changed"]) == {"architecture", "hf_architecture", "hf_model_type", "data_source"}
    assert result["data_sha256"] == data_hash(out)


def test_bert_without_mlm_head_is_stamped_bert_model(tmp_path: Path) -> None:
    path = tmp_path / "bert.safetensors"
    write_checkpoint(path, tensors_of("BertModel"), {})
    assert main(["stamp", str(path), "--architecture", "bert", "-o", str(tmp_path / "b2.safetensors")]) == 0
    assert read_header(tmp_path / "b2.safetensors").metadata["hf_architecture"] == "BertModel"


def test_failure_mid_copy_leaves_nothing_behind(incident: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = incident.with_name("out.safetensors")

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(stamp_module, "_copy_range", broken)
    with pytest.raises(OSError, match="disk full"):
        stamp_module.stamp_checkpoint(incident, out, {"architecture": "qwen2"})
    assert sorted(p.name for p in incident.parent.iterdir()) == ["ckpt.safetensors"]


def test_hf_directory_is_stamped_into_a_new_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Was refused ("stamp its model.safetensors"); stamp now rewrites a directory's config.json claim.
    build_model("Qwen2ForCausalLM", layers=1, device="cpu").save_pretrained(tmp_path / "hf")
    assert main(["stamp", str(tmp_path / "hf"), "--architecture", "qwen2", "-o", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    assert (tmp_path / "o" / "model.safetensors").stat().st_ino == (tmp_path / "hf" / "model.safetensors").stat().st_ino


def test_hostile_input_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    proc = subprocess.run(
        [sys.executable, "-m", "pretrain", "stamp", str(bad), "--architecture", "qwen2", "-o", str(tmp_path / "o.safetensors")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"pretrain: error: {bad}: declared header length")
    assert "Traceback" not in proc.stderr


def test_missing_output_directory_is_refused_up_front(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = incident.parent / "no" / "such" / "dir" / "o.safetensors"
    assert main(["stamp", str(incident), "--architecture", "qwen2", "-o", str(out)]) == 2
    assert "does not exist; create it (mkdir -p" in capsys.readouterr().err


def test_write_failure_exits_2_with_the_reason(incident: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def denied(path: object, write: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(stamp_module, "atomic_write", denied)
    out = incident.with_name("o.safetensors")
    assert main(["stamp", str(incident), "--architecture", "qwen2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pretrain: error: {out}: cannot write the stamped checkpoint: Permission denied")


def test_in_place_through_a_symlink_rewrites_the_target(incident: Path) -> None:
    link = incident.with_name("latest.safetensors")
    link.symlink_to(incident.name)
    old_hash = data_hash(incident)
    assert main(["stamp", str(link), "--architecture", "qwen2", "--in-place"]) == 0
    assert link.is_symlink()
    assert read_header(incident).metadata["architecture"] == "qwen2"
    assert data_hash(incident) == old_hash


def test_killed_mid_copy_leaves_no_output_and_the_input_intact(tmp_path: Path) -> None:
    import os
    import signal
    import time

    from falsifiers.checkpoint_format import make_sparse_checkpoint

    src, out = tmp_path / "big.safetensors", tmp_path / "out.safetensors"
    make_sparse_checkpoint(src, 1 << 30)  # sparse on input; the copy is slow enough to be caught mid-write
    before = src.stat().st_size, read_header(src).metadata
    proc = subprocess.Popen(
        [sys.executable, "-m", "pretrain", "stamp", str(src), "--license", "MIT", "-o", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        temps: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in tmp_path.glob(".out.safetensors.*.tmp") if p.stat().st_size > 0]
            if temps:
                break
            time.sleep(0.005)
        assert temps, "stamp finished before it could be killed mid-write"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    assert (src.stat().st_size, read_header(src).metadata) == before
    for leftover in tmp_path.glob(".out.safetensors.*.tmp"):  # only a hidden temp file can survive SIGKILL
        leftover.unlink()


@pytest.fixture
def unknown_qwen2(tmp_path: Path) -> Path:
    """Qwen2 tensors whose writer did not know the family: `architecture: unknown`, no HF class."""
    path = tmp_path / "unknown.safetensors"
    write_checkpoint(path, tensors_of("Qwen2ForCausalLM"), {"architecture": "unknown", "step": 7})
    return path


def test_hf_class_contradicting_the_tensors_behind_an_unknown_slug_is_refused(unknown_qwen2: Path) -> None:
    # The incident's file was made this way: the slug says nothing, so the gate reads hf_architecture, and
    # stamp used to judge the slug alone and write a Llama claim on Qwen2 tensors without --force.
    out = unknown_qwen2.with_name("out.safetensors")
    before = unknown_qwen2.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "pretrain", "stamp", str(unknown_qwen2), "--hf-architecture", "LlamaForCausalLM", "-o", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "claim (llama, from metadata 'hf_architecture' 'LlamaForCausalLM') contradict the tensors (qwen2)" in proc.stderr
    assert "or pass --force if the tensors are known to be llama" in proc.stderr
    assert not out.exists() and unknown_qwen2.read_bytes() == before
    # The suggested command runs as printed and gives a file the gate accepts.
    suggestion = proc.stderr.split("stamp what the tensors are: ", 1)[1].split("; or pass --force", 1)[0]
    assert suggestion.startswith(f"pretrain stamp {unknown_qwen2} --architecture qwen2 --hf-architecture Qwen2ForCausalLM ")
    assert main(shlex.split(suggestion)[1:]) == 0
    assert check_init_arch(shlex.split(suggestion)[-1]).claim.family == "qwen2"


def test_forcing_that_hf_class_warns_and_the_gate_refuses_the_result(unknown_qwen2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = unknown_qwen2.with_name("forced.safetensors")
    assert main(["stamp", str(unknown_qwen2), "--hf-architecture", "LlamaForCausalLM", "--force", "-o", str(out)]) == 0
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("pretrain: warning: --force: stamping family llama")
    assert "qwen2" in warning and "loading it with --init will be refused" in warning
    assert data_hash(out) == data_hash(unknown_qwen2)
    with pytest.raises(InitArchMismatchError, match="the tensor names are qwen2's") as refused:
        check_init_arch(out)
    assert refused.value.claimed == "llama" and refused.value.inferred == "qwen2"
    assert main(["inspect", str(out), "--check-arch"]) == 1
