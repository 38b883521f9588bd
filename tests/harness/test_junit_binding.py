"""`junit: PATH` on a command binding: tests are counted from the junit XML the command writes, not from
what it prints, and a missing, stale, unparsable or hostile file is an error naming the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness import junit_count
from harness.junit_count import JunitError, count_junit
from harness.validate import validate

from tests.harness.verify_support import contract_text, entries, falsifier, make_project, read_evidence, run_verify

GO_JUNIT_REPORT = textwrap.dedent(
    """\
    <?xml version="1.0" encoding="UTF-8"?>
    <testsuites tests="4" failures="1">
    \t<testsuite name="example.com/pkg" tests="4" failures="1" errors="0" id="0" hostname="h" time="0.010" timestamp="2026-01-01T00:00:00Z">
    \t\t<properties><property name="go.version" value="go1.22.0"></property></properties>
    \t\t<testcase name="TestHolds" classname="example.com/pkg" time="0.000"></testcase>
    \t\t<testcase name="TestAlsoHolds" classname="example.com/pkg" time="0.000"></testcase>
    \t\t<testcase name="TestSkipped" classname="example.com/pkg" time="0.000"><skipped message="needs a GPU"></skipped></testcase>
    \t\t<testcase name="TestBroken" classname="example.com/pkg" time="0.000"><failure message="Failed" type="">pkg_test.go:12: got 2, want 3</failure></testcase>
    \t\t<system-out><![CDATA[FAIL]]></system-out>
    \t</testsuite>
    </testsuites>
    """
)

JEST_JUNIT = textwrap.dedent(
    """\
    <?xml version="1.0" encoding="UTF-8"?>
    <testsuites name="jest tests" tests="2" failures="0" errors="0" time="0.5">
      <testsuite name="sum" errors="0" failures="0" skipped="0" timestamp="2026-01-01T00:00:00" time="0.4" tests="2">
        <testcase classname="sum adds" name="sum adds" time="0.001">
        </testcase>
        <testcase classname="sum keeps order" name="sum keeps order" time="0.001">
        </testcase>
      </testsuite>
    </testsuites>
    """
)

# cargo-nextest: a test that failed once and passed on a retry is a pass (flakyFailure is a note).
NEXTEST = textwrap.dedent(
    """\
    <?xml version="1.0" encoding="UTF-8"?>
    <testsuites name="nextest-run" tests="2" failures="0" errors="0">
      <testsuite name="crate" tests="2" disabled="0" errors="0" failures="0">
        <testcase name="tests::holds" classname="crate" timestamp="2026-01-01T00:00:00" time="0.01"/>
        <testcase name="tests::flaky" classname="crate" timestamp="2026-01-01T00:00:00" time="0.02">
          <flakyFailure message="panicked" type="test failure">first attempt failed</flakyFailure>
        </testcase>
      </testsuite>
    </testsuites>
    """
)

BILLION_LAUGHS = textwrap.dedent(
    """\
    <?xml version="1.0"?>
    <!DOCTYPE lolz [
     <!ENTITY lol "lol">
     <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
     <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
    ]>
    <testsuites><testsuite><testcase name="&lol3;"/></testsuite></testsuites>
    """
)

PASSING_TESTS = textwrap.dedent(
    """\
    import pytest


    def test_one():
        assert 1 + 1 == 2


    def test_two():
        assert "a" < "b"


    @pytest.mark.skip(reason="not on this machine")
    def test_skipped():
        pass
    """
)


def write(tmp_path: Path, text: str, name: str = "report.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_go_junit_report_dialect_is_counted_per_testcase(tmp_path: Path) -> None:
    counts = count_junit(write(tmp_path, GO_JUNIT_REPORT))
    assert (counts.matched, counts.passed, counts.failed, counts.skipped, counts.executed) == (4, 2, 1, 1, 3)
    assert counts.failures == ["example.com/pkg::TestBroken: failure: Failedpkg_test.go:12: got 2, want 3"]
    assert counts.skips == ["example.com/pkg::TestSkipped: needs a GPU"]


def test_jest_junit_and_nextest_dialects_are_counted(tmp_path: Path) -> None:
    jest = count_junit(write(tmp_path, JEST_JUNIT, "jest.xml"))
    assert (jest.matched, jest.passed, jest.failed, jest.skipped) == (2, 2, 0, 0)
    nextest = count_junit(write(tmp_path, NEXTEST, "nextest.xml"))
    assert (nextest.matched, nextest.passed, nextest.failed) == (2, 2, 0)


def test_a_real_pytest_junitxml_file_is_counted(tmp_path: Path) -> None:
    (tmp_path / "test_tiny.py").write_text(PASSING_TESTS)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", "out.xml", "test_tiny.py"],
        cwd=tmp_path, capture_output=True, check=True, timeout=120,
    )
    counts = count_junit(tmp_path / "out.xml")
    assert (counts.matched, counts.passed, counts.skipped, counts.failed) == (3, 2, 1, 0)
    assert counts.skips == ["test_tiny::test_skipped: not on this machine"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BILLION_LAUGHS, "it has a DOCTYPE"),
        ('<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><testsuites/>', "it has a DOCTYPE"),
        ("<testsuites><testsuite><testcase name='a'></testsuite>", "it is not well-formed XML (mismatched tag at line 1)"),
        ("not xml at all", "it is not well-formed XML"),
        ("", "it is not well-formed XML (no element found at line 1)"),
        ("<html><body/></html>", "its root element is <html>, not <testsuites> or <testsuite>"),
        ("<testsuites>" + "<testsuite>" * 300 + "</testsuite>" * 300 + "</testsuites>", "nested deeper than 256 elements"),
    ],
)
def test_a_hostile_or_broken_file_is_refused_with_a_reason(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(JunitError) as caught:
        count_junit(write(tmp_path, text))
    assert str(caught.value).startswith(why)


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(junit_count, "MAX_JUNIT_BYTES", 100)
    with pytest.raises(JunitError, match="more than the 100 a junit file may"):
        count_junit(write(tmp_path, JEST_JUNIT))


def test_an_absent_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JunitError, match="the command wrote no junit file there"):
        count_junit(tmp_path / "never-written.xml")


# --------------------------------------------------------------------------- through harness verify

CASES = [
    # The attack: prints a count and exits 0, writes no junit file.
    falsifier("FALSIFY-JU-001", '{command: [sh, -c, "echo 999 passed"], junit: reports/none.xml}'),
    # A real test run writing junit: 2 passed, 1 skipped.
    falsifier(
        "FALSIFY-JU-002",
        f'{{command: ["{sys.executable}", -m, pytest, -q, -p, no:cacheprovider, --junitxml, reports/tiny.xml, tiny], '
        "junit: reports/tiny.xml, min_tests: 2}",
    ),
    # go-junit-report's file with a failure, from a command that exits 0 anyway.
    falsifier("FALSIFY-JU-003", f'{{command: ["{sys.executable}", fx_write_junit.py, reports/go.xml, go], junit: reports/go.xml}}'),
    # A stale passing file from an earlier run must not be counted when this run writes none.
    falsifier("FALSIFY-JU-004", '{command: [sh, -c, "exit 0"], junit: reports/stale.xml}'),
    # min_tests above what the file executed.
    falsifier(
        "FALSIFY-JU-005",
        f'{{command: ["{sys.executable}", fx_write_junit.py, reports/jest.xml, jest], junit: reports/jest.xml, min_tests: 3}}',
    ),
    # exit != 0 stays falsified even when every test in the file passed.
    falsifier("FALSIFY-JU-006", f'{{command: [sh, -c, "{sys.executable} fx_write_junit.py reports/j6.xml jest; exit 3"], junit: reports/j6.xml}}'),
    # a file that is not XML.
    falsifier("FALSIFY-JU-007", f'{{command: ["{sys.executable}", fx_write_junit.py, reports/bad.xml, bad], junit: reports/bad.xml}}'),
]

WRITER = textwrap.dedent(
    f"""\
    import pathlib, sys
    TEXTS = {{"go": {GO_JUNIT_REPORT!r}, "jest": {JEST_JUNIT!r}, "bad": "<testsuites><oops"}}
    path = pathlib.Path(sys.argv[1])
    path.parent.mkdir(exist_ok=True)
    path.write_text(TEXTS[sys.argv[2]])
    """
)


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("junit")
    make_project(root, {"ju.yaml": contract_text("ju-v1", CASES)})
    (root / "fx_write_junit.py").write_text(WRITER)
    (root / "tiny").mkdir()
    (root / "tiny" / "test_tiny.py").write_text(PASSING_TESTS)
    (root / "reports").mkdir()
    (root / "reports" / "stale.xml").write_text(JEST_JUNIT)
    proc = run_verify(root, "contracts", "--out", "out", timeout=300)
    evidence = root / "out" / "uncommitted" / "evidence.json"
    assert evidence.exists(), proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return entries(read_evidence(evidence))


def counted(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["tests_matched"], r["tests_executed"], r["tests_skipped"], r["tests_failed"])


def test_printing_a_count_without_writing_the_junit_file_is_an_error(verified) -> None:
    r = verified["FALSIFY-JU-001"]
    assert r["outcome"] == "error", r["reason"]
    assert r["reason"].startswith("junit reports/none.xml: the command wrote no junit file there")


def test_a_real_pytest_run_is_counted_from_its_junit_file(verified) -> None:
    r = verified["FALSIFY-JU-002"]
    assert r["outcome"] == "passed", r["reason"]
    assert counted(r) == (3, 2, 1, 0)
    assert r["reason"] == "exited with status 0; junit reports/tiny.xml: 2 passed, 1 skipped (tiny.test_tiny::test_skipped: not on this machine)"


def test_a_failure_in_the_file_is_falsified_even_when_the_command_exits_zero(verified) -> None:
    r = verified["FALSIFY-JU-003"]
    assert r["outcome"] == "falsified", r["reason"]
    assert r["reason"] == "1 of 4 tests in junit reports/go.xml failed; the command still exited 0"
    assert "example.com/pkg::TestBroken" in r["counterexample"] and "got 2, want 3" in r["counterexample"]
    assert counted(r) == (4, 3, 1, 1)


def test_a_stale_file_from_an_earlier_run_is_removed_before_the_command_runs(verified, tmp_path: Path) -> None:
    r = verified["FALSIFY-JU-004"]
    assert r["outcome"] == "error", r["reason"]
    assert r["reason"].startswith("junit reports/stale.xml: the command wrote no junit file there")


def test_fewer_executed_than_min_tests_is_an_error(verified) -> None:
    r = verified["FALSIFY-JU-005"]
    assert (r["outcome"], r["reason"]) == ("error", "junit reports/jest.xml: executed 2 tests, fewer than min_tests 3")


def test_a_nonzero_exit_stays_falsified(verified) -> None:
    r = verified["FALSIFY-JU-006"]
    assert (r["outcome"], r["reason"]) == ("falsified", "exited with status 3")


def test_an_unparsable_file_is_an_error_naming_it(verified) -> None:
    r = verified["FALSIFY-JU-007"]
    assert r["outcome"] == "error"
    assert r["reason"].startswith("junit reports/bad.xml: it is not well-formed XML")


# --------------------------------------------------------------------------- validate

BASE = """\
id: ju-v1
version: 1.0.0
title: Demo
description: Demo.
invariants:
  - {id: INV-JU-001, kind: safety, statement: s}
falsifiers:
  - id: FALSIFY-JU-001
    attacks: [INV-JU-001]
    prediction: p
    if_fails: f
    binding:
"""


def problems(tmp_path: Path, binding: str) -> list[str]:
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "".join(f"      {line}\n" for line in binding.splitlines()))
    _, found = validate([path], check_bindings=True)
    return [str(p) for p in found]


def test_validate_accepts_junit_with_min_tests(tmp_path: Path) -> None:
    assert problems(tmp_path, "command: [sh, -c, 'true']\njunit: reports/j.xml\nmin_tests: 3") == []


@pytest.mark.parametrize(
    ("binding", "line", "message"),
    [
        ("command: [sh, -c, 'true']\njunit: ../elsewhere/j.xml", 14, "binding junit: ../elsewhere/j.xml: the path leads outside the repository root"),
        ("command: [sh, -c, 'true']\njunit: /tmp/j.xml", 14, "binding junit: /tmp/j.xml: the path is absolute"),
        (
            "command: [sh, -c, 'true']\njunit: j.xml\ncount_pattern: '(\\d+) passed'", 15,
            "junit and count_pattern both count the command's tests; keep junit",
        ),
        ("python: 'os:getcwd'\njunit: j.xml", 12, "junit applies only to a command binding"),
    ],
)
def test_validate_refuses_a_bad_junit_with_file_and_line(tmp_path: Path, binding: str, line: int, message: str) -> None:
    found = problems(tmp_path, binding)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'c.yaml'}:{line}: FALSIFY-JU-001: "), found
    assert message in found[0]
