"""harness.channel: a verdict counts only as the one authentic record, written once, agreeing with the exit status."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from harness import channel
from harness.channel import InvalidRecord, open_channel
from harness.isolation import child_env, run_isolated

RESULT = {"outcome": "passed", "reason": "held", "counterexample": None}


def signed(results: channel.Channel, status: int = 0) -> None:
    """Append the record as the child would, without ending this process."""
    channel.send(results.path, results.key, RESULT, status, exit=False)


def test_the_one_authentic_record_is_accepted(tmp_path: Path) -> None:
    with open_channel(tmp_path) as results:
        signed(results)
        assert results.receive(0) == RESULT


@pytest.mark.parametrize(
    ("tamper", "returncode", "why"),
    [
        (lambda r: None, 0, "no result record"),
        (lambda r: r.path.write_text('{"outcome": "passed"}'), 0, "the result record is forged: 1 line(s)"),
        (lambda r: r.path.write_text(""), 0, "the result record file is empty"),
        (lambda r: (signed(r), signed(r)), 0, "the result record was written 2 times; it must be written exactly once"),
        (lambda r: (signed(r), r.path.open("a").write('{"outcome": "passed"}\n')), 0, "holds 1 forged line(s) besides"),
        (lambda r: (signed(r), r.path.write_bytes(r.path.read_bytes()[:-20])), 0, "the result record is truncated"),
        (lambda r: signed(r, status=0), 3, "reported exit status 0 in its result record but exited with 3"),
    ],
)
def test_a_missing_forged_duplicated_truncated_or_disagreeing_record_is_refused(tmp_path: Path, tamper, returncode: int, why: str) -> None:
    with open_channel(tmp_path) as results:
        tamper(results)
        with pytest.raises(InvalidRecord) as caught:
            results.receive(returncode)
    assert why in str(caught.value)


def test_a_record_signed_with_another_runs_key_is_forged(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    with open_channel(tmp_path / "other") as first, open_channel(tmp_path) as second:
        channel.send(second.path, first.key, RESULT, 0, exit=False)
        with pytest.raises(InvalidRecord, match="forged"):
            second.receive(0)


def test_an_oversized_record_file_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel, "MAX_RECORD_BYTES", 10)
    with open_channel(tmp_path) as results:
        signed(results)
        with pytest.raises(InvalidRecord, match="more than 10 bytes"):
            results.receive(0)


CHILD = textwrap.dedent(
    """
    import os, sys
    from harness import channel
    fd = os.environ[channel.KEY_FD_ENV]
    key = channel.receive_key()
    # What the code under test would find once the key was taken: no variable, no descriptor.
    print("env", channel.KEY_FD_ENV in os.environ)
    try:
        os.fstat(int(fd))
        print("fd open")
    except OSError:
        print("fd closed")
    import atexit
    atexit.register(lambda: print("atexit ran"))
    channel.send(sys.argv[1], key, {"outcome": "passed"}, 0)
    """
)


def test_the_child_drops_the_key_channel_and_ends_right_after_the_verdict(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with open_channel(tmp_path) as results:
        env = child_env(tmp_path) | results.env()
        run = run_isolated([sys.executable, str(script), str(results.path)], tmp_path, 60, env, pass_fds=results.pass_fds)
        assert results.receive(run.returncode) == {"outcome": "passed"}
    assert run.output.split() == ["env", "False", "fd", "closed"]  # and no "atexit ran"
