"""`harness import pv`: pv contracts imported, validated and verified, with stub `cargo` and `pv` programs
that print what the real ones print. The fixtures under tests/harness/data/pv/ are written from issue 14's
description of the format: a kernel contract (equations, obligations, prose tests, Kani harnesses), a
training contract (cargo test filters, an && pair, pv validate, LIVE-PENDING) and an older contract with
unknown keys and the alias keys."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.import_pv import parse_test
from harness.model import Outcome
from harness.record import read_evidence

from tests.cli_env import ROOT, cli_env

DATA = Path(__file__).resolve().parent / "data"
DEFER = "2099-03-31"

# cargo's real output: one `running N tests` block and one `test result:` line per test binary; a filter
# that matches nothing still exits 0 ("0 passed ... 13 filtered out"); a failing test exits 101.
STUB_CARGO = '''
import sys

name = sys.argv[-1]
if "renamed" in name:
    print("running 0 tests\\n\\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 13 filtered out; finished in 0.00s\\n")
elif "fails" in name:
    print(f"running 1 test\\ntest {name} ... FAILED\\n\\nfailures:\\n\\n---- {name} stdout ----\\n"
          f"thread '{name}' panicked at src/lib.rs:10:5:\\nassertion failed: state restored\\n\\nfailures:\\n    {name}\\n\\n"
          "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 12 filtered out; finished in 0.00s\\n")
    print("error: test failed, to rerun pass `--lib`", file=sys.stderr)
    sys.exit(101)
elif "--lib" in sys.argv:
    print(f"running 1 test\\ntest {name} ... ok\\n\\n"
          "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 12 filtered out; finished in 0.00s\\n")
else:  # every test binary of the package: the unit tests, an integration test file, the doc-tests
    for binary, passed in (("unittests src/lib.rs", 1), ("tests/it.rs", 1), ("Doc-tests", 0)):
        print(f"     Running {binary}\\n\\nrunning {passed} tests\\n" + (f"test {name} ... ok\\n" if passed else "") +
              f"\\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; 3 filtered out; finished in 0.00s\\n")
'''
STUB_PV = '''
import os
import sys

sys.exit(0 if sys.argv[1:2] == ["validate"] and os.path.isfile(sys.argv[2]) else 1)
'''


def _stubs(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (("cargo", STUB_CARGO), ("pv", STUB_PV)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)


def harness(*args: str, cwd: Path, path_prefix: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _import(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # From tests/harness/data, so the sources read `pv/...` in the output wherever the checkout is.
    return harness("import", "pv", "pv", "-o", str(out), *extra, cwd=DATA)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fixtures imported into a project, then validated and verified there once."""
    top = tmp_path_factory.mktemp("pv")
    repo, bin_dir = top / "repo", top / "bin"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[project]\nname = 'rust-stack'\nversion = '0.1.0'\n")
    _stubs(bin_dir)
    imported = _import(repo / "contracts", "--defer-until", DEFER)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    validated = harness("validate", "contracts", cwd=repo, path_prefix=bin_dir)
    verified = harness("verify", "contracts", "--out", str(top / "out"), cwd=repo, path_prefix=bin_dir)
    evidence = read_evidence(top / "out" / "uncommitted")
    return {
        "repo": repo, "imported": imported, "validated": validated, "verified": verified,
        "results": {r.id: r for r in evidence.results},
    }


def test_import_prints_the_report_and_writes_one_contract_per_file(project: dict[str, Any]) -> None:
    out = project["imported"].stdout
    assert out.startswith("harness import pv: 3 contracts, 8 invariants, 12 falsifiers: 8 bound, 2 deferred, 2 unbound\n")
    names = sorted(p.name for p in (project["repo"] / "contracts").iterdir())
    assert names == ["import-report.json", "legacy-aliases-v1.yaml", "softmax-kernel-v1.yaml", "training-loop-v1.yaml"]


def test_imported_contracts_validate_and_every_unbound_one_is_shown(project: dict[str, Any]) -> None:
    validated = project["validated"]
    assert validated.returncode == 0, validated.stdout + validated.stderr
    warnings = [line for line in validated.stdout.splitlines() if ": warning: unbound:" in line]
    assert [w.split(": ")[1] for w in warnings] == ["FALSIFY-SM-002", "FALSIFY-SM-003"]
    assert "proptest with random model configs" in warnings[0]
    assert validated.stdout.splitlines()[-1] == "3 contracts, 8 invariants, 12 falsifiers: valid (2 unbound: verify records them as error)"


def test_cargo_test_bindings_are_counted_from_cargos_result_lines(project: dict[str, Any]) -> None:
    results = project["results"]
    assert project["verified"].returncode == 1
    one = results["FALSIFY-TL-001"]
    assert (one.outcome, one.tests_matched) == (Outcome.PASSED, 1)
    assert results["FALSIFY-TOK-001"].outcome is Outcome.PASSED  # bound through the `command` alias
    # A filter that matches nothing: cargo exits 0 with "0 passed", which is an error, never a pass.
    none = results["FALSIFY-TL-003"]
    assert none.outcome is Outcome.ERROR
    assert none.reason == "count_pattern 'test result: \\\\S+ (\\\\d+) passed' counted 0 tests, fewer than min_tests 1"
    failing = results["FALSIFY-TL-004"]
    assert failing.outcome is Outcome.FALSIFIED
    assert "resume::tests::optimizer_fails ... FAILED" in failing.counterexample


def test_an_and_pair_is_all_or_nothing_without_a_shell(project: dict[str, Any]) -> None:
    results = project["results"]
    both = results["FALSIFY-TL-002"]
    assert (both.outcome, both.tests_matched) == (Outcome.PASSED, 2)
    assert both.binding.then == (("cargo", "test", "-p", "trainer", "--lib", "gate::tests::names_both_families"),)
    second = results["FALSIFY-TL-005"]
    assert second.outcome is Outcome.FALSIFIED
    assert second.reason == "step 2 of 2 (cargo test -p trainer --lib gate::tests::second_fails): exited with status 101"


def test_pv_validate_live_pending_and_prose(project: dict[str, Any]) -> None:
    results = project["results"]
    assert results["FALSIFY-TL-006"].outcome is Outcome.PASSED  # pv validate contracts/training-loop-v1.yaml
    pending = results["FALSIFY-TL-007"]
    assert pending.outcome is Outcome.DEFERRED
    assert pending.reason == (
        f"deferred until {DEFER}: LIVE-PENDING — needs the 8-GPU runner, which is not provisioned yet; tracked in INFRA-412."
    )
    for fid in ("FALSIFY-SM-002", "FALSIFY-SM-003"):
        assert results[fid].outcome is Outcome.ERROR
        assert results[fid].reason.startswith("unbound: no runnable test is bound (")


def test_reimport_is_byte_identical(tmp_path: Path) -> None:
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert _import(out, "--defer-until", DEFER).returncode == 0
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_live_pending_needs_defer_until_and_the_suggestion_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _import(out)
    assert proc.returncode == 2
    assert proc.stdout == (
        "--defer-until DATE is required: 2 falsification tests are LIVE-PENDING (first: "
        "pv/training/training-loop-v1.yaml:46) and become deferred until that date\n"
    )
    assert not out.exists()
    suggestion = proc.stderr.strip().split("e.g.: ", 1)[1]
    argv = shlex.split(suggestion)
    assert argv[:3] == ["harness", "import", "pv"] and "--defer-until" in argv
    again = harness(*argv[1:], cwd=DATA)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_past_defer_until_is_refused(tmp_path: Path) -> None:
    proc = _import(tmp_path / "out", "--defer-until", "2001-01-01")
    assert proc.returncode == 2
    assert proc.stdout.startswith("--defer-until 2001-01-01 is in the past")
    assert not (tmp_path / "out").exists()


def test_a_non_empty_dir_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.yaml").write_text("keep me\n")
    proc = _import(out, "--defer-until", DEFER)
    assert proc.returncode == 2
    assert proc.stdout.strip() == f"-o {out}: not empty; choose an empty or new directory, or add --force to replace it"
    assert [p.name for p in out.iterdir()] == ["mine.yaml"]
    suggestion = shlex.split(proc.stderr.strip().split("e.g.: ", 1)[1])
    assert suggestion == ["harness", "import", "pv", "pv", "-o", str(out), "--defer-until", DEFER, "--force"]
    forced = harness(*suggestion[1:], cwd=DATA)  # the suggestion runs as printed
    assert forced.returncode == 0
    assert "mine.yaml" not in {p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directories left behind"


def test_report_json_unknown_keys_aliases_summary_and_dangling(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    assert _import(tmp_path / "out", "--defer-until", DEFER, "--report", str(report_file)).returncode == 0
    assert not (tmp_path / "out" / "import-report.json").exists()
    report = json.loads(report_file.read_text())
    by_id = {c["id"]: c for c in report["contracts"]}
    assert report["totals"] == {"contracts": 3, "invariants": 8, "falsifiers": 12, "bound": 8, "deferred": 2, "unbound": 2}
    legacy = by_id["legacy-aliases-v1"]
    assert legacy["unknown_keys"] == [
        "pv/legacy/legacy-aliases-v1.yaml:6: owner_team",
        "pv/legacy/legacy-aliases-v1.yaml:5: metadata.reviewers",
        "pv/legacy/legacy-aliases-v1.yaml:12: equations.roundtrip.complexity",
        "pv/legacy/legacy-aliases-v1.yaml:19: falsification_tests[0].flaky_note",
    ]
    kernel = by_id["softmax-kernel-v1"]
    assert kernel["dangling_depends_on"] == ["tensor-layout-v1"]
    assert kernel["summary_mismatches"] == [{"key": "total_obligations", "claimed": 5, "actual": 2}]
    statuses = {f["id"]: (f["status"], f["attacks_from"]) for f in kernel["falsifiers"]}
    assert statuses == {
        "FALSIFY-SM-001": ("bound", "named"), "FALSIFY-SM-002": ("unbound", "named"), "FALSIFY-SM-003": ("unbound", "all"),
    }
    assert by_id["training-loop-v1"]["summary_mismatches"] == [{"key": "total_falsification_tests", "claimed": 6, "actual": 8}]
    # Aliases mapped, unknown keys kept under x-pv: nothing is dropped.
    doc = yaml.safe_load((tmp_path / "out" / "legacy-aliases-v1.yaml").read_text())
    falsifier = doc["falsifiers"][0]
    assert falsifier["prediction"] == "Every string survives the round trip"
    assert falsifier["if_fails"] == "Bytes are lost."
    assert falsifier["binding"]["command"] == ["cargo", "test", "-p", "tokenizer", "--lib", "roundtrip::tests::random_strings"]
    assert falsifier["x-pv"]["flaky_note"] == "seed 17 once timed out"
    assert doc["x-pv"]["owner_team"] == "tokenizers" and doc["x-pv"]["metadata"]["reviewers"] == ["alice"]
    kernel_doc = yaml.safe_load((tmp_path / "out" / "softmax-kernel-v1.yaml").read_text())
    assert kernel_doc["x-pv"]["kani_harnesses"][0]["harness"] == "verify_softmax_finite"
    assert kernel_doc["x-pv"]["equations"]["softmax"]["lean_theorem"] == "Softmax.sum_eq_one"
    lean = next(i for i in kernel_doc["invariants"] if i["id"] == "INV-SOFTMAX-KERNEL-V1-PO-SM-001")
    assert lean["proof_obligations"] == ["forall x, |x_i| <= 1e4 -> isFinite(softmax(x)_i)"]
    assert lean["x-pv"]["lean"] == {"theorem": "Softmax.finite", "status": "proved"}


def test_the_documented_example_report_is_what_the_importer_prints(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "import-pv.md").read_text(encoding="utf-8")
    block = doc.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    command, printed = block[0], block[1:]
    assert command == f"$ harness import pv pv -o imported --defer-until {DEFER}"
    proc = harness("import", "pv", "pv", "-o", str(tmp_path / "imported"), "--defer-until", DEFER, cwd=DATA)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    lines[-1] = lines[-1].replace(str(tmp_path / "imported"), "imported")
    assert printed == lines


def test_bad_pv_files_are_exit_2_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken-v1.yaml").write_text("metadata:\n  version: '1.0'\nequations: {}\n")
    (tmp_path / "nodesc-v2.yaml").write_text("metadata:\n  version: 2.0.0\n")
    proc = harness("import", "pv", ".", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [
        "broken-v1.yaml:2: metadata.version '1.0' is not semver (MAJOR.MINOR.PATCH); fix it in the pv file",
        "broken-v1.yaml:1: metadata.description is missing or empty; pv requires it",
        "nodesc-v2.yaml:1: metadata.description is missing or empty; pv requires it",
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "status", "binding"),
    [
        ("cargo test -p k --lib a::b", "bound", {"command": ["cargo", "test", "-p", "k", "--lib", "a::b"],
                                                 "count_pattern": r"test result: \S+ (\d+) passed", "min_tests": 1}),
        ("cargo nextest run -p k --profile ci a::b", "bound", {"command": ["cargo", "nextest", "run", "-p", "k", "--profile", "ci", "a::b"],
                                                               "junit": "target/nextest/ci/junit.xml", "min_tests": 1}),
        ("pv validate contracts/x.yaml", "bound", {"command": ["pv", "validate", "contracts/x.yaml"]}),
        ("proptest with random model configs", "unbound", {"unbound": "proptest with random model configs"}),
        ("cargo test for every kernel we ship", "unbound", {"unbound": "cargo test for every kernel we ship"}),
        ("cargo test -p k | tee log", "unbound", {"unbound": "cargo test -p k | tee log"}),
        ("cargo test -p k a && pv validate x.yaml", "unbound", {"unbound": "cargo test -p k a && pv validate x.yaml"}),
        ("LIVE-PENDING — later", "deferred", {"unbound": "LIVE-PENDING — later"}),
    ],
)
def test_what_a_test_string_becomes(text: str, status: str, binding: dict[str, Any]) -> None:
    parsed = parse_test(text)
    assert (parsed.status, parsed.binding) == (status, binding)


# --- the contract-format extensions the importer needs: command chains and unbound bindings ------------

CHAIN_CONTRACT = """\
id: chain-demo-v1
version: 1.0.0
title: chains
invariants:
  - {id: INV-CHAIN-DEMO-001, kind: safety, statement: both filters run}
falsifiers:
  - id: FALSIFY-CHAIN-DEMO-001
    attacks: [INV-CHAIN-DEMO-001]
    prediction: both pass
    if_fails: one is broken
    binding:
      command: [[cargo, test, --lib, x::renamed_away], [cargo, test, --lib, x::holds]]
      count_pattern: "test result: \\\\S+ (\\\\d+) passed"
      min_tests: 1
  - id: FALSIFY-CHAIN-DEMO-002
    attacks: [INV-CHAIN-DEMO-001]
    prediction: both pass
    if_fails: one is broken
    binding:
      command: [[cargo, test, --lib, x::holds], [no-such-program-here, run]]
  - id: FALSIFY-CHAIN-DEMO-003
    attacks: [INV-CHAIN-DEMO-001]
    prediction: the filter matches in two test binaries
    if_fails: one is broken
    binding:
      command: [cargo, test, -p, x, multi::holds]
      count_pattern: "test result: \\\\S+ (\\\\d+) passed"
      min_tests: 2
"""


def test_a_chain_counts_each_step_and_validate_checks_each_program(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "chain.yaml").write_text(CHAIN_CONTRACT)
    _stubs(tmp_path / "bin")
    validated = harness("validate", "contracts", cwd=tmp_path, path_prefix=tmp_path / "bin")
    assert validated.returncode == 2
    assert validated.stdout == (
        "contracts/chain.yaml:20: FALSIFY-CHAIN-DEMO-002: binding command: program 'no-such-program-here' is not found "
        "on PATH; install it or use a repository-relative path\n"
    )
    harness(
        "verify", "contracts", "-k", "FALSIFY-CHAIN-DEMO-001", "-k", "FALSIFY-CHAIN-DEMO-003", "--out", "out",
        cwd=tmp_path, path_prefix=tmp_path / "bin",
    )
    result, summed = read_evidence(next((tmp_path / "out").glob("uncommitted/partial/*"))).results
    # One `test result:` line per test binary, summed: 1 + 1 + 0 reaches min_tests 2.
    assert (summed.id, summed.outcome, summed.tests_matched) == ("FALSIFY-CHAIN-DEMO-003", Outcome.PASSED, 2)
    # The second step's "1 passed" must not make up for the first step's "0 passed".
    assert result.outcome is Outcome.ERROR
    assert result.reason == (
        "step 1 of 2 (cargo test --lib x::renamed_away): count_pattern 'test result: \\\\S+ (\\\\d+) passed' counted 0 "
        "tests, fewer than min_tests 1"
    )


def test_unbound_is_never_a_pass_even_when_alone(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""\
        id: prose-demo-v1
        version: 1.0.0
        title: prose
        invariants:
          - {id: INV-PROSE-DEMO-001, kind: safety, statement: it works}
        falsifiers:
          - id: FALSIFY-PROSE-DEMO-001
            attacks: [INV-PROSE-DEMO-001]
            prediction: it works
            if_fails: it does not
            binding: {unbound: "checked by the team every release"}
        """))
    proc = harness("verify", "c.yaml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 1
    (result,) = read_evidence(tmp_path / "out" / "uncommitted").results
    assert result.outcome is Outcome.ERROR
    assert result.reason == (
        "unbound: no runnable test is bound ('checked by the team every release'); bind a python, pytest or command "
        "test, or defer it with deferred: {reason, until}"
    )


def test_the_output_directory_inside_a_path_is_not_read_as_pv(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(DATA / "pv", tmp_path / "pv")
    for _ in range(2):  # the second import finds the first one's output under pv/imported and skips it
        proc = harness("import", "pv", "pv", "-o", "pv/imported", "--defer-until", DEFER, "--force", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith("harness import pv: 3 contracts,")


def test_colliding_ids_are_made_unique_and_a_cycle_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "a-v1.yaml").write_text(textwrap.dedent("""\
        metadata: {version: 1.0.0, description: A}
        equations:
          "foo bar": {invariants: [one]}
          foo-bar: {invariants: [two]}
        proof_obligations:
          - {id: PO-1, property: first}
          - {id: PO-1, property: second}
          - "a bare string, not a mapping"
        falsification_tests:
          - {id: FALSIFY-A-V1-002, prediction: p, test: "pv validate a.yaml"}
          - {prediction: q, test: "pv validate b.yaml"}
          - {prediction: r, test: "pv validate c.yaml"}
        """))
    proc = harness("import", "pv", "a-v1.yaml", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = yaml.safe_load((tmp_path / "out" / "a-v1.yaml").read_text())
    assert [i["id"] for i in doc["invariants"]] == [
        "INV-A-V1-EQ-FOO-BAR-001", "INV-A-V1-EQ-FOO-BAR-2-001", "INV-A-V1-PO-1-001", "INV-A-V1-PO-1-2-001",
    ]
    # The kept pv id FALSIFY-A-V1-002 is not given to the second test, whose derived id would be the same.
    assert [f["id"] for f in doc["falsifiers"]] == ["FALSIFY-A-V1-002", "FALSIFY-A-V1-2-002", "FALSIFY-A-V1-003"]
    assert doc["x-pv"]["unmapped"] == {"proof_obligations[2]": "a bare string, not a mapping"}
    assert harness("validate", "--no-bindings", "out", cwd=tmp_path).returncode == 0

    (tmp_path / "b-v1.yaml").write_text("metadata: {version: 1.0.0, description: B, depends_on: [c-v1]}\n")
    (tmp_path / "c-v1.yaml").write_text("metadata:\n  version: 1.0.0\n  description: C\n  depends_on: [b-v1]\n")
    cycle = harness("import", "pv", "b-v1.yaml", "c-v1.yaml", "-o", "out2", cwd=tmp_path)
    assert cycle.returncode == 2
    assert cycle.stdout.splitlines() == ["c-v1.yaml:4: depends_on cycle b-v1 -> c-v1 -> b-v1; remove one of these dependencies"]
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("[]", "falsifiers[0].binding.command needs at least 1 entry; add one"),
        ("[[cargo]]", "falsifiers[0].binding.command needs at least 2 entries; add one"),
        ("[[cargo], []]", "falsifiers[0].binding.command[1] needs at least 1 entry; add one"),
        ("[cargo, [x]]", "falsifiers[0].binding.command[1] must be a string, not a list; write a string here (see docs/contract-format.md)"),
    ],
)
def test_a_malformed_chain_gets_the_problems_of_the_form_it_started(tmp_path: Path, command: str, message: str) -> None:
    from harness.validate import validate_report

    (tmp_path / "pyproject.toml").write_text("")
    contract = CHAIN_CONTRACT.split("  - id: FALSIFY-CHAIN-DEMO-001")[0] + textwrap.dedent(f"""\
          - id: FALSIFY-CHAIN-DEMO-001
            attacks: [INV-CHAIN-DEMO-001]
            prediction: both pass
            if_fails: one is broken
            binding:
              command: {command}
        """)
    (tmp_path / "c.yaml").write_text(contract)
    problems = validate_report([tmp_path / "c.yaml"], check_bindings=False).problems
    assert [p.message for p in problems] == [message]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata: " + "[" * 5000 + "]" * 5000 + "\n", "rec-v1.yaml:1: nested too deeply to read; flatten the file"),
        ("metadata: &a\n  version: 1.0.0\n  description: x\n  self: *a\n",
         "rec-v1.yaml:1: too large or too deeply nested once its aliases are expanded; split the file"),
        ("".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n" for i in range(7))
         + "metadata: {version: 1.0.0, description: x}\n",
         "rec-v1.yaml:1: too large or too deeply nested once its aliases are expanded; split the file"),
        ("metadata: [unclosed\n", "rec-v1.yaml:2: not valid YAML: expected ',' or ']', but got '<stream end>'; fix the syntax"),
        ("- a list\n", "rec-v1.yaml:1: a pv contract is one YAML mapping (metadata:, equations:, ...); this file holds none"),
    ],
    ids=["deep", "recursive-alias", "billion-laughs", "syntax", "not-a-mapping"],
)
def test_hostile_pv_files_are_exit_2_never_a_traceback(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "rec-v1.yaml").write_text(text)
    proc = harness("import", "pv", "rec-v1.yaml", "-o", "out", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (2, message + "\n"), proc.stderr
    assert not (tmp_path / "out").exists()
