"""Mutants of a guard's source, generated from the AST of the module that defines it.

    mutants(source, path, guard, qualname) -> Mutations     # the mutants of one function, method or class

A mutant replaces exactly one node's source span with `ast.unparse` of the mutated node, so the rest of
the file (comments, formatting, line numbers) is untouched and its diff is the one changed span. This
module only builds text; it never writes a file or imports the code it mutates (harness.teeth_run applies a
mutant in a copy of the repository, in the falsifier's child).

Operators (the classic set mutmut and cosmic-ray also apply, written here over `ast` because both of those
tools mutate the working tree or a whole-package import hook of their own, while teeth needs one mutant as a
text edit to drop into a copied tree):

- `return_none`: the body (after its docstring) replaced by `return None`;
- `return_first_arg`: the body replaced by `return <first argument>` (not self/cls);
- `remove_raise`: one `raise` replaced by `pass`;
- `negate_compare`: one comparison operator replaced by its complement (`<` -> `>=`, `in` -> `not in`...);
- `swap_boolop`: one `and` <-> `or`;
- `constant_plus_one` / `constant_minus_one`: a numeric constant compared against moved by one.

A mutant's id is `GUARD/OPERATOR/HASH`, HASH a short digest of the original and mutated text and their
occurrence index within the guard: it survives edits elsewhere in the file (line numbers are not part of
it), so a contract can acknowledge an equivalent mutant by id.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

OPERATORS: tuple[str, ...] = (
    "return_none", "return_first_arg", "remove_raise", "negate_compare", "swap_boolop",
    "constant_plus_one", "constant_minus_one",
)

_COMPLEMENT: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}

_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Mutant:
    id: str
    guard: str  # as the contract names it
    function: str  # the qualname of the function or method mutated
    operator: str
    line: int  # 1-based line of the mutated span in `path`
    path: str  # repository-relative path of the defining module
    mutated_source: str  # the whole module with the mutation applied
    diff: str  # unified diff of the module, original -> mutant
    # The first lines of the body statements the edit changes: the lines coverage.py records when they run
    # (a multi-line statement is recorded at its first line). Empty when the edit is outside the body
    # (a default argument, a decorator): then no falsifier can be ruled out by what it executed.
    statement_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class Mutations:
    mutants: tuple[Mutant, ...] = ()
    not_compiling: int = 0  # candidates skipped because the mutated module does not compile
    functions: tuple[str, ...] = field(default_factory=tuple)  # the qualnames mutated


class GuardNotFound(LookupError):
    """The qualname names no function, method or class in the module's AST."""


def find_definition(tree: ast.Module, qualname: str) -> ast.AST:
    """The FunctionDef/ClassDef node for `qualname` (`f`, `C`, `C.m`, `C.Inner.m`) in `tree`."""
    scope: ast.AST = tree
    for part in qualname.split("."):
        found = None
        for node in getattr(scope, "body", ()):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == part:
                found = node  # the last definition wins, as at run time
        if found is None:
            raise GuardNotFound(f"no definition of {qualname!r} (looked for {part!r})")
        scope = found
    return scope


def _functions(definition: ast.AST, qualname: str) -> list[tuple[str, _FunctionNode]]:
    """The functions a guard covers: itself, or every method defined in a class's body."""
    if isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [(qualname, definition)]
    assert isinstance(definition, ast.ClassDef)
    return [
        (f"{qualname}.{node.name}", node)
        for node in definition.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


class _Lines:
    """Line/column (ast's 1-based lines, UTF-8 byte columns) -> offsets into the source text."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col_byte: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col_byte].decode("utf-8", errors="replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class _Edit:
    operator: str
    start: int
    end: int
    text: str
    line: int
    statement_lines: tuple[int, ...] = ()


def _owning_statements(func: _FunctionNode) -> dict[int, int]:
    """id(node) -> the first line of the innermost body statement holding it, for every node in func's body."""
    owner: dict[int, int] = {}
    # ast.walk is breadth first: an inner statement comes after the one holding it, so it wins.
    for stmt in ast.walk(func):
        if isinstance(stmt, ast.stmt) and stmt is not func:
            for node in ast.walk(stmt):
                owner[id(node)] = stmt.lineno
    return owner


def _body_edits(func: _FunctionNode, lines: _Lines) -> Iterator[_Edit]:
    body = list(func.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]  # keep the docstring
    if not body:
        return
    start, _ = lines.span(body[0])
    _, end = lines.span(body[-1])
    line = body[0].lineno
    # Replacing the body changes behaviour as soon as any statement of it runs.
    executed = tuple(sorted({n.lineno for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.stmt)}))
    yield _Edit("return_none", start, end, "return None", line, executed)
    args = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
    if args and args[0] in ("self", "cls"):
        args = args[1:]
    if args:
        yield _Edit("return_first_arg", start, end, f"return {args[0]}", line, executed)


def _node_edits(func: _FunctionNode, lines: _Lines) -> Iterator[_Edit]:
    owner = _owning_statements(func)

    def at(node: ast.AST) -> tuple[int, ...]:
        return (owner[id(node)],) if id(node) in owner else ()

    for node in ast.walk(func):
        if isinstance(node, ast.Raise):
            yield _Edit("remove_raise", *lines.span(node), "pass", node.lineno, at(node))
        elif isinstance(node, ast.BoolOp):
            swapped = ast.BoolOp(op=ast.Or() if isinstance(node.op, ast.And) else ast.And(), values=node.values)
            yield _Edit("swap_boolop", *lines.span(node), ast.unparse(swapped), node.lineno, at(node))
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                ops = list(node.ops)
                ops[i] = _COMPLEMENT[type(op)]()
                negated = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                yield _Edit("negate_compare", *lines.span(node), ast.unparse(negated), node.lineno, at(node))
            for operand in (node.left, *node.comparators):
                if isinstance(operand, ast.UnaryOp) and isinstance(operand.op, (ast.USub, ast.UAdd)):
                    operand = operand.operand
                if isinstance(operand, ast.Constant) and type(operand.value) in (int, float):
                    for operator, delta in (("constant_plus_one", 1), ("constant_minus_one", -1)):
                        moved = ast.Constant(value=operand.value + delta)
                        yield _Edit(operator, *lines.span(operand), ast.unparse(moved), operand.lineno, at(operand))


def _diff(original: str, mutated: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True), mutated.splitlines(keepends=True),
            fromfile=f"a/{path}", tofile=f"b/{path}", n=2,
        )
    )


def _compiles(source: str, path: str) -> bool:
    try:
        compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def mutants(source: str, path: str, guard: str, qualname: str) -> Mutations:
    """Every mutant of `qualname` (a function, method or class) in the module `source` (at repository-relative `path`).

    Raises SyntaxError when `source` itself does not parse, GuardNotFound when `qualname` is not defined in it."""
    tree = ast.parse(source, filename=path)
    lines = _Lines(source)
    definition = find_definition(tree, qualname)
    found: list[Mutant] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    spans: set[tuple[int, int, str]] = set()
    not_compiling = 0
    functions = _functions(definition, qualname)
    for name, func in functions:
        for edit in (*_body_edits(func, lines), *_node_edits(func, lines)):
            original = source[edit.start:edit.end]
            if original == edit.text or (edit.start, edit.end, edit.text) in spans:
                continue  # no change, or the same edit reached twice
            spans.add((edit.start, edit.end, edit.text))
            key = (name, edit.operator, original, edit.text)
            occurrence = seen.get(key, 0)
            seen[key] = occurrence + 1
            mutated = source[:edit.start] + edit.text + source[edit.end:]
            if not _compiles(mutated, path):
                not_compiling += 1
                continue
            digest = hashlib.sha256(f"{name}\0{original}\0{edit.text}\0{occurrence}".encode()).hexdigest()[:8]
            found.append(
                Mutant(
                    id=f"{guard}/{edit.operator}/{digest}", guard=guard, function=name, operator=edit.operator,
                    line=edit.line, path=path, mutated_source=mutated, diff=_diff(source, mutated, path),
                    statement_lines=edit.statement_lines,
                )
            )
    found.sort(key=lambda m: (m.line, OPERATORS.index(m.operator), m.id))
    return Mutations(tuple(found), not_compiling, tuple(name for name, _ in functions))
