"""model-release-v1 falsifiers 6 and 7, called directly with paths (and through HARNESS_PARAM_*):
they pass on a good checkpoint and card, and fail, naming a fix that runs as printed, on a broken export or a
card that disagrees with the checkpoint."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from falsifiers import model_release_export as mre
from falsifiers.support import run_cli, train_tiny
from pretrain import export_gguf as export_gguf_module
from pretrain import export_hf as export_hf_module
from pretrain.card import write_card


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("release")
    out = {}
    for family in ("llama", "qwen2"):
        ckpt = train_tiny(root / family, family=family, steps=2, eval_every=2, hidden=64, license="Apache-2.0").checkpoint
        write_card(ckpt, root / family / "README.md")
        out[family] = ckpt
    return out


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_both_pass_on_a_good_checkpoint_and_its_card(release: dict[str, Path], family: str) -> None:
    ckpt = release[family]
    mre.falsify_export_round_trip(str(ckpt))
    mre.falsify_card_agrees_with_checkpoint(str(ckpt), str(ckpt.parent / "README.md"))


def test_parameters_come_from_the_harness_environment(release: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = release["qwen2"]
    monkeypatch.setenv("HARNESS_PARAM_CHECKPOINT", str(ckpt))
    monkeypatch.setenv("HARNESS_PARAM_CARD", str(ckpt.parent / "README.md"))
    mre.falsify_card_agrees_with_checkpoint()
    monkeypatch.delenv("HARNESS_PARAM_CARD")
    with pytest.raises(ValueError, match=r"needs parameter card \(harness verify .* --param card=PATH\)"):
        mre.falsify_card_agrees_with_checkpoint()


def _fix_command(message: str) -> list[str]:
    command = re.findall(r"`(pretrain [^`]+)`", message)[-1]
    return shlex.split(command)


def test_a_card_whose_license_disagrees_fails_naming_the_command_that_fixes_it(release: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    ckpt = release["llama"]
    card = tmp_path / "README.md"
    card.write_text((ckpt.parent / "README.md").read_text().replace("license: apache-2.0", "license: mit", 1))
    with pytest.raises(AssertionError) as info:
        mre.falsify_card_agrees_with_checkpoint(str(ckpt), str(card))
    message = str(info.value)
    assert "license 'mit' but the checkpoint's is 'Apache-2.0'" in message
    argv = _fix_command(message)
    assert argv[:2] == ["pretrain", "card"]
    r = run_cli(*argv[1:])  # the suggestion runs as printed...
    assert r.rc == 0, r.err
    mre.falsify_card_agrees_with_checkpoint(str(ckpt), str(card))  # ...and fixes it


def test_a_card_with_another_val_loss_or_dataset_fails(release: dict[str, Path], tmp_path: Path) -> None:
    ckpt = release["llama"]
    text = (ckpt.parent / "README.md").read_text()
    card = tmp_path / "README.md"
    card.write_text(re.sub(r"(- type: loss\n\s+value: )[0-9.e-]+", r"\g<1>0.5", text, count=1)
                    .replace("datasets:\n- ", "datasets:\n- other-", 1))
    with pytest.raises(AssertionError, match=r"datasets \['other-.*validation loss 0\.5 but the checkpoint records"):
        mre.falsify_card_agrees_with_checkpoint(str(ckpt), str(card))


def test_a_missing_card_fails_naming_pretrain_card(release: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"no model card there; write it: `pretrain card .* -o .*README.md --force`"):
        mre.falsify_card_agrees_with_checkpoint(str(release["llama"]), str(tmp_path / "README.md"))


def test_an_hf_export_with_a_wrong_name_fails(release: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_hf_module.write_checkpoint

    def renaming(path: Path, tensors: dict, metadata: dict, **kw: object) -> None:
        tensors = {k.replace("model.norm.", "model.final_norm."): v for k, v in tensors.items()}
        real(path, tensors, metadata, **kw)

    monkeypatch.setattr(export_hf_module, "write_checkpoint", renaming)
    with pytest.raises(AssertionError, match=r"`pretrain export --format hf` failed: .*did not read back as written"
                                             r".*`pretrain export .* --format hf -o model-hf`"):
        mre.falsify_export_round_trip(str(release["llama"]))


def test_an_hf_export_whose_config_transformers_reads_differently_fails(release: dict[str, Path],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pretrain.model_config import ModelConfig

    real = ModelConfig.to_hf_dict
    monkeypatch.setattr(ModelConfig, "to_hf_dict", lambda self: {**real(self), "rms_norm_eps": 0.5})
    with pytest.raises(AssertionError, match=r"logits in transformers differ from pretrain's by .* > 0.0001"):
        mre.falsify_export_round_trip(str(release["llama"]))


def test_an_hf_export_with_wrong_values_fails(release: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_hf_module.write_checkpoint

    def scaled(path: Path, tensors: dict, metadata: dict, **kw: object) -> None:
        tensors = {k: v * 1.01 if k.endswith("mlp.up_proj.weight") else v for k, v in tensors.items()}
        real(path, tensors, metadata, **kw)

    monkeypatch.setattr(export_hf_module, "write_checkpoint", scaled)
    with pytest.raises(AssertionError, match=r"logits in transformers differ from pretrain's"):
        mre.falsify_export_round_trip(str(release["qwen2"]))


def test_a_gguf_export_with_a_wrong_name_fails(release: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_gguf_module.gguf_tensors

    def renaming(*args: object) -> dict:
        return {k.replace("ffn_gate", "ffn_gate_inp"): v for k, v in real(*args).items()}

    monkeypatch.setattr(export_gguf_module, "gguf_tensors", renaming)
    with pytest.raises(AssertionError, match=r"GGUF export's tensors are not llama.cpp's: missing \['blk.0.ffn_gate"
                                             r".*`pretrain export .* --format gguf --dtype f32 -o model-f32.gguf`"):
        mre.falsify_export_round_trip(str(release["qwen2"]))


def test_a_gguf_export_without_llamas_qk_permutation_fails(release: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_gguf_module, "llama_permute", lambda w, n_head, n_head_kv: w)
    with pytest.raises(AssertionError, match=r"GGUF tensor blk\.0\.attn_[qk]\.weight .* does not read back exactly"):
        mre.falsify_export_round_trip(str(release["llama"]))


def test_a_lossy_q8_0_export_fails(release: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_gguf_module.encode

    def coarse(array: object, dtype: str) -> tuple:
        import numpy as np

        a = np.asarray(array)
        return real(np.round(a * 4) / 4 if dtype == "q8_0" and a.ndim == 2 else a, dtype)

    monkeypatch.setattr(export_gguf_module, "encode", coarse)
    with pytest.raises(AssertionError, match=r"--dtype q8_0\) does not read back within Q8_0's step"):
        mre.falsify_export_round_trip(str(release["llama"]))


def test_a_card_writer_that_states_another_license_fails(release: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Falsifier 7 also checks the card `pretrain card` writes now, so the fix it prints cannot be a lie."""
    from pretrain import card as card_module

    monkeypatch.setattr(card_module, "hub_license", lambda recorded: {"license": "mit"})
    ckpt = release["qwen2"]
    with pytest.raises(AssertionError, match=r"`pretrain card .*` writes a card that disagrees with the checkpoint: "
                                             r"license 'mit' but the checkpoint's is 'Apache-2.0'"):
        mre.falsify_card_agrees_with_checkpoint(str(ckpt), str(ckpt.parent / "README.md"))


@pytest.mark.parametrize(("edit", "complaint"), [
    (("license: apache-2.0", "license: other\nlicense_name: Apache-2.0"), "the Hub's id for 'Apache-2.0' is 'apache-2.0'"),
    (("pipeline_tag:", "base_model: somebody/else\npipeline_tag:"), "base_model 'somebody/else' but the checkpoint was "
                                                                    "initialised from 'scratch'"),
    (("    dataset:\n      name: ", "    dataset:\n      name: other "), "model-index evaluates on"),
])
def test_a_card_that_misstates_the_licence_id_base_model_or_evaluation_data_fails(
        release: dict[str, Path], tmp_path: Path, edit: tuple[str, str], complaint: str) -> None:
    ckpt = release["llama"]
    text = (ckpt.parent / "README.md").read_text()
    assert edit[0] in text
    card = tmp_path / "README.md"
    card.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        mre.falsify_card_agrees_with_checkpoint(str(ckpt), str(card))


def test_a_fine_tuned_checkpoints_card_names_its_base_model(release: dict[str, Path], tmp_path: Path) -> None:
    from pretrain.card import parse_card

    ckpt = train_tiny(tmp_path / "tuned", init=str(release["llama"]), steps=1, eval_every=1).checkpoint
    card = tmp_path / "README.md"
    write_card(ckpt, card)
    assert parse_card(card.read_text())["base_model"] == str(release["llama"])
    mre.falsify_card_agrees_with_checkpoint(str(ckpt), str(card))


def test_a_q8_0_gguf_without_its_quantization_version_fails(release: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import gguf

    monkeypatch.setattr(gguf.GGUFWriter, "add_quantization_version", lambda self, version: None)
    with pytest.raises(AssertionError, match=r"the GGUF's general\.quantization_version is missing, expected 2"):
        mre.falsify_export_round_trip(str(release["qwen2"]))


def test_an_hf_export_that_drops_format_pt_or_the_provenance_fails(release: dict[str, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_hf_module, "exported_metadata", lambda metadata: {"architecture": "llama"})
    with pytest.raises(AssertionError, match=r"metadata has format None \(want 'pt'\) and loses \['license'"):
        mre.falsify_export_round_trip(str(release["llama"]))


def test_a_gguf_export_that_writes_another_tensor_type_than_asked_fails(release: dict[str, Path],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_gguf_module.encode
    monkeypatch.setattr(export_gguf_module, "encode", lambda array, dtype: real(array, "f16" if dtype == "f32" else dtype))
    with pytest.raises(AssertionError, match=r"GGUF tensor \S+ is F16 under --dtype f32; llama.cpp writes F32 there"):
        mre.falsify_export_round_trip(str(release["qwen2"]))
