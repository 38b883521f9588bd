"""Falsifiers for INV-INIT-ARCH-MATCH-001 (contract apr-pretrain-from-init-v1): a checkpoint whose
claimed family contradicts its tensor names is refused before any model is built from it, with both
families and a ready-to-run `pretrain stamp` salvage; and the gate never refuses what it cannot prove wrong.

Each function returns None when the invariant held and raises AssertionError with the counterexample
when it did not. They write real checkpoints (tiny `transformers` models) and call the real loader gate,
`pretrain.checkpoint.check_init_arch`, which the trainer runs before building the model.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

from falsifiers.support import run_cli, write_hf_checkpoint
from falsifiers.tiny_hf import HF_CLASSES, build_model, expected_family, hf_tensor_names, names_at_depth


def _expect_refusal(path: Path, claimed: str, inferred: str) -> str:
    from pretrain.checkpoint import check_init_arch
    from pretrain.families import InitArchMismatchError

    try:
        check_init_arch(path)
    except InitArchMismatchError as exc:
        message = str(exc)
        assert (exc.claimed, exc.inferred) == (claimed, inferred), f"wrong families: {exc.claimed}/{exc.inferred}"
        assert "FALSIFY-INIT-ARCH-MATCH-001" in message, message
        assert claimed in message and inferred in message, f"message does not name both families: {message}"
        assert f"pretrain stamp {shlex.quote(str(path))} --architecture {inferred}" in message, f"no salvage for this file: {message}"
        return message
    raise AssertionError(f"{path.name} claims {claimed} but holds {inferred} tensors, and check_init_arch accepted it")


def _expect_pass(path: Path, why: str) -> None:
    from pretrain.checkpoint import check_init_arch
    from pretrain.families import InitArchMismatchError

    try:
        check_init_arch(path)
    except InitArchMismatchError as exc:
        raise AssertionError(f"false positive ({why}): {exc}") from None
    except Exception as exc:  # a gate that crashes on a valid checkpoint also blocks a legitimate --init
        raise AssertionError(f"the gate crashed ({why}): {type(exc).__name__}: {exc}") from exc


def falsify_llama_claim_on_qwen2_tensors() -> None:
    """The incident: LlamaForCausalLM claimed, Qwen2 tensors (q/k/v biases) held -> refused naming llama and qwen2."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "incident.safetensors"
        write_hf_checkpoint(path, "Qwen2ForCausalLM", {"architecture": "LlamaForCausalLM"})
        _expect_refusal(path, "llama", "qwen2")


def falsify_qwen2_claim_on_llama_tensors() -> None:
    """The inverse: Qwen2ForCausalLM claimed, Llama tensors held -> refused naming qwen2 and llama."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inverse.safetensors"
        write_hf_checkpoint(path, "LlamaForCausalLM", {"hf_architecture": "Qwen2ForCausalLM"})
        _expect_refusal(path, "qwen2", "llama")


def falsify_hf_dir_config_claim_on_wrong_tensors() -> None:
    """An HF directory whose config.json says LlamaForCausalLM over Qwen3 weights is refused too."""
    import json

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "hf"
        build_model("Qwen3ForCausalLM", layers=1, device="cpu").save_pretrained(d)
        config = json.loads((d / "config.json").read_text())
        config["architectures"], config["model_type"] = ["LlamaForCausalLM"], "llama"
        (d / "config.json").write_text(json.dumps(config))
        from pretrain.checkpoint import check_init_arch
        from pretrain.families import InitArchMismatchError

        try:
            check_init_arch(d)
        except InitArchMismatchError as exc:
            assert (exc.claimed, exc.inferred) == ("llama", "qwen3"), str(exc)
            return
        raise AssertionError("HF directory claiming llama over qwen3 tensors was accepted")


def falsify_skip_when_claim_absent() -> None:
    """No architecture claim at all: the gate has nothing to compare and must pass."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "noclaim.safetensors"
        write_hf_checkpoint(path, "Qwen2ForCausalLM", {"step": "10"})
        _expect_pass(path, "claim absent")


def falsify_skip_when_claim_unmappable() -> None:
    """A novel architecture (no known family) is not evidence of a mismatch: pass."""
    with tempfile.TemporaryDirectory() as tmp:
        for claim in ("Qwen2MoeForCausalLM", "BrandNewForCausalLM", "unknown"):
            path = Path(tmp) / "novel.safetensors"
            write_hf_checkpoint(path, "Qwen2ForCausalLM", {"architecture": claim})
            _expect_pass(path, f"unmappable claim {claim!r}")


def falsify_skip_when_tensor_family_unknown() -> None:
    """GGUF tensor names (`blk.N.*`) say no family: the claim is trusted and the gate passes."""
    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_block_count(1)
        writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
        writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float32))
        writer.add_tensor("blk.0.attn_q.bias", np.zeros((8,), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        from pretrain.checkpoint import read_header

        assert read_header(path).arch_claim == "llama", "the GGUF claim was not read"
        _expect_pass(path, "tensor family unknown")


def falsify_matching_claims_pass_for_every_family() -> None:
    """Every family's real HF names pass under a matching claim in class, slug and model_type form."""
    from pretrain.families import CANONICAL_HF, InitArchMismatchError, validate_init_arch_matches_tensor_evidence

    failures = []
    for cls_name in HF_CLASSES:
        family = expected_family(cls_name)
        for claim in (cls_name, family, CANONICAL_HF[family].model_type):
            try:
                validate_init_arch_matches_tensor_evidence(claim, hf_tensor_names(cls_name))
            except InitArchMismatchError as exc:
                failures.append(f"{cls_name} claimed as {claim!r}: {exc.inferred} inferred")
        # A control: the same names under a contradicting claim are refused, so the passes above come from a
        # gate that judged the claim, not from one that refuses nothing.
        other = "qwen3" if family != "qwen3" else "llama"
        try:
            validate_init_arch_matches_tensor_evidence(other, hf_tensor_names(cls_name))
            failures.append(f"control: {cls_name} names claimed as {other!r} passed; the gate refused nothing")
        except InitArchMismatchError as exc:
            if (exc.claimed, exc.inferred) != (other, family):
                failures.append(f"control: {cls_name} claimed as {other!r}: refused as {exc.claimed}/{exc.inferred}")
    assert not failures, "matching claims refused:\n" + "\n".join(failures)
    _claims_map_to_their_family()


def _claims_map_to_their_family() -> None:
    """Every spelling of a family maps to it (HF classes with any head, slugs, model types, GGUF names, any
    case and padding), and what names no family maps to None: the claim the gate judges is the one written."""
    from pretrain.families import normalize_metadata_arch_family

    spelled = {
        "Qwen2ForCausalLM": "qwen2", "Qwen2ForSequenceClassification": "qwen2", "Qwen2Model": "qwen2", " qwen2 ": "qwen2",
        "LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "LLAMA": "llama", "Qwen3ForTokenClassification": "qwen3",
        "GPTNeoXForCausalLM": "gpt-neox", "gpt_neox": "gpt-neox", "gptneox": "gpt-neox", "gpt-neox": "gpt-neox",
        "GPT2LMHeadModel": "gpt2", "BertForMaskedLM": "bert", "OPTForCausalLM": "opt",
    }
    unmapped = ["", "   ", "unknown", "ForCausalLM", "Model", "Qwen2MoeForCausalLM", "qwen2" + "x" * 25, "llama" + "x" * 30]
    wrong = {claim: normalize_metadata_arch_family(claim) for claim in spelled if normalize_metadata_arch_family(claim) != spelled[claim]}
    wrong.update({claim: normalize_metadata_arch_family(claim) for claim in unmapped if normalize_metadata_arch_family(claim) is not None})
    for value in (None, 3, ["llama"]):
        if normalize_metadata_arch_family(value) is not None:  # type: ignore[arg-type]
            wrong[repr(value)] = normalize_metadata_arch_family(value)  # type: ignore[arg-type]
    assert not wrong, f"claims mapped to the wrong family: {wrong}"


def falsify_family_inference_stable_on_real_hf_names() -> None:
    """Property: real HF names at any depth, shuffled, with optimizer/buffer extras, infer the class's family."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pretrain.families import family_from_tensor_names

    extras = ["optimizer.state.0.exp_avg", "optimizer.state.0.exp_avg_sq", "model.rotary_emb.inv_freq", "lr_scheduler.last_epoch"]

    @settings(max_examples=80, deadline=None, derandomize=True, database=None)
    @given(
        cls_name=st.sampled_from(HF_CLASSES),
        depth=st.integers(min_value=1, max_value=16),
        extra=st.lists(st.sampled_from(extras), unique=True),
        drop_head=st.booleans(),
        data=st.data(),
    )
    def prop(cls_name: str, depth: int, extra: list[str], drop_head: bool, data: st.DataObject) -> None:
        names = names_at_depth(cls_name, depth) + extra
        if drop_head:
            names = [n for n in names if not n.startswith(("lm_head.", "head.", "cls."))]
        names = data.draw(st.permutations(names))
        got = family_from_tensor_names(names)
        assert got == expected_family(cls_name), f"{cls_name} at depth {depth}: inferred {got}"

    prop()


def falsify_salvage_recipe_repairs_the_checkpoint() -> None:
    """Running the error's own `pretrain stamp` recipe yields a file the gate accepts, with identical tensor bytes."""
    import hashlib
    import struct

    from pretrain.checkpoint import check_init_arch

    def data_hash(p: Path) -> str:
        raw = p.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        return hashlib.sha256(raw[8 + n :]).hexdigest()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "incident.safetensors"
        write_hf_checkpoint(path, "Qwen2ForCausalLM", {"architecture": "LlamaForCausalLM"})
        message = _expect_refusal(path, "llama", "qwen2")
        found = re.search(r"`(pretrain stamp [^`]+)`", message)
        assert found, f"the refusal prints no runnable `pretrain stamp` recipe: {message}"
        recipe = found.group(1)
        argv = shlex.split(recipe)
        result = run_cli(*argv[1:])
        assert result.rc == 0, f"salvage recipe failed ({result.rc}): {recipe}\n{result.err}"
        fixed = Path(argv[argv.index("-o") + 1])
        check_init_arch(fixed)
        assert data_hash(fixed) == data_hash(path), "salvage changed the tensor bytes"
