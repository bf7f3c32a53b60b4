"""Small libcst helpers shared by the passes: source text of a node, dotted names, the names
a node reads or binds, and the shapes of statements the passes look for."""

from __future__ import annotations

import dataclasses

import libcst as cst

from ..names import is_torch_name
from ..trainstep import is_training_call
from .node_ids import NodeSet

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


def keep_parens(updated: cst.BaseExpression, new: cst.CSTNode, wrapped: NodeSet) -> cst.CSTNode:
    """`updated` (parenthesised by the user) was replaced by `new`: when `new` spans lines, the
    user's parentheses go around it instead of its own (`wrapped`: those we added): parts of the
    old expression (a black-style chain's `\n    .t()`) keep line breaks legal only inside them."""
    if not isinstance(new, cst.BaseExpression):
        return new
    text = code_of(new)
    if "\n" not in text and "\r" not in text:
        return new
    wrapped.discard(new)
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


# A node's children for the walks below, read straight off its fields (libcst nodes are
# dataclasses): several times faster than a CSTVisitor, whose dispatch costs a few calls per node
# and per field. Whitespace, parentheses, commas and comment lines hold no names or calls.
_NO_CHILDREN = frozenset({"lpar", "rpar", "leading_lines", "lines_after_decorators", "header", "footer",
                          "comma", "semicolon", "newline", "trailing_whitespace", "dot", "equal", "colon"})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls)
                                     if f.name not in _NO_CHILDREN and not f.name.startswith("whitespace"))
    return names


def _children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """node's child nodes (in field order, which is not always source order), bar whitespace."""
    out: list[cst.CSTNode] = []
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(item for item in value if isinstance(item, cst.CSTNode))
    return out


def names_in(node: cst.CSTNode) -> set[str]:
    """Every Name read anywhere below a node (import statements excluded; an attribute's name and
    a keyword argument's keyword are not references)."""
    names: set[str] = set()
    stack = [node]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is cst.Name:
            names.add(node.value)
        elif kind is cst.Attribute or kind is cst.Arg:
            stack.append(node.value)
        elif kind is not cst.Import and kind is not cst.ImportFrom:
            stack.extend(_children(node))
    return names


def statements_in(node: cst.CSTNode, stop=()):
    """The nodes below `node` (itself included) that are not expressions, in source order
    (statements, blocks, handlers, import aliases, with items, parameters ...), where imports,
    assignment targets and `as` names live. A node of a type in `stop` is yielded, not entered."""
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, stop):
            stack.extend(reversed([c for c in _children(node) if not isinstance(c, cst.BaseExpression)]))


def owning_statements(body: list, targets) -> dict[int, cst.CSTNode]:
    """id(target) -> the statement of `body` holding it (statement targets): one walk, not one a target."""
    wanted, found = {id(t) for t in targets}, {}
    for stmt in body:
        for node in statements_in(stmt):
            if id(node) in wanted:
                found.setdefault(id(node), stmt)
    return found


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
    stack = [node]  # most statements hold none: a quick look first, the visitor for the order
    while stack:
        item = stack.pop()
        if type(item) is cst.Call and type(item.func) is cst.Attribute and item.func.attr.value in methods:
            break
        stack.extend(_children(item))
    else:
        return []
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


def layers_of_mapping(call: cst.Call) -> cst.Call:
    """`Sequential(layers)` / `super().__init__(layers)` handed a mapping of named layers: the
    layers, in order (`*layers.values()`); the names go."""
    value = parse_expr(f"{code_of(call.args[0].value)}.values()")
    return call.with_changes(args=[call.args[0].with_changes(value=value, star="*")])


def unnamed_layers(args):
    """`OrderedDict([("a", A), ("b", B)])` as Sequential's one argument -> `A, B` (same order,
    so verify's weight paths, by index, still line up); any other arguments as they are."""
    if len(args) != 1 or not isinstance(args[0].value, cst.Call):
        return args
    inner = args[0].value
    if not (code_of(inner.func).endswith("OrderedDict") and len(inner.args) == 1
            and isinstance(inner.args[0].value, cst.List)):
        return args
    pairs = inner.args[0].value.elements
    if not all(isinstance(e.value, cst.Tuple) and len(e.value.elements) == 2 for e in pairs):
        return args
    # each pair's comma (and the line break after it) goes with its layer: the layout stays
    return [cst.Arg(e.value.elements[1].value, comma=e.comma if i < len(pairs) - 1 else cst.MaybeSentinel.DEFAULT)
            for i, e in enumerate(pairs)]
