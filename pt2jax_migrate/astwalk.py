"""`ast.walk` for the fact modules that read one tree many times over: the nodes in the
same order (breadth first, as ast.walk yields them), as a list kept on the walked node, so
the tenth walk of a module or class costs a list iteration. The trees walked are never
changed after parsing (a change would need a fresh parse, hence fresh nodes)."""

from __future__ import annotations

import ast

_AST = ast.AST
_CACHE = "_pt2jax_walk"


def walk(node: ast.AST) -> list[ast.AST]:
    """Every node below `node` and itself, in ast.walk's order."""
    nodes = node.__dict__.get(_CACHE)
    if nodes is None:
        nodes = [node]
        append, extend = nodes.append, nodes.extend
        for item in nodes:  # the list grows while it is read: breadth first
            for name in item._fields:
                value = getattr(item, name, None)
                if isinstance(value, _AST):
                    append(value)
                elif isinstance(value, list):
                    extend([child for child in value if isinstance(child, _AST)])
        setattr(node, _CACHE, nodes)
    return nodes
