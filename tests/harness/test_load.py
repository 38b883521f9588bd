"""harness.load: every way a contract file can be unreadable gets a line number and a fix, never a traceback."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.load import MAX_FILE_BYTES, LoadError, load_contract_file

from tests.cli_env import cli_env

VALID = """\
id: demo-v1
version: 1.0.0
title: Demo
invariants:
  - id: INV-DEMO-001
    kind: safety
    statement: It holds.
falsifiers:
  - id: FALSIFY-DEMO-001
    attacks: [INV-DEMO-001]
    prediction: p
    if_fails: f
    binding: {python: pkg.mod:fn}
    deferred: {reason: later, until: 2027-01-31}
"""


def write(tmp_path: Path, text: str | bytes, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> LoadError:
    with pytest.raises(LoadError) as info:
        load_contract_file(path)
    return info.value


def test_valid_file_gives_data_line_map_and_sha256(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    doc = load_contract_file(path)
    assert doc.data["falsifiers"][0]["binding"] == {"python": "pkg.mod:fn"}
    assert doc.lines[("id",)] == 1
    assert doc.lines[("invariants", 0)] == 5
    assert doc.lines[("falsifiers", 0, "binding")] == 13
    assert doc.lines[("falsifiers", 0, "attacks", 0)] == 10
    # A path with no entry of its own reports its nearest ancestor's line.
    assert doc.line_of(("falsifiers", 0, "binding", "python", "nope")) == 13
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # Dates stay as written so the schema and the author see the same value.
    assert doc.data["falsifiers"][0]["deferred"]["until"] == "2027-01-31"


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id: demo-v1\ntitle: [unclosed\nversion: 1.0.0\n"))
    assert error.line == 3
    assert "malformed YAML" in error.message and "fix the syntax" in error.message
    assert "started on line 2" in error.message


def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    start = time.perf_counter()
    error = load_error(path)
    assert time.perf_counter() - start < 2.0, "alias expansion must be refused, not performed"
    assert error.line == 1
    assert "aliases" in error.message and "write the value out in full" in error.message


def test_oversize_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: as big as a real 50 MB file to stat, instant to make
    error = load_error(path)
    assert error.line == 1
    assert "50.0 MiB" in error.message and f"{MAX_FILE_BYTES // 1024 // 1024} MiB" in error.message
    assert "split it" in error.message


def test_tab_indentation_names_the_line(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id: demo-v1\ninvariants:\n\t- id: INV-A-001\n"))
    assert error.line == 3
    assert "tab character" in error.message and "spaces" in error.message


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = VALID.replace("    prediction: p\n", "    prediction: p\n    attacks: [INV-DEMO-002]\n")
    error = load_error(write(tmp_path, text))
    assert error.line == 12
    assert "duplicate key 'attacks'" in error.message and "first defined on line 10" in error.message


def test_non_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, b"id: demo-v1\ntitle: caf\xe9\n"))
    assert error.line == 2
    assert "not UTF-8" in error.message and "0xe9" in error.message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    error = load_error(write(tmp_path, text))
    assert error.line == 1
    assert "file is empty" in error.message


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "# a list\n- id: demo-v1\n"))
    assert error.line == 2
    assert "top level must be a mapping" in error.message and "found a list" in error.message


def test_python_tags_are_refused(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id: demo-v1\ntitle: !!python/object/apply:os.system [echo]\n"))
    assert error.line == 2
    assert "remove the tag" in error.message


def test_several_documents_are_refused(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id: a-v1\n---\nid: b-v1\n"))
    assert error.line == 2
    assert "second YAML document" in error.message and "its own file" in error.message


def run_validate(tmp_path: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "harness", "validate", "--no-bindings", *map(str, paths)],
        cwd=tmp_path, env=cli_env(root), capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    "text, line",
    [
        # Refused by our own depth limit (flow and block style) ...
        ("id: " + "[" * 100 + "]" * 100 + "\n", 1),
        ("id: demo-v1\ntitle:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 100)), 66),
        # ... or by the parser's (PyYAML >= 6.0.2 stops flow nesting itself); the C composer used to
        # recurse per level and overflow the C stack on this. Which layer refuses, and in what
        # words, is not the point: the user gets one clean line naming the file and line.
        ("id: " + "[" * 50000 + "]" * 50000 + "\n", 1),
    ],
    ids=["flow-100", "block-100", "flow-50000"],
)
def test_deep_nesting_is_refused_not_a_crash(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    error = load_error(path)
    assert error.line == line
    assert "nest" in error.message and "\n" not in error.message
    proc = run_validate(tmp_path, path)
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [f"{path}:{line}: -: {error.message}"]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "value",
    ["!!bool safety", '!!int ""', "!!float abc", "!!int 0x", "!!int 3", "!!null x", "!!timestamp 2027-01-31",
     "!!binary aGk=", "!!set {a: null}", "!custom x"],
)
def test_explicit_tags_are_refused_with_the_line(tmp_path: Path, value: str) -> None:
    # The constructor used to guess and crash (KeyError, IndexError, ValueError) on these.
    error = load_error(write(tmp_path, f"id: demo-v1\ntitle: {value}\n"))
    assert error.line == 2
    assert "is not allowed" in error.message and "remove the tag" in error.message


def test_string_tags_mean_text(tmp_path: Path) -> None:
    doc = load_contract_file(write(tmp_path, "id: demo-v1\nversion: !!str 1.0\ntitle: ! 12\n"))
    assert doc.data == {"id": "demo-v1", "version": "1.0", "title": "12"}


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "1" * 30, "9223372036854775808", "0x" + "f" * 17,
                                    ":".join(["59"] * 3000)])
def test_huge_integers_are_refused_with_the_line(tmp_path: Path, number: str) -> None:
    # 5,000 digits used to hit Python's int-string conversion limit (a ValueError traceback).
    error = load_error(write(tmp_path, f"id: demo-v1\nfalsifiers:\n  - timeout_s: {number}\n"))
    assert error.line == 3
    assert "is too large" in error.message and "2**63-1" in error.message and len(error.message) < 200


def test_the_largest_integer_still_loads(tmp_path: Path) -> None:
    doc = load_contract_file(write(tmp_path, f"id: demo-v1\nn: {2**63 - 1}\nm: -{2**63 - 1}\n"))
    assert doc.data["n"] == 2**63 - 1 and doc.data["m"] == -(2**63 - 1)


@pytest.mark.parametrize(
    "text, line",
    [
        ('id: demo-v1\ntitle: "a\\x01b"\n', 2),  # an escape in a quoted string
        ('id: demo-v1\ntitle: "a\\u009bb"\n', 2),  # C1: starts a terminal control sequence
        ('id: demo-v1\ntitle: "a\\Nb"\n', 2),  # YAML's next-line escape
        ('id: demo-v1\n"k\\x1b": x\n', 2),  # in a key
        ("id: demo-v1\ntitle: a\x01b\n", 2),  # raw: the YAML reader refuses it
        ('id: demo-v1\ntitle: "\\ud800"\n', 2),  # a lone surrogate cannot be written as UTF-8
    ],
    ids=["escape", "c1", "nel", "key", "raw", "surrogate"],
)
def test_control_characters_are_refused_with_the_line(tmp_path: Path, text: str, line: int) -> None:
    error = load_error(write(tmp_path, text))
    assert error.line == line
    assert "\n" not in error.message


def test_tabs_and_newlines_in_text_are_kept(tmp_path: Path) -> None:
    doc = load_contract_file(write(tmp_path, 'id: demo-v1\ntitle: "a\\tb"\ndescription: |\n  one\n  two\n'))
    assert doc.data["title"] == "a\tb" and doc.data["description"] == "one\ntwo\n"


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id: demo-v1\ninvariants:\n  - <<: {kind: safety}\n"))
    assert error.line == 3
    assert "merge keys" in error.message


def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    error = load_error(tmp_path / "absent.yaml")
    assert "cannot read file" in error.message


def test_a_fifo_named_as_a_contract_is_refused_without_blocking(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    root = Path(__file__).resolve().parents[2]
    # A subprocess with a timeout: the bug this guards against is `harness validate` hanging forever on open().
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(fifo)],
        cwd=tmp_path, env=cli_env(root), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert f"{fifo}:1: -: a FIFO, not a contract file" in proc.stdout


def test_a_tag_on_a_key_is_refused(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id: demo-v1\n!!python/name:os.system title: x\n"))
    assert error.line == 2
    assert "remove the tag" in error.message
