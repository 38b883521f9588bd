"""Signed evidence: an in-toto Statement about one commit's evidence, in a DSSE envelope signed with Ed25519.

    keygen(out_dir) -> KeyPair                     # DIR/attestation.key (0600) and DIR/attestation.pub
    attest(commit_dir, key, repo_root=".") -> Attestation          # writes commit_dir/attestation.dsse.json
    verify_attestation(commit_dir, public_key=None, repo_root=".") -> AttestationCheck

The formats are the specifications' own, so any in-toto verifier reads the files:

- the envelope is DSSE v1 (github.com/secure-systems-lab/dsse): `{"payload": base64(body), "payloadType":
  "application/vnd.in-toto+json", "signatures": [{"keyid", "sig": base64(Ed25519(PAE(type, body)))}]}`;
- the body is an in-toto Statement v1: `subject` is the git commit (`{"digest": {"gitCommit": sha}}`), every
  contract file the evidence lists (its repository-relative path and sha256), evidence.json and teeth.json
  (their names relative to the envelope's directory, so the three files can be copied together, as the
  release audit does, and still verify);
- the predicate is the in-toto test-result predicate v0.1 with exactly its fields (`result`,
  `configuration`, `url`, `passedTests`, `warnedTests`, `failedTests`), one test per falsifier id, plus
  the extension field `contractHarnessOutcomes` (each falsifier's own outcome: falsified, error, vacuous...),
  which the framework's parsing rules let a producer add and oblige other consumers to ignore; it only
  refines the three lists and never changes what they say.

The key id is the sha256 of the raw 32-byte Ed25519 public key, hex. As DSSE requires, a verifier never
trusts the envelope's `keyid` hint: the configured key is tried against every signature.

Verifying checks the signature, then that every subject still matches: each contract file in the tree
(against `repo_root`), evidence.json and teeth.json beside the envelope (a teeth.json written after the
signature is named too), the commit the evidence records, and that the predicate says what evidence.json
says. Any edit after signing is a problem line naming the file. Bad input (no envelope, no or unreadable
key) is `AttestationCheck.bad_input`; the CLI exits 2 for it, 1 for any other problem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import create_atomic, write_atomic
from harness.escape import json_safe
from harness.model import Evidence, Outcome

ENVELOPE_FILE = "attestation.dsse.json"
PRIVATE_KEY_FILE = "attestation.key"
PUBLIC_KEY_FILE = "attestation.pub"
EVIDENCE_FILE = "evidence.json"  # harness.record's; spelled here so verifying never imports jsonschema's reader first
TEETH_FILE = "teeth.json"
# Signed files that live beside the envelope; every other subject name is relative to the repository root.
DIRECTORY_FILES = (EVIDENCE_FILE, TEETH_FILE)
# The private key a suggestion names: where docs/attest.md's `harness keygen --out keys` puts it.
SUGGESTED_KEY = f"keys/{PRIVATE_KEY_FILE}"

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# The in-toto envelope spec also allows the predicate's own media type (its spec file is test-result.md).
PAYLOAD_TYPES = (PAYLOAD_TYPE, "application/vnd.in-toto.test-result+json")
OUTCOMES_FIELD = "contractHarnessOutcomes"  # the predicate's extension field (see the module docstring)

PASSED, WARNED, FAILED = "PASSED", "WARNED", "FAILED"
_FAILED = (Outcome.FALSIFIED, Outcome.ERROR, Outcome.VACUOUS, Outcome.FLAKY)
_WARNED = (Outcome.NOT_RUN, Outcome.DEFERRED)
_HEX_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class AttestError(ValueError):
    """keygen or attest cannot work with its input (the CLI's exit 2); one line naming the file and what to do."""


@dataclass(frozen=True)
class Subject:
    """One in-toto subject: `name` (None for the commit) and its digest set, e.g. {"sha256": "..."}."""

    name: str | None
    digest: Mapping[str, str]

    def describe(self) -> str:
        if "gitCommit" in self.digest:
            return f"commit {self.digest['gitCommit']}"
        return str(self.name)


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path
    key_id: str


@dataclass(frozen=True)
class Attestation:
    """What `attest` wrote: the envelope, the signing key's id, and the statement's subjects and result."""

    path: Path
    key_id: str
    commit: str
    result: str  # the predicate's PASSED | WARNED | FAILED
    subjects: tuple[Subject, ...]
    counts: Mapping[str, int]  # passedTests, warnedTests, failedTests: how many falsifiers in each
    warnings: tuple[str, ...] = ()
    partial: bool = False  # the evidence is of a -k, shard or --changed-since run (so at best WARNED)


@dataclass(frozen=True)
class AttestationCheck:
    """`verify_attestation`'s finding. `valid` only when the signature verifies with the key and every
    subject matches; otherwise `problems` says why, one line each naming the file. `bad_input`: the check
    could not be made (no envelope, no or unreadable public key), so `valid` is False too. `subjects` and
    `key_id` (the key that verified the signature) are set once the signature verified."""

    valid: bool
    problems: tuple[str, ...]
    subjects: tuple[Subject, ...] = ()
    key_id: str | None = None
    bad_input: bool = False
    envelope: Path | None = None
    commit: str | None = None  # the statement's gitCommit subject
    result: str | None = None  # the predicate's result


# ------------------------------------------------------------------------------------------- keys


def key_id(public_key: Any) -> str:
    """The sha256 of an Ed25519 public key's raw 32 bytes, hex: the `keyid` of our signatures."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def keygen(out_dir: str | os.PathLike[str]) -> KeyPair:
    """Make an Ed25519 key pair in `out_dir`: the private key as PKCS8 PEM, created with mode 0600 (never
    readable by others, whatever the umask), and the public key as SubjectPublicKeyInfo PEM. Refuses
    (AttestError, nothing written) when either file exists: a key is never overwritten."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out_dir)
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise AttestError(f"{path}: exists; harness keygen never overwrites a key (move it away or pick another --out)")
    if out.exists() and not out.is_dir():
        raise AttestError(f"{out}: not a directory (give --out a directory to write the key pair into)")
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    try:
        create_atomic(private_path, private_pem, mode=0o600)
    except FileExistsError:
        raise AttestError(f"{private_path}: exists; harness keygen never overwrites a key") from None
    except OSError as exc:
        raise AttestError(f"{private_path}: cannot write it: {exc.strerror or exc}") from None
    try:
        create_atomic(public_path, public_pem)
    except OSError as exc:
        os.unlink(private_path)  # a private key without its public half is of no use: leave nothing behind
        why = "exists; harness keygen never overwrites a key" if isinstance(exc, FileExistsError) else f"cannot write it: {exc.strerror or exc}"
        raise AttestError(f"{public_path}: {why}") from None
    return KeyPair(private_path, public_path, key_id(private.public_key()))


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AttestError(f"{path}: no such {what} file (make a key pair with harness keygen --out keys)") from None
    except IsADirectoryError:
        raise AttestError(f"{path}: a directory, not a {what} file") from None
    except OSError as exc:
        raise AttestError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 private key in a PEM file (PKCS8, unencrypted, as keygen writes it); AttestError otherwise."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    data = _read_key_file(path, "private key")
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise AttestError(f"{path}: a public key; --key takes the private key (harness keygen's {PRIVATE_KEY_FILE})")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise AttestError(f"{path}: the private key is encrypted; harness attest needs an unencrypted PKCS8 PEM key (harness keygen writes one)") from None
    except (ValueError, binascii.Error) as exc:
        raise AttestError(f"{path}: not a PEM private key ({exc})") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for some key types
        raise AttestError(f"{path}: cannot load the private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AttestError(f"{path}: a {type(key).__name__.removeprefix('_')}, not an Ed25519 key; make one with harness keygen --out keys")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 public key in a PEM file (SubjectPublicKeyInfo, as keygen writes it); AttestError otherwise."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise AttestError(f"{path}: a private key; verifying takes the public key (harness keygen's {PUBLIC_KEY_FILE}), keep the private one secret")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, binascii.Error) as exc:
        raise AttestError(f"{path}: not a PEM public key ({exc})") from None
    except Exception as exc:
        raise AttestError(f"{path}: cannot load the public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AttestError(f"{path}: a {type(key).__name__.removeprefix('_')}, not an Ed25519 key; make one with harness keygen --out keys")
    return key


# ------------------------------------------------------------------------------------------- DSSE


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's Pre-Authentication Encoding, what is signed:
    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in bytes as ASCII decimal."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _b64decode(text: str) -> bytes:
    """DSSE's Base64: standard or URL-safe (a verifier must accept either), padding optional; nothing else."""
    if not re.fullmatch(r"[A-Za-z0-9+/\-_]*={0,2}", text):
        raise ValueError("not base64")
    standard = text.replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)


# -------------------------------------------------------------------------------------- statement


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def predicate_lists(evidence: Evidence) -> dict[str, list[str]]:
    """The predicate's three lists: falsifier ids that passed, that warned (not_run, deferred: never a pass),
    that failed (falsified, error, vacuous, flaky), in evidence order."""
    lists: dict[str, list[str]] = {"passedTests": [], "warnedTests": [], "failedTests": []}
    for r in evidence.results:
        key = "failedTests" if r.outcome in _FAILED else "warnedTests" if r.outcome in _WARNED else "passedTests"
        lists[key].append(r.id)
    return lists


def predicate_result(evidence: Evidence) -> str:
    """FAILED when a falsifier failed; WARNED when one did not run, nothing passed, or the run was partial
    (a -k, shard or --changed-since run: its lists do not cover the commit's falsifiers); else PASSED.
    The true outcomes: waivers change a gate's verdict, never what was observed."""
    lists = predicate_lists(evidence)
    if lists["failedTests"]:
        return FAILED
    if lists["warnedTests"] or not lists["passedTests"] or evidence.selection is not None:
        return WARNED
    return PASSED


def outcome_list(evidence: Evidence) -> list[dict[str, Any]]:
    """The predicate's extension: each falsifier's own outcome."""
    return [
        {"falsifier": r.id, "contract": r.contract_id, "invariants": list(r.invariant), "outcome": r.outcome.value}
        for r in evidence.results
    ]


def ci_run_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """The CI run this happens in, for the predicate's `url`: GitHub Actions or GitLab CI; None elsewhere."""
    github = [environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if all(github):
        return f"{github[0].rstrip('/')}/{github[1]}/actions/runs/{github[2]}"
    return environ.get("CI_JOB_URL") or None


def predicate(evidence: Evidence, url: str | None = None) -> dict[str, Any]:
    """The in-toto test-result v0.1 predicate of `evidence` (its `configuration`: the contract files run)."""
    body: dict[str, Any] = {
        "result": predicate_result(evidence),
        "configuration": [
            {"name": c.path, "digest": {"sha256": c.sha256}, "annotations": {"contract": c.id, "version": c.version}}
            for c in evidence.contracts
        ],
    }
    if url:
        body["url"] = url
    body.update(predicate_lists(evidence))
    body[OUTCOMES_FIELD] = outcome_list(evidence)
    return body


def statement(evidence: Evidence, subjects: list[dict[str, Any]], url: str | None = None) -> dict[str, Any]:
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": predicate(evidence, url)}


# ------------------------------------------------------------------------------------------ attest


def _read_evidence(directory: Path) -> Evidence:
    from harness.record import EvidenceError, read_evidence

    if not (directory / EVIDENCE_FILE).is_file():
        what = "no such directory" if not directory.exists() else f"holds no {EVIDENCE_FILE}"
        raise AttestError(
            f"{directory}: {what}; attest a commit directory harness verify wrote (DIR/<sha>/), "
            "e.g. harness verify contracts/ first"
        )
    try:
        return read_evidence(directory / EVIDENCE_FILE)
    except EvidenceError as exc:
        raise AttestError(str(exc)) from None


def _rerun(command: tuple[str, ...], fallback: str) -> str:
    return shlex.join(command) if command else fallback


def attest(
    commit_dir: str | os.PathLike[str], key: str | os.PathLike[str], *, repo_root: str | os.PathLike[str] = "."
) -> Attestation:
    """Sign the evidence in `commit_dir` (and its teeth.json, if any) with the Ed25519 private key file `key`:
    writes commit_dir/attestation.dsse.json atomically, replacing an older one. Raises AttestError (nothing
    written) for evidence that cannot describe its commit: missing, unreadable, interrupted, recorded on a
    tree with uncommitted changes or outside git, or whose contract files (or teeth.json) do not match it."""
    directory = Path(commit_dir)
    repo = Path(repo_root)
    evidence = _read_evidence(directory)
    again = _rerun(evidence.command, "harness verify contracts/")
    if not evidence.complete:
        raise AttestError(f"{directory / EVIDENCE_FILE}: the run was interrupted, the evidence is incomplete; run it again: {again}")
    if evidence.commit is None:
        raise AttestError(f"{directory / EVIDENCE_FILE}: recorded outside a git checkout (no commit to attest); run harness verify in the repository")
    if evidence.dirty:
        raise AttestError(
            f"{directory / EVIDENCE_FILE}: recorded on a tree with uncommitted changes, so it is not commit "
            f"{evidence.commit[:12]}'s; commit (or stash) them and run it again: {again}"
        )
    if evidence.dirty is None:  # git could not say (e.g. `git status` failed): not known to be the commit's
        raise AttestError(
            f"{directory / EVIDENCE_FILE}: git could not tell whether the tree had uncommitted changes when it was "
            f"recorded, so it is not known to be commit {evidence.commit[:12]}'s; run it again: {again}"
        )
    subjects: list[dict[str, Any]] = [{"digest": {"gitCommit": evidence.commit}}]
    for contract in evidence.contracts:
        path = repo / contract.path
        try:
            now = sha256_file(path)
        except FileNotFoundError:
            raise AttestError(
                f"{path}: no such contract file, but the evidence ran it (is {repo} the repository root? "
                f"run harness attest from there)"
            ) from None
        except OSError as exc:
            raise AttestError(f"{path}: cannot read it: {exc.strerror or exc}") from None
        if now != contract.sha256:
            raise AttestError(f"{path}: changed since the evidence was recorded (sha256 {contract.sha256[:12]} then, {now[:12]} now); run it again: {again}")
        subjects.append({"name": contract.path, "digest": {"sha256": now}})
    subjects.append({"name": EVIDENCE_FILE, "digest": {"sha256": sha256_file(directory / EVIDENCE_FILE)}})
    if (directory / TEETH_FILE).exists():
        _check_teeth(directory, evidence)
        subjects.append({"name": TEETH_FILE, "digest": {"sha256": sha256_file(directory / TEETH_FILE)}})

    private = load_private_key(key)
    warnings: tuple[str, ...] = ()
    mode = stat.S_IMODE(os.stat(key).st_mode)
    if mode & 0o077:
        warnings = (f"{key}: the private key is readable by others (mode {mode:04o}); chmod 600 {shlex.quote(str(key))}",)
    body = json.dumps(json_safe(statement(evidence, subjects, ci_run_url())), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    signer_id = key_id(private.public_key())
    envelope = {
        "payload": base64.b64encode(body).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": signer_id, "sig": base64.b64encode(private.sign(pae(PAYLOAD_TYPE, body))).decode("ascii")}],
    }
    path = directory / ENVELOPE_FILE
    try:
        write_atomic(path, json.dumps(envelope, indent=2) + "\n")
    except OSError as exc:
        raise AttestError(f"{path}: cannot write it: {exc.strerror or exc}") from None
    lists = predicate_lists(evidence)
    return Attestation(
        path=path,
        key_id=signer_id,
        commit=evidence.commit,
        result=predicate_result(evidence),
        subjects=tuple(Subject(s.get("name"), s["digest"]) for s in subjects),
        counts={k: len(v) for k, v in lists.items()},
        warnings=warnings,
        partial=evidence.selection is not None,
    )


def _check_teeth(directory: Path, evidence: Evidence) -> None:
    """teeth.json beside the evidence must be a finished run of the same clean commit, or it is not signed."""
    from harness.teeth_record import TeethError, read_teeth

    try:
        teeth = read_teeth(directory / TEETH_FILE)
    except TeethError as exc:
        raise AttestError(str(exc)) from None
    again = _rerun(teeth.command, "harness teeth contracts/")
    if teeth.commit != evidence.commit:
        raise AttestError(
            f"{directory / TEETH_FILE}: of commit {str(teeth.commit)[:12]}, the evidence of {str(evidence.commit)[:12]}; "
            f"run it at this commit: {again}"
        )
    if not teeth.complete:
        raise AttestError(f"{directory / TEETH_FILE}: the teeth run was interrupted, it is incomplete; run it again: {again}")
    if teeth.dirty is not False:
        why = "on a tree with uncommitted changes" if teeth.dirty else "where git could not tell whether the tree was clean"
        raise AttestError(f"{directory / TEETH_FILE}: recorded {why}; commit any changes and run it again: {again}")


# ------------------------------------------------------------------------------------------ verify


def _configured_key(repo: Path) -> Path | None:
    from harness import project_config

    configured = project_config.load(repo).attestation_public_key
    return None if configured is None else repo / configured


def _safe_name(name: str) -> bool:
    """A subject name we read a file for: a relative POSIX path that stays inside its directory."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and "\\" not in name and all(p not in ("", ".", "..") for p in parts)


def verify_attestation(
    commit_dir: str | os.PathLike[str],
    *,
    public_key: str | os.PathLike[str] | None = None,
    repo_root: str | os.PathLike[str] = ".",
    commit: str | None = None,
) -> AttestationCheck:
    """Check commit_dir/attestation.dsse.json: its signature with `public_key` (a PEM file; default the
    `[tool.harness] attestation_public_key` of repo_root's pyproject.toml), then every subject against the
    files now there: contract files under `repo_root`, evidence.json and teeth.json in `commit_dir`.
    `commit`: the commit the caller is checking (an audit's); an attestation of another one is a problem,
    wherever its files were copied to."""
    from harness.project_config import ProjectConfigError

    directory = Path(commit_dir)
    repo = Path(repo_root)
    path = directory / ENVELOPE_FILE

    def bad(problem: str) -> AttestationCheck:
        return AttestationCheck(False, (problem,), bad_input=True, envelope=path)

    try:
        key_path = Path(public_key) if public_key is not None else _configured_key(repo)
    except ProjectConfigError as exc:
        return bad(str(exc))
    if key_path is None:
        return bad(
            f"{path}: no public key to check it with: pass --pub KEY.pub, or set attestation_public_key = "
            f"\"keys/{PUBLIC_KEY_FILE}\" under [tool.harness] in {repo / 'pyproject.toml'}"
        )
    try:
        key = load_public_key(key_path)
    except AttestError as exc:
        return bad(str(exc))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return bad(f"{path}: no such file; sign the evidence first: harness attest {shlex.quote(str(directory))} --key {SUGGESTED_KEY}")
    except OSError as exc:
        return bad(f"{path}: cannot read it: {exc.strerror or exc}")

    def invalid(*problems: str, **known: Any) -> AttestationCheck:
        return AttestationCheck(False, tuple(problems), envelope=path, **known)

    # The envelope, decoded as DSSE says; nothing of the payload is interpreted before a signature verifies.
    try:
        envelope = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return invalid(f"{path}: not a DSSE envelope: not JSON ({exc})")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str) or not isinstance(envelope.get("payloadType"), str):
        return invalid(f"{path}: not a DSSE envelope: needs string fields payload and payloadType")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures or not all(isinstance(s, dict) and isinstance(s.get("sig"), str) for s in signatures):
        return invalid(f"{path}: not a DSSE envelope: signatures must be a non-empty list of {{keyid, sig}}")
    try:
        body = _b64decode(envelope["payload"])
    except (ValueError, binascii.Error):
        return invalid(f"{path}: the payload is not base64")
    payload_type = envelope["payloadType"]
    message = pae(payload_type, body)
    signer = key_id(key)
    verified = False
    for signature in signatures:
        try:
            key.verify(_b64decode(signature["sig"]), message)
        except Exception:  # InvalidSignature, or a sig that is not base64 / not 64 bytes
            continue
        verified = True
        break
    if not verified:
        hints = sorted({str(s.get("keyid")) for s in signatures if s.get("keyid")})
        named = f" (the envelope names key id {', '.join(h[:16] for h in hints)})" if hints else ""
        return invalid(
            f"{path}: no signature verifies with {key_path} (key id {signer[:16]}){named}: it was signed with "
            "another key, or the envelope was edited after signing"
        )
    if payload_type not in PAYLOAD_TYPES:
        return invalid(f"{path}: payloadType {payload_type!r} is not an in-toto statement ({PAYLOAD_TYPE})", key_id=signer)
    try:
        stmt = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        return invalid(f"{path}: the signed payload is not JSON ({exc})", key_id=signer)
    shape = _statement_problem(stmt)
    if shape:
        return invalid(f"{path}: {shape}", key_id=signer)

    subjects = tuple(Subject(s.get("name"), dict(s["digest"])) for s in stmt["subject"])
    problems: list[str] = []
    commits = [s.digest["gitCommit"] for s in subjects if "gitCommit" in s.digest]
    signed: dict[str, str] = {}
    for subject in subjects:
        if "gitCommit" in subject.digest:
            continue
        name, digest = subject.name, subject.digest.get("sha256")
        if not isinstance(name, str) or not _safe_name(name):
            problems.append(f"{path}: subject {name!r} is not a relative path this check can read")
            continue
        if not isinstance(digest, str):
            problems.append(f"{path}: subject {name} has no sha256 digest to check")
            continue
        signed[name] = digest
        file = (directory if name in DIRECTORY_FILES else repo) / name
        try:
            now = sha256_file(file)
        except FileNotFoundError:
            problems.append(f"{file}: missing (signed with sha256 {digest[:12]})")
            continue
        except OSError as exc:
            problems.append(f"{file}: cannot read it: {exc.strerror or exc}")
            continue
        if now != digest.lower():
            problems.append(f"{file}: edited after signing (sha256 {digest[:12]} signed, {now[:12]} now)")

    # What the attestation must cover: the evidence, its contracts, a teeth.json beside it, its commit.
    if EVIDENCE_FILE not in signed:
        problems.append(f"{directory / EVIDENCE_FILE}: not among the signed subjects")
    if TEETH_FILE not in signed and (directory / TEETH_FILE).exists():
        problems.append(f"{directory / TEETH_FILE}: not signed (written after the attestation?); sign again: harness attest {shlex.quote(str(directory))} --key {SUGGESTED_KEY}")
    if len(commits) != 1:
        problems.append(f"{path}: needs exactly one gitCommit subject, has {len(commits)}")
    if commit is not None and commits and commit not in commits:
        problems.append(f"{path}: an attestation of commit {commits[0][:12]}, not of {commit[:12]}")
    if _HEX_COMMIT.fullmatch(directory.name) and commits and directory.name not in commits:
        problems.append(f"{directory}: named for commit {directory.name[:12]}, but the attestation is of {commits[0][:12]}")
    evidence_ok = EVIDENCE_FILE in signed and not any(p.startswith(f"{directory / EVIDENCE_FILE}:") for p in problems)
    if evidence_ok:
        problems += _against_evidence(directory, stmt["predicate"], signed, commits)
    return AttestationCheck(
        valid=not problems,
        problems=tuple(problems),
        subjects=subjects,
        key_id=signer,
        envelope=path,
        commit=commits[0] if len(commits) == 1 else None,
        result=stmt["predicate"].get("result"),
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with a key given twice is refused: verifiers that keep the first value and verifiers
    that keep the last would read two different statements under one signature."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _statement_problem(stmt: Any) -> str | None:
    if not isinstance(stmt, dict):
        return "the signed payload is not an in-toto statement (not a JSON object)"
    if stmt.get("_type") != STATEMENT_TYPE:
        return f"_type is {stmt.get('_type')!r}, not {STATEMENT_TYPE}"
    if stmt.get("predicateType") != PREDICATE_TYPE:
        return f"predicateType is {stmt.get('predicateType')!r}, not the test-result predicate {PREDICATE_TYPE}"
    subject = stmt.get("subject")
    if not isinstance(subject, list) or not subject:
        return "the statement has no subject"
    for i, s in enumerate(subject):
        if not isinstance(s, dict) or not isinstance(s.get("digest"), dict) or not s["digest"]:
            return f"subject {i} has no digest"
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in s["digest"].items()):
            return f"subject {i}: a digest must map algorithm names to hex strings"
    if not isinstance(stmt.get("predicate"), dict):
        return "the statement has no predicate object"
    return None


def _against_evidence(directory: Path, body: dict[str, Any], signed: dict[str, str], commits: list[str]) -> list[str]:
    """The signed evidence.json agrees with the rest of the statement: its commit, its contract files all
    signed, and a predicate that says what the evidence says (a producer cannot sign PASSED over a failure)."""
    file = directory / EVIDENCE_FILE
    try:
        evidence = _read_evidence(directory)
    except AttestError as exc:
        return [str(exc)]
    problems = []
    if commits and evidence.commit not in commits:
        problems.append(f"{file}: of commit {str(evidence.commit)[:12]}, but the attestation is of {commits[0][:12]}")
    for contract in evidence.contracts:
        if signed.get(contract.path) is None:
            problems.append(f"{directory / ENVELOPE_FILE}: the contract file {contract.path} the evidence ran is not signed")
        elif signed[contract.path].lower() != contract.sha256:
            problems.append(f"{file}: records {contract.path} with sha256 {contract.sha256[:12]}, the attestation signed {signed[contract.path][:12]}")
    expected = {"result": predicate_result(evidence), **predicate_lists(evidence)}
    for field, want in expected.items():
        got = body.get(field, [] if field != "result" else None)
        same = got == want if field == "result" else isinstance(got, list) and sorted(map(str, got)) == sorted(want)
        if not same:
            problems.append(f"{directory / ENVELOPE_FILE}: the predicate's {field} ({_short(got)}) is not what {file} records ({_short(want)})")
    if OUTCOMES_FIELD in body and body[OUTCOMES_FIELD] != outcome_list(evidence):
        problems.append(f"{directory / ENVELOPE_FILE}: the predicate's {OUTCOMES_FIELD} is not what {file} records")
    return problems


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
