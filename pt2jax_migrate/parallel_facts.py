"""Facts about data-parallel wrappers, read off the `ast` once (lint and rewrite alike): which
names a converted `nn.DataParallel(...)` / `DistributedDataParallel(...)` is assigned to, and
where the program reads `NAME.module` of one (the wrapped module, which is the model itself
once the wrapper is gone). The verdicts are core.parallel's."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .astwalk import walk as _walk
from .core import parallel
from .names import module_aliases, qualname_of

Position = tuple[int, int]  # (line, column) of a node


@dataclass(frozen=True)
class ParallelFacts:
    wrapped: frozenset[str] = frozenset()  # `model` / `self.model` of converted wrapper assignments
    assigned: frozenset[Position] = frozenset()  # wrapper calls standing as `NAME = W(...)[.to(...)]`
    module_reads: dict[Position, str] = field(default_factory=dict)  # `NAME.module` reads -> NAME
    nodes: dict[Position, ast.AST] = field(default_factory=dict)  # the attribute nodes (lint's columns)


NONE = ParallelFacts()


def _target_text(node: ast.AST) -> str | None:
    """`model` or `self.model` (a name or a chain of attributes on a name), else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and _target_text(node.value) is not None:
        return f"{_target_text(node.value)}.{node.attr}"
    return None


def parallel_facts(tree: ast.Module, source: str) -> ParallelFacts:
    if "Parallel" not in source:
        return NONE
    aliases = module_aliases(tree)
    wrapped: set[str] = set()
    assigned: set[Position] = set()
    for node in _walk(tree):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        if (isinstance(call.func, ast.Attribute) and call.func.attr in parallel.DEVICE_MOVES
                and isinstance(call.func.value, ast.Call)):
            call = call.func.value  # `model = nn.DataParallel(net).to(device)`: the move goes (PTJ302)
        q = qualname_of(call.func, aliases)
        target = _target_text(node.targets[0])
        if q not in parallel.WRAPPERS or target is None:
            continue
        assigned.add((call.lineno, call.col_offset))
        args = tuple((ast.unparse(a.value), True) if isinstance(a, ast.Starred) else (ast.unparse(a), False)
                     for a in call.args)
        kwargs = tuple((k.arg, ast.unparse(k.value)) for k in call.keywords)
        if parallel.wrapper_refusal(q, args, kwargs, "assign") is None:
            wrapped.add(target)
    if not assigned:
        return NONE
    reads: dict[Position, str] = {}
    nodes: dict[Position, ast.AST] = {}
    for node in _walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == parallel.MODULE_ATTRIBUTE
                and isinstance(node.ctx, ast.Load)):
            receiver = _target_text(node.value)
            if receiver in wrapped:
                reads[(node.lineno, node.col_offset)] = receiver
                nodes[(node.lineno, node.col_offset)] = node
    return ParallelFacts(frozenset(wrapped), frozenset(assigned), reads, nodes)
