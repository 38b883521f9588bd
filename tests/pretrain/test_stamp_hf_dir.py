"""`pretrain stamp` on an HF directory: config.json carries the stamp, every weight file stays byte-identical.

Issue 13: a new directory (or `--in-place`) whose config.json carries the fixed claim, the weight files
hard-linked or copied byte-identical; the salvage for every format the loader reads is one command, and
every suggestion printed for an HF directory is that command, runnable as printed.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import torch

from falsifiers.tiny_hf import build_model
from pretrain import stamp as stamp_module
from pretrain.checkpoint import CheckpointError, check_init_arch, read_header
from pretrain.cli import main
from pretrain.families import InitArchMismatchError
from pretrain.formats.hf_dir import STAMP_KEY

PROVENANCE = ["--license", "Apache-2.0", "--data-source", "tiny synthetic corpus", "--data-license", "CC0-1.0"]


def weight_files(directory: Path) -> dict[str, tuple[int, str]]:
    """Each weight file's inode and sha256, computed independently of pretrain."""
    return {p.name: (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(directory.glob("*.safetensors"))}


def save(directory: Path, cls: str = "Qwen2ForCausalLM", **kwargs: object) -> Path:
    torch.manual_seed(0)
    build_model(cls, layers=2, device="cpu").save_pretrained(directory, **kwargs)
    return directory


def mis_stamp(directory: Path, cls: str = "LlamaForCausalLM", model_type: str = "llama") -> Path:
    config = json.loads((directory / "config.json").read_text())
    config.update(architectures=[cls], model_type=model_type)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
def test_a_full_stamp_links_every_weight_file_and_config_json_carries_it(tmp_path: Path, sharded: bool) -> None:
    src = save(tmp_path / "hf", max_shard_size="20KB") if sharded else save(tmp_path / "hf")
    before = weight_files(src)
    assert len(before) == (len(before) if sharded else 1) and (len(before) > 1) == sharded
    assert main(["stamp", str(src), "--architecture", "qwen2", *PROVENANCE, "-o", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    # Was: the first shard rewritten to carry the provenance (a new file, not the weights as they were).
    assert weight_files(out) == before
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["model_type"] == "qwen2"
    assert config[STAMP_KEY] == {"architecture": "qwen2", "hf_architecture": "Qwen2ForCausalLM",
                                 "hf_model_type": "qwen2", "license": "Apache-2.0",
                                 "data_source": "tiny synthetic corpus", "data_license": "CC0-1.0"}
    header = read_header(out)
    assert header.metadata["license"] == "Apache-2.0" and header.metadata["data_license"] == "CC0-1.0"
    assert check_init_arch(out).claim.family == "qwen2"
    (out / "tokenizer.json").write_text("{}")
    assert main(["inspect", str(out), "--quality", "--min-score", "90"]) == 0


def test_the_stamped_directory_still_loads_in_transformers_with_the_same_logits(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    src = save(tmp_path / "hf")
    assert main(["stamp", str(src), *PROVENANCE, "-o", str(tmp_path / "out")]) == 0
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        want = transformers.AutoModelForCausalLM.from_pretrained(src).eval()(ids).logits
        got = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()(ids).logits
    assert torch.equal(got, want)


def test_in_place_rewrites_only_config_json(tmp_path: Path) -> None:
    src = mis_stamp(save(tmp_path / "hf"))
    before = weight_files(src)
    assert main(["stamp", str(src), "--architecture", "qwen2", *PROVENANCE, "--in-place"]) == 0
    assert weight_files(src) == before  # same inodes: no weight file was rewritten
    assert check_init_arch(src).claim.family == "qwen2"
    assert read_header(src).metadata["license"] == "Apache-2.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
    assert not [p for p in src.iterdir() if p.name.startswith(".")]


def test_a_shard_whose_metadata_states_the_wrong_claim_is_fixed_without_rewriting_it(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    src = save(tmp_path / "hf")
    tensors = load_file(src / "model.safetensors")
    save_file(tensors, src / "model.safetensors", metadata={"format": "pt", "architecture": "llama",
                                                            "hf_architecture": "LlamaForCausalLM"})
    with pytest.raises(InitArchMismatchError):
        check_init_arch(src)
    before = weight_files(src)
    assert main(["stamp", str(src), "--architecture", "qwen2", "-o", str(tmp_path / "out")]) == 0
    assert weight_files(tmp_path / "out") == before
    assert check_init_arch(tmp_path / "out").claim.family == "qwen2"


def test_a_trainer_run_directory_without_config_json_is_stamped(tmp_path: Path) -> None:
    from pretrain.checkpoint import write_checkpoint
    from pretrain.model import ModelConfig, build_model as build_ours

    cfg = ModelConfig(family="qwen2", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8)
    run = tmp_path / "run"
    run.mkdir()
    write_checkpoint(run / "model.safetensors", build_ours(cfg, seed=0).state_dict(),
                     {"architecture": "qwen2", "config": cfg.to_json(), "tokenizer": "bytes"})
    (run / "metrics.jsonl").write_text("{}\n")
    before = weight_files(run)
    # Was refused: "has no config.json to carry the architecture".
    assert main(["stamp", str(run), *PROVENANCE, "-o", str(tmp_path / "run.fixed")]) == 0
    out = tmp_path / "run.fixed"
    assert weight_files(out) == before
    assert (out / "metrics.jsonl").read_text() == "{}\n"
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 32
    header = check_init_arch(out)
    assert header.metadata["license"] == "Apache-2.0" and header.metadata["tokenizer"] == "bytes"
    from pretrain.model import from_pretrained

    assert from_pretrained(out).config == cfg


def test_across_filesystems_the_weights_are_copied_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = save(tmp_path / "hf", max_shard_size="20KB")

    def cross_device(a: object, b: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(stamp_module.os, "link", cross_device)
    assert main(["stamp", str(src), *PROVENANCE, "--json", "-o", str(tmp_path / "out")]) == 0
    result = json.loads(capsys.readouterr().out)
    names = sorted(p.name for p in src.glob("*.safetensors"))
    assert result["weight_files"] == {name: "copied" for name in names}
    for name in names:
        assert filecmp.cmp(src / name, tmp_path / "out" / name, shallow=False)
        assert (src / name).stat().st_ino != (tmp_path / "out" / name).stat().st_ino


def test_a_copy_that_differs_is_refused_and_nothing_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = save(tmp_path / "hf")

    def cross_device(a: object, b: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    real_copyfile = stamp_module.shutil.copyfile

    def bad_copy(a: object, b: object, **kwargs: object) -> object:
        if not str(a).endswith(".safetensors"):
            return real_copyfile(a, b, **kwargs)
        Path(b).write_bytes(Path(a).read_bytes()[:-1] + b"\0")  # a disk that flipped the last byte
        return b

    monkeypatch.setattr(stamp_module.os, "link", cross_device)
    monkeypatch.setattr(stamp_module.shutil, "copyfile", bad_copy)
    assert main(["stamp", str(src), *PROVENANCE, "-o", str(tmp_path / "out")]) == 2
    assert "model.safetensors: the copy differs from" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def suggestions_for(directory: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Every `pretrain stamp` command pretrain prints for a mis-stamped HF directory, by where it came from."""
    found: dict[str, str] = {}
    with pytest.raises(InitArchMismatchError) as gate:
        check_init_arch(directory)
    found["gate"] = re.search(r"`(pretrain stamp [^`]+)`", str(gate.value)).group(1)
    assert main(["inspect", str(directory), "--quality"]) == 0
    out = capsys.readouterr().out
    found["inspect salvage"] = out.split("Fix with:\n", 1)[1].splitlines()[0].strip()
    fix = out.split("to fix:", 1)[1].splitlines()[1].strip()
    found["quality fix"] = fix.replace("'<SPDX-ID>'", "MIT").replace("'<what it was trained on>'", "'a corpus'")
    assert main(["train", "--init", str(directory), "--steps", "1", "--out", str(directory.parent / "t")]) == 2
    found["train --init"] = re.search(r"`(pretrain stamp [^`]+)`", capsys.readouterr().err).group(1)
    assert main(["stamp", str(directory), "--architecture", "llama", "-o", str(directory.parent / "x")]) == 2
    err = capsys.readouterr().err
    found["stamp refusal"] = err.split("stamp what the tensors are: ", 1)[1].split("; or pass --force", 1)[0]
    assert main(["stamp", str(directory), "-o", str(directory.parent / "x")]) == 2
    found["nothing to stamp"] = re.search(r"\(e\.g\. `(pretrain stamp [^`]+)`\)", capsys.readouterr().err).group(1)
    return found


def test_every_suggestion_for_an_hf_directory_is_the_stamp_command_and_runs_as_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = mis_stamp(save(tmp_path / "hf"))
    before = weight_files(src)
    capsys.readouterr()
    found = suggestions_for(src, capsys)
    assert len(found) == 6
    for where, command in found.items():
        argv = shlex.split(command)
        assert argv[:3] == ["pretrain", "stamp", str(src)], (where, command)
        out = Path(argv[argv.index("-o") + 1])
        assert out == tmp_path / "hf.fixed", (where, command)
        assert main(argv[1:]) == 0, (where, command, capsys.readouterr().err)
        assert check_init_arch(out).claim.family == "qwen2", where
        assert weight_files(out) == before, where
        if where == "quality fix":
            assert read_header(out).metadata["license"] == "MIT"
        import shutil

        shutil.rmtree(out)


def test_an_existing_output_directory_gets_a_suggestion_that_runs(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = save(tmp_path / "hf")
    (tmp_path / "hf.fixed").mkdir()
    assert main(["stamp", str(src), "--license", "MIT", "-o", str(tmp_path / "hf.fixed")]) == 2
    err = capsys.readouterr().err
    # Was "give a new directory name such as hf.fixed": the directory that already exists.
    suggested = err.split("such as ", 1)[1].split(";", 1)[0].strip()
    assert not Path(suggested).exists()
    assert main(["stamp", str(src), "--license", "MIT", "-o", suggested]) == 0


def test_stamping_the_current_directory_writes_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src = save(tmp_path / "hf")
    monkeypatch.chdir(src)
    assert main(["stamp", ".", "-o", "sub"]) == 2
    assert "nothing to stamp" in capsys.readouterr().err
    # An output inside the input directory would copy itself; refused, naming a place beside it.
    assert main(["stamp", ".", "--license", "MIT", "-o", "sub"]) == 2
    err = capsys.readouterr().err
    assert f"-o {src / 'sub'} is inside the input directory {src}" in err
    assert f"{tmp_path / 'hf.fixed'}" in err
    assert not (src / "sub").exists()
    assert main(["stamp", ".", "--license", "MIT", "-o", str(tmp_path / "hf.fixed")]) == 0
    assert read_header(tmp_path / "hf.fixed").metadata["license"] == "MIT"


def test_a_malformed_stamp_in_config_json_is_a_checkpoint_error(tmp_path: Path) -> None:
    src = save(tmp_path / "hf")
    config = json.loads((src / "config.json").read_text())
    config[STAMP_KEY] = {"license": 3}
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"config.json: '{STAMP_KEY}'\\['license'\\] is 3, not a string"):
        read_header(src)
    config[STAMP_KEY] = {"config": "{}"}
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"'{STAMP_KEY}' has key 'config', which is not a stamp field"):
        read_header(src)
    assert os.path.isdir(src)


def test_the_reader_and_stamp_agree_on_the_stamp_fields() -> None:
    from pretrain.formats.hf_dir import STAMPED_FIELDS

    assert tuple(stamp_module.STAMP_FIELDS) == STAMPED_FIELDS


def test_the_salvage_recipe_names_a_free_directory_when_the_fixed_one_exists(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = mis_stamp(save(tmp_path / "hf"))
    for expected in ("hf.fixed", "hf.fixed.2"):
        with pytest.raises(InitArchMismatchError) as gate:
            check_init_arch(src)
        argv = shlex.split(re.search(r"`(pretrain stamp [^`]+)`", str(gate.value)).group(1))
        assert argv[-1] == str(tmp_path / expected)  # was hf.fixed again, which stamp then refused
        assert main(argv[1:]) == 0, capsys.readouterr().err
    assert main(["stamp", str(src), "--architecture", "qwen2"]) == 2
    assert f"(e.g. -o {tmp_path / 'hf.fixed.3'})" in capsys.readouterr().err


def test_the_stamped_directory_gets_the_umask_permissions_not_the_temp_directorys(tmp_path: Path) -> None:
    # Was: stamp built it with its own mkdtemp (mode 0700) and renamed that in, so a team's shared release
    # directory was readable by its owner alone. Now it is pretrain.atomic.atomic_directory's write.
    src = save(tmp_path / "hf")
    old = os.umask(0o022)
    try:
        assert main(["stamp", str(src), "--architecture", "qwen2", *PROVENANCE, "-o", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp directory left beside it
