"""Small libcst helpers shared by the passes: source text of a node, dotted names, the names
a node reads or binds, and the shapes of statements the passes look for."""

from __future__ import annotations

import libcst as cst

from ..names import is_torch_name
from ..trainstep import is_training_call

_EMPTY = cst.Module([])


def code_of(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def parse_expr(text: str) -> cst.BaseExpression:
    """A replacement expression from its text. Text cut from the source can hold line breaks
    that were legal only inside the brackets around it (a black-style chain `(x\n  .a()\n  .b())`
    puts them before each `.`): such text is parsed inside parentheses of its own, which stay."""
    try:
        return cst.parse_expression(text)
    except cst.ParserSyntaxError:
        if "\n" not in text and "\r" not in text:
            raise
        return cst.parse_expression(f"({text}\n)" if "#" in text else f"({text})")  # a comment ends its line


def keep_parens(updated: cst.BaseExpression, new: cst.CSTNode, wrapped: set[int]) -> cst.CSTNode:
    """`updated` (parenthesised by the user) was replaced by `new`: when `new` spans lines, the
    user's parentheses go around it, in place of any of its own (one pair either way): parts of
    the old expression (a black-style chain's `\n    .t()`) keep line breaks legal only inside
    them. `wrapped`: the ids of the replacements the rewrite parenthesised itself."""
    if not isinstance(new, cst.BaseExpression):
        return new
    text = code_of(new)
    if "\n" not in text and "\r" not in text:
        return new
    wrapped.discard(id(new))
    return new.with_changes(lpar=updated.lpar, rpar=updated.rpar)


def is_torch_import(node: cst.Import | cst.ImportFrom) -> bool:
    """`import torch...` / `from torch... import ...` (one torch name is enough)."""
    if isinstance(node, cst.ImportFrom):
        return not node.relative and node.module is not None and is_torch_name(_dotted(node.module) or "")
    return any(is_torch_name(_dotted(alias.name) or "") for alias in node.names)


def _receiver_text(node: cst.BaseExpression) -> str:
    """As core.residue.receiver_text on ast: dotted text, '<str>', '<const>' or '<expr>'."""
    if isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
        return "<str>"
    if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary)):
        return "<const>"
    return _dotted(node) or "<expr>"


def _dotted(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def _all_params(params: cst.Parameters) -> list[cst.Param]:
    out = list(params.posonly_params) + list(params.params) + list(params.kwonly_params)
    if isinstance(params.star_arg, cst.Param):
        out.append(params.star_arg)
    if params.star_kwarg is not None:
        out.append(params.star_kwarg)
    return out


def _target_names(node: cst.CSTNode) -> set[str]:
    if isinstance(node, cst.Name):
        return {node.value}
    if isinstance(node, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for element in node.elements:
            out |= _target_names(element.value)
        return out
    if isinstance(node, cst.StarredElement):
        return _target_names(node.value)
    return set()


class _Names(cst.CSTVisitor):
    """Every Name read anywhere below a node (import statements excluded)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)  # the attribute name itself is not a reference
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)  # keyword= names are not references
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        pass


def names_in(node: cst.CSTNode) -> set[str]:
    visitor = _Names()
    node.visit(visitor)
    return visitor.names


def _expr_call(stmt: cst.BaseStatement) -> cst.Call | None:
    """The call of a one-expression statement line (`x.backward()`), else None."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        expr = stmt.body[0]
        if isinstance(expr, cst.Expr) and isinstance(expr.value, cst.Call):
            return expr.value
    return None


def _method_call(stmt: cst.BaseStatement, method: str) -> str | None:
    """`NAME.method()` with no arguments (or only keywords the planner drops) -> NAME."""
    call = _expr_call(stmt)
    if call is None or not isinstance(call.func, cst.Attribute):
        return None
    if not is_training_call(method, sum(a.keyword is None for a in call.args),
                            [a.keyword.value for a in call.args if a.keyword is not None]):
        return None
    if call.func.attr.value != method or not isinstance(call.func.value, cst.Name):
        return None
    return call.func.value.value


def _method_calls(node: cst.CSTNode, methods) -> list[cst.Call]:
    """Every call `<expr>.method(...)` below node, for the given method names."""
    found: list[cst.Call] = []

    class Find(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in methods:
                found.append(call)

    node.visit(Find())
    return found


def _has_comment(lines) -> bool:
    return any(line.comment is not None for line in lines)


def _head(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def paren_code(node: cst.BaseExpression) -> str:
    text = code_of(node)
    if isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or node.lpar:
        return text
    return f"({text})"


def _is_docstring(stmt) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_self_assignment(stmt) -> bool:
    """`a = a` or `a, b = a, b`: nothing left to do."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return False
    target, value = small.targets[0].target, small.value
    if isinstance(target, cst.Tuple) and isinstance(value, cst.Tuple):
        return len(target.elements) == len(value.elements) and all(
            isinstance(t.value, cst.Name) and isinstance(v.value, cst.Name) and t.value.value == v.value.value
            for t, v in zip(target.elements, value.elements))
    return isinstance(target, cst.Name) and isinstance(value, cst.Name) and target.value == value.value


def _contains(tree: cst.CSTNode, target: cst.CSTNode) -> bool:
    if tree is target:
        return True
    found = False

    class Find(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            nonlocal found
            if node is target:
                found = True
            return not found

    tree.visit(Find())
    return found


def _after_imports(body: list) -> int:
    at = 0
    for i, stmt in enumerate(body):
        if _is_docstring(stmt) and i == 0:
            at = 1
        elif isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            at = i + 1
        else:
            break
    return at


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(keepends=True))


def _strip_leading_comments_kept(text: str) -> str:
    return text
