"""`ast.walk` for the fact modules that read one tree many times over: the nodes in the
same order (breadth first, as ast.walk yields them), as a list kept on the walked node, so
the tenth walk of a module or class costs a list copy. The trees walked are never
changed after parsing (a change would need a fresh parse, hence fresh nodes).

One difference: the list leaves out the expression contexts (`ctx`: the Load / Store / Del
singletons), which no reader looks for; with the fields that never hold a node (names,
identifiers, constants), they are skipped without a look.

Also here, for the ast readers of text (lint's segments, core/comments): char_column, an ast
column (UTF-8 bytes) as an index into the line's str."""

from __future__ import annotations

import ast

_AST = ast.AST
_CACHE = "_pt2jax_walk"

# fields that never hold a node, in any node class (Constant's and MatchSingleton's `value` below)
_SCALARS = frozenset({"ctx", "id", "attr", "arg", "name", "asname", "module", "level", "kind", "type_comment",
                      "is_async", "simple", "conversion", "tag"})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    fields = tuple(f for f in cls._fields if f not in _SCALARS  # type: ignore[attr-defined]
                   and not (f == "value" and cls in (ast.Constant, ast.MatchSingleton)))
    _FIELDS[cls] = fields
    return fields


def walk(node: ast.AST) -> list[ast.AST]:
    """Every node below `node` and itself, in ast.walk's order (expression contexts left out)."""
    below = node.__dict__.get(_CACHE)
    if below is not None:
        return [node, *below]
    nodes = [node]
    append, extend = nodes.append, nodes.extend
    known = _FIELDS
    for item in nodes:  # the list grows while it is read: breadth first
        cls = item.__class__
        fields = known.get(cls)
        if fields is None:
            fields = _fields(cls)
        for name in fields:
            value = getattr(item, name, None)
            if type(value) is list:
                if value:
                    extend([child for child in value if isinstance(child, _AST)])
            elif isinstance(value, _AST):
                append(value)
    # kept without `node` itself: a node holding a list that holds it would be a reference
    # cycle, and every tree walked would wait for the garbage collector to be freed
    setattr(node, _CACHE, nodes[1:])
    return nodes


def children(node: ast.AST) -> list[ast.AST]:
    """ast.iter_child_nodes(node) as a list, in its order (expression contexts left out)."""
    cls = node.__class__
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _fields(cls)
    found: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if type(value) is list:
            if value:
                found.extend([child for child in value if isinstance(child, _AST)])
        elif isinstance(value, _AST):
            found.append(value)
    return found


def char_column(line: str, col: int) -> int:
    """An ast column (UTF-8 bytes into the line) as an index into the line's text."""
    return col if line.isascii() else len(line.encode("utf-8")[:col].decode("utf-8", "replace"))
