"""The Linen class pass's init step (module.py calls it): what a torch `__init__` did to its
parameters once built (`module_apply(self, self._init_weights)`, `torch_init.K(...)`, a method
only __init__ runs) cannot run in setup(), where a Linen module's parameters do not exist yet.
Those statements become the method `init_parameters(self, rngs)`, which `@torch_initialised` on
`__call__` runs at the end of the call under `module.init` (helpers_init.py), once the call has
built the parameters.
"""

from __future__ import annotations

import ast
import textwrap

import libcst as cst

from ...core.inits import INIT_HELPER
from .init_hook_facts import HOOK, _assigned as _assigned_ast, partial_copy, split
from .module_structure import _code, _names

__all__ = ["HOOK", "add_hook", "split_init"]

DECORATOR = "torch_initialised"


def _ast_units(statements: list) -> list[list[ast.stmt]]:
    """Each statement as the ast statements it holds (the decision is init_hook_facts', on the ast)."""
    return [ast.parse(textwrap.dedent(_code(s)).strip() + "\n").body or [ast.Pass()] for s in statements]


def _is_init_call(methods: set[str]):
    def is_call(call: ast.Call) -> bool:
        func = ast.unparse(call.func)
        return func == "module_apply" or func.startswith(f"{INIT_HELPER}.") or (
            func.startswith("self.") and func[len("self."):] in methods)

    return is_call


def _partial(stmt, unit) -> cst.SimpleStatementLine:
    """`self.std = std = value` -> `std = value`; `self.h, h = v, w` -> `h = w`."""
    assign = stmt.body[0]
    if len(assign.targets) > 1:
        return stmt.with_changes(body=[assign.with_changes(targets=[t for t in assign.targets
                                                                    if _cst_plain(t.target)])])
    names = [n for n, _ in partial_copy(unit)]
    values = [e.value for t, e in zip(assign.targets[0].target.elements, assign.value.elements)
              if isinstance(t.value, cst.Name)]
    copy = cst.parse_statement(f"{', '.join(names)} = {', '.join(_code(v) for v in values)}\n")
    return copy.with_changes(leading_lines=stmt.leading_lines)


def split_init(statements: list, methods: set[str], fields: set[str], hook: bool | None = True):
    """(setup's statements, init_parameters' statements, the fields the latter read): the init
    statements init_hook_facts.split moves, with a copy of the setup locals they read."""
    all_units = _ast_units(statements)
    found = split(all_units, _is_init_call(methods), fields, hook)
    moved = [statements[i] for i in found.moved]
    copied = [statements[i] for i in found.copied]
    partial = {id(statements[i]): all_units[i] for i in found.copied if partial_copy(all_units[i])}
    kept = [s for s in statements if not any(s is m for m in moved)]
    # a copied local no statement left in setup reads goes (it may read a parameter, which setup
    # has not built yet: `std = linen_param(self.fc, "kernel").get_value().shape[0] ** -0.5`)
    for stmt in reversed(copied):
        left = set().union(*(_names(s) for s in kept if s is not stmt))
        if id(stmt) not in partial and not _assigned_names(stmt) & left:
            kept = [s for s in kept if s is not stmt]
    # a partial copy (`self.std = std = value`) stays in setup; init_parameters gets `std = value`
    moved = [_partial(s, partial[id(s)]) if id(s) in partial else s for s in copied] + moved  # setup's order
    read = sorted(set().union(*(_names(s) for s in moved)) & fields) if moved else []
    return kept, moved, read, found.refused


def _cst_plain(target) -> bool:
    if isinstance(target, (cst.Tuple, cst.List)):
        return all(_cst_plain(e.value) for e in target.elements)
    return isinstance(target, cst.Name)


def _assigned_names(stmt) -> set[str]:
    return _assigned_ast(_ast_units([stmt])[0])


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
    # no blank line at the top of the method; a marker above the first statement stays with it
    statements[0] = statements[0].with_changes(
        leading_lines=[line for line in statements[0].leading_lines if line.comment is not None])
    hook = cst.parse_statement(f"def {HOOK}(self, rngs):\n    pass\n")
    hook = hook.with_changes(body=hook.body.with_changes(body=statements),  # type: ignore[attr-defined]
                             leading_lines=[cst.EmptyLine(indent=False)])
    decorator = cst.Decorator(decorator=cst.Name(DECORATOR))
    body = list(body)
    body[call] = body[call].with_changes(decorators=[decorator, *body[call].decorators])
    body.insert(at + 1, hook)
    transformer.helpers.add(DECORATOR)
    return body
