"""`pretrain card`: a model card whose frontmatter huggingface_hub reads (offline) as the checkpoint's facts,
with the tables, trajectory, uses and the run's command; user text escaped in YAML and Markdown."""

from __future__ import annotations

import json
import math
import re
import shlex
import socket
from pathlib import Path

import pytest

from falsifiers.support import run_cli, train_tiny
from pretrain.card import build_card, hub_license, md, parse_card
from pretrain.checkpoint import read_header, write_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("card") / "run"
    train_tiny(out, family="qwen3", steps=6, eval_every=3, license="Apache-2.0",
               data_source="FineWeb-Edu: sample | <b>10BT</b> 'quoted' #1")
    return out


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_card_frontmatter_reads_back_through_huggingface_hub_as_the_checkpoints_facts(run: Path, tmp_path: Path,
                                                                                     offline: None) -> None:
    from huggingface_hub import ModelCard

    out = tmp_path / "README.md"
    r = run_cli("card", str(run / "model.safetensors"), "-o", str(out))
    assert r.rc == 0, r.err
    assert f"metrics {run / 'metrics.jsonl'}" in r.out
    meta = read_header(run / "model.safetensors").metadata
    card = ModelCard(out.read_text(encoding="utf-8"))
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "transformers"
    assert data.datasets == [meta["data_source"]]  # YAML-quoted by the library, read back exactly
    assert "qwen3" in data.tags and data.pipeline_tag == "text-generation"
    metrics = {e.metric_type: e.metric_value for e in data.eval_results}
    assert metrics["loss"] == float(meta["val_loss"])
    assert metrics["perplexity"] == pytest.approx(math.exp(float(meta["val_loss"])))
    assert data.eval_results[0].dataset_split == "validation"
    text = card.text
    for heading in ("## Architecture", "## Training", "## Loss trajectory", "## Intended uses", "## Not recommended",
                    "## Limitations", "## How to load", "## How to reproduce"):
        assert heading in text, heading
    assert "<svg" in text and "<polyline" in text
    assert "| 6 |" in text  # the last step's row in the trajectory table
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks show text verbatim, and render none of it
    assert "<b>" not in prose and "&lt;b&gt;10BT&lt;/b&gt;" in prose  # the data source is inert in the body
    assert code_blocks(text, "bash")[-1] == meta["train_command"]  # the run's own command, to reproduce it
    assert meta["train_command"].startswith("pretrain train --family qwen3 ")


def code_blocks(text: str, lang: str) -> list[str]:
    return [m.strip() for m in re.findall(rf"```{lang}\n(.*?)```", text, re.S)]


def test_the_recorded_train_command_reproduces_the_run(run: Path, tmp_path: Path) -> None:
    """The card's reproduce command, run as printed (with --out elsewhere), gives the same val_loss."""
    meta = read_header(run / "model.safetensors").metadata
    argv = shlex.split(meta["train_command"])
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    r = run_cli(*argv[1:])
    assert r.rc == 0, r.err
    assert read_header(tmp_path / "again/model.safetensors").metadata["val_loss"] == meta["val_loss"]


def test_hostile_metadata_stays_data_in_yaml_and_markdown(tmp_path: Path, offline: None) -> None:
    from falsifiers.support import tiny_config, tiny_state

    ckpt = tmp_path / "evil.safetensors"
    hostile = "x\n---\nlicense: evil\n<script>alert(1)</script> ```"
    write_checkpoint(ckpt, tiny_state("llama"), {"architecture": "llama", "config": tiny_config("llama").to_json(),
                                                 "license": "MIT", "data_source": hostile, "val_loss": "2.5"})
    text, front, metrics, notes = build_card(ckpt)
    parsed = parse_card(text)
    assert parsed["license"] == "mit" and parsed["datasets"] == [hostile]
    body = text.split("\n---\n", 1)[1]
    assert "<script>" not in body and "license: evil" not in body.splitlines()
    assert metrics is None and any("no metrics.jsonl" in n for n in notes)


@pytest.mark.parametrize(("recorded", "expected"), [
    ("Apache-2.0", {"license": "apache-2.0"}), ("MIT", {"license": "mit"}),
    ("PSF-2.0", {"license": "other", "license_name": "PSF-2.0"}), ("", {"license": "unknown"}),
])
def test_licenses_map_to_the_hubs_identifiers(recorded: str, expected: dict[str, str]) -> None:
    assert hub_license(recorded) == expected


def test_card_refuses_an_existing_output_and_bad_metrics_in_one_line(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "README.md"
    out.write_text("mine")
    r = run_cli("card", str(run / "model.safetensors"), "-o", str(out))
    assert r.rc == 2 and "already exists; pass --force" in r.err and out.read_text() == "mine"
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"step": 0, "val_loss": 5.0}\nnot json\n')
    r = run_cli("card", str(run / "model.safetensors"), "--metrics", str(bad), "-o", str(tmp_path / "c.md"))
    assert r.rc == 2 and f"{bad}:2: not a JSON line" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "c.md").exists()
    r = run_cli("card", str(tmp_path / "nope.safetensors"), "-o", str(tmp_path / "c.md"))
    assert r.rc == 2 and "no such file or directory" in r.err
    r = run_cli("card", str(run / "model.safetensors"), "-o", str(out), "--force", "--json")
    assert r.rc == 0 and json.loads(r.out)["frontmatter"]["license"] == "apache-2.0"


def test_markdown_escape_is_inert() -> None:
    assert md("a|b") == "a\\|b" and md("<img src=x>") == "&lt;img src=x&gt;" and md("x\ny") == "x\\\\ny"
