"""`exclusive` and `gpus` on a falsifier, end to end: validated with FILE:LINE, honoured by `harness verify -j 2`
(an exclusive falsifier never runs while another one does), and a falsifier needing more GPUs than the
machine has is not_run with the reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.harness.verify_support import contract_text, entries, falsifier, make_project, read_evidence, run_verify

TIMED = textwrap.dedent(
    '''
    import time
    from pathlib import Path


    def _timed(name, seconds):
        times = Path(__file__).resolve().parent / "times"
        times.mkdir(exist_ok=True)
        start = time.time()
        time.sleep(seconds)
        (times / name).write_text(f"{start} {time.time()}")


    def excl_a():
        _timed("excl_a", 1.5)


    def excl_b():
        _timed("excl_b", 1.5)


    def plain_c():
        _timed("plain_c", 1.0)


    def plain_d():
        _timed("plain_d", 1.0)


    def plain_e():
        _timed("plain_e", 1.0)
    '''
)


def test_exclusive_falsifiers_never_overlap_any_other_under_j2(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-EXCL-001", '{python: "fx_timed:excl_a"}', "exclusive: true"),
        falsifier("FALSIFY-EXCL-002", '{python: "fx_timed:plain_c"}'),
        falsifier("FALSIFY-EXCL-003", '{python: "fx_timed:excl_b"}', "exclusive: true"),
        falsifier("FALSIFY-EXCL-004", '{python: "fx_timed:plain_d"}'),
        falsifier("FALSIFY-EXCL-005", '{python: "fx_timed:plain_e"}'),
    ]
    make_project(tmp_path, {"excl.yaml": contract_text("excl-v1", cases)})
    (tmp_path / "fx_timed.py").write_text(TIMED)
    proc = run_verify(tmp_path, "contracts", "-j", "2", "--out", "out", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcomes = {fid: e["outcome"] for fid, e in entries(read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json")).items()}
    assert set(outcomes.values()) == {"passed"}, outcomes
    spans = {p.name: tuple(map(float, p.read_text().split())) for p in (tmp_path / "times").iterdir()}
    assert len(spans) == 5, spans
    for name in ("excl_a", "excl_b"):
        start, end = spans[name]
        overlapping = [other for other, (s, e) in spans.items() if other != name and s < end and e > start]
        assert overlapping == [], f"{name} ran at the same time as {overlapping}: {spans}"


def test_a_falsifier_needing_more_gpus_than_the_machine_has_is_not_run(tmp_path: Path) -> None:
    cases = [falsifier("FALSIFY-GPUS-001", '{python: "fx_falsifiers:holds"}', "gpus: 2")]
    make_project(tmp_path, {"gpus.yaml": contract_text("gpus-v1", cases)})
    proc = run_verify(tmp_path, "contracts", "--out", "out")  # harness_env hides every GPU
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NOT_RUN FALSIFY-GPUS-001 (0.0s): requires 2 GPUs (gpus: 2); this machine has 0" in proc.stdout
    result = entries(read_evidence(tmp_path / "out" / "uncommitted" / "evidence.json"))["FALSIFY-GPUS-001"]
    assert (result["outcome"], result["reason"]) == ("not_run", "requires 2 GPUs (gpus: 2); this machine has 0")


def test_exclusive_and_gpus_are_validated_with_file_and_line(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-BAD-001", '{python: "fx_falsifiers:holds"}', "exclusive: 'yes'"),
        falsifier("FALSIFY-BAD-002", '{python: "fx_falsifiers:holds"}', "gpus: -1"),
        falsifier("FALSIFY-BAD-003", '{python: "fx_falsifiers:holds"}', "gpus: true"),
        falsifier("FALSIFY-BAD-004", '{python: "fx_falsifiers:holds"}', "gpus: 1.5"),
    ]
    make_project(tmp_path, {"bad.yaml": contract_text("bad-v1", cases)})
    proc = run_verify(tmp_path, "contracts", "--out", "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[:4] == [
        "contracts/bad.yaml:15: FALSIFY-BAD-001: falsifiers[0].exclusive must be true or false, not a string; "
        "write true or false here (see docs/contract-format.md)",
        "contracts/bad.yaml:21: FALSIFY-BAD-002: falsifiers[1].gpus must be >= 0, not -1",
        "contracts/bad.yaml:27: FALSIFY-BAD-003: falsifiers[2].gpus must be an integer, not a boolean; "
        "write an integer here (see docs/contract-format.md)",
        "contracts/bad.yaml:33: FALSIFY-BAD-004: falsifiers[3].gpus must be an integer, not a number; "
        "write an integer here (see docs/contract-format.md)",
    ]
    assert not (tmp_path / "out").exists()


LENGTHS = textwrap.dedent(
    '''
    import time
    from pathlib import Path


    def _timed(name, seconds):
        times = Path(__file__).resolve().parent / "times"
        times.mkdir(exist_ok=True)
        (times / name).write_text(str(time.time()))
        time.sleep(seconds)


    def short_a():
        _timed("short_a", 0.1)


    def short_b():
        _timed("short_b", 0.1)


    def short_c():
        _timed("short_c", 0.1)


    def long_d():
        _timed("long_d", 3.0)
    '''
)


def test_j2_starts_the_longest_falsifiers_of_the_last_evidence_first(tmp_path: Path) -> None:
    cases = [
        falsifier("FALSIFY-LPT-001", '{python: "fx_lengths:short_a"}'),
        falsifier("FALSIFY-LPT-002", '{python: "fx_lengths:short_b"}'),
        falsifier("FALSIFY-LPT-003", '{python: "fx_lengths:short_c"}'),
        falsifier("FALSIFY-LPT-004", '{python: "fx_lengths:long_d"}'),
    ]
    make_project(tmp_path, {"lpt.yaml": contract_text("lpt-v1", cases)})
    (tmp_path / "fx_lengths.py").write_text(LENGTHS)

    def first_two_started() -> list[str]:
        proc = run_verify(tmp_path, "contracts", "-j", "2", "--out", "out", timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        starts = {p.name: float(p.read_text()) for p in (tmp_path / "times").iterdir()}
        for p in (tmp_path / "times").iterdir():
            p.unlink()
        return sorted(starts, key=starts.__getitem__)[:2]

    # No evidence yet: file order, so the long one is the last to start.
    assert "long_d" not in first_two_started()
    # Now the evidence under --out says it is the longest: it starts first (with one other beside it).
    assert "long_d" in first_two_started()
