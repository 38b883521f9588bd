"""`pretrain --help`, every subcommand's --help, `inspect` (with --quality) and `stamp` never import torch.

Each command runs in a fresh interpreter through `pretrain.cli.main` (what `python -m pretrain` runs); the
child writes its sorted `sys.modules` to a file, so an import anywhere on the command's path is caught, not
only a top-level one. torch costs over a second to import and numpy 0.3 s: either would put the command's
start past issue #11's 0.3 s (the start time itself is measured in benchmarks/bench_load.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_env import ROOT, cli_env

# Heavy libraries these commands must not load; `torch` covers every torch submodule (they import it first).
HEAVY = ("torch", "numpy", "transformers", "safetensors")

WRAPPER = """
import json, sys
from pretrain.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trainer-style .safetensors file and an HF directory (config.json + model.safetensors)."""
    from pretrain.model import ModelConfig, build_model
    from pretrain.checkpoint import write_checkpoint

    root = tmp_path_factory.mktemp("ckpts")
    cfg = ModelConfig(family="qwen2", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    model = build_model(cfg, seed=0)
    hf_dir = model.save_pretrained(root / "hf")
    single = root / "single.safetensors"
    write_checkpoint(single, model.state_dict(), {"architecture": "qwen2", "hf_architecture": "Qwen2ForCausalLM",
                                                  "hf_model_type": "qwen2", "config": cfg.to_json()})
    return {"hf": hf_dir, "single": single, "out": root / "stamped.safetensors", "card": root / "README.md"}


def run_cli(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    report = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(report), *argv], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert report.exists(), proc.stderr
    result = json.loads(report.read_text())
    return result["code"], set(result["modules"])


@pytest.mark.parametrize("argv", [
    ["--help"], ["inspect", "--help"], ["stamp", "--help"], ["train", "--help"], ["generate", "--help"], ["--version"],
    ["export", "--help"], ["card", "--help"],
], ids=lambda argv: " ".join(argv))
def test_help_and_version_never_import_torch(tmp_path: Path, argv: list[str]) -> None:
    code, modules = run_cli(tmp_path, *argv)
    assert code == 0
    assert not [m for m in HEAVY if m in modules], f"pretrain {' '.join(argv)} imported {[m for m in HEAVY if m in modules]}"


@pytest.mark.parametrize("command", [
    ["inspect", "{single}"],
    ["inspect", "--json", "--quality", "{hf}"],
    ["inspect", "--min-score", "0", "--check-arch", "{single}"],
    ["stamp", "{single}", "--license", "MIT", "--out", "{out}"],
    ["card", "{single}", "-o", "{card}"],
], ids=lambda argv: " ".join(argv))
def test_inspect_and_stamp_never_import_torch(tmp_path: Path, checkpoints: dict[str, Path],
                                              command: list[str]) -> None:
    argv = [a.format(**{k: str(v) for k, v in checkpoints.items()}) for a in command]
    code, modules = run_cli(tmp_path, *argv)
    assert code == 0
    assert not [m for m in HEAVY if m in modules], f"pretrain {' '.join(command)} imported {[m for m in HEAVY if m in modules]}"
    if command[0] == "stamp":
        from pretrain.checkpoint import read_header

        assert read_header(checkpoints["out"]).metadata["license"] == "MIT"
    if command[0] == "card":
        assert checkpoints["card"].read_text(encoding="utf-8").startswith("---\n")


def test_train_help_describes_the_train_module() -> None:
    # train_cli keeps pretrain.train's summary as a constant so that `--help` need not import the module.
    import pretrain.train
    from pretrain import train_cli

    assert train_cli.DESCRIPTION == (pretrain.train.__doc__ or "").splitlines()[0]
