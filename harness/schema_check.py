"""The JSON Schema check of one contract file, as problems with line numbers a person can act on.

The schema is `harness/schemas/contract.schema.json` (closed: an unknown key gets a "did you
mean"); jsonschema's errors are rewritten into one message each, reported at the line of the
offending key or value.

Two validators, one schema. jsonschema (Python) is the reference: it decides every document it sees
and its errors make the messages. jsonschema-rs (Rust, about 60 times faster) goes first and is
trusted only when it says "valid"; any other answer (invalid, an error, not installed) hands the
document to jsonschema, so the fast path can make validation faster, never more permissive. The
two agree on valid documents once the schema's `\\s` and `\\S` mean what Python's `re` means by them
(`_python_whitespace_patterns`); tests/harness/test_schema_fast_path.py holds them to that.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from harness import requirements
from harness.contract_doc import ContractDoc, Problems
from harness.schema import load_schema

if TYPE_CHECKING:  # imported on first use: a valid contract set never needs it (the fast path decides)
    import jsonschema

_validators: dict[str, "jsonschema.Draft202012Validator"] = {}
_fast: Callable[[Any], bool] | None = None

# What Python's `re` matches with `\s` in a str pattern: str.isspace(), which Rust's `\s` (Unicode
# White_Space) differs from (U+001C-U+001F, U+0085, U+FEFF). Written out as literal characters so both
# engines read the same class; test_schema_fast_path checks it against `re` over every code point.
PYTHON_WHITESPACE = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _schema_validator(name: str = "contract") -> "jsonschema.Draft202012Validator":
    """The jsonschema validator of the published schema `name` (contract, waivers), built once."""
    if name not in _validators:
        import jsonschema

        schema = load_schema(name)
        # $ref lookups are most of jsonschema's time on 10,000 falsifiers; the published schema
        # keeps its $defs (our refs are acyclic), the validator gets them inlined.
        defs = schema.pop("$defs", {})
        _validators[name] = jsonschema.Draft202012Validator(_inline_refs(schema, defs))
    return _validators[name]


def python_whitespace_pattern(pattern: str) -> str:
    """`pattern` with `\\s` and `\\S` spelled out as PYTHON_WHITESPACE, so a non-Python engine matches what `re`
    does; ValueError for a form not rewritten here (`\\S` inside a class), which turns the fast path off."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            if pair == "\\s":
                out.append(PYTHON_WHITESPACE if in_class else f"[{PYTHON_WHITESPACE}]")
            elif pair == "\\S":
                if in_class:
                    raise ValueError(f"\\S inside a character class: {pattern!r}")
                out.append(f"[^{PYTHON_WHITESPACE}]")
            else:
                out.append(pair)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            if pattern.startswith("^", i + 1):  # `[^` and `[]`/`[^]`: the first `]` is a member, as in `re`
                out.append("^")
                i += 1
            if pattern.startswith("]", i + 1):
                out.append("\\]")
                i += 1
        elif c == "]" and in_class:
            in_class = False
            out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _python_whitespace_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: python_whitespace_pattern(v) if k == "pattern" and isinstance(v, str) else _python_whitespace_patterns(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_python_whitespace_patterns(v) for v in node]
    return node


def fast_validator() -> Callable[[Any], bool] | None:
    """jsonschema-rs's `is_valid` for the contract schema (with Python's whitespace), or None when the
    library is missing or refuses the schema: then jsonschema alone decides, as it always may."""
    global _fast
    if _fast is None:
        try:
            import jsonschema_rs

            _fast = jsonschema_rs.validator_for(_python_whitespace_patterns(load_schema("contract"))).is_valid
        except Exception:  # ImportError, or a release that cannot compile this schema: no fast path
            _fast = _no_fast_path
    return None if _fast is _no_fast_path else _fast


def _no_fast_path(instance: Any) -> bool:
    return False


def _fast_says_valid(data: Any) -> bool:
    fast = fast_validator()
    if fast is None:
        return False
    try:
        return bool(fast(data))
    except Exception:  # a value it cannot convert (NaN, a huge number): jsonschema decides
        return False


_PATTERN_FORMS = {
    "^[a-z0-9]+(-[a-z0-9]+)*-v[0-9]+$(?!\\n)": "a contract id: lowercase words, digits and dashes ending in -vN, e.g. apr-checkpoint-format-v1",
    "^INV-[A-Z0-9-]+-[0-9]{3}$(?!\\n)": "an invariant id like INV-NAME-001",
    "^FALSIFY-[A-Z0-9-]+-[0-9]{3}$(?!\\n)": "a falsifier id like FALSIFY-NAME-001",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$(?!\\n)": "a date YYYY-MM-DD",
    "^[a-zA-Z][a-zA-Z0-9+.-]*://\\S+$(?!\\n)": "a URL with a scheme and no spaces, e.g. https://example.com/page",
    "\\S": "non-empty text",
    "^[^\\s-][^\\s]*$(?!\\n)": "a repository-relative path or node id without spaces, not starting with '-' "
        "(a -k expression is written pytest: \"-k EXPR\" or pytest: {k: EXPR, paths: [tests]})",
    "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$(?!\\n)":
        "module:function, e.g. falsifiers.init_arch_match:falsify_llama_claim_on_qwen2_tensors",
    "^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*/[a-z_]+/[0-9a-f]{8}$(?!\\n)":
        "a mutant id GUARD/OPERATOR/HASH as harness teeth prints it (HASH: 8 lowercase hex digits), "
        "e.g. pretrain.checkpoint:write_checkpoint/negate_compare/54123aa0",
}


def _path_str(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty (null)"
    return type(value).__name__


_JSON_TYPE_WORDS = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping", "null": "null",
}


def _schema_messages(
    error: "jsonschema.ValidationError", written: Mapping[tuple[Any, ...], str], guide: str = "docs/contract-format.md"
) -> list[tuple[tuple[Any, ...], str]]:
    """(path to report at, message) for one jsonschema error; several for additionalProperties.

    `written` is the source text of unquoted scalars YAML read as non-strings (LoadedDoc.written); `guide`
    the page that documents the format, named in the messages that send the author to it."""
    path = tuple(error.absolute_path)
    where = _path_str(path)
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        # The schema closes `requires` to the built-in kinds; a project may register more.
        in_requires = len(path) == 3 and path[0] == "falsifiers" and path[2] == "requires"
        out = []
        for key in error.instance:
            if key in error.schema.get("properties", {}):
                continue
            if in_requires:
                if not requirements.is_known(str(key)):
                    out.append((path + (key,), _unknown_kind(str(key), where)))
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys here: {', '.join(allowed)}"
            out.append((path + (key,), f"unknown key {key!r} in {where} ({hint}); fix or remove it"))
        return out
    if v == "required":
        # jsonschema raises one error per missing key; each yields them all and the caller
        # drops repeats, which is simpler than parsing the key back out of the message.
        missing = [k for k in error.validator_value if k not in error.instance]
        return [(path, f"{where} is missing required key {k!r}; add it (see {guide})") for k in missing]
    if v == "oneOf" and path[-1:] == ("command",) and isinstance(error.instance, list):
        # One command [prog, ...] or a chain [[prog, ...], ...]: the first entry says which was meant, and only
        # that form's problems are worth reading (the other form's "must be a list" is noise).
        branch = 1 if error.instance and isinstance(error.instance[0], list) else 0
        chosen = [e for e in (error.context or []) if e.schema_path and e.schema_path[0] == branch]
        if chosen:
            return [m for sub in chosen for m in _schema_messages(sub, written, guide)]
    if v in ("oneOf", "anyOf"):
        if all(set(branch) == {"required"} for branch in error.validator_value):
            # The binding's "exactly one of python | pytest | command".
            kinds = [k for k in ("python", "pytest", "command", "unbound") if isinstance(error.instance, dict) and k in error.instance]
            if not kinds:
                return [(path, f"{where} needs exactly one of python, pytest or command (or unbound: TEXT); add one")]
            return [(path, f"{where} has {' and '.join(kinds)}; a binding is exactly one of them: keep one")]
        relevant = [
            e for e in (error.context or []) if not (e.validator == "type" and not e.relative_path)
        ]
        if relevant:
            out = []
            for sub in relevant:
                out.extend(_schema_messages(sub, written, guide))
            return out
        types = []
        for branch in error.validator_value:
            t = branch.get("type") or ("string" if branch.get("$ref", "").endswith("/text") else None)
            if t:
                types.append(_JSON_TYPE_WORDS.get(t, t))
        return [(path, f"{where} must be {' or '.join(types) or 'one of the allowed forms'}, not {_kind_of(error.instance)}")]
    if v == "type":
        expected = error.validator_value
        words = " or ".join(_JSON_TYPE_WORDS.get(t, t) for t in ([expected] if isinstance(expected, str) else expected))
        hint = f"; write {words} here (see {guide})"
        if expected == "string" and not isinstance(error.instance, (str, list, dict)):
            # What the author wrote (1.10, yes), not what YAML read (1.1, True).
            hint = f"; quote it: \"{written.get(path, error.instance)}\""
        elif expected == "array" and isinstance(error.instance, (str, int, float)) and not isinstance(error.instance, bool):
            hint = f"; write it as a list: [{error.instance}]"
        return [(path, f"{where} must be {words}, not {_kind_of(error.instance)}{hint}")]
    if v == "pattern":
        form = _PATTERN_FORMS.get(error.validator_value)
        if form is None:
            form = error.schema.get("description") or f"the pattern {error.validator_value}"
        return [(path, f"{where} {error.instance!r} is not {form}; fix the value")]
    if v == "enum":
        allowed = [str(x) for x in error.validator_value]
        close = difflib.get_close_matches(str(error.instance), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [(path, f"{where} {error.instance!r} is not one of {', '.join(allowed)}{hint}; use one of them")]
    if v == "minItems":
        return [(path, f"{where} needs at least {error.validator_value} entr{'y' if error.validator_value == 1 else 'ies'}; add one")]
    if v == "uniqueItems":
        return [(path, f"{where} lists the same entry twice; remove the duplicate")]
    if v in ("minimum", "exclusiveMinimum"):
        op = ">=" if v == "minimum" else ">"
        return [(path, f"{where} must be {op} {error.validator_value}, not {error.instance!r}")]
    if v == "minLength":
        return [(path, f"{where} must not be empty; write the text")]
    if v == "dependentRequired":
        # Every dependentRequired key here needs `command`; name the one the binding has.
        key = next((k for k in error.validator_value if isinstance(error.instance, dict) and k in error.instance), "count_pattern")
        return [(path, f"{where}: {key} applies only to a command binding; remove it or use command:")]
    if v == "const" or v is False or error.validator_value is False:
        return [(path, f"{where} is not allowed here; remove it")]
    return [(path, f"{where}: {error.message}")]


def _unknown_kind(kind: str, where: str) -> str:
    known = requirements.known_kinds()
    close = difflib.get_close_matches(kind, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown requirement kind {kind!r} in {where} ({hint}known kinds: {', '.join(known)}); fix it, or have the "
        f"project register it under the entry point group {requirements.ENTRY_POINT_GROUP} (see docs/contract-format.md)"
    )


def check_schema(doc: ContractDoc, problems: Problems, schema: str = "contract", guide: str = "docs/contract-format.md") -> None:
    """Report every schema violation in `doc` against the published schema `schema` (a contract, or a
    waivers file) once, at its line; marks the doc `schema_ok=False`. `guide` documents the format."""
    if schema == "contract" and _fast_says_valid(doc.data):
        return
    reported: set[tuple[tuple[Any, ...], str]] = set()
    for error in _schema_validator(schema).iter_errors(doc.data):
        for path, message in _schema_messages(error, doc.loaded.written, guide):
            if (path, message) in reported:
                continue
            reported.add((path, message))
            doc.schema_ok = False
            problems.add(doc.loc(path), doc.subject(path), message)

