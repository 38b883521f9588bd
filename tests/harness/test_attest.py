"""`harness keygen`, `harness attest DIR/<sha> --key KEY` and `harness attest --verify DIR/<sha> [--pub KEY.pub]`
(harness.attest): an in-toto Statement v1 with the test-result predicate in a DSSE envelope, signed with
Ed25519. A signed commit verifies; any edit after signing (a contract, evidence.json, teeth.json, the
envelope) or another key is exit 1 naming what changed; no evidence, no envelope, an unreadable key is
exit 2. The envelope verifies with the reference implementations (securesystemslib's DSSE, the in-toto
attestation protobufs), and one they produce verifies with ours."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import attest as at
from harness.model import Outcome
from harness.record import read_evidence

from tests.harness.verify_support import contract_text, falsifier, harness_env, make_project

CONTRACT = "contracts/fixture-v1.yaml"
GITIGNORE = "__pycache__/\n.hypothesis/\nreports/\n"


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=root, capture_output=True, text=True, timeout=60, check=True,
    )
    return done.stdout.strip()


def harness(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=harness_env(**env), capture_output=True, text=True,
        timeout=120,
    )


@dataclasses.dataclass
class Signed:
    """A committed project whose evidence and teeth were recorded and signed; keys outside the repository."""

    repo: Path
    keys: Path
    sha: str

    @property
    def commit_dir(self) -> Path:
        return self.repo / "reports" / self.sha

    @property
    def envelope(self) -> Path:
        return self.commit_dir / at.ENVELOPE_FILE

    def verify(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return harness(self.repo, "attest", "--verify", f"reports/{self.sha}", "--pub", str(self.keys / at.PUBLIC_KEY_FILE), *extra)

    def statement(self) -> dict[str, Any]:
        return json.loads(base64.b64decode(json.loads(self.envelope.read_text())["payload"]))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    base = tmp_path_factory.mktemp("attest")
    repo = base / "repo"
    make_project(repo, {"fixture-v1.yaml": contract_text("fixture-v1", [
        falsifier("FALSIFY-ATT-001", '{python: "fx_falsifiers:holds"}'),
        falsifier("FALSIFY-ATT-002", '{pytest: "tests/test_bound.py::test_bound_one"}'),
    ])})
    (repo / ".gitignore").write_text(GITIGNORE)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fixture")
    sha = git(repo, "rev-parse", "HEAD")
    for command in (("verify", "contracts/"), ("teeth", "contracts/"), ("keygen", "--out", str(base / "keys"))):
        done = harness(repo, *command)
        assert done.returncode == 0, done.stdout + done.stderr
    done = harness(repo, "attest", f"reports/{sha}", "--key", str(base / "keys" / at.PRIVATE_KEY_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    return Signed(repo, base / "keys", sha)


@pytest.fixture
def signed(template: Signed, tmp_path: Path) -> Signed:
    """A private copy of the signed project, free to tamper with."""
    shutil.copytree(template.repo.parent, tmp_path / "w", symlinks=True)
    return Signed(tmp_path / "w" / "repo", tmp_path / "w" / "keys", template.sha)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ DSSE and keys


def test_pae_is_the_dsse_specifications_encoding() -> None:
    from securesystemslib.dsse import Envelope

    # The DSSE protocol's own test vector.
    assert at.pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    # Lengths are in bytes, not characters, and the reference implementation agrees.
    body = "ünïcode".encode()
    assert at.pae("application/vnd.in-toto+json", body) == Envelope(body, "application/vnd.in-toto+json", {}).pae()


def test_keygen_writes_a_private_key_only_its_owner_can_read_whatever_the_umask(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    done = subprocess.run(
        ["bash", "-c", f"umask 000 && {sys.executable} -m harness keygen --out keys"],
        cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    private, public = tmp_path / "keys" / at.PRIVATE_KEY_FILE, tmp_path / "keys" / at.PUBLIC_KEY_FILE
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o666  # the umask (000 here) decides for the public half
    assert "BEGIN PRIVATE KEY" in private.read_text()  # PKCS8, unencrypted
    raw = serialization.load_pem_public_key(public.read_bytes()).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert done.stdout.splitlines() == [
        f"private key: keys/{at.PRIVATE_KEY_FILE} (mode 0600; keep it secret, e.g. as a CI secret)",
        f"public key:  keys/{at.PUBLIC_KEY_FILE} (commit it; pyproject.toml [tool.harness] attestation_public_key = \"keys/{at.PUBLIC_KEY_FILE}\")",
        f"key id:      {hashlib.sha256(raw).hexdigest()}",
    ]
    assert not [p.name for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.mark.parametrize("existing", [at.PRIVATE_KEY_FILE, at.PUBLIC_KEY_FILE])
def test_keygen_never_overwrites_a_key(tmp_path: Path, existing: str) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / existing).write_text("precious\n")
    done = harness(tmp_path, "keygen", "--out", "keys")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"harness keygen: error: keys/{existing}: exists; harness keygen never overwrites a key (move it away or pick another --out)"
    )
    assert (tmp_path / "keys" / existing).read_text() == "precious\n"
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [existing]


# ------------------------------------------------------------------------------------------ round trip


def test_a_signed_commit_verifies_and_the_statement_names_every_signed_file(signed: Signed) -> None:
    done = signed.verify()
    assert done.returncode == 0, done.stderr
    pub = signed.keys / at.PUBLIC_KEY_FILE
    key_id = at.key_id(at.load_public_key(pub))
    assert done.stdout.strip() == (
        f"harness attest --verify: valid: reports/{signed.sha}/{at.ENVELOPE_FILE} signed by key {key_id[:16]}; "
        f"4 subjects match (commit {signed.sha[:12]}); result PASSED"
    )
    envelope = json.loads(signed.envelope.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [key_id]
    statement = signed.statement()
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    assert statement["subject"] == [
        {"digest": {"gitCommit": signed.sha}},
        {"name": CONTRACT, "digest": {"sha256": sha256(signed.repo / CONTRACT)}},
        {"name": "evidence.json", "digest": {"sha256": sha256(signed.commit_dir / "evidence.json")}},
        {"name": "teeth.json", "digest": {"sha256": sha256(signed.commit_dir / "teeth.json")}},
    ]
    predicate = statement["predicate"]
    assert predicate["result"] == "PASSED"
    assert predicate["passedTests"] == ["FALSIFY-ATT-001", "FALSIFY-ATT-002"]
    assert predicate["warnedTests"] == [] and predicate["failedTests"] == []
    assert predicate["configuration"] == [
        {"name": CONTRACT, "digest": {"sha256": sha256(signed.repo / CONTRACT)},
         "annotations": {"contract": "fixture-v1", "version": "1.0.0"}}
    ]
    assert [(o["falsifier"], o["outcome"]) for o in predicate["contractHarnessOutcomes"]] == [
        ("FALSIFY-ATT-001", "passed"), ("FALSIFY-ATT-002", "passed")
    ]
    # The library function the audit calls says the same.
    check = at.verify_attestation(signed.commit_dir, public_key=pub, repo_root=signed.repo)
    assert (check.valid, check.problems, check.key_id, check.commit, check.result) == (True, (), key_id, signed.sha, "PASSED")
    assert [s.describe() for s in check.subjects] == [f"commit {signed.sha}", CONTRACT, "evidence.json", "teeth.json"]


def test_attest_prints_what_it_signed(signed: Signed) -> None:
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(signed.keys / at.PRIVATE_KEY_FILE))
    assert done.returncode == 0, done.stderr
    key_id = at.key_id(at.load_public_key(signed.keys / at.PUBLIC_KEY_FILE))
    assert done.stdout.splitlines() == [
        f"harness attest: signed commit {signed.sha[:12]} with key {key_id[:16]}: 4 subjects (the commit and "
        f"{CONTRACT}, evidence.json, teeth.json); result PASSED (2 passed, 0 warned, 0 failed)",
        f"attestation: reports/{signed.sha}/{at.ENVELOPE_FILE}",
    ]
    assert done.stderr == ""


def test_the_configured_public_key_is_the_default(signed: Signed) -> None:
    shutil.copy(signed.keys / at.PUBLIC_KEY_FILE, signed.repo / "release.pub")
    with open(signed.repo / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.harness]\nattestation_public_key = "release.pub"\n')
    done = harness(signed.repo, "attest", "--verify", f"reports/{signed.sha}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("harness attest --verify: valid: ")
    assert at.verify_attestation(signed.commit_dir, repo_root=signed.repo).valid


def test_an_attestation_of_another_commit_is_invalid_for_the_commit_checked(signed: Signed) -> None:
    """A caller auditing commit X (the files may have been copied anywhere) is told the attestation is of Y."""
    pub = signed.keys / at.PUBLIC_KEY_FILE
    check = at.verify_attestation(signed.commit_dir, public_key=pub, repo_root=signed.repo, commit="f" * 40)
    assert not check.valid
    assert check.problems == (f"{signed.envelope}: an attestation of commit {signed.sha[:12]}, not of ffffffffffff",)
    assert at.verify_attestation(signed.commit_dir, public_key=pub, repo_root=signed.repo, commit=signed.sha).valid


def sign_payload(signed: Signed, body: bytes) -> None:
    """Replace the envelope by one over `body`, signed with the project's own key."""
    key = at.load_private_key(signed.keys / at.PRIVATE_KEY_FILE)
    signed.envelope.write_text(json.dumps({
        "payload": base64.b64encode(body).decode(), "payloadType": at.PAYLOAD_TYPE,
        "signatures": [{"keyid": "", "sig": base64.b64encode(key.sign(at.pae(at.PAYLOAD_TYPE, body))).decode()}],
    }))


def test_a_signed_statement_with_a_key_given_twice_is_invalid(signed: Signed) -> None:
    """{"result": "FAILED", "result": "PASSED"}: one verifier would read FAILED, another PASSED."""
    text = json.dumps(signed.statement()).replace('"result": "PASSED"', '"result": "FAILED", "result": "PASSED"')
    sign_payload(signed, text.encode())
    done = signed.verify()
    assert done.returncode == 1
    assert "the signed payload is not JSON (the key 'result' appears twice in one object)" in done.stderr


def test_a_release_copy_of_the_signed_files_verifies_where_it_is_copied(signed: Signed) -> None:
    """The release audit copies evidence.json, teeth.json and the envelope to reports/releases/<TAG>/."""
    release = signed.repo / "reports" / "releases" / "v1.0.0"
    release.mkdir(parents=True)
    for name in ("evidence.json", "teeth.json", at.ENVELOPE_FILE):
        shutil.copy(signed.commit_dir / name, release / name)
    check = at.verify_attestation(release, public_key=signed.keys / at.PUBLIC_KEY_FILE, repo_root=signed.repo)
    assert check.valid, check.problems


# ------------------------------------------------------------------------------------------ tampering


@pytest.mark.parametrize("target", [CONTRACT, "evidence.json", "teeth.json"])
def test_an_edit_to_any_signed_file_is_detected_and_named(signed: Signed, target: str) -> None:
    file = signed.repo / target if target == CONTRACT else signed.commit_dir / target
    before = sha256(file)
    text = file.read_text()
    file.write_text(text + ("\n" if target.endswith(".json") else "# edited\n"))  # still valid, one byte more
    done = signed.verify()
    assert done.returncode == 1, done.stdout + done.stderr
    shown = target if target == CONTRACT else f"reports/{signed.sha}/{target}"
    assert f"{shown}: edited after signing (sha256 {before[:12]} signed, {sha256(file)[:12]} now)" in done.stderr.splitlines()
    assert done.stderr.splitlines()[-1].startswith("harness attest --verify: INVALID: ")
    assert done.stdout == ""


@pytest.mark.parametrize("target", [CONTRACT, "evidence.json", "teeth.json"])
def test_a_removed_signed_file_is_named(signed: Signed, target: str) -> None:
    file = signed.repo / target if target == CONTRACT else signed.commit_dir / target
    digest = sha256(file)
    file.unlink()
    done = signed.verify()
    assert done.returncode == 1
    shown = target if target == CONTRACT else f"reports/{signed.sha}/{target}"
    assert f"{shown}: missing (signed with sha256 {digest[:12]})" in done.stderr.splitlines()


def test_a_teeth_json_written_after_signing_is_named(signed: Signed) -> None:
    teeth = signed.commit_dir / "teeth.json"
    saved = teeth.read_text()
    teeth.unlink()
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(signed.keys / at.PRIVATE_KEY_FILE))
    assert done.returncode == 0, done.stderr
    teeth.write_text(saved)
    done = signed.verify()
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        f"reports/{signed.sha}/teeth.json: not signed (written after the attestation?); sign again: "
        f"harness attest reports/{signed.sha} --key keys/attestation.key"
    )


def test_a_tampered_signature_is_invalid(signed: Signed) -> None:
    envelope = json.loads(signed.envelope.read_text())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 1
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    signed.envelope.write_text(json.dumps(envelope))
    done = signed.verify()
    assert done.returncode == 1
    assert f"reports/{signed.sha}/{at.ENVELOPE_FILE}: no signature verifies with " in done.stderr
    assert "signed with another key, or the envelope was edited after signing" in done.stderr


def test_an_edited_payload_is_invalid_even_when_it_says_passed(signed: Signed) -> None:
    """Rewriting the statement (here: dropping the evidence.json subject) breaks the signature."""
    envelope = json.loads(signed.envelope.read_text())
    statement = signed.statement()
    statement["subject"] = [s for s in statement["subject"] if s.get("name") != "evidence.json"]
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signed.envelope.write_text(json.dumps(envelope))
    done = signed.verify()
    assert done.returncode == 1
    assert "no signature verifies with" in done.stderr


def test_another_key_is_invalid(signed: Signed, tmp_path: Path) -> None:
    assert harness(tmp_path, "keygen", "--out", "other").returncode == 0
    done = harness(signed.repo, "attest", "--verify", f"reports/{signed.sha}", "--pub", str(tmp_path / "other" / at.PUBLIC_KEY_FILE))
    assert done.returncode == 1
    mine = at.key_id(at.load_public_key(signed.keys / at.PUBLIC_KEY_FILE))
    theirs = at.key_id(at.load_public_key(tmp_path / "other" / at.PUBLIC_KEY_FILE))
    assert f"(key id {theirs[:16]}) (the envelope names key id {mine[:16]}): it was signed with another key" in done.stderr


def test_a_keyid_hint_is_never_trusted(signed: Signed) -> None:
    """DSSE: the keyid is an unauthenticated hint, never used to decide: relabelling the signature changes nothing."""
    envelope = json.loads(signed.envelope.read_text())
    envelope["signatures"][0]["keyid"] = "0" * 64
    signed.envelope.write_text(json.dumps(envelope))
    assert signed.verify().returncode == 0


def test_a_signed_predicate_that_contradicts_the_evidence_is_invalid(signed: Signed) -> None:
    """The right key over a statement whose result and lists disagree with the signed evidence.json (a
    producer that signs PASSED over a failure) is refused, naming the field."""
    evidence_file = signed.commit_dir / "evidence.json"
    data = json.loads(evidence_file.read_text())
    data["contracts"][0]["falsifiers"][1] |= {"outcome": "falsified", "counterexample": "1 != 2"}
    data["totals"]["passed"], data["totals"]["falsified"] = 1, 1
    evidence_file.write_text(json.dumps(data, indent=2))
    statement = signed.statement()  # still says PASSED, both passed
    for s in statement["subject"]:
        if s.get("name") == "evidence.json":
            s["digest"]["sha256"] = sha256(evidence_file)
    sign_payload(signed, json.dumps(statement).encode())
    done = signed.verify()
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert any("the predicate's result (\"PASSED\") is not what" in line and '("FAILED")' in line for line in lines), done.stderr
    assert any("the predicate's failedTests ([]) is not what" in line for line in lines), done.stderr
    assert any("the predicate's contractHarnessOutcomes is not what" in line for line in lines), done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a DSSE envelope: not JSON"),
        ('{"payload": 1, "payloadType": "x", "signatures": []}', "not a DSSE envelope: needs string fields payload and payloadType"),
        ('{"payload": "e30=", "payloadType": "x", "signatures": []}', "not a DSSE envelope: signatures must be a non-empty list"),
        ('{"payload": "%%%", "payloadType": "x", "signatures": [{"sig": "AA=="}]}', "the payload is not base64"),
    ],
)
def test_a_malformed_envelope_is_invalid_with_one_line(signed: Signed, content: str, message: str) -> None:
    signed.envelope.write_text(content)
    done = signed.verify()
    assert done.returncode == 1
    assert done.stderr.splitlines()[0].startswith(f"reports/{signed.sha}/{at.ENVELOPE_FILE}: {message}")
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------ bad input


def test_attest_on_a_directory_without_evidence_is_exit_2(signed: Signed) -> None:
    (signed.repo / "reports" / "empty").mkdir()
    done = harness(signed.repo, "attest", "reports/empty", "--key", str(signed.keys / at.PRIVATE_KEY_FILE))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "harness attest: error: reports/empty: holds no evidence.json; attest a commit directory harness verify "
        "wrote (DIR/<sha>/), e.g. harness verify contracts/ first"
    )
    assert not (signed.repo / "reports" / "empty" / at.ENVELOPE_FILE).exists()


def test_verify_without_an_envelope_is_exit_2(signed: Signed) -> None:
    signed.envelope.unlink()
    done = signed.verify()
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"harness attest --verify: error: reports/{signed.sha}/{at.ENVELOPE_FILE}: no such file; sign the evidence "
        f"first: harness attest reports/{signed.sha} --key keys/attestation.key"
    )
    check = at.verify_attestation(signed.commit_dir, public_key=signed.keys / at.PUBLIC_KEY_FILE, repo_root=signed.repo)
    assert (check.valid, check.bad_input) == (False, True)


def test_verify_without_any_public_key_is_exit_2(signed: Signed) -> None:
    done = harness(signed.repo, "attest", "--verify", f"reports/{signed.sha}")
    assert done.returncode == 2
    assert "no public key to check it with: pass --pub KEY.pub, or set attestation_public_key" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such public key file"),
        ("garbage\n", "not a PEM public key"),
        ("private", "a private key; verifying takes the public key"),
    ],
)
def test_an_unreadable_public_key_is_exit_2(signed: Signed, tmp_path: Path, content: str | None, message: str) -> None:
    pub = tmp_path / "k.pub"
    if content == "private":
        shutil.copy(signed.keys / at.PRIVATE_KEY_FILE, pub)
    elif content is not None:
        pub.write_text(content)
    done = harness(signed.repo, "attest", "--verify", f"reports/{signed.sha}", "--pub", str(pub))
    assert done.returncode == 2
    assert done.stderr.startswith(f"harness attest --verify: error: {pub}: {message}")
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such private key file (make a key pair with harness keygen --out keys)"),
        ("garbage\n", "not a PEM private key"),
        ("public", "a public key; --key takes the private key"),
    ],
)
def test_an_unreadable_private_key_is_exit_2_and_nothing_is_written(
    signed: Signed, tmp_path: Path, content: str | None, message: str
) -> None:
    key = tmp_path / "k.key"
    if content == "public":
        shutil.copy(signed.keys / at.PUBLIC_KEY_FILE, key)
    elif content is not None:
        key.write_text(content)
    before = signed.envelope.read_bytes()
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(key))
    assert done.returncode == 2
    assert done.stderr.startswith(f"harness attest: error: {key}: {message}")
    assert signed.envelope.read_bytes() == before


def test_an_encrypted_private_key_is_refused_with_what_to_do(signed: Signed, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = at.load_private_key(signed.keys / at.PRIVATE_KEY_FILE)
    (tmp_path / "enc.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ))
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(tmp_path / "enc.key"))
    assert done.returncode == 2
    assert "the private key is encrypted; harness attest needs an unencrypted PKCS8 PEM key" in done.stderr


def test_a_loose_private_key_is_signed_with_but_warned_about(signed: Signed) -> None:
    key = signed.keys / at.PRIVATE_KEY_FILE
    key.chmod(0o644)
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(key))
    assert done.returncode == 0
    assert done.stderr.strip() == (
        f"harness attest: warning: {key}: the private key is readable by others (mode 0644); chmod 600 {key}"
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"dirty": True}, "recorded on a tree with uncommitted changes, so it is not commit"),
        ({"complete": False}, "the run was interrupted, the evidence is incomplete; run it again: harness verify contracts/"),
        ({"commit": None}, "recorded outside a git checkout (no commit to attest)"),
        ({"dirty": None}, "git could not tell whether the tree had uncommitted changes when it was recorded"),
    ],
)
def test_evidence_that_is_not_its_commits_is_not_signed(signed: Signed, edit: dict[str, Any], message: str) -> None:
    file = signed.commit_dir / "evidence.json"
    file.write_text(json.dumps(json.loads(file.read_text()) | edit))
    before = signed.envelope.read_bytes()
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(signed.keys / at.PRIVATE_KEY_FILE))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert signed.envelope.read_bytes() == before


def test_a_contract_changed_since_the_evidence_is_not_signed(signed: Signed) -> None:
    with open(signed.repo / CONTRACT, "a") as fh:
        fh.write("# changed after verify\n")
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(signed.keys / at.PRIVATE_KEY_FILE))
    assert done.returncode == 2
    assert f"harness attest: error: {CONTRACT}: changed since the evidence was recorded" in done.stderr
    assert "run it again: harness verify contracts/ --out reports" in done.stderr


def test_teeth_of_another_commit_is_not_signed(signed: Signed) -> None:
    file = signed.commit_dir / "teeth.json"
    file.write_text(json.dumps(json.loads(file.read_text()) | {"commit": "f" * 40}))
    done = harness(signed.repo, "attest", f"reports/{signed.sha}", "--key", str(signed.keys / at.PRIVATE_KEY_FILE))
    assert done.returncode == 2
    assert f"teeth.json: of commit ffffffffffff, the evidence of {signed.sha[:12]}; run it at this commit: harness teeth contracts/" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attest", "reports/x"], "sign with --key KEY"),
        (["attest", "reports/x", "--pub", "k.pub"], "--pub is for --verify"),
        (["attest", "--verify", "reports/x", "--key", "k.key"], "--verify checks with a public key"),
    ],
)
def test_flag_misuse_is_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    done = harness(tmp_path, *argv)
    assert done.returncode == 2
    assert message in done.stderr


# ------------------------------------------------------------------------------------------ the predicate


def test_the_predicate_reports_the_true_outcomes(template: Signed) -> None:
    """One test per falsifier: failing outcomes in failedTests, not_run/deferred in warnedTests, each one's
    own outcome in the extension field; a partial run is at best WARNED."""
    evidence = read_evidence(template.commit_dir)
    contract = evidence.contracts[0]
    first, second = contract.falsifiers

    def with_outcomes(*outcomes: Outcome, selection: Any = None) -> Any:
        results = tuple(dataclasses.replace(r, outcome=o) for r, o in zip((first, second), outcomes))
        return dataclasses.replace(evidence, contracts=(dataclasses.replace(contract, falsifiers=results),), selection=selection)

    cases = [
        ((Outcome.PASSED, Outcome.PASSED), None, "PASSED", ["FALSIFY-ATT-001", "FALSIFY-ATT-002"], [], []),
        ((Outcome.PASSED, Outcome.NOT_RUN), None, "WARNED", ["FALSIFY-ATT-001"], ["FALSIFY-ATT-002"], []),
        ((Outcome.DEFERRED, Outcome.VACUOUS), None, "FAILED", [], ["FALSIFY-ATT-001"], ["FALSIFY-ATT-002"]),
        ((Outcome.FLAKY, Outcome.ERROR), None, "FAILED", [], [], ["FALSIFY-ATT-001", "FALSIFY-ATT-002"]),
        ((Outcome.NOT_RUN, Outcome.NOT_RUN), None, "WARNED", [], ["FALSIFY-ATT-001", "FALSIFY-ATT-002"], []),
        ((Outcome.PASSED, Outcome.PASSED), {"k": ["FALSIFY-ATT-*"]}, "WARNED", ["FALSIFY-ATT-001", "FALSIFY-ATT-002"], [], []),
    ]
    for outcomes, selection, result, passed, warned, failed in cases:
        body = at.predicate(with_outcomes(*outcomes, selection=selection))
        assert (body["result"], body["passedTests"], body["warnedTests"], body["failedTests"]) == (result, passed, warned, failed), outcomes
        assert [o["outcome"] for o in body[at.OUTCOMES_FIELD]] == [o.value for o in outcomes]
        assert "url" not in body


def test_the_predicate_names_the_ci_run() -> None:
    github = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42"}
    assert at.ci_run_url(github) == "https://github.com/o/r/actions/runs/42"
    assert at.ci_run_url({"CI_JOB_URL": "https://gitlab.example.com/o/r/-/jobs/7"}) == "https://gitlab.example.com/o/r/-/jobs/7"
    assert at.ci_run_url({}) is None


# ------------------------------------------------------------------------------------------ interoperability


def test_our_envelope_verifies_with_the_reference_implementations(signed: Signed) -> None:
    """securesystemslib's DSSE Envelope verifies our signature over its own PAE, and the payload parses as
    the in-toto attestation protobufs' Statement v1 and test-result predicate."""
    import google.protobuf.json_format as pb_json
    from cryptography.hazmat.primitives import serialization
    from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    public = serialization.load_pem_public_key((signed.keys / at.PUBLIC_KEY_FILE).read_bytes())
    envelope = Envelope.from_dict(json.loads(signed.envelope.read_text()))
    key = SSlibKey.from_crypto(public, keyid=at.key_id(public))
    assert list(envelope.verify([key], 1)) == [at.key_id(public)]
    assert envelope.payload_type == "application/vnd.in-toto+json"

    statement = pb_json.Parse(envelope.payload, statement_pb2.Statement())
    Statement.copy_from_pb(statement).validate()
    assert statement.predicate_type == "https://in-toto.io/attestation/test-result/v0.1"
    assert {s.digest["gitCommit"] for s in statement.subject if "gitCommit" in s.digest} == {signed.sha}

    predicate = json.loads(envelope.payload)["predicate"]
    # The in-toto parsing rules make consumers ignore unrecognised fields; what is left is exactly the
    # predicate's schema (a strict parse refuses any field it does not define).
    result = pb_json.ParseDict(predicate, test_result_pb2.TestResult(), ignore_unknown_fields=True)
    strict = {k: v for k, v in predicate.items() if k != at.OUTCOMES_FIELD}
    assert pb_json.ParseDict(strict, test_result_pb2.TestResult()) == result
    assert (result.result, list(result.passed_tests)) == ("PASSED", ["FALSIFY-ATT-001", "FALSIFY-ATT-002"])
    assert [c.name for c in result.configuration] == [CONTRACT]


def test_an_envelope_the_reference_implementations_sign_verifies_with_ours(signed: Signed) -> None:
    """A statement built with the in-toto attestation protobufs, signed by securesystemslib's CryptoSigner
    with our private key, is valid for harness attest --verify; the same with another key is not."""
    import google.protobuf.json_format as pb_json
    from cryptography.hazmat.primitives import serialization
    from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey

    evidence_file, teeth_file = signed.commit_dir / "evidence.json", signed.commit_dir / "teeth.json"
    subjects = [
        ResourceDescriptor(digest={"gitCommit": signed.sha}).pb,
        ResourceDescriptor(name=CONTRACT, digest={"sha256": sha256(signed.repo / CONTRACT)}).pb,
        ResourceDescriptor(name="evidence.json", digest={"sha256": sha256(evidence_file)}).pb,
        ResourceDescriptor(name="teeth.json", digest={"sha256": sha256(teeth_file)}).pb,
    ]
    predicate = test_result_pb2.TestResult(
        result="PASSED",
        configuration=[ResourceDescriptor(name=CONTRACT, digest={"sha256": sha256(signed.repo / CONTRACT)}).pb],
        passed_tests=["FALSIFY-ATT-001", "FALSIFY-ATT-002"],
    )
    statement = Statement(subjects, "https://in-toto.io/attestation/test-result/v0.1", pb_json.MessageToDict(predicate))
    statement.validate()
    payload = pb_json.MessageToJson(statement.pb).encode()

    def sign_with(private_pem: bytes) -> None:
        private = serialization.load_pem_private_key(private_pem, password=None)
        signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), keyid="reference"))
        envelope = Envelope(payload, "application/vnd.in-toto+json", {})
        envelope.sign(signer)
        signed.envelope.write_text(json.dumps(envelope.to_dict()))

    sign_with((signed.keys / at.PRIVATE_KEY_FILE).read_bytes())
    done = signed.verify()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("harness attest --verify: valid: ")

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    sign_with(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    assert signed.verify().returncode == 1


def test_a_second_signature_by_another_key_does_not_count(signed: Signed) -> None:
    """A signature that does not verify is skipped (DSSE's multi-signature rule); one by our key suffices,
    and an envelope holding only another key's signature, labelled with our key id, is invalid."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    envelope = json.loads(signed.envelope.read_text())
    ours = envelope["signatures"][0]
    body = base64.b64decode(envelope["payload"])
    forged = {"keyid": ours["keyid"], "sig": base64.b64encode(Ed25519PrivateKey.generate().sign(at.pae(at.PAYLOAD_TYPE, body))).decode()}
    envelope["signatures"] = [forged, ours]
    signed.envelope.write_text(json.dumps(envelope))
    assert signed.verify().returncode == 0
    envelope["signatures"] = [forged]
    signed.envelope.write_text(json.dumps(envelope))
    assert signed.verify().returncode == 1


# ------------------------------------------------------------------------------------------ docs/attest.md


def test_the_docs_walk_through_runs_as_printed(tmp_path: Path) -> None:
    """docs/attest.md's bash block, in a fresh committed project, with `harness` on PATH as this checkout."""
    from tests.test_readme import fenced_block, parse_steps, quoted_matches

    doc = Path(__file__).resolve().parents[2] / "docs" / "attest.md"
    block, first_line = fenced_block(doc.read_text(encoding="utf-8"), "## Walk-through")
    steps = parse_steps(block, first_line)
    assert len(steps) >= 8, "the walk-through lost its steps"
    repo = tmp_path / "project"
    make_project(repo, {"my-contract-v1.yaml": contract_text("my-contract-v1", [
        falsifier("FALSIFY-DOC-001", '{python: "fx_falsifiers:holds"}'),
    ])})
    (repo / ".gitignore").write_text(GITIGNORE)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a project")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "harness").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness "$@"\n')
    (bin_dir / "harness").chmod(0o755)
    env = harness_env(
        PATH=os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
    )
    for step in steps:
        done = subprocess.run(["bash", "-c", step.command], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == step.exit_code, f"docs/attest.md:{step.line}: `{step.command}` exited {done.returncode}\n{output}"
        for quote in step.quoted:
            assert quoted_matches(quote, output), f"docs/attest.md:{step.line}: {quote!r} not in the output of `{step.command}`:\n{output}"


@pytest.mark.parametrize("value", ["5", '""', '["keys/a.pub"]'])
def test_a_malformed_attestation_public_key_setting_is_exit_2_naming_pyproject_toml(signed: Signed, value: str) -> None:
    with open(signed.repo / "pyproject.toml", "a") as fh:
        fh.write(f"\n[tool.harness]\nattestation_public_key = {value}\n")
    done = harness(signed.repo, "attest", "--verify", f"reports/{signed.sha}")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "harness attest --verify: error: pyproject.toml: [tool.harness] attestation_public_key must be the path of a "
        "public key file, relative to the repository root"
    ), done.stderr


def test_a_partial_run_is_signed_as_warned_and_says_why(signed: Signed) -> None:
    done = harness(signed.repo, "verify", "contracts/", "-k", "FALSIFY-ATT-001")
    assert done.returncode == 0, done.stdout + done.stderr
    (partial,) = (signed.commit_dir / "partial").iterdir()
    shown = partial.relative_to(signed.repo)
    done = harness(signed.repo, "attest", str(shown), "--key", str(signed.keys / at.PRIVATE_KEY_FILE))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith(
        f"3 subjects (the commit and {CONTRACT}, evidence.json); result WARNED (a partial run: 1 passed, 0 warned, 0 failed)"
    )
    done = harness(signed.repo, "attest", "--verify", str(shown), "--pub", str(signed.keys / at.PUBLIC_KEY_FILE))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("result WARNED")
