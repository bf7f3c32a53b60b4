"""The Linen class pass's structure steps (module.py calls them): an attribute setup() builds in
a local and assigns once (containers.deferred says which), and `train` threaded to the elements
of a list / dict of submodules where __call__ calls them (containers.container_keywords).
"""

from __future__ import annotations

import libcst as cst

__all__ = ["class_ast", "defer"]


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _self_attr(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return node.attr.value
    return None


class _Names(cst.CSTVisitor):
    def __init__(self):
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)


def _names(node: cst.CSTNode) -> set[str]:
    visitor = _Names()
    node.visit(visitor)
    return visitor.names


def _with_keyword(call: cst.Call, text: str) -> cst.Call:
    """`call` with the keyword argument `text` (`train=train`) added unless it has that keyword."""
    name = text.split("=")[0]
    if any(a.keyword is not None and a.keyword.value == name for a in call.args):
        return call
    arg = cst.parse_expression(f"f({text})").args[0]  # type: ignore[attr-defined]
    args = list(call.args)
    if args:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[*args, arg])


class _ContainerThreading(cst.CSTTransformer):
    """In __call__: an element of a list / dict of submodules taking `train` gets it where it is
    called: `for m in self.h: m(x)` (also `.values()`, `.items()`, `enumerate(...)`, tuple
    targets) and `self.h[i](x)` (containers.element_calls finds the same calls on the ast)."""

    def __init__(self, keywords: dict[str, str]):
        self.keywords = keywords
        self.loops: list[tuple[set[str], str]] = []

    def _bound(self, node: cst.For) -> tuple[set[str], str] | None:
        it, target = node.iter, node.target
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "enumerate" and it.args:
            it = it.args[0].value
            target = target.elements[1].value if isinstance(target, cst.Tuple) and len(target.elements) == 2 else None
        elif isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.attr.value == "items":
            it = it.func.value
            target = target.elements[1].value if isinstance(target, cst.Tuple) and len(target.elements) == 2 else None
        elif isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.attr.value == "values":
            it = it.func.value
        attr = _self_attr(it)
        if attr not in self.keywords or target is None:
            return None
        return _names(target), self.keywords[attr]

    def visit_For(self, node: cst.For) -> None:
        self.loops.append(self._bound(node) or (set(), ""))

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        self.loops.pop()
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = original.func
        if isinstance(func, cst.Subscript) and _self_attr(func.value) in self.keywords:
            return _with_keyword(updated, self.keywords[_self_attr(func.value)])
        if isinstance(func, cst.Name):
            for names, keyword in reversed(self.loops):
                if func.value in names:
                    return _with_keyword(updated, keyword)
        return updated


class _Deferred(cst.CSTTransformer):
    """`self.x` -> the local that setup() builds it in (assigned to self.x at setup's end)."""

    def __init__(self, locals_: dict[str, str]):
        self.locals = locals_

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        attr = _self_attr(original)
        if attr in self.locals:
            return cst.Name(self.locals[attr])
        return updated


class _PlainNames(cst.CSTVisitor):
    """Names used as names (not the `.x` of an attribute)."""

    def __init__(self):
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False


def _plain_names(statements) -> set[str]:
    visitor = _PlainNames()
    for s in statements:
        s.visit(visitor)
    return visitor.names


def defer(statements: list, attrs: list[str]) -> list:
    """setup()'s statements with each of `attrs` built in a local, assigned once at the end."""
    if not attrs:
        return statements
    taken = {attr for attr in attrs if attr in _plain_names(statements)}
    taken |= set().union(*(_plain_names([s]) for s in statements)) if statements else set()
    locals_ = {}
    for attr in attrs:
        name = attr
        while name in taken:
            name += "_"
        taken.add(name)
        locals_[attr] = name
    out = []
    for stmt in statements:  # each assigned once, after the last statement that reads or changes it
        here = _self_attributes(stmt)
        out.append(stmt.visit(_Deferred(locals_)))
        for attr in [a for a in locals_ if a in here]:
            if not any(attr in _self_attributes(s) for s in statements[statements.index(stmt) + 1:]):
                out.append(cst.parse_statement(f"self.{attr} = {locals_[attr]}\n"))
    return out


def _self_attributes(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class Visitor(cst.CSTVisitor):
        def visit_Attribute(self, node: cst.Attribute) -> None:
            attr = _self_attr(node)
            if attr is not None:
                found.add(attr)

    node.visit(Visitor())
    return found


def class_ast(original: cst.ClassDef):
    """The torch class as an `ast` node (containers.py reads its facts off it)."""
    import ast

    return ast.parse(_code(original.with_changes(decorators=[], leading_lines=[]))).body[0]
