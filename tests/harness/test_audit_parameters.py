"""The release audit names the artifact a parameterized run was given: each parameter with the sha256 of
its file, or of every file of its directory (issue 13: "an audit says exactly which artifact was verified").

The whole audit of a model release (verify, teeth, audit GO with these rows) is tests/test_model_release.py."""

from __future__ import annotations

from types import SimpleNamespace

from harness import audit_html, audit_md
from harness.audit import parameter_rows
from harness.model import ContractResult, ParameterKind, ParameterValue

FILE = ParameterValue("checkpoint", ParameterKind.PATH, "runs/m/release.safetensors", "/w/runs/m/release.safetensors", "ab" * 32)
DIRECTORY = ParameterValue("checkpoint", ParameterKind.PATH, "runs/m/hf", "/w/runs/m/hf",
                           files={"config.json": "cd" * 32, "model.safetensors": "ef" * 32})
CARD = ParameterValue("card", ParameterKind.FILE, "runs/m/README.md", "/w/runs/m/README.md", "12" * 32)


def _audit(*parameters: ParameterValue) -> SimpleNamespace:
    contract = ContractResult("model-release-v1", "1.0.0", "contracts/model-release-v1.yaml", "00" * 32, (), parameters)
    return SimpleNamespace(evidence=SimpleNamespace(contracts=(contract,)))


def test_each_file_parameter_is_one_row_with_its_sha256_and_a_directory_one_row_per_file() -> None:
    assert parameter_rows(_audit(FILE, CARD)) == [
        ("model-release-v1", "checkpoint", "path", "/w/runs/m/release.safetensors", "", "ab" * 32),
        ("model-release-v1", "card", "file", "/w/runs/m/README.md", "", "12" * 32),
    ]
    assert parameter_rows(_audit(DIRECTORY)) == [
        ("model-release-v1", "checkpoint", "path", "/w/runs/m/hf", "config.json", "cd" * 32),
        ("model-release-v1", "checkpoint", "path", "/w/runs/m/hf", "model.safetensors", "ef" * 32),
    ]


def test_audit_md_and_html_show_the_parameters_and_nothing_for_a_run_without() -> None:
    md = "\n".join(audit_md._parameters_section(_audit(FILE, CARD)))
    assert "## Parameters" in md and f"`{'ab' * 32}`" in md and "`/w/runs/m/release.safetensors`" in md
    page = "".join(audit_html._parameters_section(_audit(DIRECTORY)))
    assert 'id="parameters"' in page and f"<code>{'ef' * 32}</code>" in page and "<code>model.safetensors</code>" in page
    assert audit_md._parameters_section(_audit()) == [] and audit_html._parameters_section(_audit()) == []
