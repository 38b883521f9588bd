"""The published contract JSON Schema: valid, accepts the agreed example, and cannot drift from harness.model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from harness import model
from harness.cli import main
from harness.load import load_contract_file
from harness.schema import SCHEMA_DIR, load_schema

# The example agreed in the team brief, verbatim (its alternative bindings are tested below).
BRIEF_EXAMPLE = """\
id: apr-pretrain-from-init-v1          # contract id: lowercase, digits, dashes; ends in -vN
version: 1.0.0                         # semver
title: Resuming from --init never trains from silently random weights
description: |
  Free text.
references:                            # list of strings or {title, url}
  - "INV-INIT-ARCH-MATCH-001 incident: step-0 val loss 8.60 instead of 4.62"
changelog:
  - {version: 1.0.0, date: 2026-11-24, change: First version.}
depends_on: [apr-checkpoint-format-v1] # other contract ids, optional
invariants:
  - id: INV-INIT-ARCH-MATCH-001        # ^INV-[A-Z0-9-]+-\\d{3}$
    kind: safety                       # safety|liveness|equivalence|bound|determinism|performance|integrity|provenance
    statement: When the metadata's family claim and the family inferred from tensor names both resolve and differ, loading fails before step 1.
    guards: [pretrain.families:validate_init_arch_matches_tensor_evidence]   # module:function that upholds it
    proof_obligations:
      - Both families are named in the error.
falsifiers:
  - id: FALSIFY-INIT-ARCH-MATCH-001    # ^FALSIFY-[A-Z0-9-]+-\\d{3}$
    attacks: [INV-INIT-ARCH-MATCH-001]
    prediction: Loading a Llama-claimed checkpoint with Qwen2 tensors raises InitArchMismatchError naming both families.
    if_fails: The gate is bypassed; a resumed run can train from random weights.
    binding:                           # exactly ONE of python | pytest | command
      python: falsifiers.init_arch_match:falsify_llama_claim_on_qwen2_tensors
    requires: {cuda: true, packages: [transformers], min_memory_gib: 4}   # optional
    timeout_s: 120                     # optional, default 300
    deferred: {reason: "needs the 7B checkpoint", until: 2027-01-31}      # optional; never counted as passed
"""

ALTERNATIVE_BINDINGS = [
    {"pytest": "tests/pretrain/test_families.py::test_canonical_case", "min_tests": 1},
    {"pytest": {"k": "arch_match and not slow", "paths": ["tests/pretrain"]}, "min_tests": 3},
    {"command": ["cargo", "test", "-p", "x", "--lib", "inv_001"], "count_pattern": "(\\d+) passed", "min_tests": 1},
]


@pytest.fixture(scope="module")
def printed_schema() -> dict:
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["schema", "contract"]) == 0
    return json.loads(buffer.getvalue())


def brief_example(tmp_path: Path) -> dict:
    path = tmp_path / "example.yaml"
    path.write_text(BRIEF_EXAMPLE)
    return load_contract_file(path).data


def test_printed_schema_is_a_valid_draft_2020_12_schema(printed_schema: dict) -> None:
    assert printed_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(printed_schema)
    assert printed_schema == json.loads((SCHEMA_DIR / "contract.schema.json").read_text())


def test_schema_accepts_the_brief_example_and_its_alternative_bindings(printed_schema: dict, tmp_path: Path) -> None:
    data = brief_example(tmp_path)
    validator = jsonschema.Draft202012Validator(printed_schema)
    assert list(validator.iter_errors(data)) == []
    for binding in ALTERNATIVE_BINDINGS:
        data["falsifiers"][0]["binding"] = binding
        assert list(validator.iter_errors(data)) == [], binding


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["falsifiers"][0].update(timeout=1), "timeout"),
        (lambda d: d["falsifiers"][0]["binding"].update(command=["x"]), "binding"),
        (lambda d: d["falsifiers"][0]["requires"].update(gpus=1), "gpus"),
        (lambda d: d["falsifiers"][0]["deferred"].pop("until"), "until"),
        (lambda d: d["invariants"][0].update(kind="vibes"), "vibes"),
        (lambda d: d.update(version="1.0"), "1.0"),
    ],
)
def test_schema_is_closed_and_strict(printed_schema: dict, tmp_path: Path, mutate, where: str) -> None:
    data = brief_example(tmp_path)
    mutate(data)
    errors = list(jsonschema.Draft202012Validator(printed_schema).iter_errors(data))
    assert errors, f"the schema accepted a contract with a bad {where!r}"


def test_unknown_schema_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["schema", "nonesuch"])
    assert info.value.code == 2
    assert "invalid choice: 'nonesuch'" in capsys.readouterr().err


# --- drift between the schema and harness.model ---------------------------------------------------

def yaml_fields(cls: type, not_from_yaml: set[str]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - not_from_yaml


def props(schema: dict, *path: str) -> set[str]:
    node = schema
    for part in path:
        node = node[part]
    return set(node["properties"])


def test_contract_invariant_falsifier_fields_match_the_schema() -> None:
    schema = load_schema("contract")
    # path and sha256 describe the file, location where a value was written: none come from YAML keys.
    # x-pv is the one extension key (harness import pv keeps what our format has no place for there): validate
    # and verify ignore it, so it is in the schema and deliberately not in the model.
    extension = {"x-pv"}
    assert yaml_fields(model.Contract, {"path", "sha256"}) == props(schema) - extension
    assert yaml_fields(model.Invariant, {"location"}) == props(schema, "$defs", "invariant") - extension
    assert yaml_fields(model.Falsifier, {"location"}) == props(schema, "$defs", "falsifier") - extension
    assert extension <= props(schema) & props(schema, "$defs", "invariant") & props(schema, "$defs", "falsifier")
    # custom holds the project-registered kinds (harness.requirements), which the closed schema cannot name.
    assert yaml_fields(model.Requirement, {"custom"}) == props(schema, "$defs", "requirement")
    assert yaml_fields(model.Deferred, set()) == props(schema, "$defs", "deferred")


def test_binding_fields_match_the_schema() -> None:
    schema = load_schema("contract")
    binding = schema["$defs"]["binding"]
    # YAML key -> Binding field it fills; `kind` is which of python/pytest/command is present.
    yaml_to_field = {
        "python": "target",
        "pytest": "target",
        "pytest.k": "k",
        "pytest.paths": "paths",
        "command": "argv",
        "count_pattern": "count_pattern",
        "min_tests": "min_tests",
        "junit": "junit",
        "unbound": "target",
    }
    pytest_object = next(b for b in binding["properties"]["pytest"]["oneOf"] if b.get("type") == "object")
    schema_keys = set(binding["properties"]) | {f"pytest.{k}" for k in pytest_object["properties"]}
    assert schema_keys == set(yaml_to_field)
    # `then`: the steps after the first of a chain, `command: [[argv...], [argv...]]` (the first step is `argv`).
    assert {f.name for f in dataclasses.fields(model.Binding)} == set(yaml_to_field.values()) | {"kind", "then"}
    assert {b["required"][0] for b in binding["oneOf"]} == {k.value for k in model.BindingKind}


def test_schema_defaults_match_model_defaults() -> None:
    schema = load_schema("contract")["$defs"]
    defaults = {f.name: f.default for f in dataclasses.fields(model.Falsifier)}
    assert schema["falsifier"]["properties"]["timeout_s"]["default"] == defaults["timeout_s"]
    binding_defaults = {f.name: f.default for f in dataclasses.fields(model.Binding)}
    assert schema["binding"]["properties"]["min_tests"]["default"] == binding_defaults["min_tests"]
    requirement_defaults = {f.name: f.default for f in dataclasses.fields(model.Requirement)}
    assert schema["requirement"]["properties"]["cuda"]["default"] == requirement_defaults["cuda"]


def test_the_documented_example_passes_the_schema(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "contract-format.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    assert blocks, "docs/contract-format.md has no yaml example"
    validator = jsonschema.Draft202012Validator(load_schema("contract"))
    for block in blocks:
        path = tmp_path / "doc.yaml"
        path.write_text(block)
        assert list(validator.iter_errors(load_contract_file(path).data)) == []
