"""harness.escape and the reports built with it: hostile falsifier messages, names and paths in,
a terminal line, an XML document and a Markdown summary out that show them literally and nothing else."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest

from harness import escape
from harness.model import Outcome
from harness.record import evidence_json, evidence_problems
from harness.report import render_junit, render_summary

from tests.harness.test_verify_evidence import make_result, sample_evidence

# What a falsifier's message can carry: an OSC retitle, a CSI erase, a bare CR that repaints the line
# as PASSED, BEL, NUL, DEL, a C1 CSI, a bidi override, a line separator, a lone surrogate (a
# non-UTF-8 byte through os.fsdecode), and noncharacters XML forbids.
HOSTILE = "bad \x1b]0;pwned\x07\x1b[2K\rPASSED \x00\x7f\x9b31m \u202edetacifsl \u2028 \udcff \ufffe\uffff end"
MARKUP = "a|b\n| FALSIFY-FAKE-001 | x | ✅ passed |\n<img src=x onerror=alert(1)> `code` **bold** [l](http://x) ~~s~~ &amp;"


def test_terminal_escapes_every_control_and_keeps_printable_unicode() -> None:
    line = escape.terminal(HOSTILE)
    assert line == (
        "bad \\x1b]0;pwned\\x07\\x1b[2K\\x0dPASSED \\x00\\x7f\\x9b31m \\u202edetacifsl \\u2028 \\udcff \ufffe\uffff end"
    )
    assert escape.terminal("Grüße ✅ 日本語 tab\tnewline\n") == "Grüße ✅ 日本語 tab\\x09newline\\x0a"
    line.encode("utf-8")  # no lone surrogate left to crash a UTF-8 stream


def test_xml_text_is_always_a_legal_xml_document() -> None:
    every_bmp = "".join(chr(c) for c in range(0x10000)) + "\U0001f600\U0010ffff"
    root = ET.Element("t", message=escape.xml(every_bmp))
    root.text = escape.xml(every_bmp)
    parsed = ET.fromstring(ET.tostring(root, encoding="utf-8"))  # raises on any illegal character
    assert "\\x1b" in parsed.text and "\\udcff" in parsed.text and "\\ufffe" in parsed.text
    assert "😀" in parsed.get("message")


def test_json_safe_leaves_a_document_that_encodes_as_utf8() -> None:
    document = {"path \udcff": ["bad \udcff byte", {"k": "é\x1b"}], "n": 1, "none": None}
    text = json.dumps(escape.json_safe(document), ensure_ascii=False)
    assert json.loads(text.encode("utf-8")) == {"path \\udcff": ["bad \\udcff byte", {"k": "é\x1b"}], "n": 1, "none": None}


def test_markdown_text_stays_on_one_line_and_adds_no_structure() -> None:
    text = escape.markdown(MARKUP)
    assert "\n" not in text
    assert "<img" not in text and "&lt;img" in text
    assert re.search(r"(?<!\\)[|`*\[\]~]", text) is None  # every pipe, backtick, emphasis, link, strike escaped
    assert escape.markdown("x" * 200, 20) == "x" * 19 + "…"


def test_markdown_code_span_cannot_be_closed_by_backticks_inside() -> None:
    assert escape.markdown_code("a``b") == "```a``b```"
    assert escape.markdown_code("`x`") == "`` `x` ``"
    assert escape.markdown_code("p|q", in_table=True) == "`p\\|q`"


def hostile_evidence() -> dict:
    results = [
        make_result(Outcome.FALSIFIED, id="FALSIFY-X-001", reason="AssertionError: " + HOSTILE + MARKUP,
                    counterexample=HOSTILE + "\n```\n</details>\n" + MARKUP),
        make_result(Outcome.ERROR, id="FALSIFY-X-002", reason=HOSTILE),
        make_result(Outcome.NOT_RUN, id="FALSIFY-X-003", reason=MARKUP),
        make_result(Outcome.PASSED, id="FALSIFY-X-004", reason=HOSTILE),
    ]
    evidence = sample_evidence(results)
    evidence["contracts"][0]["path"] = "contracts/\udcff`|<b>/x.yaml"
    evidence["command"].append(HOSTILE)
    return evidence


def test_junit_with_hostile_messages_names_and_paths_parses_with_junit_readers(tmp_path: Path) -> None:
    text = render_junit(hostile_evidence())
    path = tmp_path / "junit.xml"
    path.write_bytes(text.encode("utf-8"))  # raises if a lone surrogate were left
    root = ET.parse(path).getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "FALSIFY-X-001")
    assert case.find("failure").get("message").startswith("AssertionError: bad \\x1b]0;pwned\\x07")
    assert "\\udcff" in root.find("testsuite").get("file")

    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = {case.name: case for suite in xml for case in suite}
    assert set(cases) == {"FALSIFY-X-001", "FALSIFY-X-002", "FALSIFY-X-003", "FALSIFY-X-004"}
    assert isinstance(cases["FALSIFY-X-001"].result[0], junitparser.Failure)
    assert isinstance(cases["FALSIFY-X-002"].result[0], junitparser.Error)
    assert isinstance(cases["FALSIFY-X-003"].result[0], junitparser.Skipped)
    assert cases["FALSIFY-X-004"].is_passed


def test_summary_with_hostile_messages_keeps_one_row_per_falsifier_and_no_markup() -> None:
    summary = render_summary(hostile_evidence())
    summary.encode("utf-8")
    rows = [line for line in summary.splitlines() if line.startswith("| `FALSIFY-")]
    assert [row.split(" | ")[0] for row in rows] == [f"| `FALSIFY-X-00{i}`" for i in range(1, 5)]
    # No line of the message became a table row (every row is the harness's own), nor markup.
    outside_block = re.sub(r"(?s)\n(`{3,})text\n.*?\n\1\n", "\n", summary)
    table_lines = [line for line in outside_block.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + len(Outcome) + 2 + 4  # outcome table: header, rule, one row per outcome; falsifier table
    assert all(row.count(" | ") == 6 for row in rows)  # seven cells: no pipe of the message split one
    assert "<img" not in outside_block and "\x1b" not in summary and "\u202e" not in summary
    assert outside_block.count("</details>") == 1  # only the harness's own
    fence = re.search(r"\n(`{3,})text\n", summary).group(1)
    assert len(fence) > 3  # longer than the ``` inside the counterexample, so it cannot be closed early


def test_evidence_json_with_lone_surrogates_is_utf8_and_schema_valid() -> None:
    text = evidence_json(hostile_evidence())
    document = json.loads(text.encode("utf-8"))
    assert evidence_problems(document) == []
    assert document["contracts"][0]["path"] == "contracts/\\udcff`|<b>/x.yaml"


@pytest.mark.parametrize("char", ["\x1b", "\r", "\x07", "\x9b", "\u202e", "\udcff", "\x7f"])
def test_no_single_hostile_character_reaches_a_terminal_line(char: str) -> None:
    assert char not in escape.terminal(f"FALSIFIED{char}PASSED")


def test_emit_on_a_terminal_that_cannot_encode_the_message_prints_it_escaped() -> None:
    import io

    from harness.console import emit

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="latin-1")
    emit("FALSIFIED FALSIFY-X-001: 日本 é \x1b[2J", stream)
    assert raw.getvalue().decode("latin-1") == "FALSIFIED FALSIFY-X-001: \\u65e5\\u672c é \\x1b[2J\n"
