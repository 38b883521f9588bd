"""What a load does, so that it costs what reading the file costs (issue #11, item 5).

The model is built once per load, on the meta device with nothing initialised (nn's default init on meta
imports torch._dynamo: 2.4 s of a 2.5 s fresh load), and the file's tensors become the parameters without
a copy. Times and peak memory are measured in benchmarks/bench_load.py; these tests pin the mechanism, and
that every check of the load path still runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from pretrain import checkpoint, loading
from pretrain import model as model_mod
from pretrain.model import CausalLM, ModelConfig, build_model, from_pretrained
from tests.cli_env import ROOT, cli_env

CFG = ModelConfig(family="qwen3", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8)


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    return build_model(CFG, seed=0).save_pretrained(tmp_path / "hf")


def test_a_load_builds_the_model_once_and_assigns_the_files_tensors(saved: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[CausalLM] = []
    read: list[dict[str, torch.Tensor]] = []
    init = CausalLM.__init__
    load_tensors = checkpoint.load_tensors

    def counting_init(self: CausalLM, cfg: ModelConfig) -> None:
        built.append(self)
        init(self, cfg)

    def keeping_load_tensors(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        read.append(load_tensors(*args, **kwargs))
        return read[-1]

    monkeypatch.setattr(CausalLM, "__init__", counting_init)
    monkeypatch.setattr(checkpoint, "load_tensors", keeping_load_tensors)
    model = from_pretrained(saved)
    assert built == [model]
    state = model.state_dict()
    assert set(state) == set(read[0])
    # Assigned, not copied: each parameter is the tensor read from the file.
    assert all(state[k].data_ptr() == t.data_ptr() for k, t in read[0].items())
    reference = build_model(CFG, seed=0)
    assert all(torch.equal(state[k], v) for k, v in reference.state_dict().items())


def test_a_fresh_load_does_not_import_torch_dynamo(saved: Path) -> None:
    code = ("import json, sys\nfrom pretrain.model import from_pretrained\nfrom_pretrained(sys.argv[1])\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('torch._dynamo'))))")
    proc = subprocess.run([sys.executable, "-c", code, str(saved)], cwd=ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_the_skeleton_has_no_values_and_training_models_keep_their_init() -> None:
    skeleton = model_mod.skeleton(CFG)
    assert all(p.is_meta for p in skeleton.parameters())
    # Skipping init is scoped to the skeleton: a model built for training (by nn's constructors, then
    # reset_parameters) is initialised as before.
    torch.manual_seed(0)
    plain = CausalLM(CFG)
    weight = plain.model.layers[0].self_attn.q_proj.weight
    bound = 1 / CFG.hidden_size ** 0.5  # nn.Linear's kaiming-uniform bound
    assert not weight.is_meta and 0 < weight.abs().max().item() <= bound
    assert plain.model.embed_tokens.weight.std().item() > 0.5  # nn.Embedding's normal(0, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_weight_is_refused_in_every_float_dtype(tmp_path: Path, dtype: torch.dtype, bad: float) -> None:
    from safetensors.torch import save_file

    tensor = torch.ones(1000, dtype=dtype)
    tensor[777] = bad
    save_file({"fine": torch.zeros(3, dtype=dtype), "broken": tensor}, str(tmp_path / "w.safetensors"))
    with pytest.raises(checkpoint.CheckpointError, match=r"1 tensor\(s\) hold NaN or Inf weights: 'broken'"):
        checkpoint.load_tensors(tmp_path / "w.safetensors")


@pytest.mark.skipif(not hasattr(torch, "float8_e4m3fn"), reason="no float8 in this torch")
def test_a_non_finite_float8_weight_is_refused(tmp_path: Path) -> None:
    # aminmax has no float8 kernel: the check falls back to isfinite for it.
    from safetensors.torch import save_file

    tensor = torch.ones(10, dtype=torch.float8_e5m2)
    tensor[3] = float("inf")
    save_file({"broken": tensor}, str(tmp_path / "w.safetensors"))
    with pytest.raises(checkpoint.CheckpointError, match="hold NaN or Inf weights: 'broken'"):
        checkpoint.load_tensors(tmp_path / "w.safetensors")


def test_the_name_and_shape_check_still_runs_before_any_data_is_read(saved: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = ModelConfig(**{**CFG.__dict__, "num_hidden_layers": 3})
    (saved / "config.json").write_text(json.dumps(wrong.to_hf_dict()))

    def no_data(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tensor data read before the name/shape check")

    monkeypatch.setattr(checkpoint, "load_tensors", no_data)
    with pytest.raises(model_mod.StrictLoadError, match=r"missing tensor\(s\): model\.layers\.2\."):
        loading.load_checkpoint(saved)
