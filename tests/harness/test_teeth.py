"""`harness teeth` on a tiny repository: a weak falsifier's surviving mutant is reported with its diff
(exit 1), a strong one kills every mutant (exit 0), a mutant of a module reached only through a
`python -m` subprocess is killed (the copy, not the editable install, is imported), a guard outside the
repository is skipped with the reason, an invariant without guards is "teeth not measurable", an
acknowledged equivalent mutant is shown with its reason, a stale acknowledgement is reported, a mutant
that does not compile is skipped and counted, and the working tree is never touched."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.mutate import mutants
from harness.teeth_record import read_teeth, teeth_problems

from tests.cli_env import cli_env

GUARD = textwrap.dedent(
    '''
    """Code the tiny contracts guard."""


    def clamp(x, low, high):
        """x, kept within [low, high]."""
        if low > high:
            raise ValueError("low is above high")
        return max(low, min(x, high))


    def is_adult(age):
        return age >= 18


    def parse_age(text):
        value = int(text)
        if value < 0:
            raise ValueError("negative age")
        return value


    def quoted(d):
        # negating this comparison re-quotes d["k"] with the f-string's own quote: it does not compile on 3.11
        return f'{d["k"] < 1}'


    class Gate:
        def opens(self, n):
            return 0 < n < 10

        def limit(self, n):
            if n > 100:  # redundant with the min() below: its mutants are equivalent
                n = 100
            return min(n, 100)
    '''
)

# Named `pretrain` on purpose: the venv holds an editable install of the real `pretrain`; if it won over
# the copy, `python -m pretrain` would run the real CLI and the baseline would fail.
SECRET = "def verdict(n):\n    return 'adult' if n >= 18 else 'minor'\n"
MAIN = "import sys\nfrom pretrain.secret import verdict\nprint(verdict(int(sys.argv[1])))\n"

CHECKS = textwrap.dedent(
    '''
    import subprocess
    import sys

    from tinypkg.guard import Gate, clamp, is_adult, parse_age, quoted


    def strong_clamp():
        assert clamp(5, 0, 10) == 5
        assert clamp(-1, 0, 10) == 0
        assert clamp(11, 0, 10) == 10
        assert clamp(3, 3, 3) == 3
        try:
            clamp(1, 5, 4)
        except ValueError:
            pass
        else:
            raise AssertionError("clamp(1, 5, 4) did not refuse low > high")


    def weak_adult():
        # Never probes the boundary: `age >= 17` and `age >= 19` pass too.
        assert is_adult(30)
        assert not is_adult(5)


    def weak_parse():
        # Never gives a negative age: the refusal's line never runs.
        assert parse_age("7") == 7


    def through_subprocess():
        # Never imports pretrain.secret itself: only the `python -m pretrain` child does.
        for n, expected in ((17, "minor"), (18, "adult")):
            out = subprocess.run([sys.executable, "-m", "pretrain", str(n)], capture_output=True, text=True, check=True).stdout
            assert out.strip() == expected, (n, out)


    def gate():
        g = Gate()
        assert [g.opens(n) for n in (0, 1, 5, 9, 10)] == [False, True, True, True, False]
        assert [g.limit(n) for n in (5, 100, 200)] == [5, 100, 100]


    def quotes():
        assert quoted({"k": 0}) == "True"
        assert quoted({"k": 1}) == "False"


    def holds():
        assert 1 + 1 == 2
    '''
)


def _falsifier(fid: str, attacks: str, target: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
          - id: {fid}
            attacks: [{attacks}]
            prediction: it holds.
            if_fails: it does not.
            binding:
              python: checks:{target}
            timeout_s: 60
        """
    ) + extra


def _invariant(iid: str, guards: list[str], extra: str = "") -> str:
    line = f"    guards: [{', '.join(guards)}]\n" if guards else ""
    return f"  - id: {iid}\n    kind: safety\n    statement: It holds.\n{line}{extra}"


def _contract(cid: str, invariants: list[str], falsifiers: list[str]) -> str:
    return (
        f"id: {cid}\nversion: 1.0.0\ntitle: Tiny\ndescription: Tiny.\n"
        "invariants:\n" + "".join(invariants) + "falsifiers:\n" + "".join(falsifiers)
    )


def _limit_ids() -> list[str]:
    """The ids of Gate.limit's survivors (the equivalent ones), computed as harness teeth computes them."""
    found = mutants(GUARD, "tinypkg/guard.py", "tinypkg.guard:Gate", "Gate")
    line = next(i for i, text in enumerate(GUARD.splitlines(), 1) if "if n > 100" in text)
    return sorted(m.id for m in found.mutants if m.line == line and m.operator.startswith("constant_"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    (root / "pyproject.toml").write_text("[project]\nname = 'tiny'\nversion = '0'\n")
    (root / ".gitignore").write_text("ignored/\n")
    (root / "tinypkg").mkdir()
    (root / "tinypkg" / "__init__.py").write_text("")
    (root / "tinypkg" / "guard.py").write_text(GUARD)
    (root / "pretrain").mkdir()
    (root / "pretrain" / "__init__.py").write_text("")
    (root / "pretrain" / "secret.py").write_text(SECRET)
    (root / "pretrain" / "__main__.py").write_text(MAIN)
    (root / "checks.py").write_text(CHECKS)
    (root / "ignored").mkdir()
    (root / "ignored" / "big.bin").write_text("not copied")
    acks = "    equivalent_mutants:\n" + "".join(
        f"      - {{id: '{i}', reason: 'n is capped by min() below whatever the if does'}}\n" for i in _limit_ids()
    ) + "      - {id: 'tinypkg.guard:Gate/return_none/00000000', reason: 'a typo'}\n"
    contracts = root / "contracts"
    contracts.mkdir()
    (contracts / "strong.yaml").write_text(_contract(
        "tiny-strong-v1",
        [_invariant("INV-STRONG-CLAMP-001", ["tinypkg.guard:clamp"]),
         _invariant("INV-STRONG-SUBPROC-001", ["pretrain.secret:verdict"])],
        [_falsifier("FALSIFY-STRONG-CLAMP-001", "INV-STRONG-CLAMP-001", "strong_clamp"),
         _falsifier("FALSIFY-STRONG-SUBPROC-001", "INV-STRONG-SUBPROC-001", "through_subprocess")],
    ))
    (contracts / "weak.yaml").write_text(_contract(
        "tiny-weak-v1",
        [_invariant("INV-WEAK-ADULT-001", ["tinypkg.guard:is_adult"]),
         _invariant("INV-WEAK-NOGUARD-001", []),
         _invariant("INV-WEAK-OUTSIDE-001", ["json:dumps", "math:sqrt"]),
         _invariant("INV-WEAK-GATE-001", ["tinypkg.guard:Gate"], acks),
         _invariant("INV-WEAK-QUOTE-001", ["tinypkg.guard:quoted"]),
         _invariant("INV-WEAK-CUDA-001", ["tinypkg.guard:clamp"]),
         _invariant("INV-WEAK-PARSE-001", ["tinypkg.guard:parse_age"])],
        [_falsifier("FALSIFY-WEAK-ADULT-001", "INV-WEAK-ADULT-001", "weak_adult"),
         _falsifier("FALSIFY-WEAK-NOGUARD-001", "INV-WEAK-NOGUARD-001, INV-WEAK-OUTSIDE-001", "holds"),
         _falsifier("FALSIFY-WEAK-GATE-001", "INV-WEAK-GATE-001", "gate"),
         _falsifier("FALSIFY-WEAK-QUOTE-001", "INV-WEAK-QUOTE-001", "quotes"),
         _falsifier("FALSIFY-WEAK-CUDA-001", "INV-WEAK-CUDA-001", "strong_clamp",
                    "  requires: {packages: [no-such-package-for-teeth]}\n"),
         _falsifier("FALSIFY-WEAK-PARSE-001", "INV-WEAK-PARSE-001", "weak_parse")],
    ))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(git + ["add", "-A"], cwd=root, check=True)
    subprocess.run(git + ["commit", "-qm", "tiny"], cwd=root, check=True)
    return root


def _teeth(repo: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "teeth", "contracts/", "--out", str(out), "-j", "2", *args],
        cwd=repo, env=cli_env(), capture_output=True, text=True, timeout=600,
    )


def _commit(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def full_run(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("out")
    evidence = out / _commit(repo) / "evidence.json"
    evidence.parent.mkdir()
    evidence.write_text("{}")  # verify's evidence in the same directory: teeth must leave it alone
    return _teeth(repo, out), out


def _invariant_of(out: Path, repo: Path, iid: str) -> Any:
    teeth = read_teeth(out / _commit(repo))
    return next(i for i in teeth.invariants if i.id == iid)


def test_weak_falsifier_is_reported_with_its_surviving_mutant(full_run: Any, repo: Path) -> None:
    proc, out = full_run
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SURVIVED INV-WEAK-ADULT-001 (tiny-weak-v1): mutant tinypkg.guard:is_adult/constant_plus_one/" in proc.stdout
    assert "-    return age >= 18\n    +    return age >= 19" in proc.stdout
    assert "missed by: FALSIFY-WEAK-ADULT-001" in proc.stdout
    inv = _invariant_of(out, repo, "INV-WEAK-ADULT-001")
    assert sorted(m.operator for m in inv.survivors) == ["constant_minus_one", "constant_plus_one"]
    assert {m.status for m in inv.mutants if m.operator not in ("constant_minus_one", "constant_plus_one")} == {"killed"}


def test_a_mutant_no_falsifier_executes_survives_without_being_run(full_run: Any, repo: Path) -> None:
    proc, out = full_run
    inv = _invariant_of(out, repo, "INV-WEAK-PARSE-001")
    by_operator = {m.operator: m for m in inv.mutants}
    unreached = by_operator["remove_raise"]
    # The baseline's guard coverage shows the raise never ran: the verdict needs no run, and says why.
    assert unreached.status == "survived" and unreached.missed_by == ("FALSIFY-WEAK-PARSE-001",)
    line = next(i for i, text in enumerate(GUARD.splitlines(), 1) if 'raise ValueError("negative age")' in text)
    assert unreached.reason.startswith(f"no falsifier of the invariant executed line {line} of tinypkg/guard.py")
    # A mutant of a line that ran is run against the falsifier: killed, or survived with the usual reason.
    assert by_operator["return_none"].status == "killed"
    assert by_operator["constant_plus_one"].status == "survived"
    assert by_operator["constant_plus_one"].reason.startswith("every falsifier passed against the mutant")
    assert f"SURVIVED INV-WEAK-PARSE-001 (tiny-weak-v1): mutant {unreached.id}" in proc.stdout


def test_strong_falsifiers_kill_every_mutant_even_through_a_subprocess(repo: Path, tmp_path: Path) -> None:
    proc = _teeth(repo, tmp_path, "-k", "tiny-strong-v1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    teeth = read_teeth(tmp_path / _commit(repo))
    by_id = {i.id: i for i in teeth.invariants}
    subproc = by_id["INV-STRONG-SUBPROC-001"]
    assert subproc.falsifiers[0].usable, subproc.falsifiers  # the copy's pretrain ran, not the installed one
    assert subproc.mutants and {m.status for m in subproc.mutants} == {"killed"}
    assert {m.operator for m in by_id["INV-STRONG-CLAMP-001"].mutants} >= {"return_none", "return_first_arg", "remove_raise", "negate_compare"}
    assert teeth.totals["survived"] == 0 and teeth.totals["killed"] == teeth.totals["mutants"] > 0
    assert "harness teeth: " in proc.stdout and " 0 survived" in proc.stdout


def test_guards_outside_the_repository_are_skipped_with_the_reason(full_run: Any, repo: Path) -> None:
    proc, out = full_run
    inv = _invariant_of(out, repo, "INV-WEAK-OUTSIDE-001")
    assert not inv.measurable and [g.status for g in inv.guards] == ["skipped", "skipped"]
    assert "outside the repository" in inv.guards[0].reason
    assert "not a Python file" in inv.guards[1].reason
    assert "SKIPPED GUARD INV-WEAK-OUTSIDE-001 json:dumps: its source" in proc.stdout


def test_an_invariant_without_guards_is_teeth_not_measurable(full_run: Any, repo: Path) -> None:
    proc, out = full_run
    inv = _invariant_of(out, repo, "INV-WEAK-NOGUARD-001")
    assert not inv.measurable and inv.note.startswith("teeth not measurable") and not inv.mutants
    assert "NOT MEASURABLE INV-WEAK-NOGUARD-001: teeth not measurable" in proc.stdout


def test_equivalent_mutants_are_shown_with_their_reason_and_stale_ones_reported(full_run: Any, repo: Path) -> None:
    proc, out = full_run
    inv = _invariant_of(out, repo, "INV-WEAK-GATE-001")
    equivalent = [m for m in inv.mutants if m.status == "equivalent"]
    assert sorted(m.id for m in equivalent) == _limit_ids() and len(equivalent) == 2
    assert all(m.acknowledged == "n is capped by min() below whatever the if does" for m in equivalent)
    assert not inv.survivors and {m.function for m in inv.mutants} == {"Gate.opens", "Gate.limit"}
    assert f"EQUIVALENT INV-WEAK-GATE-001 {equivalent[0].id}: acknowledged as equivalent: n is capped" in proc.stdout
    assert [s.id for s in inv.stale_acknowledgements] == ["tinypkg.guard:Gate/return_none/00000000"]
    assert "STALE ACKNOWLEDGEMENT INV-WEAK-GATE-001 tinypkg.guard:Gate/return_none/00000000: it matches no mutant" in proc.stdout


def test_a_mutant_that_does_not_compile_is_skipped_and_counted(full_run: Any, repo: Path) -> None:
    _, out = full_run
    inv = _invariant_of(out, repo, "INV-WEAK-QUOTE-001")
    assert inv.not_compiling == 1 and "negate_compare" not in {m.operator for m in inv.mutants}
    assert {m.status for m in inv.mutants} == {"killed"}
    assert read_teeth(out / _commit(repo)).totals["not_compiling"] == 1


def test_mutants_of_an_invariant_whose_falsifiers_cannot_run_here_are_not_run(full_run: Any, repo: Path) -> None:
    _, out = full_run
    inv = _invariant_of(out, repo, "INV-WEAK-CUDA-001")
    assert inv.mutants and {m.status for m in inv.mutants} == {"not_run"}
    assert "no-such-package-for-teeth" in inv.mutants[0].reason


def test_results_are_schema_valid_and_the_working_tree_and_evidence_are_untouched(full_run: Any, repo: Path) -> None:
    _, out = full_run
    directory = out / _commit(repo)
    assert sorted(p.name for p in directory.iterdir()) == ["evidence.json", "teeth.json", "teeth.md"]
    assert (directory / "evidence.json").read_text() == "{}"
    assert teeth_problems(json.loads((directory / "teeth.json").read_text())) == []
    assert (repo / "tinypkg" / "guard.py").read_text() == GUARD
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    summary = (directory / "teeth.md").read_text()
    assert "## Survivors" in summary and "+    return age >= 19" in summary


def test_invalid_contracts_exit_2_and_run_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "bad.yaml").write_text("id: x\nfalsifiers: []\n")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "teeth", "bad.yaml", "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nothing was run" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()


def test_jobs_below_one_is_bad_input(repo: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "teeth", "contracts/", "--out", str(tmp_path), "-j", "0"],
        cwd=repo, env=cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "harness teeth: -j 0: must be at least 1" in proc.stderr
    assert not list(tmp_path.iterdir())
