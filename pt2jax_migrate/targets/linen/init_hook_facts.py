"""Which of a torch `__init__`'s init statements the Linen target moves into `init_parameters`
(init_hook.py writes the method), decided on the `ast` so both front ends ask the same thing:
lint on the original `__init__` (facts.module_sites reports what stays), the rewrite on the
statements it puts in setup() (init_hook.split_init moves what this says).

An init statement (a converted init call, or an if / for / with block of them and the locals
they compute) moves when it can run after setup(): each setup local it reads is copied, so the
statements computing it (before, transitively) must compute locals and nothing else
(`a, b = 0.5, d * 2`, a block of such), or be `self.std = std = value` / `self.h, h = v, w`
whose plain-name part is copied. What cannot move stays in setup(), where Linen parameters do
not exist yet: it would fail under `module.init`, so it is reported (`REFUSED`) for a person.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["HOOK", "Split", "split", "units"]

HOOK = "init_parameters"
REFUSED = ("torch init code left in setup(), where Linen parameters do not exist yet (module.init fails): "
           "{why}; move it to a method run after __call__ builds them, by hand")


@dataclass
class Split:
    moved: list[int] = field(default_factory=list)  # init units moved, in order
    copied: list[int] = field(default_factory=list)  # units whose locals init_parameters copies
    refused: dict[int, str] = field(default_factory=dict)  # init unit -> why it stays in setup()


def units(body: list[ast.stmt]) -> list[list[ast.stmt]]:
    """`body` as the rewrite's statements: simple statements sharing a line (`a = 1; b = 2`)
    are one, a compound statement is one."""
    out: list[list[ast.stmt]] = []
    for stmt in body:
        if out and _simple(stmt) and _simple(out[-1][-1]) and stmt.lineno == out[-1][-1].end_lineno:
            out[-1].append(stmt)
        else:
            out.append([stmt])
    return out


def _simple(stmt: ast.stmt) -> bool:
    return not hasattr(stmt, "body")


def _names(nodes) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def _target_names(target: ast.AST) -> set[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_target_names(e) for e in target.elts)) if target.elts else set()
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return {target.id} if isinstance(target, ast.Name) else set()


def _assigned(nodes) -> set[str]:
    names: set[str] = set()
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    names |= _target_names(t)
            elif isinstance(n, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
                names |= _target_names(n.target)
            elif isinstance(n, ast.NamedExpr):
                names.add(n.target.id)
            elif isinstance(n, ast.withitem) and n.optional_vars is not None:
                names |= _target_names(n.optional_vars)
    return names


def _loop_targets(nodes) -> set[str]:
    return set().union(*(_target_names(n.target) for node in nodes for n in ast.walk(node)
                         if isinstance(n, (ast.For, ast.AsyncFor))), set())


def _plain(target: ast.AST) -> bool:
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_plain(e) for e in target.elts)
    return isinstance(target, ast.Name)


def _self_attr(target: ast.AST) -> bool:
    return isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"


def _init_block(stmt: ast.stmt, is_call) -> bool | None:
    """True: init code with an init call; None: init code without one; False: other."""
    if _simple(stmt):
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and is_call(stmt.value):
            return True
        local = isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
        return None if local or isinstance(stmt, ast.Pass) else False
    if isinstance(stmt, ast.For) and stmt.orelse or not isinstance(stmt, (ast.If, ast.For, ast.With)):
        return False
    found = [_init_block(s, is_call) for s in [*stmt.body, *getattr(stmt, "orelse", ())]]
    return False if False in found else True if True in found else None


def _is_init(unit: list[ast.stmt], is_call) -> bool:
    if _simple(unit[0]):
        return all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and is_call(s.value) for s in unit)
    return _init_block(unit[0], is_call) is True


def _local_only(unit) -> bool:
    """Statements computing locals and nothing else (`a, b = 0.5, d * 2`, a block of such)."""
    for stmt in unit:
        if isinstance(stmt, ast.Assign):
            ok = all(_plain(t) for t in stmt.targets)
        elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
            ok = _plain(stmt.target)
        elif isinstance(stmt, ast.If) or isinstance(stmt, ast.For) and not stmt.orelse:
            ok = bool(stmt.body) and _local_only(stmt.body) and _local_only(stmt.orelse)
        else:
            ok = False
        if not ok:
            return False
    return True


def _builds(node: ast.AST) -> bool:
    """A call of a class (capitalised name): a layer recomputed outside setup is another layer."""
    return any(isinstance(n, ast.Call) and (getattr(n.func, "attr", None) or getattr(n.func, "id", ""))[:1].isupper()
               for n in ast.walk(node))


def partial_copy(unit) -> list[tuple[str, ast.expr]] | None:
    """`self.std = std = value` -> [(std, value)]; `self.h, h = v, w` -> [(h, w)]: the plain-name
    part of an assignment to attributes and locals, when the copied values build nothing."""
    if len(unit) != 1 or not isinstance(unit[0], ast.Assign):
        return None
    assign = unit[0]
    targets = assign.targets
    if len(targets) > 1:
        plain = [t for t in targets if _plain(t)]
        if not plain or len(plain) == len(targets) or not all(_plain(t) or _self_attr(t) for t in targets) \
                or _builds(assign.value):
            return None
        return [(ast.unparse(t), assign.value) for t in plain]
    target, value = targets[0], assign.value
    if not (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
            and len(target.elts) == len(value.elts)
            and not any(isinstance(e, ast.Starred) for e in [*target.elts, *value.elts])):
        return None
    pairs = list(zip(target.elts, value.elts))
    plain = [(t.id, v) for t, v in pairs if isinstance(t, ast.Name)]
    if not plain or len(plain) == len(pairs) or not all(isinstance(t, ast.Name) or _self_attr(t) for t, _ in pairs) \
            or any(_builds(v) for _, v in plain):
        return None
    return plain


def _copies(i: int, all_units, locals_: set[str], needs: set[str]) -> tuple[list[int] | None, str]:
    found: list[int] = []
    seen: set[str] = set()
    todo = sorted(needs)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        providers = [j for j in range(i) if name in _assigned(all_units[j])]
        if not providers:
            return None, f"it reads `{name}`, which setup() does not assign before it"
        bad = [j for j in providers if not (_local_only(all_units[j]) or partial_copy(all_units[j]))]
        if bad:
            return None, (f"it reads the local `{name}`, computed by a statement that does more than compute "
                          f"locals (line {all_units[bad[0]][0].lineno})")
        for j in providers:
            if j not in found:
                found.append(j)
                todo += sorted((_names(all_units[j]) & locals_) - seen)
    return found, ""


def split(all_units: list[list[ast.stmt]], is_call: Callable[[ast.Call], bool], fields: set[str],
          hook: bool | None) -> Split:
    """The decision on setup()'s statements (`all_units`, each one statement of the rewrite):
    `is_call` says which calls are converted init calls, `fields` are the Linen fields, `hook`
    whether the class can run init_parameters (a __call__, no method of that name; None: no
    __call__)."""
    out = Split()
    no_hook = "no forward (__call__) runs the init hook" if hook is None else f"the class has a method {HOOK}"
    locals_ = _assigned([s for u in all_units for s in u]) - fields
    for i, unit in enumerate(all_units):
        if not _is_init(unit, is_call):
            continue
        if not hook:
            out.refused[i] = no_hook
            continue
        own = set() if _simple(unit[0]) else _assigned(unit)
        others = _names([s for j, u in enumerate(all_units) if j != i for s in u])
        clash = (own - _loop_targets(unit)) & others
        if clash:
            out.refused[i] = f"its local {', '.join(sorted(clash))} is read elsewhere in setup()"
            continue
        copies, why = _copies(i, all_units, locals_, _names(unit) & locals_ - own)
        if copies is None:
            out.refused[i] = why
            continue
        out.copied += [c for c in copies if c not in out.copied]
        out.moved.append(i)
    out.copied.sort()
    return out


def stuck_sites(cls: ast.ClassDef, init_calls: set[tuple[int, int]]) -> dict[int, str]:
    """line -> message: the init statements of cls.__init__ the Linen target leaves in setup()
    (lint's question; `init_calls` are the positions of the calls the rewrite converts)."""
    init = next((m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name == "__init__"), None)
    if init is None or not init_calls:
        return {}
    methods = {m.name for m in cls.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
    hook = (HOOK not in methods) if methods & {"forward", "__call__"} else None
    args = init.args
    fields = {a.arg for a in [*args.posonlyargs, *args.args[1:], *args.kwonlyargs]}
    body = [s for s in init.body if not isinstance(s, ast.Pass)]
    all_units = units(body)
    is_call = lambda call: (call.lineno, call.col_offset) in init_calls  # noqa: E731
    found = split(all_units, is_call, fields, hook)
    # reported on the first init call (a simple statement: the rewrite's TODO goes above it)
    return {next(s.lineno for u in all_units[i] for s in ast.walk(u) if isinstance(s, ast.Expr)
                 and isinstance(s.value, ast.Call) and is_call(s.value)): REFUSED.format(why=why)
            for i, why in found.refused.items()}
