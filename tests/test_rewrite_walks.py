"""The rewrite's fast walks (read off node fields, statements only where that is enough) find
exactly what a libcst visitor over every node finds, on every fixture and on odd shapes."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from pt2jax_migrate.rewrite.cst_util import (_all_params, _dotted, _method_calls, _target_names, is_torch_import,
                                             names_in)
from pt2jax_migrate.rewrite.imports import import_aliases
from pt2jax_migrate.rewrite.scopes import _bindings
from pt2jax_migrate.names import is_torch_name

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "fixtures").rglob("*.py"))

ODD = '''
import torch.nn as nn, torch
from torch import optim as o
def f(a, /, b=1, *c, d, **e):
    import torch.nn.functional as F
    from torch.nn import Linear
    x: int
    y = z = [q for q in range(3)]
    (u, [v, *w]) = 1, (2, 3, 4)
    g = lambda h: h
    for i, j in []:
        k += 1
    else:
        pass
    with open("p") as (l, m), open("q") as n:
        pass
    try:
        pass
    except ValueError as err:
        pass
    match a:
        case {"k": kk, **rest} if kk:
            mm = 1
        case Point(x=px) as pt:
            nn2 = 2
    def inner(r):
        s = 1
    class Inner:
        t = 2
    opt = o.SGD(params, lr=0.1).step() if a else torch.zeros(1).backward()
    return F.relu(Linear(1, 2)(x)), None, True
'''


class _Names(cst.CSTVisitor):  # the visitor names_in replaced
    def __init__(self):
        self.names = set()

    def visit_Import(self, node):
        return False

    def visit_ImportFrom(self, node):
        return False

    def visit_Name(self, node):
        self.names.add(node.value)

    def visit_Attribute(self, node):
        node.value.visit(self)
        return False

    def visit_Arg(self, node):
        node.value.visit(self)
        return False


class _Bindings(cst.CSTVisitor):  # the visitor _bindings replaced
    def __init__(self):
        self.names, self.depth = set(), 0

    def visit_FunctionDef(self, node):
        self.depth += 1
        if self.depth == 1:
            self.names.update(p.name.value for p in _all_params(node.params))
            return True
        self.names.add(node.name.value)
        return False

    def leave_FunctionDef(self, node):
        self.depth -= 1

    def visit_ClassDef(self, node):
        self.names.add(node.name.value)
        return False

    def visit_Lambda(self, node):
        return False

    def visit_AssignTarget(self, node):
        self.names.update(_target_names(node.target))

    def visit_AnnAssign(self, node):
        self.names.update(_target_names(node.target))

    def visit_AugAssign(self, node):
        self.names.update(_target_names(node.target))

    def visit_For(self, node):
        self.names.update(_target_names(node.target))

    def visit_AsName(self, node):
        self.names.update(_target_names(node.name))

    def visit_Import(self, node):  # a torch import binds a file alias, not a shadowing local
        return not is_torch_import(node)

    def visit_ImportFrom(self, node):
        return not is_torch_import(node)


def _reference_aliases(module):
    aliases, clashes = {}, set()

    def bind(local, full):
        if aliases.setdefault(local, full) != full:
            clashes.add(local)

    class Collect(cst.CSTVisitor):
        def visit_Import(self, node):
            for alias in node.names:
                full = _dotted(alias.name)
                if full and is_torch_name(full):
                    local = alias.asname.name.value if alias.asname is not None else full.split(".")[0]
                    bind(local, full if alias.asname is not None else local)

        def visit_ImportFrom(self, node):
            if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
                return
            base = _dotted(node.module)
            if base and is_torch_name(base):
                for alias in node.names:
                    local = alias.asname.name.value if alias.asname is not None else alias.name.value
                    bind(local, f"{base}.{alias.name.value}")

    module.visit(Collect())
    return {local: full for local, full in aliases.items() if local not in clashes}


def _functions(module):
    found = []

    class Find(cst.CSTVisitor):
        def visit_FunctionDef(self, node):
            found.append(node)

    module.visit(Find())
    return found


def _sources():
    yield "odd", ODD
    for path in FIXTURES:
        try:
            yield path.name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


@pytest.mark.parametrize("name,source", list(_sources()), ids=lambda v: v if isinstance(v, str) and len(v) < 80 else "")
def test_fast_walks_match_the_visitors(name, source):
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError:
        pytest.skip("not Python libcst parses")
    reference = _Names()
    module.visit(reference)
    assert names_in(module) == reference.names
    assert list(import_aliases(module).items()) == list(_reference_aliases(module).items())
    for function in _functions(module):
        bindings = _Bindings()
        function.visit(bindings)
        assert _bindings(function) == bindings.names, function.name.value
    for statement in module.body:
        found = []

        class Calls(cst.CSTVisitor):
            def visit_Call(self, call):
                if isinstance(call.func, cst.Attribute) and call.func.attr.value in {"step", "backward"}:
                    found.append(call)

        statement.visit(Calls())
        assert _method_calls(statement, {"step", "backward"}) == found
