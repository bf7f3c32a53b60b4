"""Methods of a module class that run only inside forward: each is called (`self.m(...)`) only from
forward or from another such method, and named nowhere else in the file. A target whose modules
get their mode as forward's argument (Linen's `train`) passes it on to them (lint and rewrite
read the same answer: structure_facts, targets/linen)."""

from __future__ import annotations

import ast

from ..astwalk import walk

__all__ = ["forward_helpers"]


def forward_helpers(cls: ast.ClassDef, tree: ast.AST | None = None) -> frozenset[str]:
    """The names of `cls`'s forward-only methods; `tree` (the file) rules out a method named
    outside the class's own `self.m(...)` calls (`model.m(x)`, `getattr`-free references)."""
    methods = {s.name: s for s in cls.body if isinstance(s, ast.FunctionDef) and not s.decorator_list}
    candidates = {m for m in methods if m != "forward" and not m.startswith("__")}
    callers: dict[str, set[str]] = {m: set() for m in candidates}
    counted: dict[str, int] = dict.fromkeys(candidates, 0)
    for name, method in methods.items():
        nodes = walk(method)  # cached: the fact modules walk the same methods
        called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
        for node in nodes:
            if (isinstance(node, ast.Attribute) and node.attr in callers and isinstance(node.value, ast.Name)
                    and node.value.id == "self"):
                if id(node) in called:
                    callers[node.attr].add(name)
                    counted[node.attr] += 1
                else:
                    callers[node.attr].add("<value>")  # passed on, stored: may run anywhere
    if tree is not None:
        named: dict[str, int] = dict.fromkeys(candidates, 0)
        for node in walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in named:
                named[node.attr] += 1
            elif isinstance(node, ast.Name) and node.id in named:
                named[node.id] += 1
        for m, n in named.items():
            if n > counted[m]:
                callers[m].add("<outside>")
    found = {m for m, by in callers.items() if by}
    changed = True
    while changed:
        changed = False
        for m in sorted(found):
            if callers[m] - found - {"forward"}:
                found.discard(m)
                changed = True
    return frozenset(found)
