"""Falsifiers for apr-inspect-quality-v1: `pretrain inspect --quality` never calls a mis-stamped checkpoint
ship-ready and tells how to fix it, calls a fully stamped one ship-ready, gates on --min-score, and keeps
scores within 0..100. They run the real CLI in-process on real checkpoints in a temporary directory.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from falsifiers.support import hf_tensors, run_cli, write_hf_checkpoint

PROVENANCE = {"license": "Apache-2.0", "data_source": "tiny synthetic corpus", "data_license": "CC0-1.0"}
CONFIG = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "model_type": "qwen2"}


def _inspect(*argv: str) -> tuple[int, str, str]:
    result = run_cli("inspect", *argv)
    return result.rc, result.out, result.err


def _write(directory: Path, name: str, metadata: dict[str, Any], tokenizer: bool = True) -> Path:
    path = write_hf_checkpoint(directory / name, "Qwen2ForCausalLM", metadata)
    if tokenizer:
        (directory / "tokenizer.json").write_text("{}")
    return path


def _scorecard(path: Path) -> dict[str, Any]:
    """`pretrain inspect PATH --quality --json`'s scorecard; inspect itself must succeed."""
    rc, out, err = _inspect(str(path), "--quality", "--json")
    assert rc == 0, f"inspect failed ({rc}): {err}"
    return json.loads(out)["quality"]


def falsify_mis_stamped_scores_below_threshold_with_recipe() -> None:
    """Llama-stamped Qwen2 tensors, otherwise complete (provenance, config, tokenizer): score < 90 and the stamp recipe is printed."""
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"architecture": "llama", "hf_architecture": "LlamaForCausalLM", "hf_model_type": "llama", **PROVENANCE, "config": CONFIG}
        path = _write(Path(tmp), "incident.safetensors", meta)
        card = _scorecard(path)
        assert card["score"] < 90 and not card["ship_ready"], f"mis-stamped checkpoint scored {card['score']} (ship_ready={card['ship_ready']})"
        rc, text, _ = _inspect(str(path), "--quality")
        recipe = f"pretrain stamp {path} --architecture qwen2 --hf-architecture Qwen2ForCausalLM --hf-model-type qwen2"
        assert recipe in text, f"the fixing stamp recipe is not printed:\n{text}"
        # The release gate (`--min-score 90`) and `--check-arch` both fail it, in text and in JSON.
        for argv in (("--min-score", "90"), ("--quality", "--min-score", "90", "--json"), ("--check-arch",), ("--check-arch", "--json")):
            rc, out, err = _inspect(str(path), *argv)
            assert rc == 1, f"inspect {' '.join(argv)} on the mis-stamped checkpoint exited {rc}, expected 1 ({err})"
        rc, out, _ = _inspect(str(path), "--min-score", "90")
        assert recipe in out and f"pretrain: score {card['score']} is below --min-score 90" in out, out


def falsify_fully_stamped_reaches_threshold() -> None:
    """Correct claim, HF identity, provenance, config and tokenizer: score >= 90 and ship-ready."""
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"architecture": "qwen2", "hf_architecture": "Qwen2ForCausalLM", "hf_model_type": "qwen2", **PROVENANCE, "config": CONFIG}
        path = _write(Path(tmp), "good.safetensors", meta)
        card = _scorecard(path)
        assert card["score"] >= 90 and card["ship_ready"], f"fully stamped checkpoint scored {card['score']}: {card['categories']}"


def falsify_min_score_exit_code() -> None:
    """--min-score N exits 1 exactly when the score is below N, 0 otherwise."""
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "bare.safetensors", {}, tokenizer=False)
        score = _scorecard(path)["score"]
        assert 0 < score < 100, f"a bare checkpoint scored {score}; cannot probe both sides of the threshold"
        for threshold, expected in ((score, 0), (score + 1, 1), (max(score - 1, 0), 0), (100, 1)):
            rc, out, err = _inspect(str(path), "--min-score", str(threshold))
            assert rc == expected, f"score {score}, --min-score {threshold}: exit {rc}, expected {expected} ({err})"
            # The verdict says why: the scorecard, and below the threshold the score against it.
            assert f"{score}/100" in out and ("to fix:" in out), f"--min-score {threshold}: no scorecard printed:\n{out}"
            below = f"pretrain: score {score} is below --min-score {threshold}"
            assert (below in out) == bool(expected), f"--min-score {threshold}: {'missing' if expected else 'spurious'} {below!r}"
            rc, out, _ = _inspect(str(path), "--min-score", str(threshold), "--json")
            assert rc == expected and json.loads(out)["quality"]["score"] == score, f"--json --min-score {threshold}: exit {rc}"
        # Only the score decides: a mis-stamped checkpoint at --min-score 0 passes the gate (--check-arch is its own gate),
        # and without --min-score nothing is gated.
        mis = _write(Path(tmp), "mis.safetensors", {"architecture": "llama"}, tokenizer=False)
        for argv, expected in ((("--min-score", "0"), 0), (("--quality",), 0), ((), 0), (("--check-arch",), 1)):
            rc, out, err = _inspect(str(mis), *argv)
            assert rc == expected, f"mis-stamped, inspect {' '.join(argv)}: exit {rc}, expected {expected} ({err})"
            assert ("/100" in out) == ("--quality" in argv or "--min-score" in argv), f"inspect {' '.join(argv)}: scorecard shown wrongly:\n{out}"
        rc, out, _ = _inspect(str(path), "--check-arch")
        assert rc == 0, f"--check-arch on an unclaimed checkpoint exited {rc}"


def falsify_scores_within_bounds() -> None:
    """Property: any mix of metadata and tokenizer presence scores within 0..100, each category within its maximum."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pretrain.checkpoint import read_header
    from pretrain.quality import score_header

    keys = ["architecture", "hf_architecture", "hf_model_type", "license", "data_source", "data_license"]
    values = st.sampled_from(["qwen2", "llama", "Qwen2ForCausalLM", "GPT2LMHeadModel", "gpt_neox", "unknown", "", "MIT", "web"])
    tensors = hf_tensors("Qwen2ForCausalLM")

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(meta=st.dictionaries(st.sampled_from(keys), values), tokenizer=st.booleans(), with_config=st.booleans())
    def prop(meta: dict[str, str], tokenizer: bool, with_config: bool) -> None:
        from pretrain.checkpoint import write_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "c.safetensors"
            write_checkpoint(path, tensors, {**meta, **({"config": CONFIG} if with_config else {})}, verify_arch=False)
            if tokenizer:
                (Path(tmp) / "tokenizer.json").write_text("{}")
            card = score_header(read_header(path))
            assert 0 <= card.score <= 100 and card.max_score == 100, f"score {card.score}/{card.max_score} for {meta}"
            for category in card.categories:
                assert 0 <= category.points <= category.max_points, f"{category.name} {category.points}/{category.max_points}"

    prop()


# The scorecard's checks in the order score_header builds them, and the points each earns on each
# variant: every check must award its full points exactly when its condition holds, and nothing otherwise.
CHECKS = ("header_and_offsets", "tensors_present", "uniform_float_dtype", "family", "hidden_size", "num_layers",
          "num_heads", "license", "data_source", "data_license", "architecture", "hf_architecture", "hf_model_type", "tokenizer")
IDENTITY = {"architecture": "qwen2", "hf_architecture": "Qwen2ForCausalLM", "hf_model_type": "qwen2"}
# variant: (tensors: "qwen2" | "mixed" | "none" | "unknown", metadata, file beside it, points per check, claimed, inferred)
VARIANTS: dict[str, tuple[str, dict[str, Any], str | None, tuple[int, ...], str | None, str]] = {
    "complete": ("qwen2", {**IDENTITY, **PROVENANCE, "config": CONFIG}, "tokenizer.json",
                 (10, 5, 5, 5, 5, 5, 5, 10, 8, 7, 8, 6, 6, 15), "qwen2", "qwen2"),
    "incident (llama claimed over qwen2 tensors)": (
        "qwen2", {"architecture": "llama", "hf_architecture": "LlamaForCausalLM", "hf_model_type": "llama", **PROVENANCE, "config": CONFIG},
        "tokenizer.json", (10, 5, 5, 0, 5, 5, 5, 10, 8, 7, 0, 0, 0, 15), "llama", "qwen2"),
    "bare": ("qwen2", {}, None, (10, 5, 5, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0), None, "qwen2"),
    "placeholder provenance": ("qwen2", {**IDENTITY, "license": "unknown", "data_source": " TBD ", "data_license": "n/a"},
                               "tokenizer_config.json", (10, 5, 5, 5, 5, 5, 0, 0, 0, 0, 8, 6, 6, 5), "qwen2", "qwen2"),
    "mixed float dtypes": ("mixed", {**IDENTITY, **PROVENANCE}, None, (10, 5, 0, 5, 5, 5, 0, 10, 8, 7, 8, 6, 6, 0), "qwen2", "qwen2"),
    "no tensors": ("none", {**IDENTITY, **PROVENANCE}, None, (10, 0, 5, 5, 0, 0, 0, 10, 8, 7, 8, 6, 6, 0), "qwen2", "unknown"),
    "names of no family, claimed": ("unknown", {"architecture": "qwen2"}, None, (10, 5, 5, 5, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0), "qwen2", "unknown"),
    "names of no family, no claim": ("unknown", {}, None, (10, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), None, "unknown"),
    "wrong HF identity": ("qwen2", {"architecture": "qwen2", "hf_architecture": "GPT2LMHeadModel", "hf_model_type": "gpt2", **PROVENANCE},
                          None, (10, 5, 5, 5, 5, 5, 0, 10, 8, 7, 8, 0, 0, 0), "qwen2", "qwen2"),
    "unmappable claim, GGUF-style license": ("qwen2", {"architecture": "brandnew", "general.license": "MIT"}, None,
                                             (10, 5, 5, 5, 5, 5, 0, 10, 0, 0, 0, 0, 0, 0), None, "qwen2"),
}


# What a failing check tells the user, per variant (a substring of the check's detail).
DETAILS: dict[str, dict[str, str]] = {
    "incident (llama claimed over qwen2 tensors)": {"family": "claimed and inferred families disagree",
                                                    "architecture": "architecture 'llama' contradicts the tensors",
                                                    "hf_architecture": "hf_architecture 'LlamaForCausalLM' is not qwen2's",
                                                    "hf_model_type": "hf_model_type 'llama' is not qwen2's"},
    "bare": {"architecture": "architecture missing", "hf_architecture": "hf_architecture missing",
             "hf_model_type": "hf_model_type missing", "license": "no license"},
    "names of no family, no claim": {"family": "family neither inferable nor claimed", "hidden_size": "not derivable"},
    "mixed float dtypes": {"uniform_float_dtype": "mixed floating dtypes"},
    "no tensors": {"tensors_present": "the checkpoint holds no tensors"},
    "unmappable claim, GGUF-style license": {"architecture": "architecture 'brandnew' is not a known family"},
}


def falsify_every_check_awards_its_points_exactly() -> None:
    """Over ten checkpoints (complete, the incident, bare, placeholders, mixed dtypes, no tensors, unknown names, wrong HF
    identity, an unmappable claim), each scorecard check awards its points exactly when its condition holds."""
    import torch

    from falsifiers.support import hf_tensors
    from pretrain.checkpoint import read_header, write_checkpoint
    from pretrain.quality import SHIP_READY_THRESHOLD, score_header

    qwen2 = hf_tensors("Qwen2ForCausalLM")
    first = next(iter(qwen2))
    tensors = {"qwen2": qwen2, "mixed": {**qwen2, first: qwen2[first].half()}, "none": {}, "unknown": {"w.weight": torch.zeros(2)}}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (variant, (kind, meta, beside, expected, claimed, inferred)) in enumerate(VARIANTS.items()):
            directory = Path(tmp) / str(i)
            directory.mkdir()
            path = directory / "c.safetensors"
            metadata = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in meta.items()}
            write_checkpoint(path, tensors[kind], metadata, verify_arch=False)
            if beside:
                (directory / beside).write_text("{}")
            card = score_header(read_header(path))
            got = {c.name: c.points for category in card.categories for c in category.checks}
            want = dict(zip(CHECKS, expected))
            if got != want:
                wrong = {k: f"{got.get(k)} (expected {v})" for k, v in want.items() if got.get(k) != v}
                failures.append(f"{variant}: {wrong or got}")
            details = {c.name: c.detail for category in card.categories for c in category.checks}
            for check, text in DETAILS.get(variant, {}).items():
                if text not in details.get(check, ""):
                    failures.append(f"{variant}: {check} says {details.get(check)!r}, expected {text!r}")
            if (card.claimed_family, card.inferred_family) != (claimed, inferred):
                failures.append(f"{variant}: claimed/inferred {card.claimed_family}/{card.inferred_family}, expected {claimed}/{inferred}")
            ready = sum(expected) >= SHIP_READY_THRESHOLD and variant == "complete"
            if card.ship_ready != ready:
                failures.append(f"{variant}: ship_ready {card.ship_ready}, expected {ready} (score {card.score})")
    assert not failures, "scorecard checks award the wrong points:\n" + "\n".join(failures)
