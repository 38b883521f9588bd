"""harness.load: every way a contract file can be unreadable gets a line number and a fix, never a traceback."""

from __future__ import annotations

import hashlib
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


def test_deep_nesting_is_refused_not_a_crash(tmp_path: Path) -> None:
    # The C composer recurses per level and overflows the C stack on input like this.
    error = load_error(write(tmp_path, "id: " + "[" * 50000 + "]" * 50000 + "\n"))
    assert error.line == 1
    assert "nested more than" in error.message


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
