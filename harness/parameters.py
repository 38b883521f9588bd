"""Contract parameters: what a contract over an artifact (a model checkpoint, a release build) is run against.

A contract declares `parameters: {NAME: {kind, required, description}}`; `harness verify PATHS --param
NAME=VALUE` gives them. This module owns every step of that, once:

- validation (`check`): names are identifiers, kinds known, and a falsifier's `requires.parameters` (or a
  command binding's `HARNESS_PARAM_<NAME>`) names a declared parameter;
- binding (`bind`): each `--param` is declared by a selected contract, its path exists (of the right kind),
  and its digest is taken in the controller: sha256 of a file, {relative path: sha256} of every file in a
  directory; the bound value rides on the Contract value (`Parameter.given`) wherever the contract goes
  (xdist workers, Ray tasks, teeth's copies), and the evidence records it (`ContractResult.parameters`);
- running (`missing`, `not_run_reason`, `environment`): a falsifier missing a parameter it needs is
  `not_run` with the `--param` that supplies it, never run without it; otherwise its child gets each given
  parameter as `HARNESS_PARAM_<NAME>` (the absolute path for path kinds) whatever the binding kind, and a
  python binding's function the keyword argument NAME when it takes one (`harness.param_env`, in the child).

Knows nothing of what the artifact is: the falsifiers decide what a checkpoint must be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.model import Contract, Falsifier, Parameter, ParameterKind, ParameterValue
# The child's half (harness.child imports it without harness.model), re-exported: one copy of each name.
from harness.param_env import ENV_PREFIX, NAMES_ENV, env_name
NAME = re.compile(r"[a-z][a-z0-9_]*")
_MENTION = re.compile(ENV_PREFIX + r"([A-Za-z0-9_]+)")
_CHUNK = 1 << 20


class ParameterError(ValueError):
    """A `--param` that cannot be used; the message is one line naming the flag and what to do."""


def placeholder(kind: ParameterKind) -> str:
    return "VALUE" if kind is ParameterKind.STRING else "PATH"


# ---------------------------------------------------------------------------------------- validation


def check(docs: Sequence[Any], problems: Any) -> None:
    """Validation problems the schema cannot express: a falsifier needing, or a command binding mentioning,
    a parameter its contract does not declare. (Names and kinds are the schema's: propertyNames, enum.)"""
    for doc in docs:
        data = doc.data if isinstance(doc.data, dict) else {}
        declared = data.get("parameters")
        names = set(declared) if isinstance(declared, dict) else set()
        where = ", ".join(sorted(n for n in names if isinstance(n, str))) or "none"
        falsifiers = data.get("falsifiers")
        for i, fal in enumerate(falsifiers if isinstance(falsifiers, list) else []):
            if not isinstance(fal, dict):
                continue
            fid = fal.get("id") if isinstance(fal.get("id"), str) else doc.contract_id
            requires = fal.get("requires")
            needed = requires.get("parameters") if isinstance(requires, dict) else None
            for j, name in enumerate(needed if isinstance(needed, list) else []):
                if isinstance(name, str) and name not in names:
                    problems.add(
                        doc.loc(("falsifiers", i, "requires", "parameters", j)), fid,
                        f"requires parameter {name!r}, which the contract does not declare (declared: {where}); "
                        f"declare it under parameters: or fix the name",
                    )
            binding = fal.get("binding")
            argv = binding.get("command") if isinstance(binding, dict) else None
            for j, arg in enumerate(argv if isinstance(argv, list) else []):
                for mention in _MENTION.findall(arg) if isinstance(arg, str) else ():
                    if mention.lower() not in names or mention != mention.upper():
                        problems.add(
                            doc.loc(("falsifiers", i, "binding", "command", j)), fid,
                            f"the command mentions {ENV_PREFIX}{mention}, which names no parameter the contract "
                            f"declares (declared: {where}); a parameter NAME reaches the command as "
                            f"{ENV_PREFIX}<NAME upper-cased>",
                        )


def from_yaml(data: Mapping[str, Any] | None, loc: Callable[[tuple[Any, ...]], Any]) -> tuple[Parameter, ...]:
    """The `parameters:` mapping of a validated contract as Parameter values, in the order written."""
    return tuple(
        Parameter(
            name=name, kind=ParameterKind(spec["kind"]), location=loc(("parameters", name)),
            required=bool(spec.get("required", False)), description=str(spec.get("description", "")),
        )
        for name, spec in (data or {}).items()
    )


# ---------------------------------------------------------------------------------------- binding


def parse_assignments(items: Iterable[str], flag: str = "--param") -> dict[str, str]:
    """`NAME=VALUE` strings -> {NAME: VALUE}; ParameterError for a malformed or repeated one."""
    given: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not NAME.fullmatch(name):
            raise ParameterError(
                f"{flag} {item!r}: expected NAME=VALUE with NAME a lower-case identifier (e.g. {flag} checkpoint=PATH)"
            )
        if name in given:
            raise ParameterError(f"{flag} {name}: given twice ({given[name]!r} and {value!r}); give each parameter once")
        given[name] = value
    return given


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _directory_digests(root: Path) -> dict[str, str]:
    """{relative POSIX path: sha256} of every regular file under `root` (symlinks followed), sorted by path."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file():
                found[path.relative_to(root).as_posix()] = _sha256(path)
    return dict(sorted(found.items()))


def value_of(parameter: Parameter, value: str, flag: str, cwd: Path) -> ParameterValue:
    """The recorded value of `--param NAME=value` for `parameter`; ParameterError when the path is unusable."""
    kind = parameter.kind
    if kind is ParameterKind.STRING:
        return ParameterValue(parameter.name, kind, value)
    if not value:
        raise ParameterError(f"{flag} {parameter.name}=: empty path; pass {flag} {parameter.name}=PATH")
    path = (cwd / value).absolute()
    shown = f"{flag} {parameter.name}={value}"
    if not path.exists():
        raise ParameterError(f"{shown}: {path} does not exist; pass the path of an existing {_wanted(kind)}")
    try:
        if path.is_dir():
            if kind is ParameterKind.FILE:
                raise ParameterError(f"{shown}: {path} is a directory; parameter {parameter.name} takes a file")
            return ParameterValue(parameter.name, kind, value, str(path), files=_directory_digests(path))
        if not path.is_file():
            raise ParameterError(f"{shown}: {path} is not a regular file or directory; pass a {_wanted(kind)}")
        if kind is ParameterKind.DIRECTORY:
            raise ParameterError(f"{shown}: {path} is a file; parameter {parameter.name} takes a directory")
        return ParameterValue(parameter.name, kind, value, str(path), sha256=_sha256(path))
    except OSError as exc:
        raise ParameterError(f"{shown}: cannot read {exc.filename or path}: {exc.strerror or exc}") from None


def _wanted(kind: ParameterKind) -> str:
    return {ParameterKind.FILE: "file", ParameterKind.DIRECTORY: "directory"}.get(kind, "file or directory")


def bind(
    contracts: Sequence[Contract], given: Mapping[str, str], *, flag: str = "--param", cwd: Path | None = None
) -> list[Contract]:
    """`contracts` with each declared parameter's given value bound (digests taken now, once per path);
    ParameterError naming the flag when a given parameter is declared by none of them, or its path is unusable."""
    declared = {p.name for c in contracts for p in c.parameters}
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ParameterError(
                f"{flag} {name}: no selected contract declares parameter {name!r} (declared: {known}); "
                "drop it or fix the name"
            )
    cwd = cwd or Path.cwd()
    values: dict[tuple[str, ParameterKind], ParameterValue] = {}
    bound = []
    for contract in contracts:
        params = []
        for p in contract.parameters:
            if p.name in given:
                key = (p.name, p.kind)
                if key not in values:
                    values[key] = value_of(p, given[p.name], flag, cwd)
                p = dataclasses.replace(p, given=values[key])
            params.append(p)
        bound.append(dataclasses.replace(contract, parameters=tuple(params)) if params else contract)
    return bound


def rebind(contract: Contract, recorded: Sequence[ParameterValue]) -> Contract:
    """`contract` bound to the parameters an evidence recorded (harness replay), each path taken again at its
    recorded absolute path; ParameterError when one is no longer declared or what it names has changed."""
    declared = {p.name: p for p in contract.parameters}
    values = {}
    for old in recorded:
        if old.name not in declared:
            raise ParameterError(f"parameter {old.name}: recorded in the evidence, no longer declared by {contract.path}")
        now = value_of(declared[old.name], old.absolute or old.value, "--param", Path.cwd())
        if (now.sha256, now.files) != (old.sha256, old.files):
            raise ParameterError(
                f"parameter {old.name}: {old.absolute} changed since the evidence was recorded (its digests differ); "
                "a replay needs the artifact that failed"
            )
        values[old.name] = old
    params = tuple(dataclasses.replace(p, given=values.get(p.name)) for p in contract.parameters)
    return dataclasses.replace(contract, parameters=params)


def changed(contract: Contract) -> str | None:
    """Why a parameter bound to `contract` no longer names what its digests say (taken again now), or None."""
    for p in contract.parameters:
        old = p.given
        if old is None or old.absolute is None:
            continue
        try:
            now = value_of(p, old.absolute, "--param", Path.cwd())
        except ParameterError as exc:
            return f"parameter {p.name} changed during the run: {exc}"
        if (now.sha256, now.files) != (old.sha256, old.files):
            return f"parameter {p.name}: {old.absolute} changed during the run (its digests differ from those recorded)"
    return None


def given(contract: Contract) -> tuple[ParameterValue, ...]:
    """The values bound to `contract`'s parameters for this run, in declaration order."""
    return tuple(p.given for p in contract.parameters if p.given is not None)


def assignments(contracts: Iterable[Contract]) -> dict[str, str]:
    """{NAME: VALUE as given} of the parameters bound to `contracts` (what a rerun passes as --param)."""
    return {v.name: v.value for c in contracts for v in given(c)}


# ---------------------------------------------------------------------------------------- running


def missing(falsifier: Falsifier, contract: Contract) -> list[Parameter]:
    """The parameters the falsifier needs (the contract's required ones and its `requires.parameters`) not given."""
    needed = set(falsifier.requires.parameters)
    return [p for p in contract.parameters if (p.required or p.name in needed) and p.given is None]


# How the reason of a falsifier not run for want of a parameter begins (the release audit looks for it).
NEEDS_PREFIX = "needs parameter"


def not_run_reason(contract: Contract, absent: Sequence[Parameter]) -> str:
    """`needs parameter NAME (harness verify CONTRACT --param NAME=PATH)`: the command that supplies them."""
    flags = [f"--param {p.name}={placeholder(p.kind)}" for p in absent]
    names = ", ".join(p.name for p in absent)
    noun = "parameter" if len(absent) == 1 else "parameters"
    return f"needs {noun} {names} ({shlex.join(['harness', 'verify', contract.path])} {' '.join(flags)})"


def environment(contract: Contract) -> dict[str, str]:
    """The child's HARNESS_PARAM_<NAME> variables (the absolute path for path kinds) and HARNESS_PARAMS."""
    values = given(contract)
    env = {env_name(v.name): v.absolute if v.absolute is not None else v.value for v in values}
    if values:
        env[NAMES_ENV] = ",".join(v.name for v in values)
    return env
