"""`pretrain generate` and pretrain.generate: KV-cache decoding equal to transformers' greedy generate."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.checkpoint import read_header
from pretrain.cli import main
from pretrain.generate import GenerateError, generate
from pretrain.model import ModelConfig, build_model, forward_cached, from_pretrained, new_cache
from pretrain.tokenizer import tokenizer_for
from tests.cli_env import ROOT, cli_env
from tests.pretrain.hf_tiny import hf_model, save_hf

transformers = pytest.importorskip("transformers")

FAMILIES = {
    "llama": {},
    "qwen2": dict(num_key_value_heads=1, tie_word_embeddings=True),
    "qwen3": dict(head_dim=24),
}
WORDS = ["<unk>", "</s>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "and", "hello", "world"]


def prompt_ids(seed: int = 1, batch: int = 1, length: int = 7) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def hf_greedy(ref: object, ids: torch.Tensor, n: int, eos: int | None = None) -> torch.Tensor:
    with torch.no_grad():
        return ref.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                            eos_token_id=eos, pad_token_id=eos if eos is not None else 0)


def write_tokenizer(directory: Path) -> None:
    """A small word-level tokenizer.json (the `tokenizers` library's own format) whose ids fit a 256 vocab."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(directory / "tokenizer.json"))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def hf_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """(transformers reference model, its save_pretrained directory) for each family."""
    ref = hf_model(request.param, **FAMILIES[request.param])
    return ref, save_hf(ref, tmp_path_factory.mktemp(request.param))


def test_greedy_equals_transformers_generate_with_and_without_the_cache(hf_dir: tuple[object, Path]) -> None:
    ref, directory = hf_dir
    ours = from_pretrained(directory)
    ids = prompt_ids(batch=2)
    want = hf_greedy(ref, ids, 24)
    cached = generate(ours, ids, max_new_tokens=24)
    uncached = generate(ours, ids, max_new_tokens=24, use_cache=False)
    assert want.shape == (2, 31)
    assert cached.tolist() == want.tolist()
    assert uncached.tolist() == want.tolist()


def test_greedy_stops_at_eos_where_transformers_does(hf_dir: tuple[object, Path]) -> None:
    ref, directory = hf_dir
    ours = from_pretrained(directory)
    ids = prompt_ids(seed=5)
    free = generate(ours, ids, max_new_tokens=12)[0, 7:].tolist()
    eos = free[5]  # a token greedy decoding emits: both must stop at its first occurrence
    stop = free.index(eos) + 1
    got = generate(ours, ids, max_new_tokens=12, eos_token_id=eos)
    assert got.tolist() == hf_greedy(ref, ids, 12, eos=eos).tolist()
    assert got[0, 7:].tolist() == free[:stop]


def test_cached_logits_equal_uncached_within_1e_5(hf_dir: tuple[object, Path]) -> None:
    _, directory = hf_dir
    ours = from_pretrained(directory)
    ids = prompt_ids(seed=2, batch=2, length=16)
    with torch.no_grad():
        full = ours(ids)
        cache = new_cache(ours, 2, 16)
        # Prefill 8, then a chunk of 3 after the cache (the offset causal mask), then one token at a time.
        pieces = [forward_cached(ours, ids[:, :8], cache), forward_cached(ours, ids[:, 8:11], cache)]
        pieces += [forward_cached(ours, ids[:, i:i + 1], cache) for i in range(11, 16)]
    stepped = torch.cat(pieces, dim=1)
    assert cache[0].length == 16
    assert (stepped - full).abs().max().item() < 1e-5


def test_sampling_is_reproducible_with_a_seed_and_differs_across_seeds(tmp_path: Path) -> None:
    cfg = ModelConfig(family="llama", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8)
    model = build_model(cfg, seed=0).eval()
    ids = prompt_ids()
    a = generate(model, ids, max_new_tokens=32, temperature=1.0, seed=7)
    b = generate(model, ids, max_new_tokens=32, temperature=1.0, seed=7)
    c = generate(model, ids, max_new_tokens=32, temperature=1.0, seed=8)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    greedy = generate(model, ids, max_new_tokens=32)
    assert a.tolist() != greedy.tolist()
    # top-k 1 and a tiny nucleus leave one candidate: sampling then is greedy, whatever the seed.
    assert generate(model, ids, max_new_tokens=32, temperature=1.0, seed=9, top_k=1).tolist() == greedy.tolist()
    assert generate(model, ids, max_new_tokens=32, temperature=1.0, seed=9, top_p=1e-6).tolist() == greedy.tolist()


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
    (dict(max_new_tokens=4, temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(max_new_tokens=4, temperature=1.0, top_p=0.0), "top_p must be in (0, 1]"),
    (dict(max_new_tokens=4, top_k=0), "top_k must be an integer >= 1"),
])
def test_the_library_refuses_unusable_values(kwargs: dict, message: str) -> None:
    model = build_model(ModelConfig(family="qwen2", hidden_size=32, intermediate_size=64, head_dim=8), seed=0)
    with pytest.raises(GenerateError, match=re.escape(message)):
        generate(model, prompt_ids(), **kwargs)
    with pytest.raises(GenerateError, match="input id 300 is outside the model's vocabulary"):
        generate(model, torch.tensor([[1, 300]]), max_new_tokens=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `pretrain train` checkpoint (byte-level data, `tokenizer: bytes` in its metadata)."""
    from pretrain.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(family="qwen2", layers=1, hidden=32, heads=4, kv_heads=2, seq_len=32, batch=4, steps=2,
                      eval_every=2, device="cpu", out=str(out / "q2")))
    return out / "q2" / "model.safetensors"


def test_a_trainer_checkpoint_uses_the_byte_tokenizer_both_ways(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tok = tokenizer_for(read_header(trained))
    assert tok.name == "bytes" and tok.eos_token_ids == ()
    text = "déf naïve(x):\n\treturn 'ü'"
    assert tok.encode(text) == list(text.encode("utf-8"))
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode([104, 105, 300, 0xC3]) == "hi\ufffd\ufffd"  # an id past 255, a cut UTF-8 sequence
    assert main(["generate", str(trained), "--prompt", "déf ", "--max-new-tokens", "12", "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt_ids"] == list("déf ".encode("utf-8")) and out["tokenizer"] == "bytes"
    assert out["completion"] == bytes(out["completion_ids"]).decode("utf-8", errors="replace")
    assert len(out["completion_ids"]) == out["new_tokens"] == 12 and out["stopped"] == "max_new_tokens"
    assert out["prefill_tokens_per_s"] > 0 and out["decode_tokens_per_s"] > 0
    # The CLI is the library call: the same ids come out of pretrain.generate.generate.
    want = generate(from_pretrained(trained), torch.tensor([out["prompt_ids"]]), max_new_tokens=12)
    assert want[0, len(out["prompt_ids"]):].tolist() == out["completion_ids"]


def test_text_mode_prints_the_completion_on_stdout_and_tokens_per_s_on_stderr(trained: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pretrain", "generate", str(trained), "--prompt", "def ", "--max-new-tokens", "5",
         "--temperature", "0.9", "--seed", "3", "--top-k", "50", "--top-p", "0.95"],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    again = subprocess.run(
        [sys.executable, "-m", "pretrain", "generate", str(trained), "--prompt", "def ", "--max-new-tokens", "5",
         "--temperature", "0.9", "--seed", "3", "--top-k", "50", "--top-p", "0.95"],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert again.stdout == proc.stdout  # seeded: the same text on every run
    assert proc.stdout.endswith("\n") and "tokens/s" not in proc.stdout
    assert re.fullmatch(r"pretrain generate: 5 new tokens \(stopped at max-new-tokens\) on cpu: prefill 4 tokens at "
                        r"[\d.]+ tokens/s, decode at [\d.]+ tokens/s\n", proc.stderr), proc.stderr


def test_a_generated_control_character_is_escaped_on_a_terminal() -> None:
    from pretrain.generate_cli import printable

    assert printable("a\x1b]0;owned\x07b\nc\td") == "a\\x1b]0;owned\\x07b\nc\td"


def test_an_hf_directory_uses_its_own_tokenizer_and_matches_transformers(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ref = hf_model("llama")
    directory = save_hf(ref, tmp_path / "hf")
    write_tokenizer(directory)
    assert main(["generate", str(directory), "--prompt", "the cat sat on", "--max-new-tokens", "10", "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompt_ids"] == [2, 3, 4, 5] and out["tokenizer"] == str(directory / "tokenizer.json")
    # transformers' generate with the directory's own generation_config (its EOS included).
    with torch.no_grad():
        want = ref.generate(torch.tensor([out["prompt_ids"]]), do_sample=False, max_new_tokens=10, pad_token_id=0)
    assert out["completion_ids"] == want[0, 4:].tolist()
    from tokenizers import Tokenizer

    shown = out["completion_ids"][:-1] if out["stopped"] == "eos" else out["completion_ids"]
    assert out["completion"] == Tokenizer.from_file(str(directory / "tokenizer.json")).decode(shown)


def test_no_usable_tokenizer_exits_2_naming_what_is_missing(tmp_path: Path) -> None:
    directory = save_hf(hf_model("qwen2"), tmp_path / "bare")
    proc = subprocess.run([sys.executable, "-m", "pretrain", "generate", str(directory), "--prompt", "hi"],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"pretrain: error: {directory}: no usable tokenizer: its metadata records no tokenizer (`pretrain train` "
        f"records tokenizer='bytes' for text data), and {directory} has no tokenizer.json, tokenizer.model or "
        f"vocab.json + merges.txt; copy the tokenizer the model was trained with into {directory}\n"
    )


def test_a_tokenizer_that_is_not_the_models_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = save_hf(hf_model("qwen3", vocab_size=8), tmp_path / "small")
    write_tokenizer(directory)  # ids up to 12, the model has 8
    capsys.readouterr()  # transformers' save progress bar
    assert main(["generate", str(directory), "--prompt", "hello world", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pretrain: error: {directory}: input id 12 is outside the model's vocabulary (0..7): "
                          f"the tokenizer {directory / 'tokenizer.json'} does not belong to this model")


@pytest.mark.parametrize(("argv", "message"), [
    (["--max-new-tokens", "-1"], "argument --max-new-tokens: -1 is negative; give 0 or more"),
    (["--temperature", "nan"], "argument --temperature: 'nan' is not a finite number"),
    (["--temperature", "-0.5"], "--temperature must be a finite number >= 0 (0: greedy), got -0.5"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["--top-k", "0"], "argument --top-k: 0 is not allowed; give 1 or more"),
    (["--max-new-tokens", "5000"], "--max-new-tokens 5000: the prompt's 2 tokens plus 5000 new ones exceed the "
                                   "model's max_position_embeddings 2048; pass --max-new-tokens 2046 or less"),
    (["--prompt="], "--prompt '' gives no tokens with the tokenizer bytes; give some text"),
])
def test_bad_flags_exit_2_with_one_line(trained: Path, argv: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    full = ["generate", str(trained), "--prompt", "hi", "--device", "cpu", *argv]
    try:
        code = main(full)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1, err


def test_a_contradicted_claim_prints_the_stamp_command_and_it_runs_as_printed(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    directory = save_hf(hf_model("qwen2"), tmp_path / "hf")
    write_tokenizer(directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(architectures=["LlamaForCausalLM"], model_type="llama")
    (directory / "config.json").write_text(json.dumps(config))
    capsys.readouterr()  # transformers' save progress bar
    assert main(["generate", str(directory), "--prompt", "the cat", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "the claim (llama) contradicts the tensor names (qwen2's)" in err
    command = re.search(r"`(pretrain stamp [^`]+)`", err).group(1)
    assert command == (f"pretrain stamp {directory} --architecture qwen2 --hf-architecture Qwen2ForCausalLM "
                       f"--hf-model-type qwen2 -o {directory}.fixed")
    assert main(shlex.split(command)[1:]) == 0
    capsys.readouterr()
    assert err.rstrip().endswith(f"then generate from {directory}.fixed")
    assert main(["generate", f"{directory}.fixed", "--prompt", "the cat", "--max-new-tokens", "3",
                 "--device", "cpu"]) == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
def test_cuda_greedy_equals_cpu_and_seeded_sampling_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = hf_model("qwen3", head_dim=24)
    directory = save_hf(ref, tmp_path / "hf")
    torch.backends.cuda.matmul.allow_tf32 = False
    ids = prompt_ids(batch=2)
    cpu = generate(from_pretrained(directory), ids, max_new_tokens=16)
    gpu_model = from_pretrained(directory, device="cuda")
    assert generate(gpu_model, ids, max_new_tokens=16).cpu().tolist() == cpu.tolist() == hf_greedy(ref, ids, 16).tolist()
    a = generate(gpu_model, ids, max_new_tokens=16, temperature=1.0, seed=4)
    assert a.device.type == "cuda" and a.tolist() == generate(gpu_model, ids, max_new_tokens=16, temperature=1.0, seed=4).tolist()
    write_tokenizer(directory)
    assert main(["generate", str(directory), "--prompt", "the cat", "--max-new-tokens", "4", "--device", "cuda",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"].startswith("cuda")


@pytest.mark.slow(minutes=1)
def test_the_docs_commands_run_as_printed(tmp_path: Path) -> None:
    import os

    from tests.test_readme import fenced_block, parse_steps, quoted_matches

    doc = ROOT / "docs" / "pretrain-generate.md"
    text = doc.read_text(encoding="utf-8")
    steps = parse_steps(*fenced_block(text, "# Generating text with `pretrain generate`"))
    assert len(steps) == 5
    env = cli_env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for step in steps:
        proc = subprocess.run(["bash", "-c", step.command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == step.exit_code, f"{doc.name}:{step.line}: `{step.command}`: {proc.stderr[-2000:]}"
        if step.exit_code == 2:
            assert quoted_matches("--top-p must be in (0, 1], got 0.0", proc.stderr)
        if "--json" in step.command:
            assert json.loads(proc.stdout)["tokenizer"] == "bytes"
    code = text.split("## From Python\n", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "torch.Size([1, 12])\n"
