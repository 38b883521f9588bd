"""`pretrain.train.train(TrainConfig)`: the Python API behind `pretrain train`, its checks and its errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from pretrain.cli import build_parser, main
from pretrain.train import (OutputError, TrainConfig, TrainConfigError, TrainDataError, TrainError, TrainResult,
                            train)

from tests.cli_env import ROOT, cli_env

SHAPE = dict(family="llama", layers=2, hidden=32, heads=4, kv_heads=2, seq_len=32, batch=4, device="cpu")
SHAPE_FLAGS = ["--family", "llama", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
               "--seq-len", "32", "--batch", "4", "--device", "cpu"]


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def losses(out: Path) -> list[tuple]:
    """Every logged loss with its step and kind (elapsed times and tokens/s differ between runs)."""
    return [(r["step"], k, r[k]) for r in rows(out) for k in ("loss", "val_loss", "lr", "tokens") if k in r]


def test_train_returns_the_step_val_loss_and_paths_it_wrote(tmp_path: Path) -> None:
    result = train(TrainConfig(**SHAPE, steps=3, eval_every=3, out=tmp_path / "run"))
    assert isinstance(result, TrainResult) and not result.interrupted
    assert result.checkpoint == tmp_path / "run" / "model.safetensors" and result.checkpoint.is_file()
    assert result.metrics == tmp_path / "run" / "metrics.jsonl"
    with safe_open(str(result.checkpoint), "pt") as f:
        meta = f.metadata()
    assert result.step == 3 and meta["step"] == "3"
    assert float(meta["val_loss"]) == result.val_loss == rows(tmp_path / "run")[-1]["val_loss"]


def test_the_cli_and_the_api_make_the_same_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *SHAPE_FLAGS, "--steps", "3", "--eval-every", "2", "--seed", "5",
                 "--out", str(tmp_path / "cli")]) == 0
    train(TrainConfig(**SHAPE, steps=3, eval_every=2, seed=5, out=str(tmp_path / "api")))
    assert losses(tmp_path / "cli") == losses(tmp_path / "api")


def test_default_flags_are_the_default_config_and_every_field_has_its_flag() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--out", "x"])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields == set(vars(args)) - {"command", "func"}
    assert TrainConfig(**{name: getattr(args, name) for name in fields}) == TrainConfig(out="x")


@pytest.mark.parametrize(("flag", "value", "options"), [
    ("--lr", "-1", {"lr": -1.0}),
    ("--lr", "2", {"lr": 2.0}),
    ("--layers", "0", {"layers": 0}),
    ("--warmup", "-3", {"warmup": -3}),
    ("--seed", str(2**64), {"seed": 2**64}),
    ("--hidden", "1000000000", {"hidden": 1_000_000_000}),
    ("--min-lr-ratio", "1.5", {"min_lr_ratio": 1.5}),
    ("--license", "MIT\x1b[2J", {"license": "MIT\x1b[2J"}),
])
def test_a_bad_option_is_the_same_error_from_python_and_the_cli(
        flag: str, value: str, options: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with pytest.raises(TrainConfigError) as info:
        TrainConfig(**{**SHAPE, **options}, out=out)
    assert info.value.field == next(iter(options))
    assert main(["train", *SHAPE_FLAGS, flag, value, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"pretrain train: error: {info.value}\n"
    assert not out.exists()


@pytest.mark.parametrize(("options", "message"), [
    ({"batch": "8"}, "TrainConfig.batch must be an int, got '8'"),
    ({"steps": True}, "TrainConfig.steps must be an int, got True"),
    ({"lr": "3e-3"}, "TrainConfig.lr must be a number, got '3e-3'"),
    ({"device": "gpu"}, "TrainConfig.device must be one of auto, cpu, cuda, got 'gpu'"),
    ({"family": "gpt2"}, "TrainConfig.family must be one of llama, qwen2, qwen3, got 'gpt2'"),
    ({"overwrite": "yes"}, "TrainConfig.overwrite must be True or False, got 'yes'"),
    ({"out": None}, "TrainConfig.out must be a str or os.PathLike, got None"),
])
def test_a_wrongly_typed_option_is_a_config_error_naming_the_field(options: dict, message: str) -> None:
    with pytest.raises(TrainConfigError) as info:
        TrainConfig(**{"out": "x", **options})
    assert str(info.value) == message and info.value.field == next(iter(options))


def test_replace_checks_the_copy_and_the_config_is_frozen() -> None:
    config = TrainConfig(out="x")
    assert config.replace(steps=0).steps == 0
    with pytest.raises(TrainConfigError, match="--eval-every must be a positive integer"):
        config.replace(eval_every=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 3  # type: ignore[misc]


def test_a_refused_run_raises_a_train_error_not_system_exit_and_writes_nothing(tmp_path: Path) -> None:
    config = TrainConfig(**SHAPE, steps=1, out=tmp_path / "out")
    with pytest.raises(TrainError, match=r"^--init .*absent\.safetensors") as info:
        train(config.replace(init=tmp_path / "absent.safetensors"))
    assert type(info.value) is TrainError
    with pytest.raises(TrainDataError, match=r"^--data .*missing: no such file or directory"):
        train(config.replace(data=str(tmp_path / "missing")))
    with pytest.raises(TrainConfigError, match="--hidden 30 is not divisible by --heads 4"):
        train(config.replace(hidden=30))
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.jsonl").write_text("earlier run\n")
    with pytest.raises(OutputError, match="already holds an earlier run"):
        train(config)
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == "earlier run\n"


def test_train_takes_only_a_train_config() -> None:
    with pytest.raises(TrainConfigError, match="train\\(\\) takes a pretrain.train.TrainConfig, got Namespace"):
        train(argparse.Namespace(out="x"))  # type: ignore[arg-type]


def python_example(doc: Path, heading: str) -> str:
    """The ```python block under `heading` in `doc`."""
    text = doc.read_text().split(f"\n{heading}\n", 1)[1]
    return text.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_train_from_python_example_in_the_docs_runs_as_printed(tmp_path: Path) -> None:
    code = python_example(ROOT / "docs" / "pretrain-training.md", "## Train from Python")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "q2-py" / "model.safetensors").is_file()
    printed = proc.stdout.splitlines()
    # Each print's trailing comment quotes its output (`...` stands for any text).
    quoted = [line.split("  # ", 1)[1] for line in code.splitlines() if line.strip().startswith("print(")]
    assert len(quoted) == 3
    for expected in quoted:
        parts = expected.split("...")
        assert any(line.startswith(parts[0]) and line.endswith(parts[-1]) and
                   all(p in line for p in parts) for line in printed), (expected, printed[-5:])
