"""What a torch `__init__` becomes in a Linen dataclass (module.py's finish_class puts the
pieces together): its parameters the typed fields (_annotation; _init_convertible says when
there are none), its body setup()'s statements -- `nn.Parameter`s as `self.param(...)`
(_Parameters), attributes named like a field renamed (_Rename), `self.p = p` copies of a field
dropped (_is_copy).
"""

from __future__ import annotations

import libcst as cst

from .module_structure import _code, _names, _self_attr

PARAM_MARKER = "__pt2jax_param__"  # what render_parameter writes; replaced here by self.param(...)
RESERVED = frozenset({"name", "parent"})


def _annotation(param: cst.Param) -> str:
    if param.annotation is not None:
        return _code(param.annotation.annotation)
    default = param.default
    if isinstance(default, cst.Integer):
        return "int"
    if isinstance(default, cst.Float):
        return "float"
    if isinstance(default, cst.UnaryOperation) and isinstance(default.expression, (cst.Integer, cst.Float)):
        return "int" if isinstance(default.expression, cst.Integer) else "float"
    if isinstance(default, cst.Name) and default.value in ("True", "False"):
        return "bool"
    if isinstance(default, (cst.SimpleString, cst.ConcatenatedString)):
        return "str"
    return "Any"


class _KeyCalls(cst.CSTTransformer):
    """`rngs()` (the randomness a torch __init__ drew from) -> the parameter initialiser's key."""

    def __init__(self, rngs: str):
        self.rngs = rngs
        self.count = 0

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if isinstance(original.func, cst.Name) and original.func.value == self.rngs and not original.args:
            self.count += 1
            return cst.parse_expression(f"jax.random.fold_in(key, {self.count - 1})") if self.count > 1 \
                else cst.Name("key")
        return updated


class _Parameters(cst.CSTTransformer):
    """`self.w = __pt2jax_param__(value)` -> `self.w = self.param("w", lambda key: value)`."""

    def __init__(self, rngs: str):
        self.rngs = rngs

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        value = updated.value
        if (len(updated.targets) == 1 and _self_attr(updated.targets[0].target) is not None
                and isinstance(value, cst.Call) and isinstance(value.func, cst.Name)
                and value.func.value == PARAM_MARKER and len(value.args) == 1):
            name = _self_attr(updated.targets[0].target)
            keys = _KeyCalls(self.rngs)
            inner = value.args[0].value.visit(keys)
            key = "key" if keys.count else "_key"
            text = f'self.param("{name}", lambda {key}: {_code(inner)})'
            return updated.with_changes(value=cst.parse_expression(text))
        return updated


class _Rename(cst.CSTTransformer):
    """`self.x` -> `self.<new>` for the attributes of `renames`."""

    def __init__(self, renames: dict[str, str]):
        self.renames = renames

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        attr = _self_attr(original)
        if attr in self.renames:
            return updated.with_changes(attr=cst.Name(self.renames[attr]))
        return updated


def _assigned_attributes(statements) -> list[tuple[str, cst.CSTNode]]:
    """(attribute, value) of each `self.x = value` (or `self.x op= ...`, `self.x: T = ...`) in statements."""
    found = []

    class Visitor(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            for t in node.targets:
                attr = _self_attr(t.target)
                if attr is not None:
                    found.append((attr, node.value))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            attr = _self_attr(node.target)
            if attr is not None:
                found.append((attr, None))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            attr = _self_attr(node.target)
            if attr is not None:
                found.append((attr, node.value))

    for stmt in statements:
        stmt.visit(Visitor())
    return found


def _rebound(statements) -> set[str]:
    """Names assigned anywhere in statements (a parameter read later may hold another value)."""
    names: set[str] = set()

    class Visitor(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            names.update(n for n in _names(node.target) if not isinstance(node.target, cst.Attribute))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if isinstance(node.target, cst.Name):
                names.add(node.target.value)

        def visit_For(self, node: cst.For) -> None:
            names.update(_names(node.target))

    for stmt in statements:
        stmt.visit(Visitor())
    return names


def _is_copy(stmt: cst.BaseStatement, fields: set[str], rebound: set[str]) -> bool:
    """`self.p = p` of a field p never rebound: the field already holds it."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
        return False
    assign = stmt.body[0]
    if len(assign.targets) != 1:
        return False
    attr = _self_attr(assign.targets[0].target)
    return (attr in fields and attr not in rebound and isinstance(assign.value, cst.Name)
            and assign.value.value == attr)


def _init_convertible(init: cst.FunctionDef) -> bool:
    """facts.py reports the __init__ shapes that give no dataclass fields (lint says the same)."""
    params = init.params
    if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None or params.posonly_params:
        return False
    plain = list(params.params)[1:]
    if any(p.name.value in RESERVED for p in [*plain, *params.kwonly_params]):
        return False
    if any(p.default is not None for p in plain) and any(p.default is None for p in params.kwonly_params):
        return False
    return True
