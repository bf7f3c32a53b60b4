"""The residue check: what PyTorch is left in a converted file, and is each piece marked?

An independent pass over the *output* text of `rewrite` (plain `ast`, no libcst, no decisions
shared with the rewrite) so the summary can never claim more than was done. It finds

* every use of a name bound by a torch import (`torch`, `nn`, `F`, `torchvision`,
  `einops.layers.torch` layers, ...), wherever it stands: a call, a base class, a value;
* every call of a method and every read of an attribute that only torch tensors and modules
  have (core.constructs.TORCH_ONLY), with the argument checks that tell `"a,b".split(",")`
  from `x.split(2, dim=1)`;

and says whether each one carries a `# TODO(pt2jax): CODE why` marker: a comment line in the
block directly above the statement that holds it (above its decorators for a def or class), or
a trailing comment on one of the statement's own lines. A residue inside a compound statement's
header (`class Net(nn.Module):`, `with torch.no_grad():`) is marked above that header.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from ..astwalk import walk as _walk
from ..names import dotted, import_bindings, is_torch_name
from .comments import comment_lines
from .constructs import torch_only_attribute, torch_only_method
from .data import is_data_pipeline

TODO_TAG = "TODO(pt2jax)"
# kept by policy (core.data): marks a residue only when it is a data-pipeline name
NOTE_TAG = "NOTE(pt2jax)"
RESIDUE_CODE = "PTJ920"  # a residue the rewrite left without a marker (lint code catalogue)


@dataclass(frozen=True, order=True)
class Residue:
    line: int  # where the torch construct is (1-based)
    col: int  # 1-based
    statement_line: int  # first line of the statement that holds it (decorators included)
    what: str  # `torch.no_grad`, `.register_buffer()`, `.device`
    reason: str  # why it is torch (and what to do), for the marker
    marked: bool

    @property
    def code(self) -> str:
        return RESIDUE_CODE

    @property
    def message(self) -> str:
        """`what: reason`, without saying the name twice."""
        if self.reason.startswith((self.what, self.what.lstrip("."))):
            return self.reason
        return f"{self.what}: {self.reason}"


def _local_names(node: ast.AST) -> set[str]:
    """Names a function binds itself (parameters, assignments, defs, imports): they shadow a
    module-level torch import inside it (the helpers' own `def init(...)` is not torch.nn.init)."""
    names: set[str] = set()
    args = getattr(node, "args", None)
    if isinstance(args, ast.arguments):
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                names.add(a.arg)
    for child in _walk(node):
        if child is node:
            continue
        if isinstance(child, ast.Name) and type(child.ctx) is ast.Store:
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):  # `import numpy as F` in a function
            names.update(name for name, qual in import_bindings(child) if not is_torch_name(qual))
    return names


class _Finder(ast.NodeVisitor):
    def __init__(self, torch_names: dict[str, str]):
        self.torch_names = torch_names  # bound name -> qualified torch name
        self.shadowed: list[tuple[bool, set[str]]] = []  # (is a class body, names bound there)
        self.statement: ast.stmt | None = None
        self.header_of: ast.stmt | None = None
        self.found: list[tuple[ast.AST, ast.stmt, str, str]] = []
        self.called: set[int] = set()  # ids of x.m in x.m(...): a method call, not the attribute .m

    # statements: remember the innermost one; a compound statement's body is its own statements
    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            outer = self.statement
            self.statement = node
            super().generic_visit(node)
            self.statement = outer
        else:
            super().generic_visit(node)

    def visit_FunctionDef(self, node: ast.AST) -> None:
        # no torch import left (the usual output): nothing to shadow, no walk of the function
        local = _local_names(node) & set(self.torch_names) if self.torch_names else set()
        self.shadowed.append((False, local))
        self.generic_visit(node)
        self.shadowed.pop()

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer = self.statement
        self.statement = node
        for part in (*node.bases, *node.keywords, *node.decorator_list):
            self.visit(part)  # evaluated in the enclosing scope
        local: set[str] = set()
        for stmt in node.body:  # a class body binds only its own top-level names
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                local.add(stmt.name)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                local |= {n.id for t in targets for n in _walk(t) if isinstance(n, ast.Name)}
        self.shadowed.append((True, local & set(self.torch_names)))
        for stmt in node.body:
            self.visit(stmt)
        self.statement = outer
        self.shadowed.pop()

    def _is_shadowed(self, name: str) -> bool:
        """Python's rule: function scopes nest; a class body is seen only by its own statements."""
        for depth, (is_class, names) in enumerate(reversed(self.shadowed)):
            if is_class and depth > 0:
                continue
            if name in names:
                return True
        return False

    def visit_Import(self, node: ast.Import) -> None:  # an import is not a use
        return

    visit_ImportFrom = visit_Import

    def _add(self, node: ast.AST, what: str, reason: str) -> None:
        assert self.statement is not None
        self.found.append((node, self.statement, what, reason))

    def visit_Name(self, node: ast.Name) -> None:
        if type(node.ctx) is ast.Load and node.id in self.torch_names and not self._is_shadowed(node.id):
            q = self.torch_names[node.id]
            self._add(node, q, f"{q} is PyTorch and was not converted")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = _dotted(node)
        if chain is not None and chain[0] in self.torch_names and not self._is_shadowed(chain[0]):
            q = ".".join([self.torch_names[chain[0]], *chain[1:]])
            self._add(node, q, f"{q} is PyTorch and was not converted")
            return
        if type(node.ctx) is not ast.Del:
            reason = torch_only_attribute(node.attr, receiver_text(node.value))
            if reason is not None and id(node) not in self.called:
                self._add(node, f".{node.attr}", reason)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if type(func) is ast.Attribute:
            chain = _dotted(func)
            if chain is None or chain[0] not in self.torch_names or self._is_shadowed(chain[0]):
                self.called.add(id(func))
                args = [literal_kind(a) for a in node.args]
                kwargs = [k.arg for k in node.keywords]
                reason = torch_only_method(func.attr, args, kwargs, receiver_text(func.value))
                if reason is not None:
                    self._add(node, f".{func.attr}()", reason)
        self.generic_visit(node)


def _dotted(node: ast.AST) -> list[str] | None:
    """`a.b.c` -> ['a', 'b', 'c'] (names.dotted as one list)."""
    found = dotted(node)
    return None if found is None else [found[0].id, *found[1]]


def receiver_text(node: ast.AST) -> str:
    if type(node) is ast.Constant:
        return "<str>" if isinstance(node.value, str) else "<const>"
    if type(node) is ast.JoinedStr:
        return "<str>"
    chain = _dotted(node)
    return ".".join(chain) if chain else "<expr>"


def literal_kind(node: ast.AST) -> str:
    """'str' for a string literal (incl. f-strings), 'other' otherwise (enough for split/chunk)."""
    if (type(node) is ast.Constant and isinstance(node.value, str)) or type(node) is ast.JoinedStr:
        return "str"
    return "other"


def torch_bindings(tree: ast.Module) -> dict[str, str]:
    """Every name some import in the file binds to a torch (or torch-only) name."""
    names: dict[str, str] = {}
    for node in _walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, qual in import_bindings(node):
                if is_torch_name(qual):
                    names[name] = qual
    return names


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None) or []
    return min([stmt.lineno, *(d.lineno for d in decorators)])


def _own_lines(stmt: ast.stmt) -> range:
    """The physical lines a statement owns for a trailing marker: all of a simple statement,
    only the header of a compound one."""
    body = getattr(stmt, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.AST):
        return range(_first_line(stmt), body[0].lineno)
    return range(_first_line(stmt), (stmt.end_lineno or stmt.lineno) + 1)


def find_residue(source: str, tree: ast.Module | None = None, own: frozenset[str] = frozenset()) -> list[Residue]:
    """Every torch construct left in `source`, marked or not, in source order. `own`: names
    imported from the rewrite run's own converted files (a folder run over torchvision itself
    imports `from torchvision.ops import StochasticDepth`): not torch's."""
    if tree is None:
        tree = ast.parse(source)
    finder = _Finder({k: v for k, v in torch_bindings(tree).items() if k not in own})
    finder.visit(tree)
    if not finder.found:
        return []
    tagged, comment_only = comment_lines(source, tree, (TODO_TAG, NOTE_TAG))
    todo_lines, note_lines = tagged[TODO_TAG], tagged[NOTE_TAG]
    out: list[Residue] = []
    seen: set[tuple[int, int, str]] = set()
    for node, stmt, what, reason in finder.found:
        first = _first_line(stmt)
        # a NOTE(pt2jax) marks only what the data-pipeline policy keeps
        markers = todo_lines | note_lines if is_data_pipeline(what) else todo_lines
        marked = any(line in markers for line in _own_lines(stmt))
        line = first - 1
        while not marked and line in comment_only:  # the comment block right above
            marked = line in markers
            line -= 1
        key = (node.lineno, node.col_offset, what)  # type: ignore[attr-defined]
        if key in seen:
            continue
        seen.add(key)
        out.append(Residue(node.lineno, node.col_offset + 1, first, what, reason, marked))  # type: ignore[attr-defined]
    return sorted(out)


def unmarked_residue(source: str, tree: ast.Module | None = None, own: frozenset[str] = frozenset()) -> list[Residue]:
    return [r for r in find_residue(source, tree, own) if not r.marked]


def mark_residue(source: str, residue: list[Residue]) -> str:
    """Insert one `# TODO(pt2jax): PTJ920 ...` comment line above each statement that holds
    unmarked residue (comment-only lines never change the meaning of Python code)."""
    if not residue:
        return source
    lines = source.splitlines(keepends=True)
    by_line: dict[int, list[Residue]] = {}
    for r in residue:
        by_line.setdefault(r.statement_line, []).append(r)
    newline = "\r\n" if "\r\n" in source else "\n"
    for first in sorted(by_line, reverse=True):
        text = lines[first - 1]
        indent = text[: len(text) - len(text.lstrip(" \t"))]
        reasons = list(dict.fromkeys(r.message for r in by_line[first]))
        comment = f"{indent}# {TODO_TAG}: {RESIDUE_CODE} {'; '.join(reasons)}{newline}"
        lines.insert(first - 1, comment)
    return "".join(lines)
