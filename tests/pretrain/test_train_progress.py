"""Progress output of `pretrain train`: a tqdm bar with loss and tokens/s on a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_env import cli_env

ROOT = Path(__file__).resolve().parents[2]
ARGV = [sys.executable, "-m", "pretrain", "train", "--layers", "1", "--hidden", "32", "--heads", "4", "--kv-heads",
        "2", "--seq-len", "32", "--batch", "4", "--steps", "4", "--eval-every", "4"]
ENV = cli_env(OMP_NUM_THREADS="1")


def run_on_pty(argv: list[str], rows_cols: tuple[int, int] | None, timeout: float = 120) -> tuple[int, str]:
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    if rows_cols is not None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *rows_cols, 0, 0))
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return rc, b"".join(chunks).decode(errors="replace")


# (24, 100): a normal terminal; None: a pty that reports 0x0, as `script` or `docker exec -t` give.
@pytest.mark.parametrize("size", [(24, 100), None], ids=["sized-terminal", "zero-size-pty"])
def test_terminal_shows_a_progress_bar_with_loss_and_tokens_per_second(size: tuple[int, int] | None,
                                                                      tmp_path: Path) -> None:
    rc, text = run_on_pty([*ARGV, "--out", str(tmp_path)], size)
    assert rc == 0, text[-2000:]
    assert "4/4 [" in text and "%|" in text, text[-2000:]
    assert "loss=" in text and "tok_s=" in text
    assert "step 2 loss" not in text  # the bar replaces the plain lines


def test_without_a_terminal_progress_is_plain_lines(tmp_path: Path) -> None:
    proc = subprocess.run([*ARGV, "--out", str(tmp_path)], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    assert "\r" not in text and "%|" not in text
    lines = proc.stdout.splitlines()
    assert "step 0 val_loss" in proc.stdout
    assert any(line.startswith("step 4 loss ") and " tok/s " in line for line in lines), proc.stdout
