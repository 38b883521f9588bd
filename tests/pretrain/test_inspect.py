"""`pretrain inspect` and its quality scorecard, driven through the CLI a user runs."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from falsifiers.tiny_hf import build_model
from pretrain.checkpoint import read_header, write_checkpoint
from pretrain.cli import main
from pretrain.quality import SHIP_READY_THRESHOLD, score_header

ROOT = Path(__file__).resolve().parents[2]
PROVENANCE = {"license": "Apache-2.0", "data_source": "tiny synthetic corpus", "data_license": "CC0-1.0"}
QWEN2_CONFIG = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "model_type": "qwen2"}


def qwen2_tensors() -> dict[str, torch.Tensor]:
    model = build_model("Qwen2ForCausalLM", layers=1, device="cpu")
    return {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}


@pytest.fixture(scope="module")
def tensors() -> dict[str, torch.Tensor]:
    return qwen2_tensors()


def mis_stamped(directory: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """The incident's checkpoint, otherwise complete: provenance, config and a tokenizer beside it."""
    path = directory / "incident.safetensors"
    meta = {"architecture": "llama", "hf_architecture": "LlamaForCausalLM", "hf_model_type": "llama", **PROVENANCE, "config": QWEN2_CONFIG}
    write_checkpoint(path, tensors, meta, verify_arch=False)
    (directory / "tokenizer.json").write_text("{}")
    return path


def fully_stamped(directory: Path, tensors: dict[str, torch.Tensor]) -> Path:
    path = directory / "good.safetensors"
    meta = {"architecture": "qwen2", "hf_architecture": "Qwen2ForCausalLM", "hf_model_type": "qwen2", **PROVENANCE, "config": QWEN2_CONFIG}
    write_checkpoint(path, tensors, meta)
    (directory / "tokenizer.json").write_text("{}")
    return path


def test_inspect_reports_tensors_metadata_and_agreement(tmp_path: Path, tensors: dict, capsys: pytest.CaptureFixture[str]) -> None:
    path = fully_stamped(tmp_path, tensors)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"tensors: {len(tensors)} (F32 x{len(tensors)})" in out
    assert "license: Apache-2.0" in out
    assert "claimed family: qwen2" in out and "inferred family: qwen2" in out and "agreement: yes" in out


def test_inspect_shows_a_mismatch_and_its_salvage(tmp_path: Path, tensors: dict, capsys: pytest.CaptureFixture[str]) -> None:
    path = mis_stamped(tmp_path, tensors)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "agreement: NO - the claim (llama) contradicts the tensors (qwen2)" in out
    assert f"pretrain stamp {path} --architecture qwen2 --hf-architecture Qwen2ForCausalLM --hf-model-type qwen2" in out
    assert main(["inspect", str(path), "--check-arch"]) == 1
    assert main(["inspect", str(fully_stamped(tmp_path, tensors)), "--check-arch"]) == 0


def test_inspect_json(tmp_path: Path, tensors: dict, capsys: pytest.CaptureFixture[str]) -> None:
    path = mis_stamped(tmp_path, tensors)
    assert main(["inspect", str(path), "--json", "--quality"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tensors"]["count"] == len(tensors)
    assert data["tensors"]["total_bytes"] == sum(t.numel() * 4 for t in tensors.values())
    assert (data["claimed_family"], data["inferred_family"], data["agrees"]) == ("llama", "qwen2", False)
    quality = data["quality"]
    assert quality["score"] == sum(c["points"] for c in quality["categories"])
    assert {c["name"]: c["max_points"] for c in quality["categories"]} == {
        "integrity": 20, "structure": 20, "provenance": 25, "hf_identity": 20, "tokenizer": 15,
    }


def test_mis_stamped_checkpoint_scores_below_threshold_and_prints_the_recipe(
    tmp_path: Path, tensors: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    path = mis_stamped(tmp_path, tensors)
    assert main(["inspect", str(path), "--quality", "--min-score", "90"]) == 1
    out = capsys.readouterr().out
    assert "NOT ship-ready" in out
    assert f"pretrain stamp {path} --architecture qwen2 --hf-architecture Qwen2ForCausalLM --hf-model-type qwen2 -o" in out
    card = score_header(read_header(path))
    assert card.score < SHIP_READY_THRESHOLD and not card.ship_ready


def test_fully_stamped_checkpoint_is_ship_ready(tmp_path: Path, tensors: dict, capsys: pytest.CaptureFixture[str]) -> None:
    path = fully_stamped(tmp_path, tensors)
    assert main(["inspect", str(path), "--quality", "--min-score", "90"]) == 0
    assert "quality: 100/100 (ship-ready" in capsys.readouterr().out
    card = score_header(read_header(path))
    assert card.ship_ready and card.fixes == ()


def test_each_shortfall_costs_its_points_and_names_its_fix(tmp_path: Path, tensors: dict) -> None:
    path = tmp_path / "bare.safetensors"
    write_checkpoint(path, tensors, {})
    card = score_header(read_header(path))
    points = {c.name: c.points for c in card.categories}
    # no provenance, no identity, no tokenizer, no head count; the tensors still give family/hidden/layers
    assert points == {"integrity": 20, "structure": 15, "provenance": 0, "hf_identity": 0, "tokenizer": 0}
    assert card.score == 35
    # The placeholder is quoted now: an unquoted <SPDX-ID> is a shell redirection, so the command could not run.
    assert any(f.startswith(f"pretrain stamp {path} --architecture qwen2") and "--license '<SPDX-ID>'" in f for f in card.fixes)
    assert any("tokenizer.json" in f for f in card.fixes)
    placeholders = tmp_path / "placeholder.safetensors"
    write_checkpoint(placeholders, tensors, {"license": "unknown", "data_source": "TODO", "data_license": ""})
    assert next(c for c in score_header(read_header(placeholders)).categories if c.name == "provenance").points == 0


def test_min_score_boundaries(tmp_path: Path, tensors: dict) -> None:
    path = tmp_path / "bare.safetensors"
    write_checkpoint(path, tensors, {})
    assert main(["inspect", str(path), "--min-score", "35"]) == 0
    assert main(["inspect", str(path), "--min-score", "36"]) == 1
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(path), "--min-score", "101"])
    assert info.value.code == 2


def test_hf_directory_quality_reads_config_and_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "hf"
    build_model("Qwen3ForCausalLM", layers=1, device="cpu").save_pretrained(d)
    (d / "tokenizer.json").write_text("{}")
    assert main(["inspect", str(d), "--quality"]) == 0
    out = capsys.readouterr().out
    card = score_header(read_header(d))
    points = {c.name: c.points for c in card.categories}
    assert points["hf_identity"] == 20 and points["tokenizer"] == 15 and points["structure"] == 20
    assert points["provenance"] == 0
    # Was an "edit config.json" instruction; a directory is now stamped by the same runnable command.
    assert f"  pretrain stamp {d} --license '<SPDX-ID>' --data-source '<what it was trained on>' --data-license '<SPDX-ID>' -o {d}.fixed\n" in out


def test_qwen3_head_count_is_derived_from_shapes(tmp_path: Path) -> None:
    model = build_model("Qwen3ForCausalLM", layers=2, device="cpu")
    path = tmp_path / "q3.safetensors"
    write_checkpoint(path, {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}, {})
    from pretrain.quality import derive_structure

    assert derive_structure(read_header(path)) == {"hidden_size": 32, "num_layers": 2, "num_heads": 4}


def test_gguf_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert main(["inspect", str(path), "--quality"]) == 0
    out = capsys.readouterr().out
    assert "(gguf)" in out and "claimed family: qwen2" in out and "inferred family: unknown" in out
    assert "not checkable" in out
    assert "num_heads = 2" in out


@pytest.mark.parametrize("argv_tail", [[], ["--quality"], ["--json"]])
def test_hostile_file_exits_2_with_one_line_error(tmp_path: Path, argv_tail: list[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    fragment = b'{"a": {"dtype": "F3'
    bad.write_bytes(struct.pack("<Q", len(fragment)) + fragment)
    proc = subprocess.run(
        [sys.executable, "-m", "pretrain", "inspect", str(bad), *argv_tail],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"pretrain: error: {bad}: safetensors header is not valid JSON")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"pretrain: error: {tmp_path / 'nope'}: no such file or directory; check the path\n"


KEYS = ["architecture", "hf_architecture", "hf_model_type", "license", "data_source", "data_license", "config"]
VALUES = st.sampled_from(
    ["qwen2", "llama", "Qwen2ForCausalLM", "LlamaForCausalLM", "gpt2", "unknown", "", "Apache-2.0", "x", json.dumps(QWEN2_CONFIG)]
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(meta=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=len(KEYS)), tokenizer=st.booleans())
def test_scores_stay_within_bounds_and_mismatch_is_never_ship_ready(meta: dict[str, str], tokenizer: bool) -> None:
    import tempfile

    tensors = _cached_tensors()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.safetensors"
        if "config" in meta and not meta["config"].startswith("{"):
            meta["config"] = "{}"
        write_checkpoint(path, tensors, meta, verify_arch=False)
        if tokenizer:
            (Path(tmp) / "tokenizer.json").write_text("{}")
        card = score_header(read_header(path))
        assert 0 <= card.score <= 100 and card.max_score == 100
        for category in card.categories:
            assert 0 <= category.points <= category.max_points
        if card.mismatch:
            assert not card.ship_ready and card.score < SHIP_READY_THRESHOLD
            assert any(f.startswith("pretrain stamp") and "--architecture qwen2" in f for f in card.fixes)


_TENSORS: dict[str, torch.Tensor] = {}


def _cached_tensors() -> dict[str, torch.Tensor]:
    if not _TENSORS:
        _TENSORS.update(qwen2_tensors())
    return _TENSORS


def test_control_characters_in_metadata_are_escaped(tmp_path: Path, tensors: dict, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "esc.safetensors"
    write_checkpoint(path, tensors, {"data_source": "evil\x1b[2J\nnext line", "k\x07": "v"})
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "data_source: evil\\x1b[2J\\nnext line" in out


@pytest.mark.parametrize("command", [["inspect"], ["inspect", "--json", "--quality"], ["stamp", "--license", "MIT", "--in-place"]])
def test_error_naming_a_hostile_file_name_stays_one_line(tmp_path: Path, command: list[str]) -> None:
    # A file name is user data: a newline must not split the error, an escape must not reach the terminal.
    bad = tmp_path / "evil\nname\x1b[2J.safetensors"
    bad.write_bytes(b"\x01\x02")
    proc = subprocess.run(
        [sys.executable, "-m", "pretrain", command[0], str(bad), *command[1:]],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "\x1b" not in proc.stderr
    assert proc.stderr.startswith(f"pretrain: error: {tmp_path}/evil\\nname\\x1b[2J.safetensors: file is 2 bytes, too short")


def test_library_modules_do_not_import_the_cli_modules() -> None:
    # The scorecard, the load path and the format readers are libraries: shared code lives in them (or in
    # pretrain.families), never in a CLI module they would have to import.
    import ast

    cli_modules = {"pretrain.stamp", "pretrain.inspection", "pretrain.cli", "pretrain.train"}
    libraries = ["quality.py", "inspection.py", "families.py", "checkpoint.py", "loading.py", "atomic.py", "model.py",
                 *(f"formats/{p.name}" for p in (ROOT / "pretrain" / "formats").glob("*.py"))]
    for name in libraries:
        tree = ast.parse((ROOT / "pretrain" / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {f"pretrain.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "pretrain"
                     for a in n.names}
        own = "pretrain." + name.removesuffix(".py").replace("/", ".")
        assert not (imported & cli_modules) - {own}, f"pretrain/{name} imports {sorted(imported & cli_modules)}"
