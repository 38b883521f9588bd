"""Contract parameters (harness.parameters): declared in the contract, given with `--param NAME=VALUE`,
received by every binding kind as HARNESS_PARAM_<NAME> (python bindings also as a keyword argument),
recorded in the evidence with the digests of what they name; a falsifier without one it needs is
not_run with the command that supplies it, never passed and never an error."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import textwrap
from pathlib import Path

import pytest

import harness
from harness.model import Contract, ContractResult, ParameterKind, ParameterValue
from harness.parameters import ParameterError, bind, parse_assignments
from harness.schema import load_schema
from harness.validate import validate

from tests.harness.verify_support import read_evidence, run_verify

FALSIFIERS = textwrap.dedent(
    '''
    import os
    from pathlib import Path


    def by_keyword(artifact=None):
        assert artifact is not None, "the artifact was not passed as a keyword argument"
        assert artifact == os.environ["HARNESS_PARAM_ARTIFACT"], "the keyword and the environment disagree"
        assert Path(artifact).is_absolute(), f"not absolute: {artifact}"
        text = Path(artifact).read_text()
        assert text == "good\\n", f"the artifact says {text!r}"


    def by_environment():
        text = Path(os.environ["HARNESS_PARAM_ARTIFACT"]).read_text()
        assert text == "good\\n", f"the artifact says {text!r}"


    def tag_and_directory(tag=None, weights=None):
        assert tag == "v1.2", tag
        assert sorted(p.name for p in Path(weights).iterdir()) == ["a.bin", "sub"], weights


    def no_parameters():
        assert "HARNESS_PARAM_ARTIFACT" not in os.environ, "a stale HARNESS_PARAM_ARTIFACT reached the falsifier"
    '''
)

PYTEST_FILE = textwrap.dedent(
    '''
    import os
    from pathlib import Path


    def test_artifact_is_good():
        assert Path(os.environ["HARNESS_PARAM_ARTIFACT"]).read_text() == "good\\n"
    '''
)

HEAD = """\
id: art-v1
version: 1.0.0
title: Falsifiers over an artifact
parameters:
  artifact: {kind: file, required: true, description: the file under test}
  tag: {kind: string}
  weights: {kind: directory}
invariants:
  - {id: INV-ART-001, kind: integrity, statement: The artifact is good.}
falsifiers:
"""


def _falsifier(fid: str, binding: str, extra: str = "") -> str:
    text = f"  - id: {fid}\n    attacks: [INV-ART-001]\n    prediction: p\n    if_fails: f\n    binding: {binding}\n"
    return text + (f"    {extra}\n" if extra else "")


CONTRACT = HEAD + "".join([
    _falsifier("FALSIFY-ART-001", '{python: "fx_params:by_keyword"}'),
    _falsifier("FALSIFY-ART-002", '{python: "fx_params:by_environment"}'),
    _falsifier("FALSIFY-ART-003", '{pytest: "tests/test_param.py::test_artifact_is_good"}'),
    _falsifier("FALSIFY-ART-004", """{command: [sh, -c, 'test "$(cat "$HARNESS_PARAM_ARTIFACT")" = good']}"""),
    _falsifier("FALSIFY-ART-005", '{python: "fx_params:tag_and_directory"}', "requires: {parameters: [tag, weights]}"),
])


def _project(root: Path, contract: str = CONTRACT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'fixture'\nversion = '0'\n")
    (root / "fx_params.py").write_text(FALSIFIERS)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_param.py").write_text(PYTEST_FILE)
    (root / "contracts").mkdir(exist_ok=True)
    (root / "contracts" / "art.yaml").write_text(contract)
    (root / "good.txt").write_text("good\n")
    (root / "bad.txt").write_text("bad\n")
    weights = root / "weights"
    (weights / "sub").mkdir(parents=True)
    (weights / "a.bin").write_bytes(b"\x00\x01")
    (weights / "sub" / "b.bin").write_bytes(b"\x02")
    return root


def _evidence(out: Path) -> dict:
    return read_evidence(out / "uncommitted" / "evidence.json")


def _outcomes(evidence: dict) -> dict[str, tuple[str, str]]:
    return {f["id"]: (f["outcome"], f["reason"]) for c in evidence["contracts"] for f in c["falsifiers"]}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------- verify


def test_without_its_parameter_every_falsifier_is_not_run_naming_the_command(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    run = run_verify(root, "contracts/", "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stdout + run.stderr
    outcomes = _outcomes(_evidence(tmp_path / "out"))
    needs = "needs parameter artifact (harness verify contracts/art.yaml --param artifact=PATH)"
    for fid in ("FALSIFY-ART-001", "FALSIFY-ART-002", "FALSIFY-ART-003", "FALSIFY-ART-004"):
        assert outcomes[fid] == ("not_run", needs)
    assert outcomes["FALSIFY-ART-005"] == (
        "not_run",
        "needs parameters artifact, tag, weights (harness verify contracts/art.yaml --param artifact=PATH "
        "--param tag=VALUE --param weights=PATH)",
    )
    assert f"NOT_RUN FALSIFY-ART-001 (0.0s): {needs}" in run.stdout
    assert _evidence(tmp_path / "out")["contracts"][0]["parameters"] == []


def test_every_binding_kind_receives_the_parameter_and_the_evidence_records_its_digests(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    run = run_verify(
        root, "contracts/", "--out", str(tmp_path / "out"),
        "--param", "artifact=good.txt", "--param", "tag=v1.2", "--param", f"weights={root / 'weights'}",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    evidence = _evidence(tmp_path / "out")
    assert {fid: o for fid, (o, _) in _outcomes(evidence).items()} == {f"FALSIFY-ART-00{i}": "passed" for i in range(1, 6)}
    assert evidence["selection"] is None  # a run with parameters is the full run of what it was given
    assert evidence["contracts"][0]["parameters"] == [
        {"name": "artifact", "kind": "file", "value": "good.txt", "absolute": str(root / "good.txt"),
         "sha256": _sha(root / "good.txt"), "files": None},
        {"name": "tag", "kind": "string", "value": "v1.2", "absolute": None, "sha256": None, "files": None},
        {"name": "weights", "kind": "directory", "value": str(root / "weights"), "absolute": str(root / "weights"),
         "sha256": None,
         "files": {"a.bin": _sha(root / "weights" / "a.bin"), "sub/b.bin": _sha(root / "weights" / "sub" / "b.bin")}},
    ]
    assert "--param" in evidence["command"] and "artifact=good.txt" in evidence["command"]
    # Shown where people look: the closing lines and summary.md.
    assert f"parameter art-v1 artifact: {root / 'good.txt'} (sha256 {_sha(root / 'good.txt')})" in run.stdout
    assert "parameter art-v1 weights: " + str(root / "weights") + " (2 files)" in run.stdout
    summary = (tmp_path / "out" / "uncommitted" / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| `artifact` | "))
    assert row.endswith(f" | `{_sha(root / 'good.txt')}` |") and "good.txt" in row, row


@pytest.mark.parametrize("fork_server", ["1", "0"])
def test_a_bad_artifact_is_falsified_in_every_binding_kind(tmp_path: Path, fork_server: str) -> None:
    # The environment must reach a child forked from the warm fork server as well as a fresh process.
    root = _project(tmp_path / "p")
    run = run_verify(
        root, "contracts/", "--out", str(tmp_path / "out"), "-k", "FALSIFY-ART-00[1-4]", "--param", "artifact=bad.txt",
        HARNESS_FORK_SERVER=fork_server,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    outcomes = _outcomes(read_evidence(next((tmp_path / "out").rglob("evidence.json"))))
    assert {fid: o for fid, (o, _) in outcomes.items()} == {f"FALSIFY-ART-00{i}": "falsified" for i in range(1, 5)}
    assert outcomes["FALSIFY-ART-001"][1] == "AssertionError: the artifact says 'bad\\n'"


def test_a_stale_parameter_in_the_harness_environment_never_reaches_a_falsifier(tmp_path: Path) -> None:
    contract = HEAD.replace("required: true", "required: false") + _falsifier(
        "FALSIFY-ART-006", '{python: "fx_params:no_parameters"}'
    )
    root = _project(tmp_path / "p", contract)
    run = run_verify(root, "contracts/", "--out", str(tmp_path / "out"), HARNESS_PARAM_ARTIFACT=str(root / "bad.txt"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert _outcomes(_evidence(tmp_path / "out"))["FALSIFY-ART-006"][0] == "passed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "artefact=good.txt"],
         "harness verify: --param artefact: no selected contract declares parameter 'artefact' (declared: artifact, "
         "tag, weights); drop it or fix the name; nothing was run"),
        (["--param", "artifact=missing.txt"], "harness verify: --param artifact=missing.txt: {root}/missing.txt does not exist"),
        (["--param", "artifact=weights"], "harness verify: --param artifact=weights: {root}/weights is a directory; parameter artifact takes a file"),
        (["--param", "weights=good.txt"], "harness verify: --param weights=good.txt: {root}/good.txt is a file; parameter weights takes a directory"),
        (["--param", "artifact"], "harness verify: --param 'artifact': expected NAME=VALUE"),
        (["--param", "tag=a", "--param", "tag=b"], "harness verify: --param tag: given twice ('a' and 'b')"),
    ],
)
def test_an_unusable_param_is_exit_2_naming_it_and_nothing_runs(tmp_path: Path, args: list[str], message: str) -> None:
    root = _project(tmp_path / "p")
    run = run_verify(root, "contracts/", "--out", str(tmp_path / "out"), *args)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(root=root)), run.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("evidence.json"))


def test_a_param_only_an_unselected_contract_declares_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    other = HEAD.replace("art-v1", "other-v1").replace("INV-ART", "INV-OTH").replace("  artifact:", "  blob:")
    (root / "contracts" / "other.yaml").write_text(
        other.replace("INV-ART", "INV-OTH") + _falsifier("FALSIFY-OTH-001", '{python: "fx_params:by_environment"}').replace(
            "INV-ART", "INV-OTH")
    )
    run = run_verify(root, "contracts/", "--out", str(tmp_path / "out"), "-k", "FALSIFY-ART-001", "--param", "blob=good.txt")
    assert run.returncode == 2
    assert "--param blob: no selected contract declares parameter 'blob'" in run.stderr


# ---------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (lambda t: t.replace("requires: {parameters: [tag, weights]}", "requires: {parameters: [tag, wieghts]}"), 36,
         "FALSIFY-ART-005: requires parameter 'wieghts', which the contract does not declare (declared: artifact, tag, weights)"),
        (lambda t: t.replace('"$HARNESS_PARAM_ARTIFACT"', '"$HARNESS_PARAM_ARTEFACT"'), 30,
         "FALSIFY-ART-004: the command mentions HARNESS_PARAM_ARTEFACT, which names no parameter the contract declares"),
        # The schema's propertyNames: reported at the parameters: mapping.
        (lambda t: t.replace("  tag: {kind: string}", "  Tag-1: {kind: string}"), 4, "parameters 'Tag-1'"),
        (lambda t: t.replace("  tag: {kind: string}", "  tag: {kind: url}"), 6, "'url' is not one of"),
        (lambda t: t.replace("  tag: {kind: string}", "  tag: {kind: string, requried: true}"), 6, "requried"),
    ],
)
def test_parameter_problems_are_reported_with_file_and_line(tmp_path: Path, edit, line: int, message: str) -> None:
    root = _project(tmp_path / "p", edit(CONTRACT))
    contracts, problems = validate([root / "contracts"], check_bindings=False)
    assert not contracts
    shown = [str(p) for p in problems]
    assert any(s.startswith(f"{root / 'contracts' / 'art.yaml'}:{line}: ") and message in s for s in shown), shown


def test_the_model_holds_the_declared_parameters(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (contract,), problems = validate([root / "contracts"], check_bindings=False)
    assert problems == []
    assert [(p.name, p.kind, p.required, p.location.line) for p in contract.parameters] == [
        ("artifact", ParameterKind.FILE, True, 5), ("tag", ParameterKind.STRING, False, 6),
        ("weights", ParameterKind.DIRECTORY, False, 7),
    ]
    assert contract.falsifiers[4].requires.parameters == ("tag", "weights")


def test_parameter_fields_match_the_schemas() -> None:
    from harness import model

    contract = load_schema("contract")["$defs"]["parameter"]
    assert {f.name for f in dataclasses.fields(model.Parameter)} - {"name", "location", "given"} == set(contract["properties"])
    assert set(contract["properties"]["kind"]["enum"]) == {k.value for k in ParameterKind}
    evidence = load_schema("evidence")["$defs"]
    assert list(evidence["parameter"]["properties"]) == [f.name for f in dataclasses.fields(ParameterValue)]
    assert list(evidence["contract"]["properties"]) == [f.name for f in dataclasses.fields(ContractResult)]


def test_parse_assignments_keeps_everything_after_the_first_equals_sign() -> None:
    assert parse_assignments(["tag=a=b", "path="]) == {"tag": "a=b", "path": ""}
    with pytest.raises(ParameterError, match="expected NAME=VALUE"):
        parse_assignments(["=x"])


def test_bind_takes_each_digest_once_and_leaves_undeclaring_contracts_alone(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (contract,), _ = validate([root / "contracts"], check_bindings=False)
    plain = dataclasses.replace(contract, id="plain-v1", parameters=())
    bound = bind([contract, plain], {"artifact": "good.txt"}, cwd=root)
    assert bound[1] is plain
    artifact = bound[0].parameters[0].given
    assert artifact == ParameterValue("artifact", ParameterKind.FILE, "good.txt", str(root / "good.txt"), _sha(root / "good.txt"))
    assert [p.given for p in bound[0].parameters[1:]] == [None, None]


# ---------------------------------------------------------------------------------------- merge, incremental


def test_merge_refuses_shards_run_with_different_parameters(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    outs = []
    for k, artifact in ((1, "good.txt"), (2, "bad.txt")):
        out = tmp_path / f"shard{k}"
        run = run_verify(root, "contracts/", "--out", str(out), "-k", "FALSIFY-ART-00[1-4]", "--shard", f"{k}/2",
                         "--param", f"artifact={artifact}")
        assert run.returncode in (0, 1), run.stdout + run.stderr
        outs.append(next(out.rglob("evidence.json")).parent)
        assert read_evidence(outs[-1] / "evidence.json")["contracts"], "each shard ran a falsifier of the contract"
    with pytest.raises(harness.MergeError, match="mixed parameters: contract art-v1"):
        harness.merge(outs, out=None)


def test_merged_shards_keep_the_parameters(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    outs = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        run = run_verify(root, "contracts/", "--out", str(out), "-k", "FALSIFY-ART-00[12]", "--shard", f"{k}/2",
                         "--param", "artifact=good.txt")
        assert run.returncode == 0, run.stdout + run.stderr
        outs.append(next(out.rglob("evidence.json")).parent)
    merged = harness.merge(outs, out=None)
    assert [c.parameters for c in merged.contracts] == [
        (ParameterValue("artifact", ParameterKind.FILE, "good.txt", str(root / "good.txt"), _sha(root / "good.txt")),)
    ]


def test_changed_since_never_carries_a_result_run_against_another_artifact(tmp_path: Path) -> None:
    import subprocess

    root = _project(tmp_path / "p")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], cwd=root, check=True)
    out = tmp_path / "out"
    first = run_verify(root, "contracts/", "--out", str(out), "--param", "artifact=good.txt")
    assert first.returncode == 0, first.stdout + first.stderr
    (root / "other.txt").write_text("bad\n")
    again = run_verify(root, "contracts/", "--out", str(out), "--changed-since", "HEAD", "--param", "artifact=other.txt")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "RUN FALSIFY-ART-001: its contract parameters (--param, and the digests of what they name) differ" in again.stdout
    assert "CARRIED FALSIFY-ART-001" not in again.stdout


# ---------------------------------------------------------------------------------------- teeth

GUARDED = """\
id: guarded-v1
version: 1.0.0
title: A guard checked against an artifact
parameters:
  artifact: {kind: file, required: true}
invariants:
  - id: INV-GUARD-001
    kind: safety
    statement: clamp never returns a negative number.
    guards: [fx_guard:clamp]
falsifiers:
  - id: FALSIFY-GUARD-001
    attacks: [INV-GUARD-001]
    prediction: clamp of every number in the artifact is >= 0.
    if_fails: f
    binding: {python: "fx_guard_falsifier:clamps_the_artifact"}
"""


def test_teeth_reports_the_mutants_of_a_parameterized_contract_not_run_without_it(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", GUARDED)
    (root / "fx_guard.py").write_text("def clamp(x):\n    if x < 0:\n        return 0\n    return x\n")
    (root / "fx_guard_falsifier.py").write_text(
        "from pathlib import Path\nfrom fx_guard import clamp\n\n\ndef clamps_the_artifact(artifact=None):\n"
        "    for n in Path(artifact).read_text().split():\n        assert clamp(int(n)) >= 0, n\n"
    )
    (root / "numbers.txt").write_text("-3 -1 0 2\n")
    without = harness.teeth([root / "contracts"], out=None)
    (inv,) = without.invariants
    assert inv.mutants and {m.status for m in inv.mutants} == {"not_run"}
    assert all("needs parameter artifact (harness verify contracts/art.yaml --param artifact=PATH)" in m.reason
               for m in inv.mutants)
    assert without.totals["killed"] == 0 and without.totals["survived"] == 0 and without.totals["baseline_failed"] == 0
    given = harness.teeth([root / "contracts"], out=None, params={"artifact": str(root / "numbers.txt")})
    (inv,) = given.invariants
    assert inv.falsifiers[0].outcome == "passed"
    assert "not_run" not in {m.status for m in inv.mutants} and given.totals["killed"] > 0


def test_teeth_refuses_a_param_no_contract_declares(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    with pytest.raises(harness.InvalidInput, match="harness teeth: --param nope: no selected contract declares"):
        harness.teeth([root / "contracts"], out=None, params={"nope": "x"})


def test_teeth_json_records_the_parameters(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", GUARDED)
    (root / "fx_guard.py").write_text("def clamp(x):\n    if x < 0:\n        return 0\n    return x\n")
    (root / "fx_guard_falsifier.py").write_text(
        "from pathlib import Path\nfrom fx_guard import clamp\n\n\ndef clamps_the_artifact(artifact=None):\n"
        "    for n in Path(artifact).read_text().split():\n        assert clamp(int(n)) >= 0, n\n"
    )
    (root / "numbers.txt").write_text("-3\n")
    result = harness.teeth([root / "contracts"], out=tmp_path / "out", params={"artifact": str(root / "numbers.txt")})
    expected = (ParameterValue("artifact", ParameterKind.FILE, str(root / "numbers.txt"), str(root / "numbers.txt"),
                               _sha(root / "numbers.txt")),)
    assert result.contracts[0].parameters == expected
    assert harness.read_teeth(next((tmp_path / "out").rglob("teeth.json"))).contracts[0].parameters == expected


# ---------------------------------------------------------------------------------------- replay


def test_replay_runs_against_the_recorded_artifact_and_refuses_a_changed_one(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    out = tmp_path / "out"
    run = run_verify(root, "contracts/", "--out", str(out), "-k", "FALSIFY-ART-001", "--param", "artifact=bad.txt")
    assert run.returncode == 1, run.stdout + run.stderr
    evidence = next(out.rglob("evidence.json"))
    replayed = harness.replay("FALSIFY-ART-001", evidence=evidence, cwd=root)
    assert replayed.reproduced, replayed.why
    assert replayed.result.reason == "AssertionError: the artifact says 'bad\\n'"
    (root / "bad.txt").write_text("good\n")
    with pytest.raises(harness.ReplayError, match=r"parameter artifact: .*bad.txt changed since the evidence was recorded"):
        harness.replay("FALSIFY-ART-001", evidence=evidence, cwd=root)


def test_an_artifact_changed_during_the_run_turns_its_passes_into_errors(tmp_path: Path) -> None:
    # The evidence records the digest taken before anything ran; a pass over different bytes would be a
    # pass the evidence attributes to an artifact nobody checked.
    contract = HEAD + _falsifier(
        "FALSIFY-ART-007", """{command: [sh, -c, 'cat "$HARNESS_PARAM_ARTIFACT" && echo more >> "$HARNESS_PARAM_ARTIFACT"']}"""
    )
    root = _project(tmp_path / "p", contract)
    run = run_verify(root, "contracts/", "--out", str(tmp_path / "out"), "--param", "artifact=good.txt")
    assert run.returncode == 1, run.stdout + run.stderr
    outcome, reason = _outcomes(_evidence(tmp_path / "out"))["FALSIFY-ART-007"]
    assert outcome == "error"
    assert reason == (
        f"parameter artifact: {root / 'good.txt'} changed during the run (its digests differ from those recorded); "
        "run it again on an artifact nothing writes to"
    )


def test_parallel_workers_receive_the_parameters_and_record_the_same_evidence(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    runs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        run = run_verify(root, "contracts/", "--out", str(out), "-j", jobs, "-k", "FALSIFY-ART-00[1-4]",
                         "--param", "artifact=good.txt")
        assert run.returncode == 0, run.stdout + run.stderr
        evidence = read_evidence(next(out.rglob("evidence.json")))
        runs[jobs] = ([c["parameters"] for c in evidence["contracts"]], sorted(_outcomes(evidence).items()))
    assert runs["1"] == runs["2"]
    assert runs["2"][0][0][0]["sha256"] == _sha(root / "good.txt")
