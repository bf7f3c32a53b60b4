"""The Linen class pass's init step (module.py calls it): what a torch `__init__` did to its
parameters once built (`module_apply(self, self._init_weights)`, `torch_init.K(...)`, a method
only __init__ runs) cannot run in setup(), where a Linen module's parameters do not exist yet.
Those statements become the method `init_parameters(self, rngs)`, which `@torch_initialised` on
`__call__` runs at the end of the call under `module.init` (helpers_init.py), once the call has
built the parameters.
"""

from __future__ import annotations

import libcst as cst

from ...core.inits import INIT_HELPER
from .module_structure import _code, _names

__all__ = ["HOOK", "add_hook", "split_init"]

HOOK = "init_parameters"
DECORATOR = "torch_initialised"


def _is_init_call(stmt: cst.BaseStatement, methods: set[str]) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if not (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)):
            return False
        func = _code(small.value.func)
        if not (func == "module_apply" or func.startswith(f"{INIT_HELPER}.")
                or func.startswith("self.") and func[len("self."):] in methods):
            return False
    return True


def _is_init_code(stmt: cst.BaseStatement, methods: set[str], block: bool = False) -> bool:
    """A statement only initialising parameters: init calls, and blocks (if/elif/else, for, with)
    of init calls and, inside a block (`block`), `name = value` locals they compute
    (`n = m.kernel_size[0] * m.out_channels`); at least one init call."""
    if isinstance(stmt, cst.SimpleStatementLine):
        return _is_init_call(stmt, methods)
    return _init_block(stmt, methods) is True


def _init_block(stmt, methods: set[str]) -> bool | None:
    """True: a block of init code with an init call; None: init code without one; False: other."""
    if isinstance(stmt, cst.SimpleStatementLine):
        if _is_init_call(stmt, methods):
            return True
        return None if _simple_local(stmt) is not None or all(isinstance(s, cst.Pass) for s in stmt.body) \
            else False
    if not isinstance(stmt, (cst.If, cst.For, cst.With, cst.Else)):
        return False
    orelse = getattr(stmt, "orelse", None)
    if orelse is not None and not isinstance(stmt, cst.If):
        return False  # for ... else
    inner = getattr(getattr(stmt, "body", None), "body", None)
    if not inner:
        return False
    found = [_init_block(s, methods) for s in [*inner, *([orelse] if orelse is not None else [])]]
    if False in found:
        return False
    return True if True in found else None


def _assigned(statements) -> set[str]:
    names: set[str] = set()

    class Visitor(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            if isinstance(node.target, (cst.Name, cst.Tuple, cst.List)):
                names.update(_names(node.target))

        def visit_For(self, node: cst.For) -> None:
            names.update(_names(node.target))

    for stmt in statements:
        stmt.visit(Visitor())
    return names


def _loop_targets(stmt) -> set[str]:
    names: set[str] = set()

    class Visitor(cst.CSTVisitor):
        def visit_For(self, node: cst.For) -> None:
            names.update(_names(node.target))

    stmt.visit(Visitor())
    return names


def _simple_local(stmt) -> str | None:
    """`name = value` (one plain name assigned): the name."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign) \
            and len(stmt.body[0].targets) == 1 and isinstance(stmt.body[0].targets[0].target, cst.Name):
        return stmt.body[0].targets[0].target.value
    return None


def _local_only(stmt) -> bool:
    """A statement computing setup locals and nothing else (`a, b = 0.5, d * 2`, a for / if
    block of such): copied into init_parameters when init code reads what it assigns."""
    if isinstance(stmt, cst.SimpleStatementLine):
        return all(isinstance(s, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and all(
            _plain(t) for t in ([a.target for a in s.targets] if isinstance(s, cst.Assign) else [s.target]))
            for s in stmt.body)
    if not isinstance(stmt, (cst.If, cst.For, cst.Else)) or isinstance(stmt, cst.For) and stmt.orelse:
        return False
    orelse = getattr(stmt, "orelse", None)
    inner = getattr(getattr(stmt, "body", None), "body", None) or ()
    return bool(inner) and all(_local_only(s) for s in [*inner, *([orelse] if orelse is not None else [])])


def _chained_local(stmt) -> cst.SimpleStatementLine | None:
    """`self.std = std = value`: the copy `std = value` (its plain-name targets), where the value
    builds nothing (no call of a class: a layer recomputed outside setup is another layer)."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Assign)):
        return None
    assign = stmt.body[0]
    plain = [t for t in assign.targets if _plain(t.target)]
    if not plain or len(plain) == len(assign.targets) or not all(
            _plain(t.target) or isinstance(t.target, cst.Attribute) and _code(t.target.value) == "self"
            for t in assign.targets):
        return None
    calls = [_code(c.func) for c in _calls(assign.value)]
    if any(f.rsplit(".", 1)[-1][:1].isupper() for f in calls):
        return None
    return stmt.with_changes(body=[assign.with_changes(targets=plain)])


def _calls(node) -> list:
    found: list = []

    class Visitor(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            found.append(call)

    node.visit(Visitor())
    return found


def _plain(target) -> bool:
    if isinstance(target, (cst.Tuple, cst.List)):
        return all(_plain(e.value) for e in target.elements)
    return isinstance(target, cst.Name)


def _copies(i: int, statements: list, locals_: set[str], needs: set[str]) -> list | None:
    """The statements before statements[i] computing the locals `needs` (transitively), all
    local-only (None: one is not, or a local has no assignment before)."""
    found: list = []
    seen: set[str] = set()
    todo = sorted(needs)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        providers = [s for s in statements[:i] if name in _assigned([s])]
        if not providers or not all(_local_only(p) or _chained_local(p) for p in providers):
            return None
        for p in providers:
            if p not in found:
                found.append(p)
                todo += sorted((_names(p) & locals_) - seen)
    return found


def split_init(statements: list, methods: set[str], fields: set[str]):
    """(setup's statements, init_parameters' statements, the fields the latter read): the init
    statements, with a copy of the setup locals they read where the statements computing them
    (before, transitively) compute nothing else."""
    locals_ = _assigned(statements) - fields
    kept, moved, copied = [], [], []
    for i, stmt in enumerate(statements):
        own = _assigned([stmt]) if not isinstance(stmt, cst.SimpleStatementLine) else set()
        others = set().union(*(_names(s) for s in statements if s is not stmt))
        if not _is_init_code(stmt, methods) or own - _loop_targets(stmt) & others:
            kept.append(stmt)  # not init code, or a local of its block read elsewhere in setup
            continue
        copies = _copies(i, statements, locals_, _names(stmt) & locals_ - own)
        if copies is None:
            kept.append(stmt)
            continue
        copied += [c for c in copies if c not in copied]
        moved.append(stmt)
    # a copied local no statement left in setup reads goes (it may read a parameter, which setup
    # has not built yet: `std = linen_param(self.fc, "kernel").get_value().shape[0] ** -0.5`)
    for stmt in reversed(copied):
        left = set().union(*(_names(s) for s in kept if s is not stmt))
        if _chained_local(stmt) is None and not _assigned([stmt]) & left:
            kept = [s for s in kept if s is not stmt]
    # a chained `self.std = std = value` stays in setup; init_parameters gets `std = value`
    moved = [_chained_local(s) or s for s in statements if s in copied] + moved  # setup's order
    read = sorted(set().union(*(_names(s) for s in moved)) & fields) if moved else []
    return kept, moved, read


def add_hook(body: list, at: int, moved: list, read: list[str], transformer) -> list:
    """The class body with `def init_parameters(self, rngs)` (the moved statements) after
    body[at] (setup) and `@torch_initialised` on __call__ (None: no __call__ to run it)."""
    call = next((i for i, s in enumerate(body) if isinstance(s, cst.FunctionDef) and s.name.value == "__call__"),
                None)
    if call is None:
        return None
    statements = list(moved)
    if read:
        statements.insert(0, cst.parse_statement(f"{', '.join(read)} = {', '.join('self.' + n for n in read)}\n"))
    statements[0] = statements[0].with_changes(leading_lines=[])
    hook = cst.parse_statement(f"def {HOOK}(self, rngs):\n    pass\n")
    hook = hook.with_changes(body=hook.body.with_changes(body=statements),  # type: ignore[attr-defined]
                             leading_lines=[cst.EmptyLine(indent=False)])
    decorator = cst.Decorator(decorator=cst.Name(DECORATOR))
    body = list(body)
    body[call] = body[call].with_changes(decorators=[decorator, *body[call].decorators])
    body.insert(at + 1, hook)
    transformer.helpers.add(DECORATOR)
    return body
