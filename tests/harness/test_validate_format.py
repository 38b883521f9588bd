"""`harness validate --format {text,json,sarif,github}`: the same problems, for a program, a code-scanning
tab (SARIF 2.1.0, checked against the OASIS schema) and GitHub's pull-request annotations; the same exit
status in every format. Also: acknowledged mutants (`equivalent_mutants`) whose id could never match."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from harness.cli import main, version
from harness.escape import github_data, github_property
from harness.model import Problem, SourceLocation
from harness.validate_format import render, repository_relative

DATA = Path(__file__).parent / "data"

GOOD = """\
id: fmt-demo-v1
version: 1.0.0
title: Demo
invariants:
  - id: INV-FMT-DEMO-001
    kind: safety
    statement: It holds.
    guards: [fmtfix.checks:holds]
falsifiers:
  - id: FALSIFY-FMT-DEMO-001
    attacks: [INV-FMT-DEMO-001]
    prediction: holds returns.
    if_fails: It does not hold.
    binding: {python: fmtfix.checks:holds}
"""
# Two problems: a misspelt kind on line 6, an unknown invariant on line 11.
BROKEN = GOOD.replace("kind: safety", "kind: safty").replace("attacks: [INV-FMT-DEMO-001]", "attacks: [INV-FMT-DEMO-001, INV-FMT-DEMO-009]")


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A git checkout (the workspace GitHub uses) whose project lives in a subdirectory, as in a monorepo."""
    root = tmp_path / "checkout"
    (root / ".git").mkdir(parents=True)
    project = root / "proj"
    (project / "fmtfix").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'fmtfix'\n")
    (project / "fmtfix" / "__init__.py").write_text("")
    (project / "fmtfix" / "checks.py").write_text("def holds():\n    return None\n")
    (project / "contracts").mkdir()
    (project / "contracts" / "good.yaml").write_text(GOOD)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["validate", "--no-bindings", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_is_the_default_and_unchanged(checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(checkout / "proj")
    (checkout / "proj" / "contracts" / "good.yaml").write_text(BROKEN)
    default = run(capsys, "contracts")
    text = run(capsys, "contracts", "--format", "text")
    assert default == text
    code, out, err = default
    assert code == 2
    assert out.splitlines()[0].startswith("contracts/good.yaml:6: INV-FMT-DEMO-001: invariants[0].kind 'safty' is not one of")
    assert "2 problems in 1 file" in err


def test_json_lists_every_problem_with_the_same_exit_status(checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(checkout / "proj")
    code, out, _ = run(capsys, "contracts", "--format", "json")
    assert (code, json.loads(out)) == (0, [])
    (checkout / "proj" / "contracts" / "good.yaml").write_text(BROKEN)
    code, out, err = run(capsys, "contracts", "--format", "json")
    assert code == 2
    problems = json.loads(out)  # stdout is the document alone; the summary is on stderr
    assert "2 problems" in err
    by_line = {p["line"]: p for p in problems}
    assert set(by_line) == {6, 11} and all(set(p) == {"path", "line", "subject", "message", "severity", "rule"} for p in problems)
    assert by_line[6]["path"] == "contracts/good.yaml" and by_line[6]["subject"] == "INV-FMT-DEMO-001"
    assert "did you mean 'safety'?" in by_line[6]["message"] and by_line[6]["rule"] == "schema"
    assert by_line[11]["subject"] == "FALSIFY-FMT-DEMO-001" and "INV-FMT-DEMO-009" in by_line[11]["message"]
    assert by_line[11]["rule"] == "references" and {p["severity"] for p in problems} == {"error"}


def sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_sarif_is_valid_sarif_2_1_0_with_repository_relative_locations(
    checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    validator = sarif_validator()
    (checkout / "proj" / "contracts" / "good.yaml").write_text(BROKEN)
    (checkout / "proj" / "contracts" / "with space%.yaml").write_text(BROKEN.replace("fmt-demo-v1", "fmt-other-v1").replace("FMT-DEMO", "FMT-OTHER"))
    # Run from inside contracts/: the URIs are still relative to the checkout, not to the cwd or the project.
    monkeypatch.chdir(checkout / "proj" / "contracts")
    code, out, _ = run(capsys, ".", "--format", "sarif")
    assert code == 2
    log = json.loads(out)
    errors = sorted(validator.iter_errors(log), key=str)
    assert not errors, "\n".join(e.message for e in errors)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "harness" and driver["version"] == version()
    rule_ids = [r["id"] for r in driver["rules"]]
    located = set()
    for result in log["runs"][0]["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"] and result["level"] == "error"
        (where,) = result["locations"]
        physical = where["physicalLocation"]
        located.add((physical["artifactLocation"]["uri"], physical["region"]["startLine"]))
    assert located == {
        ("proj/contracts/good.yaml", 6), ("proj/contracts/good.yaml", 11),
        ("proj/contracts/with%20space%25.yaml", 6), ("proj/contracts/with%20space%25.yaml", 11),
    }
    messages = [r["message"]["text"] for r in log["runs"][0]["results"]]
    assert any(m.startswith("FALSIFY-FMT-DEMO-001: attacks unknown invariant 'INV-FMT-DEMO-009'") for m in messages)


def test_sarif_of_a_valid_set_is_a_valid_log_with_no_results(checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(checkout)
    code, out, err = run(capsys, "proj/contracts", "--format", "sarif")
    assert code == 0 and "1 contract, 1 invariant, 1 falsifier: valid" in err
    log = json.loads(out)
    assert list(sarif_validator().iter_errors(log)) == [] and log["runs"][0]["results"] == []


def test_github_annotations_mark_each_problem_on_its_line(checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(checkout / "proj")
    (checkout / "proj" / "contracts" / "good.yaml").write_text(BROKEN)
    code, out, _ = run(capsys, "contracts", "--format", "github")
    assert code == 2
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("::error file=proj/contracts/good.yaml,line=") for line in lines)
    assert lines[0].startswith("::error file=proj/contracts/good.yaml,line=6,title=INV-FMT-DEMO-001::invariants[0].kind 'safty' is not one of")
    assert lines[1].startswith("::error file=proj/contracts/good.yaml,line=11,title=FALSIFY-FMT-DEMO-001::attacks unknown")
    (checkout / "proj" / "contracts" / "good.yaml").write_text(GOOD)
    code, out, _ = run(capsys, "contracts", "--format", "github")
    assert (code, out) == (0, "1 contract, 1 invariant, 1 falsifier: valid\n")


def test_github_escaping_is_the_runners(tmp_path: Path) -> None:
    # The runner's own rules (actions/toolkit command.ts): data loses %, CR, LF; a property also : and ,.
    assert github_data("50% of a\r\nb: c, d") == "50%25 of a%0D%0Ab: c, d"
    assert github_property("a,b:c%\nd") == "a%2Cb%3Ac%25%0Ad"
    # Anything else that could reach the log raw (ESC, bidi overrides) is shown escaped, as everywhere.
    assert github_data("\x1b[31mred\u202e") == "\\x1b[31mred\\u202e"
    (tmp_path / ".git").mkdir()
    problem = Problem(SourceLocation(str(tmp_path / "a,b:c.yaml"), 7), "FALSIFY-X-001", "line one\nline two: 100%")
    (line,) = render([problem], "github")
    assert line == "::error file=a%2Cb%3Ac.yaml,line=7,title=FALSIFY-X-001::line one%0Aline two: 100%25"


def test_outside_any_checkout_the_path_stays_absolute(tmp_path: Path) -> None:
    lonely = tmp_path / "nowhere" / "c.yaml"
    if any((p / ".git").exists() for p in lonely.parents):
        pytest.skip("the temporary directory is inside a git checkout")
    assert repository_relative(str(lonely)) == str(lonely)
    (entry,) = json.loads("\n".join(render([Problem(SourceLocation(str(lonely), 2), "-", "m")], "sarif", version="1")))["runs"][0]["results"]
    assert entry["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == lonely.as_uri()


def test_an_unknown_format_is_refused_as_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "contracts", "--format", "xml"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


# --- equivalent_mutants: ids that can never match a mutant ------------------------------------------

ACKNOWLEDGED = GOOD.replace(
    "    guards: [fmtfix.checks:holds]\n",
    "    guards: [fmtfix.checks:holds]\n"
    "    equivalent_mutants:\n"
    '      - {id: "fmtfix.checks:holds/negate_compare/1a8c4961", reason: fine}\n'
    '      - {id: "fmtfix.checks:hold/negate_compare/1a8c4961", reason: a guard this invariant does not list}\n'
    '      - {id: "fmtfix.checks:holds/negate_comparison/1a8c4961", reason: an operator teeth has not}\n'
    '      - {id: "fmtfix.checks:holds/negate_compare/1A8C", reason: not a hash}\n',
)


def test_equivalent_mutant_ids_must_name_a_listed_guard_and_a_real_operator(
    checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(checkout / "proj")
    (checkout / "proj" / "contracts" / "good.yaml").write_text(ACKNOWLEDGED)
    code, out, _ = run(capsys, "contracts")
    assert code == 2
    lines = out.splitlines()
    assert len(lines) == 3, out
    guard, operator, form = lines
    assert guard.startswith(
        "contracts/good.yaml:11: INV-FMT-DEMO-001: equivalent_mutants id 'fmtfix.checks:hold/negate_compare/1a8c4961' "
        "names guard 'fmtfix.checks:hold', which is not among this invariant's guards (fmtfix.checks:holds) "
        "(did you mean 'fmtfix.checks:holds'?)"
    )
    assert guard.endswith("copy the id `harness teeth contracts/good.yaml -k INV-FMT-DEMO-001` prints")
    assert operator.startswith(
        "contracts/good.yaml:12: INV-FMT-DEMO-001: equivalent_mutants id 'fmtfix.checks:holds/negate_comparison/1a8c4961' "
        "names operator 'negate_comparison', which harness teeth does not use"
    )
    assert "(did you mean 'negate_compare'?)" in operator
    assert form.startswith("contracts/good.yaml:13: INV-FMT-DEMO-001: invariants[0].equivalent_mutants[3].id")
    assert "is not a mutant id GUARD/OPERATOR/HASH as harness teeth prints it" in form
    # The suggested command runs as printed: teeth parses it (running it is test_teeth's business).
    from harness.cli import build_parser

    args = build_parser("teeth").parse_args(["teeth", "contracts/good.yaml", "-k", "INV-FMT-DEMO-001"])
    assert args.select == ["INV-FMT-DEMO-001"]


# A falsifier bound to no runnable test (what `harness import pv` writes for prose): valid, exit 0, but the
# warning must reach every format, or a code-scanning tab and a pull request would show nothing.
UNBOUND = GOOD.replace("binding: {python: fmtfix.checks:holds}", "binding: {unbound: proptest with random model configs}")


def test_an_unbound_falsifier_is_a_warning_in_every_format(checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (checkout / "proj" / "contracts" / "good.yaml").write_text(UNBOUND)
    monkeypatch.chdir(checkout)
    code, out, _ = run(capsys, "proj/contracts", "--format", "json")
    (record,) = json.loads(out)
    assert code == 0 and record["severity"] == "warning" and record["rule"] == "unbound"
    assert record["subject"] == "FALSIFY-FMT-DEMO-001" and record["line"] == 14
    code, out, _ = run(capsys, "proj/contracts", "--format", "sarif")
    log = json.loads(out)
    assert code == 0 and list(sarif_validator().iter_errors(log)) == []
    (result,) = log["runs"][0]["results"]
    assert result["level"] == "warning" and result["ruleId"] == "unbound"
    code, out, _ = run(capsys, "proj/contracts", "--format", "github")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("::warning file=proj/contracts/good.yaml,line=14,title=FALSIFY-FMT-DEMO-001::")
    assert lines[-1] == "1 contract, 1 invariant, 1 falsifier: valid (1 unbound: verify records them as error)"


def test_the_waivers_files_problems_are_in_every_format_under_the_waivers_rule(
    checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An expired waiver (line 2) and one matching no falsifier (line 6), in the waivers.yaml validate finds
    # beside the contracts: marked on their lines in a pull request and on the code-scanning tab.
    (checkout / "proj" / "contracts" / "waivers.yaml").write_text(
        "waivers:\n  - falsifier: FALSIFY-FMT-DEMO-*\n    reason: old\n    owner: ana\n    expires: 2020-01-01\n"
        "  - falsifier: FALSIFY-NOPE-*\n    reason: typo\n    owner: bo\n    expires: 2099-01-01\n"
    )
    monkeypatch.chdir(checkout)
    code, out, _ = run(capsys, "proj/contracts", "--format", "json")
    records = json.loads(out)
    assert code == 2 and [(r["path"], r["line"], r["rule"], r["severity"]) for r in records] == [
        ("proj/contracts/waivers.yaml", 2, "waivers", "error"), ("proj/contracts/waivers.yaml", 6, "waivers", "error"),
    ]
    assert "expired on 2020-01-01" in records[0]["message"] and "matches no falsifier" in records[1]["message"]
    code, out, _ = run(capsys, "proj/contracts", "--format", "sarif")
    log = json.loads(out)
    assert code == 2 and list(sarif_validator().iter_errors(log)) == []
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        ("waivers", "error", 2), ("waivers", "error", 6),
    ]
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "proj/contracts/waivers.yaml" for r in results)
    code, out, _ = run(capsys, "proj/contracts", "--format", "github")
    lines = out.splitlines()
    assert code == 2
    assert lines[0].startswith("::error file=proj/contracts/waivers.yaml,line=2,title=FALSIFY-FMT-DEMO-*::waiver expired on 2020-01-01")
    assert lines[1].startswith("::error file=proj/contracts/waivers.yaml,line=6,title=FALSIFY-NOPE-*::")
