"""The model release gate end to end: train a tiny model with `pretrain train`, stamp it fully, write its card
with `pretrain card`, and `harness verify contracts/model-release-v1.yaml --param checkpoint=... --param
card=...` passes falsifiers 1-7, with both digests in the evidence; so does the HF directory `pretrain export
--format hf` writes from it. Then an unstamped checkpoint, a mis-stamped one, a NaN tensor, a card whose
license disagrees and a val_loss that does not reproduce each make the named falsifier fail, its fix (a
command that runs as printed) in the evidence and in what verify prints. Last, the release is audited like
code: verify and teeth with the parameters in a committed copy of the checkout, then `harness audit
--release` is GO and names the artifact with its sha256.

Slow: a training run, ten verify runs and one teeth run (about 150 mutants: 5 minutes on 2 idle cores)
(`pytest -m slow tests/test_model_release.py`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_env import cli_env

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = "contracts/model-release-v1.yaml"

pytestmark = pytest.mark.slow(minutes=15)


def _run(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = cli_env(CI="1", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run's directory (model.safetensors, metrics.jsonl) from `pretrain train`, on a small text file."""
    root = tmp_path_factory.mktemp("release")
    data = root / "corpus.txt"
    data.write_bytes(b"".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n".encode() for i in range(1500)))
    out = root / "run"
    proc = _run("pretrain", "train", "--data", str(data), "--steps", "6", "--layers", "1", "--hidden", "32", "--heads", "4",
                "--kv-heads", "2", "--seq-len", "32", "--batch", "4", "--eval-every", "6", "--data-source",
                "tiny generated Python", "--data-license", "CC0-1.0", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def stamped(trained: Path) -> Path:
    path = trained / "release.safetensors"
    proc = _run("pretrain", "stamp", str(trained / "model.safetensors"), "--license", "Apache-2.0", "-o", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


@pytest.fixture(scope="module")
def card(stamped: Path, trained: Path) -> Path:
    """The stamped checkpoint's model card, as `pretrain card` writes it."""
    path = trained / "README.md"
    proc = _run("pretrain", "card", str(stamped), "--metrics", str(trained / "metrics.jsonl"), "-o", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


def _verify(checkpoint: Path, out: Path, *k: str, card: Path | None = None) -> tuple[int, dict, str]:
    """(exit code, evidence, output) of the release contract against `checkpoint` (-k narrows it)."""
    selection = [arg for pattern in k for arg in ("-k", pattern)]
    cards = ["--param", f"card={card}"] if card is not None else []
    proc = _run("harness", "verify", CONTRACT, "--out", str(out), "--param", f"checkpoint={checkpoint}", *cards, *selection)
    files = list(out.rglob("evidence.json"))
    assert len(files) == 1, proc.stdout + proc.stderr
    return proc.returncode, json.loads(files[0].read_text()), proc.stdout + proc.stderr


def _printed(result: dict, output: str, fix: str) -> None:
    """verify printed the falsifier's line: FALSIFIED, its id and its recorded reason, with the fix whole in it
    (a fix must run as printed, long temporary paths included)."""
    assert f"FALSIFIED {result['id']} (" in output and result["reason"] in output, output
    assert fix in result["reason"] and fix in output, (fix, output)


def _results(evidence: dict) -> dict[str, dict]:
    return {f["id"]: f for c in evidence["contracts"] for f in c["falsifiers"]}


def _rewritten(src: Path, dst: Path, *, metadata: dict[str, str] | None = None, nan: str | None = None) -> Path:
    """`src` written again as `dst` with its metadata updated, and optionally one element of tensor `nan` set to NaN."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {name: f.get_tensor(name).clone() for name in f.keys()}
    if nan is not None:
        tensors[nan].view(-1)[0] = float("nan")
    save_file(tensors, str(dst), {**meta, **(metadata or {})})
    return dst


ALL_PASSED = {fid: "passed" for fid in (
    "FALSIFY-RELEASE-READS-001", "FALSIFY-RELEASE-QUALITY-001", "FALSIFY-RELEASE-FAMILY-001",
    "FALSIFY-RELEASE-GENERATES-001", "FALSIFY-RELEASE-VAL-LOSS-001", "FALSIFY-RELEASE-EXPORTS-001",
    "FALSIFY-RELEASE-CARD-001")}


def test_a_fully_stamped_checkpoint_and_its_card_pass_falsifiers_1_to_7_and_the_evidence_names_them(
        stamped: Path, card: Path, tmp_path: Path) -> None:
    code, evidence, output = _verify(stamped, tmp_path / "out", card=card)
    assert code == 0, output
    results = _results(evidence)
    assert {fid: r["outcome"] for fid, r in results.items()} == ALL_PASSED
    assert all(r["guards_executed"] for r in results.values()), {fid: r["guards_executed"] for fid, r in results.items()}
    (contract,) = evidence["contracts"]
    assert contract["parameters"] == [
        {"name": "checkpoint", "kind": "path", "value": str(stamped), "absolute": str(stamped),
         "sha256": hashlib.sha256(stamped.read_bytes()).hexdigest(), "files": None},
        {"name": "card", "kind": "file", "value": str(card), "absolute": str(card),
         "sha256": hashlib.sha256(card.read_bytes()).hexdigest(), "files": None},
    ]
    assert evidence["selection"] is None
    assert f"parameter model-release-v1 card: {card} (sha256 {hashlib.sha256(card.read_bytes()).hexdigest()})" in output


def test_without_the_card_the_card_falsifier_is_not_run_naming_the_param(stamped: Path, tmp_path: Path) -> None:
    code, evidence, output = _verify(stamped, tmp_path / "out", "FALSIFY-RELEASE-CARD-001")
    assert code == 0, output
    result = _results(evidence)["FALSIFY-RELEASE-CARD-001"]
    assert result["outcome"] == "not_run"
    assert result["reason"] == f"needs parameter card (harness verify {CONTRACT} --param card=PATH)"


def test_the_hf_directory_pretrain_export_writes_passes_the_same_contract(stamped: Path, card: Path, tmp_path: Path) -> None:
    hf = tmp_path / "model-hf"
    proc = _run("pretrain", "export", str(stamped), "--format", "hf", "-o", str(hf))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code, evidence, output = _verify(hf, tmp_path / "out", card=card)
    assert code == 0, output
    assert {fid: r["outcome"] for fid, r in _results(evidence).items()} == ALL_PASSED
    (contract,) = evidence["contracts"]
    (checkpoint, _) = contract["parameters"]
    assert checkpoint["files"] == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(hf.iterdir())}


def test_a_card_whose_license_disagrees_fails_the_card_check_with_the_command_that_rewrites_it(
        stamped: Path, card: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "README.md"
    wrong.write_text(card.read_text().replace("license: apache-2.0", "license: mit", 1))
    code, evidence, output = _verify(stamped, tmp_path / "out", "FALSIFY-RELEASE-CARD-001", card=wrong)
    assert code == 1, output
    result = _results(evidence)["FALSIFY-RELEASE-CARD-001"]
    assert result["outcome"] == "falsified"
    assert "license 'mit' but the checkpoint's is 'Apache-2.0'" in result["reason"]
    fix = f"pretrain card {stamped} -o {wrong} --force"
    assert fix in result["reason"] and fix in output
    proc = subprocess.run(fix, shell=True, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code, evidence, output = _verify(stamped, tmp_path / "out-fixed", "FALSIFY-RELEASE-CARD-001", card=wrong)
    assert code == 0, output


def test_an_unstamped_checkpoint_fails_the_quality_gate_with_the_stamp_command(trained: Path, tmp_path: Path) -> None:
    checkpoint = trained / "model.safetensors"  # as trained: no --license
    code, evidence, output = _verify(checkpoint, tmp_path / "out", "FALSIFY-RELEASE-QUALITY-001")
    assert code == 1, output
    result = _results(evidence)["FALSIFY-RELEASE-QUALITY-001"]
    assert result["outcome"] == "falsified"
    assert "provenance.license: no license" in result["reason"]
    fix = f"pretrain stamp {checkpoint} --license '<SPDX-ID>' -o {trained / 'model.fixed.safetensors'}"
    assert fix in result["reason"] and fix in output


def test_a_mis_stamped_checkpoint_fails_the_family_check_with_the_salvage_command(stamped: Path, tmp_path: Path) -> None:
    mis = _rewritten(stamped, tmp_path / "mis.safetensors", metadata={
        "architecture": "qwen2", "hf_architecture": "Qwen2ForCausalLM", "hf_model_type": "qwen2",
    })
    code, evidence, output = _verify(mis, tmp_path / "out", "FALSIFY-RELEASE-FAMILY-001")
    assert code == 1, output
    result = _results(evidence)["FALSIFY-RELEASE-FAMILY-001"]
    assert result["outcome"] == "falsified"
    fix = f"pretrain stamp {mis} --architecture llama --hf-architecture LlamaForCausalLM --hf-model-type llama -o {tmp_path / 'mis.fixed.safetensors'}"
    assert fix in result["counterexample"], result["counterexample"]
    _printed(result, output, fix)
    # The command runs as printed, and its output passes the check.
    proc = subprocess.run(fix, shell=True, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code, evidence, output = _verify(tmp_path / "mis.fixed.safetensors", tmp_path / "out-fixed", "FALSIFY-RELEASE-FAMILY-001")
    assert code == 0, output


def test_a_nan_tensor_fails_the_read_check(stamped: Path, tmp_path: Path) -> None:
    broken = _rewritten(stamped, tmp_path / "nan.safetensors", nan="model.layers.0.mlp.up_proj.weight")
    code, evidence, output = _verify(broken, tmp_path / "out", "FALSIFY-RELEASE-READS-001")
    assert code == 1, output
    result = _results(evidence)["FALSIFY-RELEASE-READS-001"]
    assert result["outcome"] == "falsified"
    assert "'model.layers.0.mlp.up_proj.weight'" in result["reason"] and "NaN or Inf" in result["reason"]
    assert f"harness verify {CONTRACT} --param checkpoint=GOOD.safetensors" in result["reason"]
    assert "FALSIFIED FALSIFY-RELEASE-READS-001" in output and "--param checkpoint=GOOD.safetensors" in output


def test_a_val_loss_that_does_not_reproduce_fails_with_the_command_that_measures_it_again(stamped: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(stamped), framework="pt") as f:
        recorded = float(f.metadata()["val_loss"])
    wrong = _rewritten(stamped, tmp_path / "wrong.safetensors", metadata={"val_loss": repr(recorded * 0.9)})
    code, evidence, output = _verify(wrong, tmp_path / "out", "FALSIFY-RELEASE-VAL-LOSS-001")
    assert code == 1, output
    result = _results(evidence)["FALSIFY-RELEASE-VAL-LOSS-001"]
    assert result["outcome"] == "falsified"
    assert f"recorded {recorded * 0.9:.4f}" in result["reason"] and "more than 2%" in result["reason"]
    fix = result["counterexample"].rsplit("measure and record it again: ", 1)[1]
    _printed(result, output, fix)
    assert fix.startswith(f"pretrain train --init {wrong} --steps 0 --seq-len 32 --val-windows 16 --data "), fix
    # The command runs as printed and writes a checkpoint whose val_loss reproduces.
    proc = subprocess.run(fix, shell=True, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = Path(fix.rsplit("--out ", 1)[1].strip("'")) / "model.safetensors"
    code, evidence, output = _verify(again, tmp_path / "out-again", "FALSIFY-RELEASE-VAL-LOSS-001", "FALSIFY-RELEASE-QUALITY-001")
    assert code == 0, output


def test_the_release_is_audited_like_code_and_is_go_naming_the_artifact(stamped: Path, card: Path, tmp_path: Path) -> None:
    """The README's model release flow after `pretrain card`, in a committed copy of the checkout: verify and
    teeth of the release contract with the parameters into reports/models/ (beside the code's evidence, not
    over it), then `harness audit --release` into reports/releases/models/: GO, naming the artifact."""
    from harness.teeth_run import copy_repository, repository_files

    from tests.harness.audit_support import GIT

    copy = tmp_path / "repo"
    copy_repository(ROOT, [f for f in repository_files(ROOT) if not f.startswith("reports/")], copy)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=copy, check=True)
    subprocess.run(GIT + ["commit", "-qm", "model release candidate"], cwd=copy, check=True)
    params = ["--param", f"checkpoint={stamped}", "--param", f"card={card}"]
    env = cli_env(copy, CI="1", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTEST_ADDOPTS", None)

    def harness(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=copy, env=env, capture_output=True,
                              text=True, timeout=1800)

    verify = harness("verify", CONTRACT, *params, "--out", "reports/models")
    assert verify.returncode == 0, verify.stdout[-4000:] + verify.stderr[-4000:]
    teeth = harness("teeth", CONTRACT, *params, "--out", "reports/models", "-j", "2")
    assert teeth.returncode == 0, teeth.stdout[-6000:] + teeth.stderr[-4000:]
    audit = harness("audit", "--release", "model-vTEST", "--reports", "reports/models",
                    "--out", "reports/releases/models/model-vTEST")
    assert audit.returncode == 0, audit.stdout[-4000:] + audit.stderr[-4000:]
    assert ": GO" in audit.stdout
    out = copy / "reports" / "releases" / "models" / "model-vTEST"
    recorded = json.loads((out / "audit.json").read_text())
    assert recorded["verdict"] == "GO" and recorded["reasons"] == []
    totals = json.loads((out / "teeth.json").read_text())["totals"]
    assert totals["killed"] > 0 and totals["survived"] == 0, totals
    md, page = (out / "audit.md").read_text(), (out / "audit.html").read_text()
    assert "## Parameters" in md and 'id="parameters"' in page
    for path in (stamped, card):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{digest}`" in md and f"`{path}`" in md
        assert f"<code>{digest}</code>" in page
