"""torch.Generator objects that feed the data pipeline, read off the `ast` once (lint and
rewrite ask the same fact).

`g = torch.Generator(); g.manual_seed(0); DataLoader(ds, shuffle=True, generator=g)` (PyTorch's
reproducibility recipe): the DataLoader stays PyTorch (the data-pipeline policy), so its
generator must stay a torch.Generator; converting it to a key stream would break the loader.
"""

from __future__ import annotations

import ast

from .astwalk import walk as _walk
from .names import module_aliases, qualname_of

DATA = "torch.utils.data"


def data_generator_calls(tree: ast.Module, source: str | None = None) -> frozenset[tuple[int, int]]:
    """(line, col_offset) of each call that builds or reseeds a generator handed to a
    torch.utils.data call as `generator=`: the calls in `g = ...` for such a name g, the
    statements `g.manual_seed(s)`, and the calls written inside `generator=...` itself.
    `source`, when given, answers at once for a file that never writes `generator`."""
    if source is not None and "generator" not in source:
        return frozenset()
    aliases = module_aliases(tree)
    if not any(q.startswith(DATA) for q in aliases.values()) and "torch" not in aliases:
        return frozenset()
    names: set[str] = set()
    out: set[tuple[int, int]] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Call) and (qualname_of(node.func, aliases) or "").startswith(DATA):
            for keyword in node.keywords:
                if keyword.arg != "generator":
                    continue
                if isinstance(keyword.value, ast.Name):
                    names.add(keyword.value.id)
                out |= {(c.lineno, c.col_offset) for c in _walk(keyword.value) if isinstance(c, ast.Call)}
    if not names:
        return frozenset(out)
    for node in _walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in node.targets):
            out |= {(c.lineno, c.col_offset) for c in _walk(node.value) if isinstance(c, ast.Call)}
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in names:
                out.add((node.value.lineno, node.value.col_offset))
    return frozenset(out)
